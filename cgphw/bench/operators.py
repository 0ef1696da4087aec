"""`cgphw bench --search`: search operators compared on the study's two layer-scale tasks,
with fixed seeds and fixed *generation* budgets, so the figures do not depend on the
machine or its load (wall and CPU seconds are reported beside them, for cost).

Tasks come in as Task objects (the command builds them from the shipped LeNet-5:
``const:conv1,conv2`` and ``layer:conv1->conv2``); this module knows no network.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from cgphw.task import Task


@dataclass(frozen=True)
class Operator:
    name: str
    mutation: str = "uniform"
    adaptive: bool = False
    mutation_max: float = 0.15
    start: str = "random"

    def settings(self) -> dict:
        return {"mutation": self.mutation, "adaptive": self.adaptive, "mutation_max": self.mutation_max,
                "start": self.start}


@dataclass(frozen=True)
class Case:
    name: str
    task: str  # key of the tasks given to run_search_bench
    rows: int
    cols: int
    levels_back: int
    threshold: float
    value_bank: bool
    generations: int
    operators: tuple[Operator, ...]


UNIFORM_15 = Operator("uniform 15 %", mutation_max=0.15)
UNIFORM_1 = Operator("uniform 1 %", mutation_max=0.01)
UNIFORM_ADAPTIVE = Operator("uniform adaptive", adaptive=True)
SINGLE = Operator("single active", mutation="single")
ACTIVE_ADAPTIVE = Operator("active adaptive", mutation="active", adaptive=True)
OPERATORS = (UNIFORM_15, UNIFORM_1, UNIFORM_ADAPTIVE, SINGLE, ACTIVE_ADAPTIVE)
CONSTRUCTIVE = tuple(Operator(f"constructive + {o.name}", o.mutation, o.adaptive, o.mutation_max, "constructive")
                     for o in (UNIFORM_1, UNIFORM_ADAPTIVE, SINGLE, ACTIVE_ADAPTIVE))

CASES = (
    Case("bypass t=11", "bypass", 500, 30, 30, 11.0, False, 20_000, OPERATORS),
    Case("bypass t=11, value bank", "bypass", 500, 30, 30, 11.0, True, 50_000, CONSTRUCTIVE),
    Case("value bank t=1", "bank", 256, 31, 31, 1.0, True, 100_000, OPERATORS + CONSTRUCTIVE),
)
SEEDS = (1, 2)


def run_case(case: Case, task: Task, seeds=SEEDS, scale: float = 1.0, workers="auto", progress=None) -> list[dict]:
    """One row per operator: the median over seeds of the final error, energy and gates."""
    from cgphw.cgp.search import evolve
    from cgphw.cgp.settings import Limits, SearchSettings

    generations = max(1, int(case.generations * scale))
    rows = []
    for op in case.operators:
        runs = []
        for seed in seeds:
            t, c = time.perf_counter(), time.process_time()
            settings = SearchSettings(case.rows, case.cols, case.levels_back, threshold=case.threshold,
                                      value_bank=case.value_bank, **op.settings())
            r = evolve(task, settings, Limits(generations), seed=seed, workers=workers)
            m = r.metrics
            runs.append({"seed": seed, "rms_error": m["rms_error"], "reached": r.ok,
                         "energy_pj": m["energy_pj"], "gates": m["gates"],
                         "active_nodes": int(r.genome.active_nodes().size),
                         "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c})
            if progress:
                progress(case, op, runs[-1])
        rows.append({"case": case.name, "operator": op.name, **op.settings(), "generations": generations,
                     "seeds": list(seeds), "reached": sum(x["reached"] for x in runs),
                     **{k: statistics.median(x[k] for x in runs)
                        for k in ("rms_error", "energy_pj", "gates", "active_nodes", "wall_s", "cpu_s")},
                     "runs": runs})
    return rows


def run_search_bench(tasks: dict[str, Task], seeds=SEEDS, scale: float = 1.0, workers="auto",
                     cases=None, progress=None) -> dict:
    """Every case whose task is given; ``scale`` multiplies the generation budgets."""
    if not (scale > 0 and math.isfinite(scale)):
        from cgphw.errors import UserError

        raise UserError(f"the budget scale must be a positive number, got {scale}")
    from cgphw.bench.speed import machine

    before = machine()
    rows = []
    for case in CASES:
        if case.task in tasks and (cases is None or case.name in cases):
            rows += run_case(case, tasks[case.task], seeds, scale, workers, progress)
    return {"machine": before, "load_after": machine()["load_average"], "seeds": list(seeds), "results": rows}
