"""The compiled (1+lambda) evolution loop: mutate, evaluate, select for a chunk of
generations without returning to Python, on one thread or on a team of threads.

Offspring are never copied: a child's mutations are applied to a replica of the parent
in place (keeping refcounts and costs current), its changed node values go to the child's
scratch row, and the mutations are undone again (offspring.py). Each thread owns one
replica; the parent's values V, depths D and error terms OT are shared and only read
while children are evaluated. Child c of generation h is a *task*: its seed is the
(h * lambda + c)-th output of the run's splitmix64 stream, so any thread may run it and
get the same result.

Thread 0 alone *finalizes* a generation once all its children are done: select, commit
the chosen child's values to V/D/OT and its genes to replica 0 and to a ring of commits
that the other threads replay onto their replicas, adapt the mutation rate, record, check
the stop rules, and open the next generation. Tasks are handed out from two slots
(generation parity) by compare-and-swap on counters tagged with the generation.

Speculation: while the current generation's last children are still running, idle
threads already take children of the next generation, evaluated as if the parent stays
(most generations keep it). When thread 0 then accepts a child instead, it closes the
next slot, hands the commit to the other replicas and takes it into replica 0, waits
until the speculative children still in flight are done (they read V, D, OT), writes the
new values and opens the next generation afresh, so speculative results are used only
when they are exactly what the next generation would compute. A thread that finishes a
child at least as good as the parent marks its generation SURE to accept one: no more
speculation starts on the next (it would be thrown away, and thread 0 would wait for it).
Speculation is switched off while most recent generations accepted a child.

A team hands a generation's children out longest first: the number of genes a child
mutates is its first draw, known before it runs, and a child's cost grows with it, so the
slot's ``order`` lists the children by that count, largest first (greedy longest-first
scheduling: the last child taken is a short one, and the threads reach the generation's
end together). Speculative takes come from the other end, shortest first, so that a
speculation thrown away (the parent changed) keeps thread 0 waiting as briefly as possible.
Which thread runs which child never changes its result.

So neither the number of threads nor where chunks start and end changes the run, bit for
bit. The threads are plain Python threads running this nogil function; they meet through
atomic counters in ``sync`` (atomics.py), spinning briefly and then yielding the CPU.

The arrays arrive in engine.py's named tuples: ``par`` (Parent: the parent's values and the
run's state), ``rep`` (Replicas), ``ch`` (Children: two generations' rows), ``arc`` (Archive);
their legends give each field's meaning and shape. ``prob`` is the problem's arrays (problem.py).

State ``st`` (int64): generation, stall (generations since the last strict improvement),
offspring, evaluated offspring, whether the parent's depths D are valid, node
evaluations, improvement records. Depth (delay) only matters in phase 2, so phase 1 does
not maintain it; it is recomputed in full when needed (phase 2 entry, a record, a report).

The mutation rate ``rate[0]`` (float64, a gene count) is fixed unless ``adaptive``: then
a generation whose best child strictly improves on the parent multiplies it by RATE_UP,
any other by RATE_DOWN (the 1/5th success rule: the rate is steady when one generation in
five succeeds), clamped to [1, kcap]. Each child draws m ~ U{1..round(rate)}.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from cgphw.cgp.atomics import atomic_add, atomic_cas, atomic_load, atomic_store, cpu_yield
from cgphw.cgp import pareto_kernels
from cgphw.cgp.kernels import AREA, ENERGY, ERR, GATES, compare, full_depth, outputs_delay
from cgphw.cgp.offspring import apply_genes, offspring, rand_below, splitmix

GEN, STALL, OFFSPRING, EVALUATED, DVALID, NODE_EVALS, NREC = range(7)
N_STATE = 7
DONE_GENERATIONS, DONE_PATIENCE, DONE_PERFECT, DONE_RECORDS = 0, 2, 3, 4
# settings ``cfg`` (int64): the problem's sizes and the run's rules
N_IN, N_NODES, ROWS, LAM, THR, PATIENCE, GEN_END, MODE, ADAPTIVE, KCAP, ARCHIVE, OBJECTIVE, BLOCKS = range(13)
N_CFG = 13
LEXICOGRAPHIC, PARETO = 0, 1  # cfg[OBJECTIVE]; cfg[ARCHIVE]: the Pareto archive's capacity (0: none, pareto_kernels.py)
# cfg[BLOCKS]: blocks of 2 lambda scratch rows (engine.py): one per thread, or one shared when that is too big
# the team's meeting points in ``sync`` (int64), one cache line apart; thread w's replayed
# commit count at MYPV + 8 w
FIN, STOP, PV, CODE, TAKE, DONE, BUSY, SURE, MYPV = 0, 8, 16, 24, 32, 48, 64, 80, 96  # TAKE..SURE: + 8 * slot
TAG = 1 << 20  # TAKE[slot] = (generation + 1) * TAG + BACK * (taken from the back) + taken from the front
BACK = 1 << 10  # (lam <= 1000 < BACK)
RING = 8  # commits kept for replay (a helper lags at most two)
SPINS = 2000  # busy checks before a waiting thread starts yielding the CPU
RATE_UP = math.exp(0.25)
RATE_DOWN = math.exp(-0.25 / 4)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def sync_length(threads: int) -> int:
    return MYPV + 8 * max(1, threads)
@nb.njit(cache=True)
def ensure_depth(G, RC, n_in, n_nodes, arity, dly, D, pdelay, st):
    if st[DVALID] == 0:
        full_depth(G, RC, n_in, n_nodes, arity, dly, D)
        pdelay[0] = outputs_delay(G, n_nodes, D, G.shape[0] - 3 * n_nodes)
        st[DVALID] = 1


@nb.njit(cache=True, inline="always")
def current_k(cfg, rate):
    if cfg[ADAPTIVE] == 0:
        return cfg[KCAP]
    return min(cfg[KCAP], max(1, np.int64(rate + 0.5)))


@nb.njit(cache=True, inline="always")
def next_rate(cfg, rate, success):
    if cfg[ADAPTIVE] == 0:
        return rate
    return min(float(cfg[KCAP]), max(1.0, rate * (RATE_UP if success else RATE_DOWN)))


@nb.njit(cache=True, inline="always")
def pause(spins):
    """One round of waiting: spin, then yield the CPU once the wait gets long."""
    if spins > SPINS:
        cpu_yield()
    return spins + 1


@nb.njit(cache=True, inline="always")
def replay(upto, mine, replica, cfg, prob, ring):
    """Bring a replica from commit ``mine`` up to commit ``upto`` (from the ring)."""
    arity, e_q, a_q, isgate = prob[0], prob[2], prob[3], prob[5]
    G, RC, actbits, acc, stack, mark, ml, ost = replica[:8]
    for p in range(mine, upto):
        i = p % RING
        n = ring[i, 0]
        apply_genes(ring, i, 2, ring, i, 2 + n, n, False, False, G, RC, actbits, acc, stack, mark, ml, ost,
                    cfg[N_IN], 3 * cfg[N_NODES], arity, e_q, a_q, isgate)
        acc[ERR] = ring[i, 1]
    return upto


@nb.njit(cache=True, inline="always")
def take(nw, sync, h, lam, local, order, back):
    """A child of generation h from its slot (longest first, or shortest first from the
    ``back``), or -1; ``local`` is the counter of a lone thread."""
    s = h % 2
    if nw == 1:
        v = local[s]
        if v // TAG != h + 1 or v % TAG >= lam:
            return -1
        local[s] = v + 1
        return v % TAG
    if back:
        if atomic_load(sync, SURE + 8 * (1 - s)) == h:  # generation h - 1 will accept a child
            return -1
        atomic_add(sync, BUSY + 8 * s, 1)  # before the take: thread 0 waits for speculation in flight
    while True:
        v = atomic_load(sync, TAKE + 8 * s)
        front, behind = v % BACK, v % TAG // BACK
        if v // TAG != h + 1 or front + behind >= lam:
            if back:
                atomic_add(sync, BUSY + 8 * s, -1)
            return -1
        if atomic_cas(sync, TAKE + 8 * s, v, v + (BACK if back else 1)):
            return order[s, lam - 1 - behind] if back else order[s, front]


@nb.njit(cache=True, inline="always")
def child_stream(base, c):
    """The first state of child c's own splitmix64 stream, for a generation whose children's
    seeds start at ``base`` (output h * lam + c of the run's stream)."""
    return splitmix(base + np.uint64(c + 1) * GOLDEN)


@nb.njit(cache=True, inline="always")
def longest_first(s, k, base, lam, order, size):
    """order[s] = the children 0..lam-1 by the number of genes each will mutate (its first
    draw, as draw_mutations makes it), most first, ties in child order."""
    for c in range(lam):
        _, m = rand_below(child_stream(base, c), k)
        size[c] = m
        i = c
        while i > 0 and size[order[s, i - 1]] < m:  # insertion sort: lam is small
            order[s, i] = order[s, i - 1]
            i -= 1
        order[s, i] = c


@nb.njit(cache=True, inline="always")
def run_task(w, h, c, replica, shared, cfg, prob, par, ch):
    """Evaluate child c of generation h (slot h % 2) on thread w's replica, in thread w's
    block of scratch rows (rows written by one thread only stay in that CPU's cache)."""
    s = h % 2
    row = s * cfg[LAM] + c
    sr = (w % cfg[BLOCKS]) * 2 * cfg[LAM] + row
    ch.crng[row] = child_stream(par.slotbase[s], c)
    ch.srow[row] = sr
    acc = replica[3]
    offspring(row, sr, par.slotk[s], cfg[MODE], acc[ERR] <= cfg[THR], cfg[ARCHIVE] > 0, cfg[THR], acc[ENERGY],
              par.pdelay[0], cfg[N_IN], cfg[N_NODES], cfg[ROWS], replica, shared, prob, ch)


@nb.njit(cache=True, inline="always")
def versus_parent(r, cm, cd, acc, p_delay, phase2, thr):
    """compare() of child row r with the parent (counters acc, delay p_delay)."""
    return compare(cm[r, 0], cm[r, 1], cd[r], cm[r, 3], acc[ERR], acc[ENERGY], p_delay, acc[GATES], phase2, thr)


@nb.njit(cache=True, inline="always")
def will_accept(row, cfg, par, ch, acc):
    """Will thread 0 accept a child when it sees row's? (If one child is at least as good as
    the parent, the best one is: a hint only, to stop speculating on the next generation.)"""
    phase2 = acc[ERR] <= cfg[THR]
    if phase2 and cfg[OBJECTIVE] == PARETO:
        return False
    return versus_parent(row, ch.cm, ch.cd, acc, par.pdelay[0], phase2, cfg[THR]) <= 0


@nb.njit(cache=True, inline="always")
def open_slot(nw, sync, local, h, k, base, slotk, slotbase, lam, closed, order, size):
    """Hand out the children of generation h (or none, ``closed``) from its slot."""
    s = h % 2
    slotk[s] = k
    slotbase[s] = base
    value = (h + 1) * TAG + (lam if closed else 0)
    if nw == 1:
        local[s] = value
        local[2 + s] = 0
    else:
        if not closed:
            longest_first(s, k, base, lam, order, size)
        atomic_store(sync, DONE + 8 * s, 0)
        atomic_store(sync, SURE + 8 * s, 0)
        atomic_store(sync, TAKE + 8 * s, value)  # last: publishes the settings above


@nb.njit(cache=True, inline="always")
def stop_code(cfg, par, rep):
    st = par.st
    acc0 = rep.accr[0]
    if st[GEN] >= cfg[GEN_END]:
        return DONE_GENERATIONS
    if cfg[PATIENCE] > 0 and st[STALL] >= cfg[PATIENCE]:
        return DONE_PATIENCE
    if acc0[ERR] == 0 and acc0[ENERGY] == 0 and cfg[OBJECTIVE] == LEXICOGRAPHIC:  # (a front may still gain)
        return DONE_PERFECT
    if st[NREC] >= par.rec.shape[0]:
        return DONE_RECORDS
    return -1


@nb.njit(cache=True, inline="always")
def finalize(h, nw, spec, cfg, prob, par, rep, ch, sync, local, arc):
    """Thread 0, once every child of generation h is done: offer the children to the Pareto
    archive, select, commit, record, and open generation h + 1 (and, speculatively, h + 2).
    Returns a DONE_* code or -1."""
    arity, e_q, a_q, dly, isgate = prob[0], prob[2], prob[3], prob[4], prob[5]
    V, D, OT, pdelay, st, rng, rate, rec, ring, slotk, slotbase, order, size = par
    Gr, RCr, actr, accr, stackr, markr, mlr, ostr, _, _ = rep
    S, DS, chl, nchl, ochl, oterm, nochl, mp, mold, mnew, nm, cm, cd, cact, cev, crng, srow = ch
    lam, thr, n_in, n_nodes = cfg[LAM], cfg[THR], cfg[N_IN], cfg[N_NODES]
    acc = accr[0]
    phase2 = acc[ERR] <= thr
    kept = cfg[ARCHIVE] > 0  # an archive: depths and every child's delay are kept in both phases
    r0 = (h % 2) * lam
    for r in range(r0, r0 + lam):
        st[EVALUATED] += cev[r, 0]
        st[NODE_EVALS] += cev[r, 1]
    if kept:
        pareto_kernels.offer_generation(r0, lam, st[GEN] + 1, thr, Gr[0], pdelay, acc, mp, mnew, nm, cm, cd, cact, srow,
                             arc)
    if cfg[OBJECTIVE] == PARETO and phase2:
        b, verdict = pareto_kernels.pareto_choice(r0, lam, thr, pdelay, acc, cm, cd)
    else:
        b = r0
        for r in range(r0 + 1, r0 + lam):
            if compare(cm[r, 0], cm[r, 1], cd[r], cm[r, 3], cm[b, 0], cm[b, 1], cd[b], cm[b, 3], phase2, thr) < 0:
                b = r
        verdict = versus_parent(b, cm, cd, acc, pdelay[0], phase2, thr)
    accept = verdict <= 0  # better or equal: equal children replace the parent (neutral drift)
    if accept:
        nxt = (h + 1) % 2
        draining = nw > 1 and spec[0]
        if draining:  # no more speculation on h + 1; what is in flight still reads V, D, OT
            atomic_store(sync, TAKE + 8 * nxt, (h + 2) * TAG + lam)
        pv = atomic_load(sync, PV)
        for w in range(1, nw):  # a helper more than RING - 1 commits behind would lose one
            spins = 0
            while atomic_load(sync, MYPV + 8 * w) <= pv - RING:
                spins = pause(spins)
        i = pv % RING
        n = nm[b]
        x = srow[b]
        ring[i, 0] = n
        ring[i, 1] = cm[b, 0]
        for t in range(n):
            ring[i, 2 + t] = mp[x, t]
            ring[i, 2 + n + t] = mnew[x, t]
        atomic_store(sync, PV, pv + 1)  # the helpers replay it while replica 0 takes it
        apply_genes(mp, x, 0, mnew, x, 0, n, False, False, Gr[0], RCr[0], actr[0], acc, stackr[0], markr[0], mlr[0],
                    ostr[0], n_in, 3 * n_nodes, arity, e_q, a_q, isgate)
        acc[ERR] = cm[b, 0]
        if draining:  # (replica 0 took the genes meanwhile: the speculation mostly ended already)
            spins = 0
            while atomic_load(sync, BUSY + 8 * nxt) != 0:
                spins = pause(spins)
        if cact[b]:
            items = V.shape[1]
            for i in range(nchl[b]):
                P = chl[x, i]
                for ii in range(items):
                    V[P, ii] = S[x, P, ii]
                if phase2 or kept:
                    D[P] = DS[x, P]
            for i in range(nochl[b]):
                OT[ochl[x, i]] = oterm[x, i]
            if phase2 or kept:  # (kept: every child's delay is known)
                pdelay[0] = cd[b]
            else:
                st[DVALID] = 0
    st[OFFSPRING] += lam
    st[GEN] += 1
    rng[0] += np.uint64(lam) * GOLDEN  # the stream now starts at generation h + 1's children
    rate[0] = next_rate(cfg, rate[0], verdict < 0)
    if verdict < 0:
        st[STALL] = 0
        if st[DVALID] == 0:  # (a call, even one that returns at once, costs more than a 5x5 generation's share)
            ensure_depth(Gr[0], RCr[0], n_in, n_nodes, arity, dly, D, pdelay, st)
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
    if acc[ERR] <= thr and st[DVALID] == 0:  # phase 2 compares delays: entering it needs them
        ensure_depth(Gr[0], RCr[0], n_in, n_nodes, arity, dly, D, pdelay, st)
    code = stop_code(cfg, par, rep)
    if code >= 0:
        return code
    spec[1] = spec[1] * 0.9 + (0.1 if accept else 0.0)  # recent share of generations that accepted
    was_open = spec[0]
    spec[0] = nw > 1 and spec[1] < 0.5
    if accept or not was_open:  # h + 1 opens afresh; otherwise its speculative slot is valid as it is
        open_slot(nw, sync, local, h + 1, current_k(cfg, rate[0]), rng[0], slotk, slotbase, lam, False, order, size)
    open_slot(nw, sync, local, h + 2, current_k(cfg, next_rate(cfg, rate[0], False)),
              rng[0] + np.uint64(lam) * GOLDEN, slotk, slotbase, lam, not spec[0], order, size)
    if nw > 1:
        atomic_store(sync, FIN, h + 1)
    return -1


@nb.njit(cache=True, nogil=True)
def run_generations(w, nw, cfg, prob, par, rep, ch, sync, arc):
    """Thread w of a team of nw (nw = 1: the whole loop on one thread). Thread 0 runs the
    generations until cfg[GEN_END] or a stop rule and returns a DONE_* code; the others
    take children until thread 0 sets STOP. ``sync`` must be all zeros at the start and the
    replicas equal to replica 0."""
    st, rng, rate, ring = par.st, par.rng, par.rate, par.ring
    slotk, slotbase, order, size = par.slotk, par.slotbase, par.order, par.size
    Gr, RCr, actr, accr, stackr, markr, mlr, ostr, chgr, gpickr = rep
    replica = (Gr[w], RCr[w], actr[w], accr[w], stackr[w], markr[w], mlr[w], ostr[w], chgr[w], gpickr[w])
    shared = (par.V, par.D, par.OT)
    lam = cfg[LAM]
    local = np.zeros(4, np.int64)  # a lone thread's slot counters (TAKE 0, 1; DONE 0, 1)
    spec = np.zeros(2, np.float64)  # speculating now?, recent share of accepting generations
    h = 0
    mine = 0
    if w == 0:
        code = stop_code(cfg, par, rep)
        if code >= 0:
            atomic_store(sync, STOP, 1)
            return code
        if accr[0, ERR] <= cfg[THR]:
            ensure_depth(Gr[0], RCr[0], cfg[N_IN], cfg[N_NODES], prob[0], prob[4], par.D, par.pdelay, st)
        spec[0] = nw > 1
        open_slot(nw, sync, local, 0, current_k(cfg, rate[0]), rng[0], slotk, slotbase, lam, False, order, size)
        open_slot(nw, sync, local, 1, current_k(cfg, next_rate(cfg, rate[0], False)),
                  rng[0] + np.uint64(lam) * GOLDEN, slotk, slotbase, lam, not spec[0], order, size)
    spins = 0
    while True:
        if w > 0:  # keep up with the commits, working or not (thread 0 may wait for it)
            pv = atomic_load(sync, PV)
            if mine < pv:
                mine = replay(pv, mine, replica, cfg, prob, ring)
                atomic_store(sync, MYPV + 8 * w, mine)
        if w == 0:
            done = local[2 + h % 2] if nw == 1 else atomic_load(sync, DONE + 8 * (h % 2))
            if done == lam:
                code = finalize(h, nw, spec, cfg, prob, par, rep, ch, sync, local, arc)
                if code >= 0:
                    atomic_store(sync, CODE, code)
                    atomic_store(sync, STOP, 1)
                    return code
                h += 1
                continue
        else:
            if atomic_load(sync, STOP) != 0:
                replay(atomic_load(sync, PV), mine, replica, cfg, prob, ring)
                return DONE_GENERATIONS
            h = atomic_load(sync, FIN)
        g = h
        c = take(nw, sync, g, lam, local, order, False)
        if c < 0 and nw > 1:  # speculate
            g = h + 1
            c = take(nw, sync, g, lam, local, order, True)
        if c < 0:
            spins = pause(spins)
            continue
        spins = 0
        if w > 0:  # catch up with the commits so far (none can come until this child is done)
            pv = atomic_load(sync, PV)
            if mine < pv:
                mine = replay(pv, mine, replica, cfg, prob, ring)
                atomic_store(sync, MYPV + 8 * w, mine)
        run_task(w, g, c, replica, shared, cfg, prob, par, ch)
        if nw == 1:
            local[2 + g % 2] += 1
        else:
            if will_accept((g % 2) * lam + c, cfg, par, ch, replica[3]):
                atomic_store(sync, SURE + 8 * (g % 2), g + 1)
            atomic_add(sync, DONE + 8 * (g % 2), 1)
            if g != h:  # (a front take of the current generation cannot be in flight when a slot closes)
                atomic_add(sync, BUSY + 8 * (g % 2), -1)
