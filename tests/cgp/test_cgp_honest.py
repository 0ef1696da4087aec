"""Honest figures: a zero-input circuit says it folds to constants; the study's gate count
(every active node, constants included) stands beside cgphw's own."""
import numpy as np

from cgphw.cgp.genome import Genome, grid_for
from cgphw.cgp.metrics import circuit_metrics
from cgphw.costs import load_costs
from cgphw.task import Task


def chain_genome(n_in, nodes, outputs):
    grid = grid_for(n_in, len(outputs), 1, len(nodes), len(nodes), "seed27")
    return Genome(grid, np.array([g for node in nodes for g in node] + list(outputs), np.int32))


def test_study_count_includes_constants_and_wires(tmp_path, cli):
    # n0 = const_1, n1 = add(in0, n0), n2 = id(n1) (a wire), n3 = shl1(n2), n4 = xor(in0, in0) (inactive)
    genome = chain_genome(1, [[0, 0, 22], [0, 1, 1], [2, 0, 100], [3, 0, 12], [0, 0, 10]], [4])
    m = circuit_metrics(genome, load_costs())
    assert (m.gates, m.active_nodes, m.constants_only) == (2, 4, False)
    genome.save(tmp_path / "g.json")
    code, out, err = cli("show", tmp_path / "g.json")
    assert code == 0, err
    assert "gates        2 logic gates (cgphw: no constants, no wires)   4 active nodes (the study's count" in out
    assert "energy       " in out and "hardware" not in out


def test_zero_input_evolve_and_show_say_it_folds_to_constants(tmp_path, cli):
    Task(np.zeros((1, 0), np.int8), np.array([[3, -7, 64]], np.int8)).save(tmp_path / "c.npz")
    run = tmp_path / "run"
    code, out, err = cli("evolve", tmp_path / "c.npz", "--rows", 4, "--cols", 6, "--generations", 200,
                             "--workers", 1, "--out", run)
    assert code == 0, err
    assert "no inputs: the energy below is the search's per-gate model" in err
    for text in (out, cli("show", run)[1]):
        assert "hardware     none: no inputs, so synthesis folds the circuit to constants (0 cells" in text
        assert "search model " in text and "not a hardware cost" in text and "address:LAYER" in text
        assert "energy       " not in text  # no pJ figure presented as the circuit's energy

    from cgphw.cgp.rundir import load_run
    m = load_run(run).metrics
    assert m.constants_only is True and "folds it to constants" in m.hardware_cost_note
