"""The search's operator settings, checked once: the mutation ("single", "active",
"uniform"), whether its rate adapts, and how the first parent is made ("random",
"constructive"; "auto" picks constructive for value-bank and no-input tasks).

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


def first_parent(start: str, task: Task, grid: Grid, costs: CostTable, seed: int) -> Genome:
    """The run's first parent, reproducible from ``seed`` (``task``: the compact one of a value bank)."""
    draw = np.random.default_rng(int(seed))
    return constructive_genome(task, grid, costs, draw) if start == "constructive" else random_genome(grid, draw)
