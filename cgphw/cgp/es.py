"""The compiled (1+lambda) evolution loop: mutate, evaluate, select for a chunk of
generations without returning to Python.

The loop is one function on purpose: numba reference-counts every array handed to a
helper (atomic operations that cost more than the work here), so per-mutation and
per-offspring code is written inline; only scalar helpers are called. The gene-change
logic (``set_gene`` in kernels.py, the readable single-step version used by tests) appears
once, inside a loop that serves the forward pass, the undo and the commit.

Offspring are never copied: a child's mutations are applied to the parent's genome in
place (keeping refcounts and costs current), its changed node values go to a per-child
scratch, and the mutations are undone again. Only active nodes from the lowest changed
one up are visited (walking a bitset of active nodes), and only those whose genes or
inputs changed are evaluated. The chosen child is then replayed onto the
parent and its scratch values copied in. Everything is a function of the parent state and
of the splitmix64 stream in ``rng``, so where chunks start and end never changes the run.

State ``st`` (int64): generation, stall (generations since the last strict improvement),
offspring, evaluated offspring, whether the parent's depths D are valid, node
evaluations, improvement records. Depth (delay) only matters in phase 2, so phase 1 does
not maintain it; it is recomputed in full when needed (phase 2 entry, a record, a report).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from cgphw.cgp.kernels import (ACTIVATED, AREA, DIRTY, ENERGY, ERR, GATES, MIND, NMARK, full_depth, gate_value,
                               outputs_delay)

DEBRUIJN_MAGIC = np.uint64(0x03F79D71B4CB0A89)
DEBRUIJN = np.zeros(64, np.int64)  # index of the lowest set bit from (low * magic) >> 58
for _i in range(64):
    DEBRUIJN[((1 << _i) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _i

GEN, STALL, OFFSPRING, EVALUATED, DVALID, NODE_EVALS, NREC = range(7)
DONE_GENERATIONS, DONE_PATIENCE, DONE_PERFECT, DONE_RECORDS = 0, 2, 3, 4


@nb.njit(cache=True, inline="always")
def next_u64(rng):
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def rand_below(rng, n):
    return np.int64(next_u64(rng) % np.uint64(n))


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


@nb.njit(cache=True)
def ensure_depth(G, RC, n_in, n_nodes, arity, dly, D, pdelay, st):
    if st[DVALID] == 0:
        full_depth(G, RC, n_in, n_nodes, arity, dly, D)
        pdelay[0] = outputs_delay(G, n_nodes, D, G.shape[0] - 3 * n_nodes)
        st[DVALID] = 1


@nb.njit(cache=True)
def run_generations(G, RC, V, D, OT, acc, pdelay, st, rng,
                    n_in, n_nodes, rows, arity, lut, e_q, a_q, dly, isgate, T, WQ,
                    col_nin, col_lo, col_hi, forced, const_f, const_pos, mpos, kmax, lam, thr, patience,
                    gen_end, S, DS, chl, nchl, ochl, oterm, nochl, mp, mold, mnew, nm, cm, cd, cact,
                    stack, mark, ml, ost, chg, gpick, rec, actbits):
    """Run generations until st[GEN] == gen_end or a stop rule fires; returns DONE_*."""
    n_f = arity.shape[0]
    n_const = const_f.shape[0]
    n_mpos = mpos.shape[0]
    ob = 3 * n_nodes
    all_mutable = n_mpos == G.shape[0]  # then mpos is the identity: skip a random load per draw
    n_out, items = T.shape
    out_col = col_nin.shape[0] - 1
    while st[GEN] < gen_end:
        if patience > 0 and st[STALL] >= patience:
            return DONE_PATIENCE
        if acc[ERR] == 0 and acc[ENERGY] == 0:
            return DONE_PERFECT
        if st[NREC] >= rec.shape[0]:
            return DONE_RECORDS
        phase2 = acc[ERR] <= thr
        if phase2 and st[DVALID] == 0:
            ensure_depth(G, RC, n_in, n_nodes, arity, dly, D, pdelay, st)
        p_energy = acc[ENERGY]
        verdict = 1
        b = 0
        for c in range(lam + 1):  # lam offspring, then the commit of the chosen one
            if c < lam:
                row = c
                m = 1 + rand_below(rng, kmax)
                for t in range(m):  # draw m distinct genes and a new legal value for each
                    while True:
                        pos = rand_below(rng, n_mpos)
                        if not all_mutable:
                            pos = mpos[pos]
                        if gpick[pos] == 0:
                            gpick[pos] = 1
                            break
                    old = G[pos]
                    col = out_col
                    val = -1
                    if pos < ob:
                        k = pos // 3
                        col = k // rows
                        if pos - 3 * k == 2:
                            if forced[col]:
                                r = rand_below(rng, n_const - 1)
                                if r >= const_pos[old]:
                                    r += 1
                                val = const_f[r]
                            else:
                                r = rand_below(rng, n_f - 1)
                                val = r + 1 if r >= old else r
                    if val < 0:
                        nin, lo = col_nin[col], col_lo[col]
                        ci = old if old < nin else nin + old - lo
                        r = rand_below(rng, nin + col_hi[col] - lo - 1)
                        if r >= ci:
                            r += 1
                        val = r if r < nin else lo + r - nin
                    mp[c, t] = pos
                    mold[c, t] = old
                    mnew[c, t] = val
                nm[c] = m
                acc[MIND] = n_nodes
            else:
                b = 0
                for cc in range(1, lam):
                    if compare(cm[cc, 0], cm[cc, 1], cd[cc], cm[cc, 3], cm[b, 0], cm[b, 1], cd[b], cm[b, 3],
                               phase2, thr) < 0:
                        b = cc
                verdict = compare(cm[b, 0], cm[b, 1], cd[b], cm[b, 3], acc[ERR], acc[ENERGY], pdelay[0],
                                  acc[GATES], phase2, thr)
                if verdict > 0:
                    break
                row = b  # better or equal: equal children replace the parent (neutral drift)
            for sweep in range(2 if c < lam else 1):
                forward = sweep == 0
                marking = forward and c < lam
                cnt = nm[row]
                active = False
                for tt in range(cnt):
                    t = tt if forward else cnt - 1 - tt
                    pos = mp[row, t]
                    val = mnew[row, t] if forward else mold[row, t]
                    if not forward:
                        gpick[pos] = 0
                        if pos >= ob:
                            ost[pos - ob] = 0
                    # --- set_gene: change one gene, keep refcounts, costs and marks ---
                    old = G[pos]
                    G[pos] = val
                    op0 = op1 = 0
                    sg0 = sg1 = 0
                    n_ops = 0
                    touched = False
                    kk = -1
                    if pos >= ob:
                        if marking:
                            ost[pos - ob] = 1
                        op0, sg0, op1, sg1, n_ops, touched = val, 1, old, -1, 2, True
                    else:
                        k = pos // 3
                        if RC[k] > 0:
                            w = pos - 3 * k
                            if w < 2:
                                if w < arity[G[3 * k + 2]]:
                                    op0, sg0, op1, sg1, n_ops, touched = val, 1, old, -1, 2, True
                            else:
                                touched = True
                                ar_old, ar_new = arity[old], arity[val]
                                acc[ENERGY] += e_q[val] - e_q[old]
                                acc[AREA] += a_q[val] - a_q[old]
                                acc[GATES] += isgate[val] - isgate[old]
                                for i in range(2):
                                    sg = 1 if ar_old <= i < ar_new else (-1 if ar_new <= i < ar_old else 0)
                                    if sg != 0:
                                        if n_ops == 0:
                                            op0, sg0 = G[3 * k + i], sg
                                        else:
                                            op1, sg1 = G[3 * k + i], sg
                                        n_ops += 1
                            if touched:
                                kk = k
                    if touched:
                        active = True
                    if marking and kk >= 0:
                        if mark[kk] == 0:
                            ml[acc[NMARK]] = kk
                            acc[NMARK] += 1
                        mark[kk] |= DIRTY
                        if kk < acc[MIND]:
                            acc[MIND] = kk
                    for o in range(n_ops):  # reference (+1) or release (-1) a pin, with its cone
                        pin, sg = (op0, sg0) if o == 0 else (op1, sg1)
                        if pin < n_in:
                            continue
                        stack[0] = pin - n_in
                        top = 1
                        while top > 0:
                            top -= 1
                            k2 = stack[top]
                            f2 = G[3 * k2 + 2]
                            if sg > 0:
                                RC[k2] += 1
                                if RC[k2] != 1:
                                    continue
                                acc[ENERGY] += e_q[f2]
                                acc[AREA] += a_q[f2]
                                acc[GATES] += isgate[f2]
                                actbits[k2 >> 6] |= np.uint64(1) << np.uint64(k2 & 63)
                                if marking:
                                    if mark[k2] == 0:
                                        ml[acc[NMARK]] = k2
                                        acc[NMARK] += 1
                                    mark[k2] |= DIRTY | ACTIVATED
                                    if k2 < acc[MIND]:
                                        acc[MIND] = k2
                            else:
                                RC[k2] -= 1
                                if RC[k2] != 0:
                                    continue
                                acc[ENERGY] -= e_q[f2]
                                acc[AREA] -= a_q[f2]
                                acc[GATES] -= isgate[f2]
                                actbits[k2 >> 6] &= ~(np.uint64(1) << np.uint64(k2 & 63))
                            for i in range(arity[f2]):
                                p = G[3 * k2 + i]
                                if p >= n_in:
                                    stack[top] = p - n_in
                                    top += 1
                if not marking:
                    continue
                # --- evaluate offspring c (its genes are applied to G right now) ---
                cact[c] = active
                cd[c] = np.inf  # delay is only computed where it can decide (phase 2, in threshold, not costlier)
                if active:
                    n_chg = 0
                    n_eval = 0
                    mind = acc[MIND]
                    w0 = mind >> 6
                    for wi in range(w0, actbits.shape[0]):  # active nodes from mind up, via the bitset
                        word = actbits[wi]
                        if wi == w0:
                            word &= ~((np.uint64(1) << np.uint64(mind & 63)) - np.uint64(1))
                        while word != 0:
                            low = word & (~word + np.uint64(1))
                            word ^= low
                            k = (wi << 6) + DEBRUIJN[(low * DEBRUIJN_MAGIC) >> np.uint64(58)]
                            f = G[3 * k + 2]
                            ar = arity[f]
                            p0 = G[3 * k]
                            p1 = G[3 * k + 1]
                            c0 = ar >= 1 and chg[p0] != 0
                            c1 = ar == 2 and chg[p1] != 0
                            if mark[k] == 0 and not c0 and not c1:
                                continue
                            n_eval += 1
                            P = n_in + k
                            changed = (mark[k] & ACTIVATED) != 0
                            if phase2:
                                d = 0.0
                                if ar >= 1:
                                    d = DS[c, p0] if c0 else D[p0]
                                if ar == 2:
                                    d1 = DS[c, p1] if c1 else D[p1]
                                    if d1 > d:
                                        d = d1
                                d += dly[f]
                                DS[c, P] = d
                                if d != D[P]:
                                    changed = True
                            for i in range(items):
                                a = np.uint8(0)
                                bb = np.uint8(0)
                                if ar >= 1:
                                    a = S[c, p0, i] if c0 else V[p0, i]
                                if ar == 2:
                                    bb = S[c, p1, i] if c1 else V[p1, i]
                                v = gate_value(lut, f, a, bb)
                                S[c, P, i] = v
                                if v != V[P, i]:
                                    changed = True
                            if changed:
                                chg[P] = 1
                                chl[c, n_chg] = P
                                n_chg += 1
                    err = acc[ERR]
                    n_o = 0
                    for j in range(n_out):
                        p = G[ob + j]
                        cp = chg[p] != 0
                        if cp or ost[j] != 0:
                            term = np.int64(0)
                            for i in range(items):
                                x = S[c, p, i] if cp else V[p, i]
                                dd = np.int64(x ^ 128) - np.int64(T[j, i] ^ 128)
                                term += WQ[j, i] * dd * dd
                            err += term - OT[j]
                            ochl[c, n_o] = j
                            oterm[c, n_o] = term
                            n_o += 1
                    cm[c, 0], cm[c, 1], cm[c, 2], cm[c, 3] = err, acc[ENERGY], acc[AREA], acc[GATES]
                    if phase2 and err <= thr and acc[ENERGY] <= p_energy:
                        delay = 0.0
                        for j in range(n_out):
                            p = G[ob + j]
                            d = DS[c, p] if chg[p] != 0 else D[p]
                            if d > delay:
                                delay = d
                        cd[c] = delay
                    nchl[c], nochl[c] = n_chg, n_o
                    for i in range(n_chg):
                        chg[chl[c, i]] = 0
                    st[EVALUATED] += 1
                    st[NODE_EVALS] += n_eval
                else:  # only inactive genes changed: the same circuit, not evaluated again
                    cm[c, 0], cm[c, 1], cm[c, 2], cm[c, 3] = acc[ERR], acc[ENERGY], acc[AREA], acc[GATES]
                    cd[c] = pdelay[0]
                for i in range(acc[NMARK]):
                    mark[ml[i]] = 0
                acc[NMARK] = 0
            if c == lam:  # commit: the chosen offspring's genes are applied; take its values
                if cact[b]:
                    for i in range(nchl[b]):
                        P = chl[b, i]
                        for ii in range(items):
                            V[P, ii] = S[b, P, ii]
                        if phase2:
                            D[P] = DS[b, P]
                    for i in range(nochl[b]):
                        OT[ochl[b, i]] = oterm[b, i]
                    if phase2:
                        pdelay[0] = cd[b]
                    else:
                        st[DVALID] = 0
                acc[ERR] = cm[b, 0]
        st[OFFSPRING] += lam
        st[GEN] += 1
        if verdict < 0:
            st[STALL] = 0
            if st[DVALID] == 0:
                ensure_depth(G, RC, n_in, n_nodes, arity, dly, D, pdelay, st)
            r = st[NREC]
            rec[r, 0] = st[GEN]
            rec[r, 1] = acc[ERR]
            rec[r, 2] = acc[ENERGY]
            rec[r, 3] = acc[AREA]
            rec[r, 4] = pdelay[0]
            rec[r, 5] = acc[GATES]
            st[NREC] += 1
        else:
            st[STALL] += 1
    return DONE_GENERATIONS
