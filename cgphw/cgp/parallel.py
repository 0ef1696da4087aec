"""How many threads evaluate offspring (``--workers``).

The result of a run never depends on it (loop.py), so the choice is only about speed.
``--workers N`` uses exactly N threads. ``--workers auto`` (the default) may use every CPU
this process may run on, but measures: it alternates short chunks on one thread and on
all of them, keeps the faster (all of them only when at least MARGIN faster), and measures
again every PROBE_SECONDS of search, since a circuit's cost per generation changes as it
evolves. Small tasks (the 5x5 example: a few microseconds per generation) and a machine
busy with other work stay on one thread; layer-sized tasks use them all.
"""
from __future__ import annotations

from cgphw.cgp.engine import available_cpus
from cgphw.errors import UserError

AUTO = "auto"
MARGIN = 1.15
PROBE_SECONDS = 30.0
PROBE_CHUNKS = 4  # 1, N, 1, N
SETTLE_SECONDS = 0.5  # one thread first, while the chunk length settles to its target


def resolve_workers(workers) -> tuple[int, bool]:
    """(largest team, whether to choose automatically) from --workers N|auto."""
    cpus = available_cpus()
    if workers is None or workers == AUTO:
        return cpus, cpus > 1
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise UserError(f"--workers must be a whole number or 'auto', got {workers!r}") from None
    if not 1 <= n <= cpus:
        raise UserError(f"--workers must be from 1 to {cpus} (the CPUs this process may use), got {n}")
    return n, False


class TeamSize:
    """The thread count for each chunk of generations, from measured generation rates."""

    def __init__(self, most: int, auto: bool):
        self.most, self.auto = int(most), bool(auto and most > 1)
        self.chosen = 1 if self.auto else self.most
        self.rates: dict[int, list[float]] = {}
        self.probing = False
        self.probe_index = 0
        self.since_probe = PROBE_SECONDS - SETTLE_SECONDS

    def next(self) -> int:
        if self.probing:
            return 1 if self.probe_index % 2 == 0 else self.most
        return self.chosen

    def observe(self, size: int, generations: int, seconds: float) -> None:
        if not self.auto:
            return
        if not self.probing:
            self.since_probe += seconds
            if self.since_probe >= PROBE_SECONDS:
                self.probing, self.probe_index, self.rates = True, 0, {}
            return
        if generations > 0 and seconds > 0:
            self.rates.setdefault(size, []).append(generations / seconds)
        self.probe_index += 1
        if self.probe_index >= PROBE_CHUNKS:
            one, many = (sum(self.rates.get(n, [0.0])) for n in (1, self.most))
            self.chosen = self.most if many >= MARGIN * one else 1
            self.probing, self.since_probe = False, 0.0
