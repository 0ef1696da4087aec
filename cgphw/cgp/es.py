"""The compiled (1+lambda) evolution loop: mutate, evaluate, select for a chunk of
generations without returning to Python, on one thread or on a team of threads.

Offspring are never copied: a child's mutations are applied to a replica of the parent
in place (keeping refcounts and costs current), its changed node values go to a per-child
scratch, and the mutations are undone again (offspring.py). Each thread owns one replica;
the parent's values V, depths D and error terms OT are shared and only read while the
children are evaluated. A generation is:

  1. thread 0: stop rules; one seed per child drawn from the run's splitmix64 stream;
  2. every thread: replay the last accepted child onto its own replica (replica 0 is
     always current), then take children one at a time from a shared counter and
     evaluate them (any thread may take any child: the result is the same);
  3. thread 0, once all are done: select, commit the chosen child's values to V/D/OT and
     its genes to replica 0, adapt the mutation rate, record improvements.

Everything is a function of the parent state and of the run's stream, so neither the
number of threads nor where chunks start and end changes the run, bit for bit. The
threads are plain Python threads running this nogil function; they meet through atomic
counters in ``sync`` (atomics.py), spinning briefly and then yielding the CPU, so a team
costs about a cache-line exchange per generation rather than a thread-pool launch.

State ``st`` (int64): generation, stall (generations since the last strict improvement),
offspring, evaluated offspring, whether the parent's depths D are valid, node
evaluations, improvement records, whether replicas 1.. still lag one commit. Depth (delay)
only matters in phase 2, so phase 1 does not maintain it; it is recomputed in full when
needed (phase 2 entry, a record, a report).

The mutation rate ``rate[0]`` (float64, a gene count) is fixed unless ``adaptive``: then
a generation whose best child strictly improves on the parent multiplies it by RATE_UP,
any other by RATE_DOWN (the 1/5th success rule: the rate is steady when one generation in
five succeeds), clamped to [1, kcap]. Each child draws m ~ U{1..round(rate)}.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from cgphw.cgp.atomics import atomic_add, atomic_load, atomic_store, cpu_yield
from cgphw.cgp.kernels import AREA, ENERGY, ERR, GATES, full_depth, outputs_delay
from cgphw.cgp.offspring import apply_genes, next_u64, offspring

GEN, STALL, OFFSPRING, EVALUATED, DVALID, NODE_EVALS, NREC, PENDING = range(8)
N_STATE = 8
DONE_GENERATIONS, DONE_PATIENCE, DONE_PERFECT, DONE_RECORDS = 0, 2, 3, 4
# settings ``cfg`` (int64): the problem's sizes and the run's rules
N_IN, N_NODES, ROWS, LAM, THR, PATIENCE, GEN_END, MODE, ADAPTIVE, KCAP = range(10)
N_CFG = 10
# the team's meeting points in ``sync`` (int64), one cache line apart
GO, STOP, NEXT, DONE, P_ERR, P_ENERGY = 0, 8, 16, 24, 32, 40
SYNC_LEN = 48
SPINS = 2000  # busy checks before a waiting thread starts yielding the CPU
RATE_UP = math.exp(0.25)
RATE_DOWN = math.exp(-0.25 / 4)


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


@nb.njit(cache=True, inline="always")
def start_generation(cfg, prob, par, rep, ch):
    """Stop rules, then the children's seeds; returns a DONE_* code or -1 to go on."""
    arity, dly = prob[0], prob[4]
    V, D, OT, pdelay, st, rng, rate, rec, cbuf = par
    Gr, RCr, accr = rep[0], rep[1], rep[3]
    crng = ch[15]
    if st[GEN] >= cfg[GEN_END]:
        return DONE_GENERATIONS
    if cfg[PATIENCE] > 0 and st[STALL] >= cfg[PATIENCE]:
        return DONE_PATIENCE
    if accr[0, ERR] == 0 and accr[0, ENERGY] == 0:
        return DONE_PERFECT
    if st[NREC] >= rec.shape[0]:
        return DONE_RECORDS
    if accr[0, ERR] <= cfg[THR] and st[DVALID] == 0:
        ensure_depth(Gr[0], RCr[0], cfg[N_IN], cfg[N_NODES], arity, dly, D, pdelay, st)
    for c in range(cfg[LAM]):
        crng[c] = next_u64(rng, 0)
    return -1


@nb.njit(cache=True, inline="always")
def current_k(cfg, rate):
    if cfg[ADAPTIVE] == 0:
        return cfg[KCAP]
    return min(cfg[KCAP], max(1, np.int64(rate[0] + 0.5)))


@nb.njit(cache=True, inline="always")
def work(w, nw, p_err, p_energy, cfg, prob, par, rep, ch, sync):
    """Thread w's share of a generation: catch up with the parent, then children taken
    from the shared counter until none is left (all of them when alone).
    p_err/p_energy are the parent's, read before the team starts (replica 0 changes)."""
    arity, e_q, a_q, isgate = prob[0], prob[2], prob[3], prob[5]
    V, D, OT, pdelay, st, rng, rate, rec, cbuf = par
    Gr, RCr, actr, accr, stackr, markr, mlr, ostr, chgr, gpickr = rep
    n_in, n_nodes = cfg[N_IN], cfg[N_NODES]
    G, RC, actbits, acc, stack = Gr[w], RCr[w], actr[w], accr[w], stackr[w]
    mark, ml, ost = markr[w], mlr[w], ostr[w]
    if w > 0 and st[PENDING] != 0:  # replay the last accepted child: cbuf = [n, err, pos..., val...]
        n = cbuf[0]
        apply_genes(cbuf[2:], cbuf[2 + n:], n, False, False, G, RC, actbits, acc, stack, mark, ml, ost,
                    n_in, 3 * n_nodes, arity, e_q, a_q, isgate)
        acc[ERR] = cbuf[1]
    phase2 = p_err <= cfg[THR]
    k = current_k(cfg, rate)
    replica = (G, RC, actbits, acc, stack, mark, ml, ost, chgr[w], gpickr[w])
    c = 0
    while True:
        if nw > 1:
            c = atomic_add(sync, NEXT, 1)
        if c >= cfg[LAM]:
            break
        offspring(c, k, cfg[MODE], phase2, cfg[THR], p_energy, pdelay[0], n_in, n_nodes, cfg[ROWS], replica,
                  (V, D, OT), prob, ch)
        c += 1


