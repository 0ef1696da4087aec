"""One offspring, compiled: draw its mutations, apply them to a replica of the parent in
place, evaluate what changed, and undo them again (loop.py runs the generations).

A *replica* is one copy of the parent's structural state: genes G, refcounts RC, the
active bitset, counters acc, marks and scratch lists. Worker w of a parallel generation
owns replica w; the parent's pin values V, depths D and per-output error terms OT are
shared and only read here. Child c writes its figures to row c of the per-child arrays
and its mutations and changed values to a scratch row ``sr`` of the thread that runs it
(mp[sr], S[sr], ...; srow[c] = sr), so any worker may evaluate any child and the result
is the same.

Every helper is ``inline="always"``: numba reference-counts arrays handed to a called
function, which costs more than the work done per gene or per node here.

Mutation operators (drawn from the child's own splitmix64 stream, seeded from the run's
stream before the generation, so the draws do not depend on which worker runs the child):
  UNIFORM  change m ~ U{1..k} distinct genes, each to a different legal value;
  ACTIVE   change random distinct genes until m ~ U{1..k} of them were active in the
           parent (k = 1 is Goldman & Punch's "single active" mutation); the inactive
           genes changed on the way are kept (neutral drift).
A child changes at most ``mp.shape[1]`` genes in all.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from cgphw.cgp.kernels import ACTIVATED, AREA, DIRTY, ENERGY, ERR, GATES, MIND, NMARK, gate_value

UNIFORM, ACTIVE = 0, 1

DEBRUIJN_MAGIC = np.uint64(0x03F79D71B4CB0A89)
DEBRUIJN = np.zeros(64, np.int64)  # index of the lowest set bit from (low * magic) >> 58
for _i in range(64):
    DEBRUIJN[((1 << _i) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _i


@nb.njit(cache=True, inline="always")
def splitmix(z):
    """splitmix64's output for state z (the n-th output of a stream is splitmix(start + n * golden))."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def rand_below(z, n):
    """One splitmix64 step from state z: (the next state, a number below n)."""
    z += np.uint64(0x9E3779B97F4A7C15)
    return z, np.int64(splitmix(z) % np.uint64(n))


@nb.njit(cache=True, inline="always")
def gene_is_active(pos, G, RC, arity, ob):
    """Does gene ``pos`` take part in the circuit (an output, or a used gene of an active node)?"""
    if pos >= ob:
        return True
    k = pos // 3
    if RC[k] == 0:
        return False
    w = pos - 3 * k
    return w == 2 or w < arity[G[3 * k + 2]]


@nb.njit(cache=True, inline="always")
def draw_mutations(c, sr, k, mode, crng, G, RC, gpick, arity, ob, rows, col_nin, col_lo, col_hi, forced, const_f,
                   const_pos, mpos, mp, mold, mnew):
    """Fill row sr of mp/mold/mnew with child c's mutations; returns their count. (The
    stream's state stays in a register: crng's rows share cache lines between threads.)"""
    n_f = arity.shape[0]
    n_const = const_f.shape[0]
    n_mpos = mpos.shape[0]
    all_mutable = n_mpos == G.shape[0]  # then mpos is the identity: skip a random load per draw
    out_col = col_nin.shape[0] - 1
    cap = mp.shape[1]
    z = crng[c]
    z, m = rand_below(z, k)
    m += 1
    hits = 0
    t = 0
    while t < cap and hits < m:
        while True:  # a gene this child has not drawn yet
            z, pos = rand_below(z, n_mpos)
            if not all_mutable:
                pos = mpos[pos]
            if gpick[pos] == 0:
                gpick[pos] = 1
                break
        old = G[pos]
        col = out_col
        val = -1
        if pos < ob:
            kk = pos // 3
            col = kk // rows
            if pos - 3 * kk == 2:
                if forced[col]:
                    z, r = rand_below(z, n_const - 1)
                    if r >= const_pos[old]:
                        r += 1
                    val = const_f[r]
                else:
                    z, r = rand_below(z, n_f - 1)
                    val = r + 1 if r >= old else r
        if val < 0:  # a connection gene: any other pin the column may read
            nin, lo = col_nin[col], col_lo[col]
            ci = old if old < nin else nin + old - lo
            z, r = rand_below(z, nin + col_hi[col] - lo - 1)
            if r >= ci:
                r += 1
            val = r if r < nin else lo + r - nin
        mp[sr, t] = pos
        mold[sr, t] = old
        mnew[sr, t] = val
        t += 1
        if mode == UNIFORM or gene_is_active(pos, G, RC, arity, ob):
            hits += 1
    crng[c] = z
    return t


@nb.njit(cache=True, inline="always")
def apply_genes(P, prow, poff, Q, qrow, qoff, cnt, reverse, marking, G, RC, actbits, acc, stack, mark, ml, ost,
                n_in, ob, arity, e_q, a_q, isgate):
    """G[P[prow, poff + t]] = Q[qrow, qoff + t] for t < cnt (backwards if ``reverse``),
    keeping refcounts, costs, the active bitset and, when ``marking``, the marks of what must
    be re-evaluated. Returns True when an active gene was touched (the circuit may have
    changed). (Rows and offsets rather than 1-d views: a view costs reference counting.)"""
    active = False
    for tt in range(cnt):
        t = cnt - 1 - tt if reverse else tt
        pos = P[prow, poff + t]
        val = Q[qrow, qoff + t]
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
    return active


