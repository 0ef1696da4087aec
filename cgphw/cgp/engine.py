"""Engine: the state of one (1+lambda) run in the arrays the compiled loop works on.

The Python side only sets up, runs chunks of generations (``run``), and reads the parent
(``genome``, ``metrics``). ``snapshot``/``restore`` carry everything that decides the rest
of the run (parent genes, RNG, counters); all other state is recomputed from the genes.

The arrays are grouped in named tuples, each field with a line saying what it holds and its
shape: ``Parent`` (the parent's values and the run's state), ``Replicas`` (one copy of the
parent's structure per thread), ``Children`` (two generations of children), ``Archive`` (the
Pareto archive); the compiled loop (loop.py) takes them as they are.
"""
from __future__ import annotations

import math
import os
import threading
from typing import NamedTuple

import numpy as np

from cgphw.cgp import kernels, loop, pareto_kernels
from cgphw.cgp.offspring import ACTIVE, UNIFORM
from cgphw.cgp.genome import Genome
from cgphw.cgp.problem import COST_SCALE, Problem
from cgphw.cgp.settings import SearchSettings

RECORDS = 4096
SCRATCH_BYTES = 256 << 20  # scratch rows of all threads (one block of them is always made)


def seed_stream(seed: int) -> np.ndarray:
    """The loop's splitmix64 state, derived from the run's seed."""
    return np.random.SeedSequence([int(seed), 0x5EED]).generate_state(1, np.uint64)


def evaluate_state(problem: Problem, internal: np.ndarray):
    """Full evaluation of internal genes: (V, D, RC, OT, acc, delay)."""
    grid = problem.grid
    n_pins, items = grid.n_inputs + grid.n_nodes, problem.T.shape[1]
    V = np.zeros((n_pins, items), np.uint8)
    V[: grid.n_inputs] = problem.inputs
    D = np.zeros(n_pins, np.float64)
    RC = np.zeros(grid.n_nodes, np.int32)
    OT = np.zeros(grid.n_outputs, np.int64)
    acc = np.zeros(6, np.int64)
    delay = kernels.full_state(internal, grid.n_inputs, grid.n_nodes, problem.arity, problem.lut, problem.e_q,
                               problem.a_q, problem.dly, problem.isgate, problem.T, problem.WQ, V, D, RC, OT, acc)
    return V, D, RC, OT, acc, delay


def metrics_from(problem: Problem, acc, delay: float) -> dict:
    return {"error_se": int(acc[kernels.ERR]) / 2.0**problem.scale,
            "threshold_reached": bool(acc[kernels.ERR] <= problem.thr),
            "energy_pj": int(acc[kernels.ENERGY]) / COST_SCALE, "area": int(acc[kernels.AREA]) / COST_SCALE,
            "delay_ns": float(delay), "gates": int(acc[kernels.GATES])}


