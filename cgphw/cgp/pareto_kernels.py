"""The Pareto archive, compiled: every offspring the loop evaluates is offered to it, and it
keeps the circuits that no circuit it has seen beats in all four of (error, energy, delay,
gates) at once (gates: cgphw's count, as the search's ``acc[GATES]``). loop.py calls
``offer_generation`` from ``finalize`` (thread 0, once per generation, before the commit),
so the archive depends on neither the thread count nor the chunking.

A circuit x enters unless the parent or a member is no worse than x in all four figures
(x is dominated, or a duplicate); members that x dominates leave. Most offspring are
dominated by their parent, which is checked first; the others are compared with every
member. Delays are exact: with an archive the loop keeps every node's depth in both phases
and every child's delay (offspring.py, ``delays``).

Bounded: when an entry leaves K + 1 members, one goes, chosen as follows. Each member gets
NSGA-II's crowding distance over the four figures (error as log2(1 + SE), each figure
normalised by its range in the archive); the two ends in each figure (infinite distance) and
the lexicographic best (the point the lexicographic search ranks first) are kept; among the
rest, a member above the run's error threshold goes before one within it, then the smallest
distance, then the latest entry. So the front keeps its extremes and thins where it is
densest, and the circuits within the threshold are the last to be thinned.

State ``arc`` (engine.Archive): AO int64 [K+1, 3] error, energy, gates per slot (kernel units);
AX float64 [K+1] delay; AF int64 [K+1, 2] generation found and entry number; AG int32
[K+1, genes] genes (internal encoding); AL int64 [K+1] the members' slots in order of entry;
AN int64 counters (COUNT, OFFERED, ENTERED); CW float64 [K+1] scratch.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from cgphw.cgp.kernels import ENERGY, ERR, GATES, compare

COUNT, OFFERED, ENTERED = range(3)
N_AN = 3  # (operators.PARETO_MIN: K >= 16, so the kept extremes, at most 9, leave members to thin)


@nb.njit(cache=True, inline="always")
def offer_generation(r0, lam, gen, thr, G, pdelay, acc, mp, mnew, nm, cm, cd, cact, srow, arc):
    """Offer the evaluated children of rows r0 .. r0 + lam - 1 (parent: replica 0's genes G;
    row r's mutations are in row srow[r] of mp/mnew)."""
    AO, AX, AF, AG, AL, AN, CW = arc
    pe, pn, pg, pd = acc[ERR], acc[ENERGY], acc[GATES], pdelay[0]
    for r in range(r0, r0 + lam):
        if not cact[r]:  # it changed no active gene: the parent's circuit
            continue
        AN[OFFERED] += 1
        e, n, g, d = cm[r, 0], cm[r, 1], cm[r, 3], cd[r]
        if pe <= e and pn <= n and pg <= g and pd <= d:
            continue
        beaten = False
        for i in range(AN[COUNT]):
            s = AL[i]
            if AO[s, 0] <= e and AO[s, 1] <= n and AO[s, 2] <= g and AX[s] <= d:
                beaten = True
                break
        if not beaten:
            enter(e, n, g, d, gen, G, mp, mnew, srow[r], nm[r], arc, AG.shape[0] - 1, thr)


@nb.njit(cache=True)
def enter(e, n, g, d, gen, G, mp, mnew, r, n_mut, arc, K, thr):
    """Enter a circuit no member dominates or equals: the parent's genes G with the first
    n_mut mutations of mp/mnew row r. Members it dominates leave; over K members, ``thin``
    drops one."""
    AO, AX, AF, AG, AL, AN, CW = arc
    k = 0
    for i in range(AN[COUNT]):
        s = AL[i]
        if not (e <= AO[s, 0] and n <= AO[s, 1] and g <= AO[s, 2] and d <= AX[s]):
            AL[k] = s
            k += 1
    CW[:] = 0.0  # a free slot: one no member holds
    for i in range(k):
        CW[AL[i]] = 1.0
    slot = 0
    while CW[slot] != 0.0:
        slot += 1
    AG[slot, :] = G
    for t in range(n_mut):
        AG[slot, mp[r, t]] = mnew[r, t]
    AO[slot, 0], AO[slot, 1], AO[slot, 2] = e, n, g
    AX[slot] = d
    AF[slot, 0], AF[slot, 1] = gen, AN[ENTERED]
    AN[ENTERED] += 1
    AL[k] = slot
    AN[COUNT] = k + 1
    if k + 1 > K:
        thin(AO, AX, AL, AN, CW, thr)


@nb.njit(cache=True)
def lexicographic_best(AO, AX, AL, n, thr):
    """Position (in AL) of the member the lexicographic search ranks first (kernels.compare, phase 2)."""
    best = 0
    for i in range(1, n):
        a, b = AL[i], AL[best]
        if compare(AO[a, 0], AO[a, 1], AX[a], AO[a, 2], AO[b, 0], AO[b, 1], AX[b], AO[b, 2], True, thr) < 0:
            best = i
    return best


@nb.njit(cache=True)
def thin(AO, AX, AL, AN, CW, thr):
    """Drop one member by the rule in the module text."""
    cnt = AN[COUNT]
    for i in range(cnt):
        CW[i] = 0.0
    vals = np.empty(cnt, np.float64)
    for m in range(4):
        for i in range(cnt):
            s = AL[i]
            if m == 0:
                vals[i] = math.log2(1.0 + AO[s, 0])
            elif m == 1:
                vals[i] = AO[s, 1]
            elif m == 2:
                vals[i] = AX[s]
            else:
                vals[i] = AO[s, 2]
        order = np.argsort(vals, kind="mergesort")  # stable: ties in order of entry
        lo, hi = vals[order[0]], vals[order[cnt - 1]]
        if hi > lo:
            CW[order[0]] = np.inf
            CW[order[cnt - 1]] = np.inf
            for t in range(1, cnt - 1):
                CW[order[t]] += (vals[order[t + 1]] - vals[order[t - 1]]) / (hi - lo)
    CW[lexicographic_best(AO, AX, AL, cnt, thr)] = np.inf
    pick = -1
    for i in range(cnt):
        if CW[i] == np.inf:
            continue
        if pick >= 0:
            inside_i, inside_p = AO[AL[i], 0] <= thr, AO[AL[pick], 0] <= thr
            if inside_i != inside_p:
                if inside_i:
                    continue
            elif CW[i] > CW[pick]:
                continue
        pick = i
    for i in range(pick, cnt - 1):
        AL[i] = AL[i + 1]
    AN[COUNT] = cnt - 1


@nb.njit(cache=True, inline="always")
def pareto_choice(r0, lam, thr, pdelay, acc, cm, cd):
    """--objective pareto within the threshold: the child to keep is one no worse than the
    parent in all four figures (the lexicographically best of them); (row, verdict) with
    verdict -1 when it is better in one at least, 0 when equal, 1 when no child qualifies."""
    pe, pn, pg, pd = acc[ERR], acc[ENERGY], acc[GATES], pdelay[0]
    b = -1
    for r in range(r0, r0 + lam):
        e, n, g, d = cm[r, 0], cm[r, 1], cm[r, 3], cd[r]
        if e <= pe and n <= pn and g <= pg and d <= pd:
            if b < 0 or compare(e, n, d, g, cm[b, 0], cm[b, 1], cd[b], cm[b, 3], True, thr) < 0:
                b = r
    if b < 0:
        return r0, 1
    better = cm[b, 0] < pe or cm[b, 1] < pn or cm[b, 3] < pg or cd[b] < pd
    return b, -1 if better else 0