@nb.njit(cache=True, inline="always")
def offspring(c, sr, k, mode, phase2, delays, thr, p_energy, p_delay, n_in, n_nodes, rows, replica, shared, prob, ch):
    """Create, evaluate and undo child c on this replica; its figures go to row c, its
    mutations and values to scratch row sr. Depths (DS) are kept in phase 2, where the
    delay may decide, and with ``delays`` (a Pareto archive: every child's exact delay, in
    both phases).
    (Arguments travel in tuples: a call with more than 30 arguments is compiled as a
    *args call, which numba cannot inline.)"""
    G, RC, actbits, acc, stack, mark, ml, ost, chg, gpick = replica
    V, D, OT = shared
    arity, lut, e_q, a_q, dly, isgate, T, WQ, col_nin, col_lo, col_hi, forced, const_f, const_pos, mpos = prob
    S, DS, chl, nchl, ochl, oterm, nochl, mp, mold, mnew, nm, cm, cd, cact, cev, crng, srow = ch
    ob = 3 * n_nodes
    n_out, items = T.shape
    depths = phase2 or delays
    cnt = draw_mutations(c, sr, k, mode, crng, G, RC, gpick, arity, ob, rows, col_nin, col_lo, col_hi, forced,
                         const_f, const_pos, mpos, mp, mold, mnew)
    nm[c] = cnt
    acc[MIND] = n_nodes
    active = apply_genes(mp, sr, 0, mnew, sr, 0, cnt, False, True, G, RC, actbits, acc, stack, mark, ml, ost,
                         n_in, ob, arity, e_q, a_q, isgate)
    cact[c] = active
    cd[c] = np.inf  # delay: computed where it can decide (phase 2, in threshold, not costlier), or ``delays``
    cev[c, 0] = 0
    cev[c, 1] = 0
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
                kn = (wi << 6) + DEBRUIJN[(low * DEBRUIJN_MAGIC) >> np.uint64(58)]
                f = G[3 * kn + 2]
                ar = arity[f]
                p0 = G[3 * kn]
                p1 = G[3 * kn + 1]
                c0 = ar >= 1 and chg[p0] != 0
                c1 = ar == 2 and chg[p1] != 0
                if mark[kn] == 0 and not c0 and not c1:
                    continue
                n_eval += 1
                P = n_in + kn
                changed = (mark[kn] & ACTIVATED) != 0
                if depths:
                    d = 0.0
                    if ar >= 1:
                        d = DS[sr, p0] if c0 else D[p0]
                    if ar == 2:
                        d1 = DS[sr, p1] if c1 else D[p1]
                        if d1 > d:
                            d = d1
                    d += dly[f]
                    DS[sr, P] = d
                    if d != D[P]:
                        changed = True
                for i in range(items):
                    a = np.uint8(0)
                    bb = np.uint8(0)
                    if ar >= 1:
                        a = S[sr, p0, i] if c0 else V[p0, i]
                    if ar == 2:
                        bb = S[sr, p1, i] if c1 else V[p1, i]
                    v = gate_value(lut, f, a, bb)
                    S[sr, P, i] = v
                    if v != V[P, i]:
                        changed = True
                if changed:
                    chg[P] = 1
                    chl[sr, n_chg] = P
                    n_chg += 1
        err = acc[ERR]
        n_o = 0
        delay = 0.0
        for j in range(n_out):
            p = G[ob + j]
            cp = chg[p] != 0
            if delays:
                d = DS[sr, p] if cp else D[p]
                if d > delay:
                    delay = d
            if cp or ost[j] != 0:
                term = np.int64(0)
                for i in range(items):
                    x = S[sr, p, i] if cp else V[p, i]
                    dd = np.int64(x ^ 128) - np.int64(T[j, i] ^ 128)
                    term += WQ[j, i] * dd * dd
                err += term - OT[j]
                ochl[sr, n_o] = j
                oterm[sr, n_o] = term
                n_o += 1
        cm[c, 0], cm[c, 1], cm[c, 2], cm[c, 3] = err, acc[ENERGY], acc[AREA], acc[GATES]
        if delays:
            cd[c] = delay
        elif phase2 and err <= thr and acc[ENERGY] <= p_energy:
            for j in range(n_out):
                p = G[ob + j]
                d = DS[sr, p] if chg[p] != 0 else D[p]
                if d > delay:
                    delay = d
            cd[c] = delay
        nchl[c], nochl[c] = n_chg, n_o
        for i in range(n_chg):
            chg[chl[sr, i]] = 0
        cev[c, 0] = 1
        cev[c, 1] = n_eval
    else:  # only inactive genes changed: the same circuit, not evaluated again
        cm[c, 0], cm[c, 1], cm[c, 2], cm[c, 3] = acc[ERR], acc[ENERGY], acc[AREA], acc[GATES]
        cd[c] = p_delay
    for i in range(acc[NMARK]):
        mark[ml[i]] = 0
    acc[NMARK] = 0
    apply_genes(mp, sr, 0, mold, sr, 0, cnt, True, False, G, RC, actbits, acc, stack, mark, ml, ost,
                n_in, ob, arity, e_q, a_q, isgate)
    for t in range(cnt):
        pos = mp[sr, t]
        gpick[pos] = 0
        if pos >= ob:
            ost[pos - ob] = 0
