"""What the compiled kernels need to know about a (task, grid, cost table): flat arrays,
integer costs, the error scale, and the rules of which genes may mutate to what.

Quantities are integers so that incremental sums are exact and order independent:
energy and area in units of 1e-9 (pJ / area unit), the squared error in units of 2^-S
where S = 0 whenever the task's weights are whole numbers (the usual case: plain
targets, masks, value-bank counts), so the error is then exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from cgphw import gates as G
from cgphw.cgp.genome import Genome, Grid
from cgphw.costs import CostTable
from cgphw.errors import UserError
from cgphw.task import Task

COST_SCALE = 10**9  # integer cost units per pJ (or per area unit)
_MAX_ERR = 2**62


def error_scale(weights: np.ndarray) -> int:
    """S such that weights * 2^S rounded are exact enough and the total error fits int64."""
    top = float(weights.sum()) * 255 * 255 + 1.0
    if top >= _MAX_ERR:
        raise UserError("the task's weights are too large: the total error would overflow")
    if np.all(weights == np.round(weights)):
        return 0
    return int(min(24, math.floor(math.log2(_MAX_ERR / top))))


def quantized_weights(weights: np.ndarray, scale: int) -> np.ndarray:
    return np.round(weights * 2.0**scale).astype(np.int64)


def weighted_se(outputs: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    """Weighted squared error in the search's own fixed-point form, so equal means equal."""
    diff = outputs.astype(np.int64) - targets.astype(np.int64)
    scale = error_scale(weights)
    return int((quantized_weights(weights, scale) * diff * diff).sum()) / 2.0**scale


def threshold_units(threshold: float, n_targets: int, scale: int) -> int:
    """floor(t^2 * N * 2^S), computed exactly from t's decimal form (0.7^2*100 is 49)."""
    if not (threshold >= 0 and math.isfinite(threshold)):
        raise UserError(f"the threshold must be a finite number >= 0, got {threshold}")
    return math.floor(Fraction(repr(float(threshold))) ** 2 * n_targets * 2**scale)


def cost_units(costs: CostTable, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    energy, area, delay = costs.arrays(ids)
    return (np.round(energy * COST_SCALE).astype(np.int64), np.round(area * COST_SCALE).astype(np.int64),
            delay.astype(np.float64))


@dataclass(frozen=True, eq=False)
class Problem:
    grid: Grid
    task: Task
    n_targets: int  # N of the threshold rule
    scale: int  # error unit 2^-scale
    thr: int  # threshold in error units
    lut: np.ndarray  # int8, flat [k*65536]
    arity: np.ndarray  # int64 [k]
    e_q: np.ndarray
    a_q: np.ndarray
    dly: np.ndarray
    isgate: np.ndarray  # int64 [k]
    T: np.ndarray  # uint8 [n_out, items] target bit patterns
    WQ: np.ndarray  # int64 [n_out, items]
    inputs: np.ndarray  # uint8 [n_in, items]
    col_nin: np.ndarray  # per column 0..cols (cols = outputs): inputs readable (n_in or 0)
    col_lo: np.ndarray
    col_hi: np.ndarray
    forced: np.ndarray  # uint8 per column: nothing to read, node must be a constant
    const_f: np.ndarray  # function indices of the constants
    const_pos: np.ndarray  # function index -> position in const_f (or -1)
    mpos: np.ndarray  # gene positions that have at least one other legal value

    def to_internal(self, genome: Genome) -> np.ndarray:
        genes = genome.genes.astype(np.int32).copy()
        lookup = {g: i for i, g in enumerate(self.grid.function_ids)}
        genes[2: 3 * self.grid.n_nodes: 3] = [lookup[int(g)] for g in genes[2: 3 * self.grid.n_nodes: 3]]
        return genes

    def to_genome(self, internal: np.ndarray) -> Genome:
        return Genome(self.grid, self.to_genome_genes(internal))

    def to_genome_genes(self, internal: np.ndarray) -> np.ndarray:
        """Genome's genes (gate ids) of internal genes, without building (and checking) a Genome."""
        genes = np.array(internal, dtype=np.int32)
        ids = np.array(self.grid.function_ids, dtype=np.int32)
        genes[2: 3 * self.grid.n_nodes: 3] = ids[genes[2: 3 * self.grid.n_nodes: 3]]
        return genes


def build_problem(task: Task, grid: Grid, costs: CostTable, threshold: float = 0.0,
                  n_targets: int | None = None) -> Problem:
    if task.n_inputs != grid.n_inputs or task.n_outputs != grid.n_outputs:
        raise UserError(f"the grid is for {grid.n_inputs} inputs and {grid.n_outputs} outputs but the task has "
                        f"{task.n_inputs} and {task.n_outputs}")
    ids = grid.function_ids
    n_targets = task.n_targets if n_targets is None else n_targets
    weights = task.error_weights()
    scale = error_scale(weights)
    e_q, a_q, dly = cost_units(costs, ids)
    cols = grid.cols
    col_nin, col_lo, col_hi = (np.zeros(cols + 1, np.int64) for _ in range(3))
    for c in range(cols + 1):
        ok, lo, hi = grid.pin_range(c)
        col_nin[c], col_lo[c], col_hi[c] = (grid.n_inputs if ok else 0), lo, hi
    n_choice = col_nin + col_hi - col_lo
    if n_choice[cols] == 0:
        raise UserError("the outputs can reach no pin: raise levels-back or add inputs")
    forced = (n_choice == 0).astype(np.uint8)
    const_f = np.array([i for i, g in enumerate(ids) if G.gate(g).arity == 0], np.int64)
    const_pos = np.full(len(ids), -1, np.int64)
    const_pos[const_f] = np.arange(const_f.size)
    mpos = []
    for k in range(grid.n_nodes):
        c = k // grid.rows
        if not forced[c] and n_choice[c] >= 2:
            mpos += [3 * k, 3 * k + 1]
        if (const_f.size if forced[c] else len(ids)) >= 2:
            mpos.append(3 * k + 2)
    if n_choice[cols] >= 2:
        mpos += range(3 * grid.n_nodes, grid.n_genes)
    if not mpos:
        raise UserError("this grid has no gene that can change: make it larger or add gates")
    return Problem(
        grid=grid, task=task, n_targets=int(n_targets), scale=scale,
        thr=threshold_units(threshold, int(n_targets), scale),
        lut=np.ascontiguousarray(G.lookup_table(ids)).reshape(-1),
        arity=np.array([G.gate(g).arity for g in ids], np.int64), e_q=e_q, a_q=a_q, dly=dly,
        isgate=np.array([G.gate(g).is_logic for g in ids], np.int64),
        T=np.ascontiguousarray(task.targets.T).view(np.uint8),
        WQ=np.ascontiguousarray(quantized_weights(weights, scale).T),
        inputs=np.ascontiguousarray(task.inputs.T).view(np.uint8),
        col_nin=col_nin, col_lo=col_lo, col_hi=col_hi, forced=forced, const_f=const_f,
        const_pos=const_pos, mpos=np.array(mpos, np.int32))
