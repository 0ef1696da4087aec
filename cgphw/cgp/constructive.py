"""Constructive start: a first parent that already produces, from the constant gates alone,
every value the outputs want, so that evolution starts at (or near) zero error and spends
its time making the circuit smaller instead of finding the values.

Each output wants the one int8 value with the least weighted squared error over the
task's items (its target when there is one item, as in value-bank and no-input tasks).
Every int8 value reachable from the constants gets a derivation by breadth-first search
over the grid's gates (one gate from values of lower depth); among the derivations of equal
depth the one whose operands are themselves wanted, then the cheapest gate (energy from
the cost table: shifts are free, so shift/add chains come first) is kept. The wanted
values and their ancestors are placed column by column in the last ``levels_back``
columns (so every node, and the outputs, may read every earlier one); the other nodes keep
the genes of the seed's random genome, so the start is a legal genome and reproducible
from the seed. Outputs whose value does not fit in the grid read the nearest value built.
"""
from __future__ import annotations

import numpy as np

from cgphw import gates as G
from cgphw.cgp.genome import Genome, Grid, random_genome
from cgphw.costs import CostTable
from cgphw.errors import UserError
from cgphw.task import Task

UNREACHED = 1 << 30


def wanted_values(task: Task) -> np.ndarray:
    """int64 [n_outputs]: per output the int8 value with the least weighted SE over the items
    (0 for an output that nothing counts)."""
    w = task.error_weights().astype(np.float64)  # [items, n_out]
    t = task.targets.astype(np.float64)
    a, b = w.sum(axis=0), (w * t).sum(axis=0)
    best = np.zeros(task.n_outputs)
    np.divide(b, a, out=best, where=a > 0)  # SE(v) = a v^2 - 2 b v + c is least at v = b / a
    return np.clip(np.floor(best + 0.5), -128, 127).astype(np.int64)


def derivations(function_ids, energy: np.ndarray, wanted: set[int]):
    """Breadth-first derivation of every reachable int8 code (value & 255): depth[code] and
    how[code] = (function index, operand code a, operand code b)."""
    lut = G.lookup_table(function_ids).view(np.uint8)
    arity = np.array([G.gate(i).arity for i in function_ids])
    depth = np.full(256, UNREACHED, np.int64)
    how = np.full((256, 3), -1, np.int64)
    order = sorted(range(len(function_ids)), key=lambda k: (energy[k], k))  # cheapest first
    for k in order:
        if arity[k] == 0 and depth[lut[k, 0, 0]] == UNREACHED:
            depth[lut[k, 0, 0]] = 0
            how[lut[k, 0, 0]] = (k, -1, -1)
    if not (depth == 0).any():
        raise UserError("a constructive start needs constant gates (ids 22-26) in the function set")
    plain = np.ones(256, np.int64)  # operand penalty: 0 for values that are built anyway
    plain[list(wanted)] = 0
    plain[depth == 0] = 0
    d = 0
    while True:
        known = np.flatnonzero(depth <= d)
        steps = []  # (code, score, function index, a, b) of every one-gate step from known values
        for rank, k in enumerate(order):
            if arity[k] == 0 or function_ids[k] == G.WIRE_ID:
                continue
            if arity[k] == 1:
                out, a, b = lut[k, known, 0], known, known
                extra = plain[a]
            else:
                out = lut[k][np.ix_(known, known)].ravel()
                a, b = np.repeat(known, known.size), np.tile(known, known.size)
                extra = plain[a] + plain[b]
            fresh = depth[out] == UNREACHED
            steps.append(np.stack([out[fresh], extra[fresh] * len(order) + rank, np.full(fresh.sum(), k),
                                  a[fresh], b[fresh]]))
        cand = np.concatenate(steps, axis=1) if steps else np.zeros((5, 0), np.int64)
        if cand.shape[1] == 0:
            return depth, how
        cand = cand[:, np.lexsort((cand[1], cand[0]))]  # by code, then score
        first = np.flatnonzero(np.r_[True, cand[0, 1:] != cand[0, :-1]])
        d += 1
        codes = cand[0, first]
        depth[codes] = d
        how[codes] = cand[2:, first].T


def constructive_genome(task: Task, grid: Grid, costs: CostTable, rng: np.random.Generator) -> Genome:
    """The constructive first parent for ``task`` on ``grid`` (see the module's note)."""
    ids = grid.function_ids
    energy = costs.arrays(ids)[0]
    want = wanted_values(task) & 255  # codes
    depth, how = derivations(ids, energy, set(int(v) for v in want))
    build: set[int] = set()
    stack = [int(v) for v in np.unique(want) if depth[v] != UNREACHED]
    while stack:  # the wanted values and everything they are made from
        v = stack.pop()
        if v in build:
            continue
        build.add(v)
        stack += [int(x) for x in how[v, 1:] if x >= 0]
    genes = random_genome(grid, rng).genes.copy()
    n_in, rows = grid.n_inputs, grid.rows
    first = max(0, grid.cols - grid.levels_back)  # every column from here reads all earlier ones
    used = np.zeros(grid.cols, np.int64)
    pin: dict[int, int] = {}
    for v in sorted(build, key=lambda v: (depth[v], v)):
        k, a, b = (int(x) for x in how[v])
        if a >= 0 and not (a in pin and b in pin):
            continue  # an operand found no room
        col = first if a < 0 else max(pin_col(pin[x], n_in, rows) for x in {a, b}) + 1
        while col < grid.cols and used[col] >= rows:
            col += 1
        if col >= grid.cols:
            continue  # no room left: outputs that want v read the nearest value built
        node = col * rows + used[col]
        used[col] += 1
        if a < 0 and grid.n_choices(col) == 0:
            genes[3 * node: 3 * node + 3] = (0, 0, ids[k])
        elif a < 0:
            genes[3 * node + 2] = ids[k]  # a constant: its connection genes stay legal and unused
        else:
            genes[3 * node: 3 * node + 3] = (pin[a], pin[b] if G.gate(ids[k]).arity == 2 else pin[a], ids[k])
        pin[v] = n_in + node
    codes = np.array(sorted(pin), np.int64)
    values = codes.astype(np.uint8).view(np.int8).astype(np.float64)
    w = task.error_weights().astype(np.float64)
    t = task.targets.astype(np.float64)
    for j, code in enumerate(want):
        if int(code) not in pin:  # the nearest value built (SE up to a constant per output)
            se = values ** 2 * w[:, j].sum() - 2 * values * (w[:, j] * t[:, j]).sum()
            code = codes[int(np.argmin(se))]
        genes[3 * grid.n_nodes + j] = pin[int(code)]
    return Genome(grid, genes)


def pin_col(pin: int, n_in: int, rows: int) -> int:
    return (pin - n_in) // rows
