"""Value-bank mode (the thesis' "multiplex"): evolve one output per *distinct* target
(column of targets over the items; a value when there is one item), its error weighted by
how many targets share it, then wire every target's output to its value's pin.

The compact error equals the full task's error exactly: targets that share a column share
the output, so sum_j w_ij (y_i - t_ij)^2 over a group is (sum_j w_ij) (y_i - t_i)^2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgphw.cgp.genome import Genome, Grid
from cgphw.task import Task


@dataclass(frozen=True, eq=False)
class ValueBank:
    compact: Task  # one output per distinct target column
    group: np.ndarray  # int64 [n_out]: index of each original target's column in compact

    @property
    def n_values(self) -> int:
        return self.compact.n_outputs

    def expand(self, genome: Genome) -> Genome:
        """The genome for the full task: target j reads the pin of its value's output."""
        g = genome.grid
        grid = Grid(g.n_inputs, int(self.group.size), g.rows, g.cols, g.levels_back, g.function_ids)
        outputs = genome.outputs[self.group]
        return Genome(grid, np.concatenate([genome.genes[: 3 * g.n_nodes], outputs]))

    def describe(self, genome: Genome) -> dict:
        """best.json's "value_bank" entry."""
        cols = self.compact.targets.T
        return {"n_values": self.n_values,
                "values": cols[:, 0].tolist() if cols.shape[1] == 1 else cols.tolist(),
                "counts": np.bincount(self.group, minlength=self.n_values).tolist(),
                "group": self.group.tolist(), "compact_genome": genome.to_json()}


def value_bank(task: Task) -> ValueBank:
    """Group the task's target columns by value, in order of first appearance."""
    cols = np.ascontiguousarray(task.targets.T)  # [n_out, items]
    _, first, group = np.unique(cols, axis=0, return_index=True, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    order = np.argsort(first, kind="stable")  # stable numbering: first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[group].astype(np.int64)
    weights = task.error_weights()  # [items, n_out], don't-cares already 0
    summed = np.zeros((task.n_items, order.size), np.float64)
    np.add.at(summed.T, group, weights.T)
    targets = np.ascontiguousarray(cols[first[order]].T)
    meta = dict(task.meta, value_bank={"n_targets": task.n_targets, "n_values": int(order.size)})
    return ValueBank(Task(task.inputs, targets, summed, None, meta), group)