@nb.njit(cache=True, inline="always")
def wait_until(sync, i, value, stop_too):
    """Wait until sync[i] == value (or, with stop_too, until STOP is set); True if stopped."""
    spins = 0
    while atomic_load(sync, i) != value:
        if stop_too and atomic_load(sync, STOP) != 0:
            return True
        spins += 1
        if spins > SPINS:
            cpu_yield()
    return False


@nb.njit(cache=True, inline="always")
def finish_generation(cfg, prob, par, rep, ch):
    """Select, commit to the shared values and replica 0, adapt the rate, record."""
    arity, e_q, a_q, dly, isgate = prob[0], prob[2], prob[3], prob[4], prob[5]
    V, D, OT, pdelay, st, rng, rate, rec, cbuf = par
    Gr, RCr, actr, accr, stackr, markr, mlr, ostr = rep[:8]
    S, DS, chl, nchl, ochl, oterm, nochl, mp, mold, mnew, nm, cm, cd, cact, cev, crng = ch
    lam, thr, n_in, n_nodes = cfg[LAM], cfg[THR], cfg[N_IN], cfg[N_NODES]
    acc = accr[0]
    phase2 = acc[ERR] <= thr
    st[PENDING] = 0
    for c in range(lam):
        st[EVALUATED] += cev[c, 0]
        st[NODE_EVALS] += cev[c, 1]
    b = 0
    for c in range(1, lam):
        if compare(cm[c, 0], cm[c, 1], cd[c], cm[c, 3], cm[b, 0], cm[b, 1], cd[b], cm[b, 3], phase2, thr) < 0:
            b = c
    verdict = compare(cm[b, 0], cm[b, 1], cd[b], cm[b, 3], acc[ERR], acc[ENERGY], pdelay[0], acc[GATES],
                      phase2, thr)
    if verdict <= 0:  # better or equal: equal children replace the parent (neutral drift)
        if cact[b]:
            items = V.shape[1]
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
        n = nm[b]
        cbuf[0] = n
        cbuf[1] = cm[b, 0]
        for t in range(n):
            cbuf[2 + t] = mp[b, t]
            cbuf[2 + n + t] = mnew[b, t]
        apply_genes(cbuf[2:], cbuf[2 + n:], n, False, False, Gr[0], RCr[0], actr[0], acc, stackr[0], markr[0],
                    mlr[0], ostr[0], n_in, 3 * n_nodes, arity, e_q, a_q, isgate)
        acc[ERR] = cm[b, 0]
        st[PENDING] = 1
    st[OFFSPRING] += lam
    st[GEN] += 1
    if cfg[ADAPTIVE] != 0:
        rate[0] = min(float(cfg[KCAP]), max(1.0, rate[0] * (RATE_UP if verdict < 0 else RATE_DOWN)))
    if verdict < 0:
        st[STALL] = 0
        if st[DVALID] == 0:
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


@nb.njit(cache=True, inline="always")
def sync_replicas(nw, cfg, prob, par, rep):
    """Bring replicas 1..nw-1 up to date before returning to Python."""
    arity, e_q, a_q, isgate = prob[0], prob[2], prob[3], prob[5]
    st, cbuf = par[4], par[8]
    Gr, RCr, actr, accr, stackr, markr, mlr, ostr = rep[:8]
    if st[PENDING] != 0:
        n = cbuf[0]
        for w in range(1, nw):
            apply_genes(cbuf[2:], cbuf[2 + n:], n, False, False, Gr[w], RCr[w], actr[w], accr[w], stackr[w],
                        markr[w], mlr[w], ostr[w], cfg[N_IN], 3 * cfg[N_NODES], arity, e_q, a_q, isgate)
            accr[w, ERR] = cbuf[1]
        st[PENDING] = 0


@nb.njit(cache=True, nogil=True)
def run_generations(w, nw, cfg, prob, par, rep, ch, sync):
    """Thread w of a team of nw (nw = 1: the whole loop on one thread). Thread 0 runs the
    generations until cfg[GEN_END] or a stop rule and returns a DONE_* code; the others
    help until thread 0 sets STOP (``sync`` must be all zeros at the start)."""
    token = 0
    while True:
        token += 1
        if w == 0:
            code = start_generation(cfg, prob, par, rep, ch)
            if code >= 0:
                atomic_store(sync, STOP, 1)  # the helpers are all waiting for GO: they return untouched
                sync_replicas(nw, cfg, prob, par, rep)
                return code
            acc0 = rep[3][0]
            sync[P_ERR], sync[P_ENERGY] = acc0[ERR], acc0[ENERGY]
            atomic_store(sync, NEXT, 0)
            atomic_store(sync, DONE, 0)
            atomic_store(sync, GO, token)
        elif wait_until(sync, GO, token, True):
            return DONE_GENERATIONS
        work(w, nw, sync[P_ERR], sync[P_ENERGY], cfg, prob, par, rep, ch, sync)
        if w == 0:
            wait_until(sync, DONE, nw - 1, False)
            finish_generation(cfg, prob, par, rep, ch)
        else:
            atomic_add(sync, DONE, 1)
