"""Compiled (numba) primitives of the CGP engine: full evaluation of a genome's active
nodes (refcounts, values, depths, error and costs), and ``set_gene``, the readable
single-step form of the incremental update that the evolution loop (loop.py) inlines.

Internal encoding (see problem.py): genes are int32 like Genome's, except that a node's
third gene is the *index* of its gate in the function set. Pin values are uint8 bit
patterns [pins, items]; a gate is one lookup in ``lut`` (flattened int8 [k, 256, 256] from
``gates.lookup_table``), so gates.py stays the only definition of gate behaviour.
Costs are integers (energy/area in 1e-9 units, error in 2^-S units) so sums are exact and
do not depend on the order in which an incremental update adds them; delay is float64 but
is a per-node max-plus value, also order independent.

Counters ``acc`` (int64): [0] error, [1] energy, [2] area, [3] gates, [4] lowest dirty node,
[5] length of the marked-node list ``ml``. Per-child marks are uint8 flag arrays (small
enough to stay in L1/L2) that are cleared through lists, never by a sweep: ``mark`` per
node (1 = must be recomputed, 2 = became active), ``chg`` per pin (value or depth changed),
``ost`` per output (its gene changed).
"""
from __future__ import annotations

import numba as nb
import numpy as np

ERR, ENERGY, AREA, GATES, MIND, NMARK = 0, 1, 2, 3, 4, 5
DIRTY, ACTIVATED = 1, 2


@nb.njit(cache=True, inline="always")
def gate_value(lut, f, a, b):
    return np.uint8(lut[(np.int64(f) << 16) | (np.int64(a) << 8) | np.int64(b)])


@nb.njit(cache=True)
def full_state(G, n_in, n_nodes, arity, lut, e_q, a_q, dly, isgate, T, WQ, V, D, RC, OT, acc):
    """Evaluate genome G from scratch: refcounts RC, pin values V and depths D (inputs must
    already be in V[:n_in]), per-output error terms OT and the counters in acc.
    Returns the circuit delay (longest input-to-output path)."""
    n_out, items = T.shape
    ob = 3 * n_nodes
    RC[:] = 0
    for j in range(n_out):
        p = G[ob + j]
        if p >= n_in:
            RC[p - n_in] += 1
    for k in range(n_nodes - 1, -1, -1):  # nodes read only lower indices: one sweep suffices
        if RC[k] > 0:
            f = G[3 * k + 2]
            for i in range(arity[f]):
                p = G[3 * k + i]
                if p >= n_in:
                    RC[p - n_in] += 1
    acc[:] = 0
    acc[MIND] = n_nodes
    for p in range(n_in):
        D[p] = 0.0
    for k in range(n_nodes):
        if RC[k] == 0:
            continue
        f = G[3 * k + 2]
        ar = arity[f]
        P = n_in + k
        p0 = G[3 * k] if ar >= 1 else 0
        p1 = G[3 * k + 1] if ar == 2 else 0
        d = 0.0
        if ar >= 1:
            d = D[p0]
        if ar == 2 and D[p1] > d:
            d = D[p1]
        D[P] = d + dly[f]
        for i in range(items):
            a = V[p0, i] if ar >= 1 else np.uint8(0)
            b = V[p1, i] if ar == 2 else np.uint8(0)
            V[P, i] = gate_value(lut, f, a, b)
        acc[ENERGY] += e_q[f]
        acc[AREA] += a_q[f]
        acc[GATES] += isgate[f]
    delay = 0.0
    for j in range(n_out):
        p = G[ob + j]
        OT[j] = output_term(V, p, T, WQ, j)
        acc[ERR] += OT[j]
        if D[p] > delay:
            delay = D[p]
    return delay


@nb.njit(cache=True, inline="always")
def output_term(V, p, T, WQ, j):
    """Weighted squared error of output j when it reads pin p (values as int8)."""
    s = np.int64(0)
    for i in range(T.shape[1]):
        d = np.int64((V[p, i] ^ 128)) - np.int64((T[j, i] ^ 128))
        s += WQ[j, i] * d * d
    return s


@nb.njit(cache=True)
def full_depth(G, RC, n_in, n_nodes, arity, dly, D):
    """Recompute the depth (longest path delay) of every active node."""
    for k in range(n_nodes):
        if RC[k] == 0:
            continue
        f = G[3 * k + 2]
        ar = arity[f]
        d = 0.0
        if ar >= 1:
            d = D[G[3 * k]]
        if ar == 2 and D[G[3 * k + 1]] > d:
            d = D[G[3 * k + 1]]
        D[n_in + k] = d + dly[f]


