"""The first parent of a search: random, or constructive (every wanted value built from the
constants). The operator settings themselves are defined and checked in settings.py
(``SearchSettings``: mutation, adaptive, start, objective, Pareto archive).

The compiled side of the mutations is in offspring.py (drawing) and loop.py (the adaptive
rate); the constructive first parent in constructive.py.
"""
from __future__ import annotations

import numpy as np

from cgphw.cgp.constructive import constructive_genome
from cgphw.cgp.genome import Genome, Grid, random_genome
from cgphw.costs import CostTable
from cgphw.task import Task

def first_parent(start: str, task: Task, grid: Grid, costs: CostTable, seed: int) -> Genome:
    """The run's first parent, reproducible from ``seed`` (``task``: the compact one of a value bank)."""
    draw = np.random.default_rng(int(seed))
    return constructive_genome(task, grid, costs, draw) if start == "constructive" else random_genome(grid, draw)
