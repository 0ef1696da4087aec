"""The compiled kernels against the references: gates.py semantics (via an independent
int8 reference), Genome.evaluate (the software model) and metrics.circuit_metrics."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cgphw.cgp import kernels
from cgphw.cgp.engine import Engine, evaluate_state
from cgphw.cgp.genome import Genome, grid_for, random_genome
from cgphw.cgp.metrics import circuit_metrics
from cgphw.cgp.problem import build_problem
from cgphw.costs import load_costs
from cgphw.task import Task

_spec = importlib.util.spec_from_file_location("gate_ref", Path(__file__).parents[1] / "test_gates.py")
gate_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gate_ref)

COSTS = load_costs()


def check_state(problem, genome, task):
    """Full kernel state of ``genome`` equals the references."""
    internal = problem.to_internal(genome)
    V, D, RC, OT, acc, delay = evaluate_state(problem, internal)
    outs = V[genome.outputs].T.view(np.int8)
    assert np.array_equal(outs, genome.evaluate(task.inputs))
    ref = circuit_metrics(genome, COSTS, task)
    from cgphw.cgp.engine import metrics_from

    got = metrics_from(problem, acc, delay)
    for key in ("error_se", "energy_pj", "area", "delay_ns", "gates"):
        assert got[key] == ref[key], key
    assert np.count_nonzero(RC) == ref["active_nodes"]
    assert np.array_equal(np.flatnonzero(RC), genome.active_nodes())


def test_kernel_gates_match_independent_reference_on_all_pairs():
    a, b = gate_ref.A.astype(np.int8), gate_ref.B.astype(np.int8)
    inputs = np.stack([a, b], axis=1)
    task = Task(inputs, np.zeros((a.size, 1), np.int8))
    for gid, ref in gate_ref.REFERENCE.items():
        grid = grid_for(2, 1, 1, 1, 1, "seed27")
        genome = Genome(grid, np.array([0, 1, gid, 2], np.int32))
        problem = build_problem(task, grid, COSTS)
        V = evaluate_state(problem, problem.to_internal(genome))[0]
        want = np.broadcast_to(ref(a.astype(np.int64), b.astype(np.int64)), a.shape)
        assert np.array_equal(V[2].view(np.int8).astype(np.int64), want), gid


@pytest.mark.parametrize("n_in,n_out,rows,cols,lb,items,fs", [
    (9, 16, 5, 5, 5, 1, "seed27"), (3, 4, 4, 6, 2, 7, "seed27"), (0, 12, 6, 5, 5, 1, "seed27"),
    (2, 3, 3, 3, 1, 5, "1,2,shr1,const_1,id"), (5, 40, 2, 8, 3, 3, "add-shift"),
])
def test_full_evaluation_matches_reference(n_in, n_out, rows, cols, lb, items, fs):
    rng = np.random.default_rng(n_in * 100 + cols)
    weights = rng.integers(0, 4, (items, n_out)).astype(np.float64)
    mask = rng.random((items, n_out)) > 0.2
    task = Task(rng.integers(-128, 128, (items, n_in), dtype=np.int8),
                rng.integers(-128, 128, (items, n_out), dtype=np.int8), weights, mask)
    grid = grid_for(n_in, n_out, rows, cols, lb, fs)
    problem = build_problem(task, grid, COSTS)
    for _ in range(10):
        check_state(problem, random_genome(grid, rng), task)


def test_fractional_weights_use_a_fine_error_scale():
    task = Task(np.array([[3]], np.int8), np.array([[5, -7]], np.int8), np.array([[0.5, 1.25]]))
    grid = grid_for(1, 2, 2, 2, 2)
    problem = build_problem(task, grid, COSTS, threshold=1.0)
    assert problem.scale > 0 and problem.thr == 2 * 2**problem.scale
    genome = Genome(grid, np.array([0, 0, 22, 0, 0, 24, 1, 1, 13, 1, 1, 100, 3, 4], np.int32))
    check_state(problem, genome, task)


def test_hand_built_circuit_costs():
    # out0 = shl1(add(in0, in1)); out1 = id(add(...)), a wire; node 1 (mul) is inactive
    grid = grid_for(2, 2, 2, 2, 2)
    genes = np.array([0, 1, 1, 0, 1, 3, 2, 2, 12, 2, 0, 100, 4, 5], np.int32)
    genome = Genome(grid, genes)
    assert genome.active_nodes().tolist() == [0, 2, 3]
    m = circuit_metrics(genome, COSTS)
    c = COSTS.gates
    assert m["gates"] == 2  # add and shl1; the wire does not count
    assert m["energy_pj"] == pytest.approx(c[1].energy_pj + c[12].energy_pj + c[100].energy_pj)
    assert m["delay_ns"] == pytest.approx(max(c[1].delay_ns + c[12].delay_ns, c[1].delay_ns + c[100].delay_ns))
    task = Task(np.array([[3, 4]], np.int8), np.array([[14, 7]], np.int8))
    problem = build_problem(task, grid, COSTS)
    check_state(problem, genome, task)
    assert circuit_metrics(genome, COSTS, task)["error_se"] == 0.0
    assert genome.evaluate(task.inputs).tolist() == [[14, 7]]


def test_single_step_set_gene_keeps_refcounts_and_costs():
    rng = np.random.default_rng(5)
    task = Task(rng.integers(-128, 128, (2, 4), dtype=np.int8), rng.integers(-128, 128, (2, 6), dtype=np.int8))
    grid = grid_for(4, 6, 3, 5, 3)
    problem = build_problem(task, grid, COSTS)
    engine = Engine(problem, 1, 0.1)
    engine.restore(random_genome(grid, rng), 1)
    G = engine.G
    for _ in range(300):
        donor = problem.to_internal(random_genome(grid, rng))
        pos = int(rng.integers(grid.n_genes))
        kernels.set_gene(pos, donor[pos], G, engine.RC, grid.n_inputs, grid.n_nodes, problem.arity, problem.e_q,
                         problem.a_q, problem.isgate, engine.acc, engine.stack, engine.mark, engine.ml, engine.ost,
                         False)
        _, _, RC, _, acc, _ = evaluate_state(problem, G.copy())
        assert np.array_equal(RC, engine.RC)
        assert np.array_equal(acc[1:4], engine.acc[1:4])


@pytest.mark.parametrize("n_in,n_out,rows,cols,lb,items,lam,mut,thr", [
    (9, 16, 5, 5, 5, 1, 4, 0.15, 0.0), (4, 30, 8, 10, 10, 3, 3, 0.05, 2.0), (0, 20, 10, 6, 6, 1, 5, 0.03, 1.0),
])
def test_incremental_loop_state_equals_full_evaluation(n_in, n_out, rows, cols, lb, items, lam, mut, thr):
    rng = np.random.default_rng(cols)
    task = Task(rng.integers(-128, 128, (items, n_in), dtype=np.int8),
                rng.integers(-20, 20, (items, n_out), dtype=np.int8))
    grid = grid_for(n_in, n_out, rows, cols, lb)
    problem = build_problem(task, grid, COSTS, threshold=thr)
    engine = Engine(problem, lam, mut)
    engine.restore(random_genome(grid, rng), 99)
    for _ in range(8):
        engine.run(engine.generation + 2500)
        engine.take_records()
        genome = engine.genome()  # validates every gene against the connection rules
        V, D, RC, OT, acc, delay = evaluate_state(problem, engine.G)
        assert np.array_equal(RC, engine.RC) and np.array_equal(OT, engine.parent.OT)
        assert np.array_equal(acc[:4], engine.acc[:4])
        active = np.flatnonzero(RC) + n_in
        assert np.array_equal(V[active], engine.parent.V[active])
        assert engine.metrics()["delay_ns"] == delay
        bits = np.unpackbits(engine.actbits.view(np.uint8), bitorder="little")[: grid.n_nodes]
        assert np.array_equal(bits.astype(bool), RC > 0)
        check_state(problem, genome, task)
    c = engine.counters()
    assert c["evaluations"] == lam * engine.generation
    assert c["evaluated"] < c["evaluations"]  # offspring that changed no active gene were skipped