@nb.njit(cache=True)
def outputs_delay(G, n_nodes, D, n_out):
    ob = 3 * n_nodes
    delay = 0.0
    for j in range(n_out):
        d = D[G[ob + j]]
        if d > delay:
            delay = d
    return delay


@nb.njit(cache=True, inline="always")
def mark_node(k, bits, mark, ml, acc):
    if mark[k] == 0:
        ml[acc[NMARK]] = k
        acc[NMARK] += 1
    mark[k] |= bits
    if k < acc[MIND]:
        acc[MIND] = k


@nb.njit(cache=True, inline="always")
def ref_pin(pin, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack, mark, ml, marking):
    """One more active reference to ``pin``: a node reaching refcount 1 becomes active,
    adds its costs and references its own inputs (iteratively: the graph is a DAG)."""
    if pin >= n_in:
        stack[0] = pin - n_in
        top = 1
        while top > 0:
            top -= 1
            k = stack[top]
            RC[k] += 1
            if RC[k] == 1:
                f = G[3 * k + 2]
                acc[ENERGY] += e_q[f]
                acc[AREA] += a_q[f]
                acc[GATES] += isgate[f]
                if marking:
                    mark_node(k, DIRTY | ACTIVATED, mark, ml, acc)
                for i in range(arity[f]):
                    p = G[3 * k + i]
                    if p >= n_in:
                        stack[top] = p - n_in
                        top += 1


@nb.njit(cache=True, inline="always")
def deref_pin(pin, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack):
    """One active reference less: a node reaching refcount 0 drops out with its cone."""
    if pin >= n_in:
        stack[0] = pin - n_in
        top = 1
        while top > 0:
            top -= 1
            k = stack[top]
            RC[k] -= 1
            if RC[k] == 0:
                f = G[3 * k + 2]
                acc[ENERGY] -= e_q[f]
                acc[AREA] -= a_q[f]
                acc[GATES] -= isgate[f]
                for i in range(arity[f]):
                    p = G[3 * k + i]
                    if p >= n_in:
                        stack[top] = p - n_in
                        top += 1


@nb.njit(cache=True, inline="always")
def set_gene(pos, val, G, RC, n_in, n_nodes, arity, e_q, a_q, isgate, acc, stack, mark, ml, ost, marking):
    """Change one gene and keep refcounts, costs and (if ``marking``) the marks consistent.
    Returns True when the change touched an active gene (the phenotype may change)."""
    ob = 3 * n_nodes
    old = G[pos]
    G[pos] = val
    if pos >= ob:
        if marking:
            ost[pos - ob] = 1
        ref_pin(val, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack, mark, ml, marking)
        deref_pin(old, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack)
        return True
    k = pos // 3
    if RC[k] == 0:
        return False
    w = pos - 3 * k
    if w < 2:
        if w >= arity[G[3 * k + 2]]:
            return False
        ref_pin(val, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack, mark, ml, marking)
        deref_pin(old, G, RC, n_in, arity, e_q, a_q, isgate, acc, stack)
    else:
        ar_old, ar_new = arity[old], arity[val]
        acc[ENERGY] += e_q[val] - e_q[old]
        acc[AREA] += a_q[val] - a_q[old]
        acc[GATES] += isgate[val] - isgate[old]
        for i in range(2):
            if ar_old <= i < ar_new:
                ref_pin(G[3 * k + i], G, RC, n_in, arity, e_q, a_q, isgate, acc, stack, mark, ml, marking)
            elif ar_new <= i < ar_old:
                deref_pin(G[3 * k + i], G, RC, n_in, arity, e_q, a_q, isgate, acc, stack)
    if marking:
        mark_node(k, DIRTY, mark, ml, acc)
    return True


@nb.njit(cache=True, inline="always")
def compare(e0, n0, d0, g0, e1, n1, d1, g1, phase2, thr):
    """-1 / 0 / 1 as (error e, energy n, delay d, gates g) #0 is better / equal / worse."""
    if not phase2:
        return -1 if e0 < e1 else (1 if e0 > e1 else 0)
    ok0, ok1 = e0 <= thr, e1 <= thr
    if ok0 != ok1:
        return -1 if ok0 else 1
    if not ok0:
        return -1 if e0 < e1 else (1 if e0 > e1 else 0)
    if n0 != n1:
        return -1 if n0 < n1 else 1
    if e0 != e1:
        return -1 if e0 < e1 else 1
    if d0 != d1:
        return -1 if d0 < d1 else 1
    if g0 != g1:
        return -1 if g0 < g1 else 1
    return 0
