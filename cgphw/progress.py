"""Progress of long steps (more than a few seconds), shown on stderr.

A stage never prints: it takes ``progress: ProgressCallback | None`` and hands it one event
type, ``Progress(what, done, total, fields)``, as its work advances (``step`` does it; ``total``
0 when it cannot count, e.g. a simulator build; a new ``what`` starts a new step; ``fields``:
figures of the step, e.g. the search's generation, error and energy). The command line turns
that into a status line with a bar (rich) on stderr while stderr is a terminal, and into nothing
when it is not or with ``--quiet``, so stdout and ``--json`` output never carry progress.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator


@dataclass(frozen=True)
class Progress:
    """One progress event: ``done`` of ``total`` (0: cannot count) in the step ``what``."""
    what: str
    done: int = 0
    total: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


def step(progress: ProgressCallback | None, what: str, done: int = 0, total: int = 0, **fields: Any) -> None:
    """Report to ``progress`` if there is one (stages call this instead of testing for None)."""
    if progress is not None:
        progress(Progress(what, done, total, fields))


def echo_steps(echo: Callable[[str], None]) -> ProgressCallback:
    """A ProgressCallback that hands each step's ``what`` to ``echo`` (a line on stderr)."""
    return lambda event: echo(event.what)


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
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    console = Console(file=sys.stderr if stream is None else stream)
    # stdout stays untouched (it may be a pipe carrying --json); stderr lines go above the bar.
    bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                   TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False)
    current: dict = {}

    def update(event: Progress) -> None:
        done, total, what = event.done, event.total, event.what
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
