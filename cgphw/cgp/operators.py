"""The search's operator settings, checked once: the mutation ("single", "active",
"uniform"), whether its rate adapts, how the first parent is made ("random",
"constructive"; "auto" picks constructive for value-bank and no-input tasks), and what
the search aims at: the objective ("lexicographic", "pareto"), the Pareto archive's size
(0: none) and how often --objective pareto takes its next parent from the archive.

The compiled side of the mutations is in offspring.py (drawing) and es.py (the adaptive
rate); the constructive first parent in constructive.py.
"""
from __future__ import annotations

import numpy as np

from cgphw.cgp.constructive import constructive_genome
from cgphw.cgp.genome import Genome, Grid, random_genome
from cgphw.costs import CostTable
from cgphw.errors import UserError
from cgphw.task import Task

MUTATIONS = ("single", "active", "uniform")
STARTS = ("random", "constructive")
LEGACY = {"mutation": "uniform", "adaptive": False, "start": "random"}  # runs made before these settings
OBJECTIVES = ("lexicographic", "pareto")
PARETO_SIZE = 64  # the archive's default capacity
PARETO_MIN, PARETO_MAX = 16, 1000  # at least 16: the kept extremes (up to 9) must leave members to thin


def resolve_start(start: str, value_bank: bool, n_inputs: int) -> str:
    if start == "auto":
        return "constructive" if value_bank or n_inputs == 0 else "random"
    return start


def check_operators(mutation, adaptive, start, where: str = "") -> None:
    if mutation not in MUTATIONS:
        raise UserError(f"{where}unknown mutation {mutation!r}: choose {', '.join(MUTATIONS)}")
    if not isinstance(adaptive, bool):
        raise UserError(f"{where}adaptive must be true or false, got {adaptive!r}")
    if adaptive and mutation == "single":
        raise UserError(f"{where}the single-active mutation changes one active gene: it has no rate to adapt")
    if start not in STARTS:
        raise UserError(f"{where}unknown start {start!r}: choose {', '.join(STARTS)}")


def check_objective(objective, pareto_size, rotate_every, where: str = "") -> None:
    if objective not in OBJECTIVES:
        raise UserError(f"{where}unknown objective {objective!r}: choose {', '.join(OBJECTIVES)}")
    if isinstance(pareto_size, bool) or not isinstance(pareto_size, int) or \
            not (pareto_size == 0 or PARETO_MIN <= pareto_size <= PARETO_MAX):
        raise UserError(f"{where}the Pareto archive holds 0 (none) or {PARETO_MIN} to {PARETO_MAX} circuits, "
                        f"got {pareto_size!r}")
    if objective == "pareto" and pareto_size == 0:
        raise UserError(f"{where}--objective pareto searches for the Pareto front: it needs an archive "
                        "(--pareto-size)")
    if isinstance(rotate_every, bool) or not isinstance(rotate_every, int) or not 1 <= rotate_every <= 10**9:
        raise UserError(f"{where}--rotate-every must be from 1 to 1e9 generations, got {rotate_every!r}")


def first_parent(start: str, task: Task, grid: Grid, costs: CostTable, seed: int) -> Genome:
    """The run's first parent, reproducible from ``seed`` (``task``: the compact one of a value bank)."""
    draw = np.random.default_rng(int(seed))
    return constructive_genome(task, grid, costs, draw) if start == "constructive" else random_genome(grid, draw)
