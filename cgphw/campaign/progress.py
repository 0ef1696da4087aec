"""What a running campaign shows: runs done / running / left, the best error and energy
so far, and the time left. A live line (rich) on a terminal, plain lines otherwise."""
from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Status:
    total: int
    done: int = 0  # finished before this session or in it
    failed: int = 0
    running: int = 0
    best_error: float = math.inf
    best_energy: float = math.inf  # among circuits that reached their threshold
    seconds_left: float | None = None
    workers: int | None = None  # connected to the scheduler (None: not asked yet)
    idle_seconds: float | None = None  # how long no worker has been connected
    finished_now: list[float] = field(default_factory=list)  # wall seconds of runs finished in this session

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.running

    def line(self) -> str:
        best = []
        if math.isfinite(self.best_error):
            best.append(f"best error {self.best_error:g}")
        if math.isfinite(self.best_energy):
            best.append(f"best energy {self.best_energy:.4f} pJ")
        eta = f" · about {_duration(self.seconds_left)} left" if self.seconds_left is not None else ""
        fail = f", {self.failed} failed" if self.failed else ""
        idle = f" · no worker connected for {self.idle_seconds:.0f} s" if self.idle_seconds is not None else ""
        return (f"runs {self.done}/{self.total} done, {self.running} running, {max(0, self.left)} left{fail}"
                + (" · " + ", ".join(best) if best else "") + eta + idle)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def latest_search(evolve_dir: Path) -> tuple[float, float] | None:
    """(error, energy) of a running search, from the last row of its stats.csv."""
    path = evolve_dir / "stats.csv"
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    for row in reversed(rows):
        try:
            return float(row["error"]), float(row["energy"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


class Display:
    """Prints the status: a live line on a terminal (rich), else one line per change."""

    def __init__(self, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = None
        self.last = ""
        self.last_time = 0.0
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=self.stream), refresh_per_second=2, transient=False)
            self.live.start()

    def show(self, status: Status) -> None:
        if not self.enabled:
            return
        text = status.line()
        if self.live is not None:
            self.live.update(text)
        elif text != self.last and (time.monotonic() - self.last_time > 10 or _counts(text) != _counts(self.last)):
            print(text, file=self.stream, flush=True)
            self.last, self.last_time = text, time.monotonic()

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.console.print(message)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _counts(text: str) -> str:
    return text.split("·")[0]
