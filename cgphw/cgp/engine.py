"""Engine: the state of one (1+lambda) run in the arrays the compiled loop works on.

The Python side only sets up, runs chunks of generations (``run``), and reads the parent
(``genome``, ``metrics``). ``snapshot``/``restore`` carry everything that decides the rest
of the run (parent genes, RNG, counters); all other state is recomputed from the genes.
"""
from __future__ import annotations

import math

import numpy as np

from cgphw.cgp import es, kernels
from cgphw.cgp.genome import Genome
from cgphw.cgp.problem import COST_SCALE, Problem

RECORDS = 4096
MAX_LAMBDA = 1000


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


class Engine:
    def __init__(self, problem: Problem, lam: int, mutation_max: float):
        if not 1 <= lam <= MAX_LAMBDA:  # every offspring holds a copy of the evaluation state
            raise_user(f"lambda must be from 1 to {MAX_LAMBDA:,}, got {lam}")
        if not (0 < mutation_max <= 1):
            raise_user(f"mutation-max must be in (0, 1], got {mutation_max}")
        self.problem, self.lam = problem, int(lam)
        grid = problem.grid
        self.kmax = min(max(1, math.ceil(mutation_max * grid.n_genes)), problem.mpos.size)
        n_pins, items, n_out = grid.n_inputs + grid.n_nodes, problem.T.shape[1], grid.n_outputs
        L = self.lam
        self.S = np.zeros((L, n_pins, items), np.uint8)
        self.DS = np.zeros((L, n_pins), np.float64)
        self.chl = np.zeros((L, n_pins), np.int64)
        self.nchl = np.zeros(L, np.int64)
        self.ochl = np.zeros((L, n_out), np.int64)
        self.oterm = np.zeros((L, n_out), np.int64)
        self.nochl = np.zeros(L, np.int64)
        self.mp, self.mold, self.mnew = (np.zeros((L, self.kmax), np.int32) for _ in range(3))
        self.nm = np.zeros(L, np.int64)
        self.cm = np.zeros((L, 4), np.int64)
        self.cd = np.zeros(L, np.float64)
        self.cact = np.zeros(L, np.bool_)
        self.stack = np.zeros(2 * grid.n_nodes + 4, np.int64)
        self.mark = np.zeros(grid.n_nodes, np.uint8)
        self.ml = np.zeros(grid.n_nodes + 1, np.int64)
        self.ost = np.zeros(n_out, np.uint8)
        self.chg = np.zeros(n_pins, np.uint8)
        self.gpick = np.zeros(grid.n_genes, np.uint8)
        self.rec = np.zeros((RECORDS, 6), np.float64)
        self.st = np.zeros(7, np.int64)
        self.rng = np.zeros(1, np.uint64)

    # --- state -----------------------------------------------------------------------
    def restore(self, genome: Genome, rng_state: int, generation=0, stall=0, offspring=0, evaluated=0,
                node_evals=0) -> None:
        self.G = self.problem.to_internal(genome)
        self.V, self.D, self.RC, self.OT, self.acc, delay = evaluate_state(self.problem, self.G)
        self.pdelay = np.array([delay], np.float64)
        n = self.problem.grid.n_nodes
        bits = np.zeros(((n + 63) // 64) * 64, np.uint8)
        bits[:n] = self.RC > 0
        self.actbits = np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)  # bit k = node k active
        self.rng[0] = np.uint64(rng_state)
        self.st[:] = 0
        self.st[es.DVALID] = 1
        self.st[es.GEN], self.st[es.STALL] = generation, stall
        self.st[es.OFFSPRING], self.st[es.EVALUATED], self.st[es.NODE_EVALS] = offspring, evaluated, node_evals

    def snapshot(self) -> dict:
        return {"genome": self.genome().to_json(), "rng": int(self.rng[0]), "generation": self.generation,
                "stall": int(self.st[es.STALL]), "offspring": int(self.st[es.OFFSPRING]),
                "evaluated": int(self.st[es.EVALUATED]), "node_evals": int(self.st[es.NODE_EVALS])}

    @property
    def generation(self) -> int:
        return int(self.st[es.GEN])

    @property
    def stall(self) -> int:
        return int(self.st[es.STALL])

    def counters(self) -> dict:
        return {"generations": self.generation, "evaluations": int(self.st[es.OFFSPRING]),
                "evaluated": int(self.st[es.EVALUATED]), "node_evals": int(self.st[es.NODE_EVALS])}

    def genome(self) -> Genome:
        return self.problem.to_genome(self.G)

    def metrics(self) -> dict:
        p = self.problem
        es.ensure_depth(self.G, self.RC, p.grid.n_inputs, p.grid.n_nodes, p.arity, p.dly, self.D, self.pdelay,
                        self.st)
        return metrics_from(self.problem, self.acc, float(self.pdelay[0]))

    def active_count(self) -> int:
        return int(np.count_nonzero(self.RC))

    # --- running ---------------------------------------------------------------------
    def run(self, gen_end: int, patience: int = 0) -> int:
        """Run generations up to ``gen_end`` (absolute); returns an es.DONE_* code."""
        p = self.problem
        return es.run_generations(
            self.G, self.RC, self.V, self.D, self.OT, self.acc, self.pdelay, self.st, self.rng,
            p.grid.n_inputs, p.grid.n_nodes, p.grid.rows, p.arity, p.lut, p.e_q, p.a_q, p.dly, p.isgate,
            p.T, p.WQ, p.col_nin, p.col_lo, p.col_hi, p.forced, p.const_f, p.const_pos, p.mpos,
            self.kmax, self.lam, p.thr, int(patience or 0), int(gen_end),
            self.S, self.DS, self.chl, self.nchl, self.ochl, self.oterm, self.nochl, self.mp, self.mold,
            self.mnew, self.nm, self.cm, self.cd, self.cact, self.stack, self.mark, self.ml,
            self.ost, self.chg, self.gpick, self.rec, self.actbits)

    def take_records(self) -> list[dict]:
        """Improvements since the last call: generation and the parent's metrics then."""
        n = int(self.st[es.NREC])
        out = [{"generation": int(r[0]), "error_se": float(r[1]) / 2.0**self.problem.scale,
                "energy_pj": int(r[2]) / COST_SCALE, "area": int(r[3]) / COST_SCALE, "delay_ns": float(r[4]),
                "gates": int(r[5])} for r in self.rec[:n]]
        self.st[es.NREC] = 0
        return out


def raise_user(msg: str):
    from cgphw.errors import UserError

    raise UserError(msg)