def apart(rows: int, width: int, dtype) -> np.ndarray:
    """Zeros [rows, width] whose rows lie at least 128 bytes apart (two cache lines, as
    adjacent lines are fetched in pairs), so that threads writing different rows do not
    share a line (false sharing); row 0 starts a whole stride into the block."""
    itemsize = np.dtype(dtype).itemsize
    stride = -(-max(width * itemsize, 128) // 128) * 128 // itemsize
    return np.zeros((rows + 1, stride), dtype)[1:, :width]


class Parent(NamedTuple):
    """The parent's evaluation and the run's state, shared by the threads (``par`` in loop.py).
    Pins are the task's inputs, then the grid's nodes; items the task's columns."""
    V: np.ndarray  # uint8 [pins, items]: every pin's value on every item
    D: np.ndarray  # float64 [pins]: every pin's depth (delay from the inputs, ns); valid when st[DVALID]
    OT: np.ndarray  # int64 [outputs]: each output's weighted squared error (kernel units)
    pdelay: np.ndarray  # float64 [1]: the parent's delay (its deepest output)
    st: np.ndarray  # int64 [loop.N_STATE]: generation, stall, offspring, evaluated, DVALID, node evals, records
    rng: np.ndarray  # uint64 [1]: the run's splitmix64 state (the next generation's children's seeds)
    rate: np.ndarray  # float64 [1]: the mutation rate (genes; adaptive runs move it)
    rec: np.ndarray  # float64 [RECORDS, 6]: improvements not yet taken: generation, error, energy, area, delay, gates
    ring: np.ndarray  # int64 [loop.RING, 2 + 2 cap]: accepted children (count, error, positions, genes) to replay
    slotk: np.ndarray  # int64 [2]: each slot's k (the most genes a child mutates)
    slotbase: np.ndarray  # uint64 [2]: each slot's stream state, from which its children's seeds derive
    order: np.ndarray  # int64 [2, lam]: each slot's children, most mutations first (loop.py)
    size: np.ndarray  # int64 [lam]: thread 0's scratch for that order (each child's mutation count)


class Replicas(NamedTuple):
    """One copy of the parent's structure per thread (``rep`` in loop.py; row w: thread w's,
    row 0: the parent's). A child is applied to its thread's copy and undone again."""
    Gr: np.ndarray  # int32 [replicas, genes]: internal genes (a node's third gene: its gate's index)
    RCr: np.ndarray  # int32 [replicas, nodes]: refcounts (> 0: the node is active)
    actr: np.ndarray  # uint64 [replicas, ceil(nodes / 64)]: the active nodes as a bitset
    accr: np.ndarray  # int64 [replicas, >= 6]: counters (kernels.py): error, energy, area, gates, lowest dirty, marks
    stackr: np.ndarray  # int64 [replicas, 2 nodes + 4]: the walk's stack when a node (de)activates
    markr: np.ndarray  # uint8 [replicas, nodes]: per node: must be recomputed (1), became active (2)
    mlr: np.ndarray  # int64 [replicas, nodes + 1]: the marked nodes, to clear their marks
    ostr: np.ndarray  # uint8 [replicas, outputs]: outputs whose gene the child changed
    chgr: np.ndarray  # uint8 [replicas, pins]: pins whose value or depth the child changed
    gpickr: np.ndarray  # uint8 [replicas, genes]: genes the child already drew (distinct mutations)


class Children(NamedTuple):
    """Two generations of children (``ch`` in loop.py): rows 0..lam-1 the even generation's,
    lam..2 lam-1 the odd one's, written by whichever thread runs the child. A child's
    mutations and changed values go to a scratch row (``srow``) of the thread's block."""
    S: np.ndarray  # uint8 [scratch rows, pins, items]: the child's changed pin values
    DS: np.ndarray  # float64 [scratch rows, pins]: the child's changed pin depths
    chl: np.ndarray  # int64 [scratch rows, pins]: the pins whose value or depth changed
    nchl: np.ndarray  # int64 [2 lam]: how many (chl's length)
    ochl: np.ndarray  # int64 [scratch rows, outputs]: the outputs whose error term changed
    oterm: np.ndarray  # int64 [scratch rows, outputs]: their new error terms
    nochl: np.ndarray  # int64 [2 lam]: how many (ochl's length)
    mp: np.ndarray  # int32 [scratch rows, cap]: mutated gene positions
    mold: np.ndarray  # int32 [scratch rows, cap]: their parent values (to undo)
    mnew: np.ndarray  # int32 [scratch rows, cap]: their new values
    nm: np.ndarray  # int64 [2 lam]: how many mutations
    cm: np.ndarray  # int64 [2 lam, 4]: the child's error, energy, area, gates (kernel units)
    cd: np.ndarray  # float64 [2 lam]: its delay (inf where it could not decide)
    cact: np.ndarray  # bool [2 lam]: an active gene changed (else the same circuit as the parent)
    cev: np.ndarray  # int64 [2 lam, 2]: evaluated (0/1), nodes evaluated
    crng: np.ndarray  # uint64 [2 lam]: the child's own splitmix64 state
    srow: np.ndarray  # int64 [2 lam]: the scratch row that holds the child's mutations and values


class Archive(NamedTuple):
    """The Pareto archive (pareto_kernels.py): K members and one slot for a newcomer."""
    AO: np.ndarray  # int64 [K + 1, 3]: each slot's error, energy, gates (kernel units)
    AX: np.ndarray  # float64 [K + 1]: each slot's delay
    AF: np.ndarray  # int64 [K + 1, 2]: the generation it was found in, its entry number
    AG: np.ndarray  # int32 [K + 1 (1 without an archive), genes]: its internal genes
    AL: np.ndarray  # int64 [K + 1]: the members' slots in order of entry
    AN: np.ndarray  # int64 [pareto_kernels.N_AN]: members, offered, entered (COUNT, OFFERED, ENTERED)
    CW: np.ndarray  # float64 [K + 1]: scratch (crowding distances)


class Engine:
    """One run's arrays. ``workers`` replicas of the parent's structure are kept so that up
    to that many threads can evaluate offspring; ``run`` may use any number up to it and
    the trajectory stays the same (loop.py)."""

    def __init__(self, problem: Problem, lam: int, mutation_max: float, mutation: str = "uniform",
                 adaptive: bool = False, workers: int = 1, pareto_size: int = 0, objective: str = "lexicographic"):
        grid = problem.grid  # the arguments checked as a search's settings are (a SettingError)
        SearchSettings(grid.rows, grid.cols, grid.levels_back, lam=lam, mutation=mutation, mutation_max=mutation_max,
                       adaptive=adaptive, pareto_size=pareto_size, objective=objective,
                       function_set=grid.function_ids)
        self.problem, self.lam = problem, int(lam)
        self.mutation, self.adaptive = mutation, bool(adaptive)
        n_mpos = problem.mpos.size
        # k: genes (uniform) or active genes (active) a child changes at most; single: one active gene
        self.kmax = 1 if mutation == "single" else min(max(1, math.ceil(mutation_max * grid.n_genes)), n_mpos)
        # the active operators also change the inactive genes they meet on the way
        cap = self.kmax if mutation == "uniform" else min(n_mpos, 64 * self.kmax + 1024)
        self.cfg = np.zeros(loop.N_CFG, np.int64)
        self.cfg[[loop.N_IN, loop.N_NODES, loop.ROWS, loop.LAM, loop.THR, loop.MODE, loop.ADAPTIVE, loop.KCAP,
                  loop.ARCHIVE, loop.OBJECTIVE]] = (grid.n_inputs, grid.n_nodes, grid.rows, self.lam, problem.thr,
                                    MUTATIONS[mutation], int(self.adaptive), self.kmax, int(pareto_size),
                                    OBJECTIVES[objective])
        self.pareto_size, self.objective = int(pareto_size), objective
        self.n_replicas = max(1, min(int(workers), self.lam))
        n_pins, items, n_out = grid.n_inputs + grid.n_nodes, problem.T.shape[1], grid.n_outputs
        L, R, n = 2 * self.lam, self.n_replicas, grid.n_nodes  # child rows: two generations (loop.py)
        # each child's changed values and mutations: in a block of L scratch rows per thread,
        # so that a row's cache lines stay with one CPU (measured: the value bank's team runs
        # ~4 % faster), unless the blocks would take more than SCRATCH_BYTES
        row_bytes = n_pins * (items + 16) + 16 * n_out + 12 * cap
        B = R if R * L * row_bytes <= SCRATCH_BYTES else 1
        self.cfg[loop.BLOCKS] = B
        # a child's figures: in rows lines apart, as whichever thread runs it writes them

        def scratch(width, dtype):
            return np.zeros((B * L, width), dtype)

        def row(width, dtype):
            return apart(L, width, dtype)[:, 0] if width == 1 else apart(L, width, dtype)

        self.children = Children(
            S=np.zeros((B * L, n_pins, items), np.uint8), DS=scratch(n_pins, np.float64),
            chl=scratch(n_pins, np.int64), nchl=row(1, np.int64), ochl=scratch(n_out, np.int64),
            oterm=scratch(n_out, np.int64), nochl=row(1, np.int64), mp=scratch(cap, np.int32),
            mold=scratch(cap, np.int32), mnew=scratch(cap, np.int32), nm=row(1, np.int64), cm=row(4, np.int64),
            cd=row(1, np.float64), cact=row(1, np.bool_), cev=row(2, np.int64), crng=row(1, np.uint64),
            srow=row(1, np.int64))
        self.replicas = Replicas(
            Gr=np.zeros((R, grid.n_genes), np.int32), RCr=np.zeros((R, n), np.int32),
            actr=np.zeros((R, (n + 63) // 64), np.uint64),
            accr=apart(R, 16, np.int64),  # changed at every gene: rows lines apart
            stackr=np.zeros((R, 2 * n + 4), np.int64), markr=np.zeros((R, n), np.uint8),
            mlr=np.zeros((R, n + 1), np.int64), ostr=np.zeros((R, n_out), np.uint8),
            chgr=np.zeros((R, n_pins), np.uint8), gpickr=np.zeros((R, grid.n_genes), np.uint8))
        self.parent = Parent(
            V=np.zeros((n_pins, items), np.uint8), D=np.zeros(n_pins, np.float64), OT=np.zeros(n_out, np.int64),
            pdelay=np.zeros(1, np.float64), st=np.zeros(loop.N_STATE, np.int64), rng=np.zeros(1, np.uint64),
            rate=np.zeros(1, np.float64), rec=np.zeros((RECORDS, 6), np.float64),
            ring=np.zeros((loop.RING, 2 + 2 * cap), np.int64), slotk=np.zeros(2, np.int64),
            slotbase=np.zeros(2, np.uint64), order=np.zeros((2, self.lam), np.int64), size=np.zeros(self.lam, np.int64))
        self.sync = np.zeros(loop.sync_length(self.n_replicas), np.int64)  # the team's meeting points (loop.py)
        K = self.pareto_size
        self.archive = Archive(
            AO=np.zeros((K + 1, 3), np.int64), AX=np.zeros(K + 1, np.float64), AF=np.zeros((K + 1, 2), np.int64),
            AG=np.zeros((K + 1 if K else 1, grid.n_genes), np.int32), AL=np.zeros(K + 1, np.int64),
            AN=np.zeros(pareto_kernels.N_AN, np.int64), CW=np.zeros(K + 1, np.float64))
        self._replicas_current = True
        # replica 0 is the parent: its arrays under the names the rest of the code reads
        rep = self.replicas
        self.G, self.RC, self.actbits, self.acc = rep.Gr[0], rep.RCr[0], rep.actr[0], rep.accr[0]
        self.stack, self.mark, self.ml, self.ost = rep.stackr[0], rep.markr[0], rep.mlr[0], rep.ostr[0]

    # --- state -----------------------------------------------------------------------
    def restore(self, genome: Genome, rng_state: int, generation=0, stall=0, offspring=0, evaluated=0,
                node_evals=0, rate: float | None = None) -> None:
        self._load(self.problem.to_internal(genome))
        self.parent.rng[0] = np.uint64(rng_state)
        self.parent.rate[0] = float(self.kmax if rate is None else rate)
        if not (1.0 <= self.parent.rate[0] <= self.kmax):
            raise_user(f"the stored mutation rate {float(self.parent.rate[0])!r} is outside 1..{self.kmax}")
        st = self.parent.st
        st[:] = 0
        st[loop.DVALID] = 1
        st[loop.GEN], st[loop.STALL] = generation, stall
        st[loop.OFFSPRING], st[loop.EVALUATED], st[loop.NODE_EVALS] = offspring, evaluated, node_evals

    def _load(self, G: np.ndarray) -> None:
        """Internal genes G become the parent of every replica: values, depths, counters."""
        V, D, RC, OT, acc, delay = evaluate_state(self.problem, G)
        par = self.parent
        par.V[:], par.D[:], par.OT[:], par.pdelay[0] = V, D, OT, delay
        n = self.problem.grid.n_nodes
        bits = np.zeros(((n + 63) // 64) * 64, np.uint8)
        bits[:n] = RC > 0
        actbits = np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)  # bit k = node k active
        rep = self.replicas
        rep.Gr[:], rep.RCr[:], rep.actr[:], rep.accr[:, :acc.size] = G, RC, actbits, acc
        rep.markr[:], rep.ostr[:], rep.chgr[:], rep.gpickr[:] = 0, 0, 0, 0
        self._replicas_current = True
        self.parent.st[loop.DVALID] = 1

    def snapshot(self, genome: Genome | None = None) -> dict:
        """The state a resume continues from (``genome``: the parent's, when already at hand)."""
        par = self.parent
        return {"genome": (genome or self.genome()).to_json(), "rng": int(par.rng[0]), "generation": self.generation,
                "stall": int(par.st[loop.STALL]), "offspring": int(par.st[loop.OFFSPRING]),
                "evaluated": int(par.st[loop.EVALUATED]), "node_evals": int(par.st[loop.NODE_EVALS]),
                "rate": float(par.rate[0])}

    @property
    def generation(self) -> int:
        return int(self.parent.st[loop.GEN])

    @property
    def stall(self) -> int:
        return int(self.parent.st[loop.STALL])

    def counters(self) -> dict:
        return {"generations": self.generation, "evaluations": int(self.parent.st[loop.OFFSPRING]),
                "evaluated": int(self.parent.st[loop.EVALUATED]), "node_evals": int(self.parent.st[loop.NODE_EVALS])}

    def genome(self) -> Genome:
        return self.problem.to_genome(self.G)

    def metrics(self) -> dict:
        p = self.problem
        par = self.parent
        loop.ensure_depth(self.G, self.RC, p.grid.n_inputs, p.grid.n_nodes, p.arity, p.dly, par.D, par.pdelay, par.st)
        return metrics_from(self.problem, self.acc, float(self.parent.pdelay[0]))

    def active_count(self) -> int:
        return int(np.count_nonzero(self.RC))

    # --- the Pareto archive (pareto_kernels.py) -------------------------------------
    def offer_parent(self) -> None:
        """Enter the parent into an empty archive (a new run's first circuit)."""
        AN = self.archive.AN
        if self.pareto_size and AN[pareto_kernels.COUNT] == 0:
            self.metrics()
            no = np.zeros((1, 1), np.int32)
            pareto_kernels.enter(self.acc[kernels.ERR], self.acc[kernels.ENERGY], self.acc[kernels.GATES],
                                  float(self.parent.pdelay[0]), self.generation, self.G, no, no, 0, 0, self.archive,
                                  self.pareto_size, self.problem.thr)
            AN[pareto_kernels.OFFERED] += 1

    def members(self) -> list[tuple[np.ndarray, int, int]]:
        """The archive in order of entry: (internal genes, generation found, entry number)."""
        AO, AX, AF, AG, AL, AN, _ = self.archive
        return [(AG[s].copy(), int(AF[s, 0]), int(AF[s, 1])) for s in AL[:AN[pareto_kernels.COUNT]]]

    def archive_counters(self) -> dict:
        AN = self.archive.AN
        return {"offered": int(AN[pareto_kernels.OFFERED]), "entered": int(AN[pareto_kernels.ENTERED])}

    def set_members(self, members, offered: int = 0, entered: int = 0) -> None:
        """Put a stored archive back (resume): members as ``members`` gives them. Their figures
        are computed afresh; UserError if they do not form a front that fits."""
        AO, AX, AF, AG, AL, AN, _ = self.archive
        if len(members) > self.pareto_size:
            raise_user(f"the stored Pareto archive holds {len(members)} circuits, more than its size "
                       f"{self.pareto_size}")
        for i, (G, found, entry) in enumerate(members):
            _, _, _, _, acc, delay = evaluate_state(self.problem, G)
            AG[i], AF[i] = G, (found, entry)
            AO[i] = acc[kernels.ERR], acc[kernels.ENERGY], acc[kernels.GATES]
            AX[i], AL[i] = delay, i
        n = len(members)
        for i in range(n):
            for j in range(n):
                if i != j and np.all(AO[j] <= AO[i]) and AX[j] <= AX[i]:
                    raise_user("the stored Pareto archive holds a circuit that another one of it dominates or "
                               "equals: it was changed")
        AN[pareto_kernels.COUNT], AN[pareto_kernels.OFFERED], AN[pareto_kernels.ENTERED] = n, offered, entered

    def member_figures(self, G: np.ndarray) -> tuple[dict, int]:
        """(figures as ``metrics`` gives them, active nodes) of an archive member's genes."""
        _, _, RC, _, acc, delay = evaluate_state(self.problem, G)
        return metrics_from(self.problem, acc, delay), int(np.count_nonzero(RC))

    def member_keys(self) -> list[tuple[int, int, float, int]]:
        """Each member's (error, energy, delay, gates) in kernel units, in order of entry."""
        AO, AX, AF, AG, AL, AN, _ = self.archive
        return [(int(AO[s, 0]), int(AO[s, 1]), float(AX[s]), int(AO[s, 2])) for s in AL[:AN[pareto_kernels.COUNT]]]

    def member_found(self, i: int) -> int:
        """The generation in which the i-th member (in order of entry) was found."""
        return int(self.archive.AF[self.archive.AL[i], 0])

    def member_genes(self, i: int) -> np.ndarray:
        """The internal genes of the i-th member (in order of entry), a copy."""
        return self.archive.AG[self.archive.AL[i]].copy()

    def best_member(self) -> int:
        """Position of the member the lexicographic search ranks first."""
        AO, AX, AF, AG, AL, AN, _ = self.archive
        return int(pareto_kernels.lexicographic_best(AO, AX, AL, AN[pareto_kernels.COUNT], self.problem.thr))

    def rebase(self, G: np.ndarray) -> None:
        """Make internal genes G the parent, keeping the generation, RNG, rate and archive."""
        self._load(np.asarray(G, np.int32))

    # --- running ---------------------------------------------------------------------
    def run(self, gen_end: int, patience: int = 0, workers: int = 1) -> int:
        """Run generations up to ``gen_end`` (absolute) on ``workers`` threads (at most the
        replicas made); returns a loop.DONE_* code. The result does not depend on ``workers``."""
        p = self.problem
        self.cfg[loop.PATIENCE], self.cfg[loop.GEN_END] = int(patience or 0), int(gen_end)
        prob = (p.arity, p.lut, p.e_q, p.a_q, p.dly, p.isgate, p.T, p.WQ, p.col_nin, p.col_lo, p.col_hi, p.forced,
                p.const_f, p.const_pos, p.mpos)
        nw = max(1, min(int(workers), self.n_replicas))
        if nw > 1 and not self._replicas_current:  # one-thread chunks advanced replica 0 alone
            for a in self.replicas:
                a[1:] = a[0]
        self.sync[:] = 0
        args = (self.cfg, prob, self.parent, self.replicas, self.children, self.sync, self.archive)
        helpers = [threading.Thread(target=loop.run_generations, args=(w, nw, *args), daemon=True)
                   for w in range(1, nw)]
        try:
            for t in helpers:
                t.start()
            code = loop.run_generations(0, nw, *args)
        finally:  # helpers wait for GO or STOP: never leave them spinning
            self.sync[loop.STOP] = 1
            for t in helpers:
                if t.ident is not None:  # started
                    t.join()
        self._replicas_current = nw == self.n_replicas
        return code

    def take_records(self) -> list[dict]:
        """Improvements since the last call: generation and the parent's metrics then."""
        n = int(self.parent.st[loop.NREC])
        out = [{"generation": int(r[0]), "error_se": float(r[1]) / 2.0**self.problem.scale,
                "energy_pj": int(r[2]) / COST_SCALE, "area": int(r[3]) / COST_SCALE, "delay_ns": float(r[4]),
                "gates": int(r[5])} for r in self.parent.rec[:n]]
        self.parent.st[loop.NREC] = 0
        return out


MUTATIONS = {"uniform": UNIFORM, "single": ACTIVE, "active": ACTIVE}
OBJECTIVES = {"lexicographic": loop.LEXICOGRAPHIC, "pareto": loop.PARETO}


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def raise_user(msg: str):
    from cgphw.errors import UserError

    raise UserError(msg)
