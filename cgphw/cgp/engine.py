"""Engine: the state of one (1+lambda) run in the arrays the compiled loop works on.

The Python side only sets up, runs chunks of generations (``run``), and reads the parent
(``genome``, ``metrics``). ``snapshot``/``restore`` carry everything that decides the rest
of the run (parent genes, RNG, counters); all other state is recomputed from the genes.
"""
from __future__ import annotations

import math
import os
import threading

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
        self.S = np.zeros((B * L, n_pins, items), np.uint8)
        self.DS = np.zeros((B * L, n_pins), np.float64)
        self.chl = np.zeros((B * L, n_pins), np.int64)
        self.ochl = np.zeros((B * L, n_out), np.int64)
        self.oterm = np.zeros((B * L, n_out), np.int64)
        self.mp, self.mold, self.mnew = (np.zeros((B * L, cap), np.int32) for _ in range(3))
        # each child's figures, written by whichever thread runs it: rows lines apart
        self.nchl, self.nochl, self.nm = (apart(L, 1, np.int64)[:, 0] for _ in range(3))
        self.cm = apart(L, 4, np.int64)
        self.cd = apart(L, 1, np.float64)[:, 0]
        self.cact = apart(L, 1, np.bool_)[:, 0]
        self.cev = apart(L, 2, np.int64)
        self.crng = apart(L, 1, np.uint64)[:, 0]
        self.srow = apart(L, 1, np.int64)[:, 0]  # the scratch row that holds the child's values
        # one replica of the parent's structure per worker
        self.Gr = np.zeros((R, grid.n_genes), np.int32)
        self.RCr = np.zeros((R, n), np.int32)
        self.actr = np.zeros((R, (n + 63) // 64), np.uint64)
        self.accr = apart(R, 16, np.int64)  # counters, changed at every gene: rows lines apart
        self.stackr = np.zeros((R, 2 * n + 4), np.int64)
        self.markr = np.zeros((R, n), np.uint8)
        self.mlr = np.zeros((R, n + 1), np.int64)
        self.ostr = np.zeros((R, n_out), np.uint8)
        self.chgr = np.zeros((R, n_pins), np.uint8)
        self.gpickr = np.zeros((R, grid.n_genes), np.uint8)
        self.ring = np.zeros((loop.RING, 2 + 2 * cap), np.int64)  # accepted children, for the replicas to replay
        self.slotk = np.zeros(2, np.int64)
        self.slotbase = np.zeros(2, np.uint64)
        self.order = np.zeros((2, self.lam), np.int64)  # each slot's children, longest first (loop.py)
        self.size = np.zeros(self.lam, np.int64)  # (thread 0's scratch for that order)
        self.rec = np.zeros((RECORDS, 6), np.float64)
        self.st = np.zeros(loop.N_STATE, np.int64)
        self.rng = np.zeros(1, np.uint64)
        self.rate = np.zeros(1, np.float64)
        self.sync = np.zeros(loop.sync_length(self.n_replicas), np.int64)
        K = self.pareto_size  # the Pareto archive (pareto_kernels.py): K members and a slot for a newcomer
        self.arc = (np.zeros((K + 1, 3), np.int64), np.zeros(K + 1, np.float64), np.zeros((K + 1, 2), np.int64),
                    np.zeros((K + 1 if K else 1, grid.n_genes), np.int32), np.zeros(K + 1, np.int64),
                    np.zeros(pareto_kernels.N_AN, np.int64), np.zeros(K + 1, np.float64))
        self._replicas_current = True
        # replica 0 is the parent: its arrays under the names the rest of the code reads
        self.G, self.RC, self.actbits, self.acc = self.Gr[0], self.RCr[0], self.actr[0], self.accr[0]
        self.stack, self.mark, self.ml, self.ost = self.stackr[0], self.markr[0], self.mlr[0], self.ostr[0]

    # --- state -----------------------------------------------------------------------
    def restore(self, genome: Genome, rng_state: int, generation=0, stall=0, offspring=0, evaluated=0,
                node_evals=0, rate: float | None = None) -> None:
        self._load(self.problem.to_internal(genome))
        self.rng[0] = np.uint64(rng_state)
        self.rate[0] = float(self.kmax if rate is None else rate)
        if not (1.0 <= self.rate[0] <= self.kmax):
            raise_user(f"the stored mutation rate {self.rate[0]!r} is outside 1..{self.kmax}")
        self.st[:] = 0
        self.st[loop.DVALID] = 1
        self.st[loop.GEN], self.st[loop.STALL] = generation, stall
        self.st[loop.OFFSPRING], self.st[loop.EVALUATED], self.st[loop.NODE_EVALS] = offspring, evaluated, node_evals

    def _load(self, G: np.ndarray) -> None:
        """Internal genes G become the parent of every replica: values, depths, counters."""
        self.V, self.D, RC, self.OT, acc, delay = evaluate_state(self.problem, G)
        self.pdelay = np.array([delay], np.float64)
        n = self.problem.grid.n_nodes
        bits = np.zeros(((n + 63) // 64) * 64, np.uint8)
        bits[:n] = RC > 0
        actbits = np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)  # bit k = node k active
        self.Gr[:], self.RCr[:], self.actr[:], self.accr[:, :acc.size] = G, RC, actbits, acc
        self.markr[:], self.ostr[:], self.chgr[:], self.gpickr[:] = 0, 0, 0, 0
        self._replicas_current = True
        self.st[loop.DVALID] = 1

    def snapshot(self, genome: Genome | None = None) -> dict:
        """The state a resume continues from (``genome``: the parent's, when already at hand)."""
        return {"genome": (genome or self.genome()).to_json(), "rng": int(self.rng[0]), "generation": self.generation,
                "stall": int(self.st[loop.STALL]), "offspring": int(self.st[loop.OFFSPRING]),
                "evaluated": int(self.st[loop.EVALUATED]), "node_evals": int(self.st[loop.NODE_EVALS]),
                "rate": float(self.rate[0])}

    @property
    def generation(self) -> int:
        return int(self.st[loop.GEN])

    @property
    def stall(self) -> int:
        return int(self.st[loop.STALL])

    def counters(self) -> dict:
        return {"generations": self.generation, "evaluations": int(self.st[loop.OFFSPRING]),
                "evaluated": int(self.st[loop.EVALUATED]), "node_evals": int(self.st[loop.NODE_EVALS])}

    def genome(self) -> Genome:
        return self.problem.to_genome(self.G)

    def metrics(self) -> dict:
        p = self.problem
        loop.ensure_depth(self.G, self.RC, p.grid.n_inputs, p.grid.n_nodes, p.arity, p.dly, self.D, self.pdelay,
                        self.st)
        return metrics_from(self.problem, self.acc, float(self.pdelay[0]))

    def active_count(self) -> int:
        return int(np.count_nonzero(self.RC))

    # --- the Pareto archive (pareto_kernels.py) ---------------------------------------------
    def offer_parent(self) -> None:
        """Enter the parent into an empty archive (a new run's first circuit)."""
        AN = self.arc[5]
        if self.pareto_size and AN[pareto_kernels.COUNT] == 0:
            self.metrics()
            no = np.zeros((1, 1), np.int32)
            pareto_kernels.insert(self.acc[kernels.ERR], self.acc[kernels.ENERGY], self.acc[kernels.GATES],
                           float(self.pdelay[0]), self.generation, self.G, no, no, 0, 0, self.arc, self.pareto_size,
                           self.problem.thr)
            AN[pareto_kernels.OFFERED] += 1

    def members(self) -> list[tuple[np.ndarray, int, int]]:
        """The archive in order of entry: (internal genes, generation found, entry number)."""
        AO, AX, AF, AG, AL, AN = self.arc[:6]
        return [(AG[s].copy(), int(AF[s, 0]), int(AF[s, 1])) for s in AL[:AN[pareto_kernels.COUNT]]]

    def archive_counters(self) -> dict:
        AN = self.arc[5]
        return {"offered": int(AN[pareto_kernels.OFFERED]), "entered": int(AN[pareto_kernels.ENTERED])}

    def set_members(self, members, offered: int = 0, entered: int = 0) -> None:
        """Put a stored archive back (resume): members as ``members`` gives them. Their figures
        are computed afresh; UserError if they do not form a front that fits."""
        AO, AX, AF, AG, AL, AN, CW = self.arc
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
        AO, AX, AF, AG, AL, AN = self.arc[:6]
        return [(int(AO[s, 0]), int(AO[s, 1]), float(AX[s]), int(AO[s, 2])) for s in AL[:AN[pareto_kernels.COUNT]]]

    def member_found(self, i: int) -> int:
        """The generation in which the i-th member (in order of entry) was found."""
        return int(self.arc[2][self.arc[4][i], 0])

    def member_genes(self, i: int) -> np.ndarray:
        """The internal genes of the i-th member (in order of entry), a copy."""
        return self.arc[3][self.arc[4][i]].copy()

    def best_member(self) -> int:
        """Position of the member the lexicographic search ranks first."""
        AO, AX, AF, AG, AL, AN = self.arc[:6]
        return int(pareto_kernels.lexicographic_best(AO, AX, AL, AN[pareto_kernels.COUNT], self.problem.thr))

    def rebase(self, G: np.ndarray) -> None:
        """Make internal genes G the parent, keeping the generation, RNG, rate and archive."""
        self._load(np.asarray(G, np.int32))

    # --- running ---------------------------------------------------------------------
    def run(self, gen_end: int, patience: int = 0, workers: int = 1) -> int:
        """Run generations up to ``gen_end`` (absolute) on ``workers`` threads (at most the
        replicas made); returns an loop.DONE_* code. The result does not depend on ``workers``."""
        p = self.problem
        self.cfg[loop.PATIENCE], self.cfg[loop.GEN_END] = int(patience or 0), int(gen_end)
        prob = (p.arity, p.lut, p.e_q, p.a_q, p.dly, p.isgate, p.T, p.WQ, p.col_nin, p.col_lo, p.col_hi, p.forced,
                p.const_f, p.const_pos, p.mpos)
        par = (self.V, self.D, self.OT, self.pdelay, self.st, self.rng, self.rate, self.rec, self.ring, self.slotk,
               self.slotbase, self.order, self.size)
        rep = (self.Gr, self.RCr, self.actr, self.accr, self.stackr, self.markr, self.mlr, self.ostr, self.chgr,
               self.gpickr)
        ch = (self.S, self.DS, self.chl, self.nchl, self.ochl, self.oterm, self.nochl, self.mp, self.mold, self.mnew,
              self.nm, self.cm, self.cd, self.cact, self.cev, self.crng, self.srow)
        nw = max(1, min(int(workers), self.n_replicas))
        if nw > 1 and not self._replicas_current:  # one-thread chunks advanced replica 0 alone
            for a in rep:
                a[1:] = a[0]
        self.sync[:] = 0
        args = (self.cfg, prob, par, rep, ch, self.sync, self.arc)
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
        n = int(self.st[loop.NREC])
        out = [{"generation": int(r[0]), "error_se": float(r[1]) / 2.0**self.problem.scale,
                "energy_pj": int(r[2]) / COST_SCALE, "area": int(r[3]) / COST_SCALE, "delay_ns": float(r[4]),
                "gates": int(r[5])} for r in self.rec[:n]]
        self.st[loop.NREC] = 0
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
