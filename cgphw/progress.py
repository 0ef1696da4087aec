"""Progress of long steps (more than a few seconds), shown on stderr.

A stage never prints: it takes ``progress: ProgressCallback | None`` and calls
``progress(done, total, what)`` as its work advances (``total`` 0 when it cannot count, e.g.
a simulator build; a new ``what`` starts a new step). The command line turns that into a
status line with a bar (rich) on stderr while stderr is a terminal, and into nothing when it
is not or with ``--quiet``, so stdout and ``--json`` output never carry progress.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import IO, Callable, Iterator

ProgressCallback = Callable[[int, int, str], None]


def step(progress: ProgressCallback | None, what: str, done: int = 0, total: int = 0) -> None:
    """Report to ``progress`` if there is one (stages call this instead of testing for None)."""
    if progress is not None:
        progress(done, total, what)


def shown(quiet: bool = False, stream: IO | None = None) -> bool:
    """Whether progress is shown: not asked to be quiet, and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and callable(isatty) and bool(isatty())


@contextmanager
def terminal_progress(quiet: bool = False, stream: IO | None = None) -> Iterator[ProgressCallback | None]:
    """A ProgressCallback drawing a transient status line on ``stream`` (default stderr), or
    None when progress is not shown (``quiet``, or ``stream`` is not a terminal)."""
    if not shown(quiet, stream):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr if stream is None else stream)
    # stdout stays untouched (it may be a pipe carrying --json); stderr lines go above the bar.
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                   TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False)
    current: dict = {}

    def update(done: int, total: int, what: str) -> None:
        count = f"{done}/{total}" if total else ""  # a step that cannot count: a pulsing bar, elapsed time
        if current.get("what") != what:
            if "id" in current:
                bar.remove_task(current["id"])
            current.update(what=what, id=bar.add_task(what, total=total or None, completed=done, count=count))
            bar.refresh()  # show a new step at once, not at the next tick
        elif total:
            bar.update(current["id"], total=total, completed=done, count=count)

    with bar:
        yield update
