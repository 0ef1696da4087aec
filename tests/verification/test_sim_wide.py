"""Verification on Amaranth's simulator at any width the search allows: a circuit whose flat
weights bus is wider than Python's int-string limit (4,300 digits, ~14,000 bits) verifies
bit for bit, a fault in it is caught, and a failure of the simulator itself is never a
mismatch (exit 2, not 1)."""
from __future__ import annotations

import numpy as np
import pytest

from cgphw import gates as G
from cgphw.cgp.genome import Genome, Grid, random_genome
from cgphw.errors import SimulatorError
from cgphw.hw.emit import SIM_WORD, build_component, build_word_circuit, word_sizes
from cgphw.task import Task
from cgphw.verification import verify
from cgphw.verification.amaranth_backend import simulate_component
from cgphw.verification.cocotb_run import CocotbRun
from cgphw.verification.stimulus import Ports, build_stimulus
from cgphw.verification.backends import cocotb_summary

COMB = Ports(stored="stored", weights="weights")
PIPE = Ports(stored="stored", weights="weights", clock="clk", reset="rst", valid_in="valid_in", valid_out="valid_out")


def wide_genome(n_outputs: int, n_inputs: int = 6, seed: int = 0) -> Genome:
    grid = Grid(n_inputs, n_outputs, 8, 4, 4, tuple(G.function_set(None)))
    return random_genome(grid, np.random.default_rng(seed))


def rewired(genome: Genome, output: int, vectors: np.ndarray) -> Genome:
    """``genome`` with output ``output`` wired to another node whose value differs on ``vectors``
    (a wrong wire in the hardware)."""
    want = genome.evaluate(vectors)[:, output]
    n_in, n_nodes = genome.grid.n_inputs, genome.grid.n_nodes
    for node in range(n_nodes):
        genes = genome.genes.copy()
        genes[3 * n_nodes + output] = n_in + node
        other = Genome(genome.grid, genes)
        if not np.array_equal(other.evaluate(vectors)[:, output], want):
            return other
    raise AssertionError("no node differs from the output on these vectors")


def test_words_cut_a_bus_of_any_width():
    assert word_sizes(0) == []
    assert word_sizes(SIM_WORD) == [SIM_WORD]
    assert word_sizes(2 * SIM_WORD + 3) == [SIM_WORD, SIM_WORD, 3]
    assert sum(word_sizes(409_600)) == 409_600 and max(word_sizes(409_600)) * 8 < 14_000
    with pytest.raises(Exception, match="a word holds at least one value"):
        build_word_circuit(wide_genome(4), per_word=0)


@pytest.fixture(scope="module")
def wide_rtl(tmp_path_factory):
    """A run of 2,550 outputs (the layer-bypass task's width) on its own task, exported."""
    from cgphw.cgp.search import record_run
    from cgphw.hw.export import export

    genome = wide_genome(2550)
    inputs = np.array([[3, -7, 127, -128, 0, 55]], np.int8)
    root = tmp_path_factory.mktemp("wide")
    record_run(genome, Task(inputs, genome.evaluate(inputs)), out=root / "wide")
    return export(root / "wide", out_dir=root / "rtl").directory


def test_circuit_of_2550_outputs_verifies_on_amaranth(wide_rtl, cli):
    """The issue's case: 20,400-bit buses failed with Python's int-string limit and exit 1."""
    code, out, err = cli("verify", str(wide_rtl), "--sim", "amaranth", "--vectors", "20")
    assert code == 0, out + err
    assert out.startswith("PASS wide on amaranth (Amaranth component rebuilt from the manifest genome, latency 0)")
    assert " 0 mismatches; task: 2550/2550 simulated weights equal targets, SE 0 (reported 0)" in out


def test_flat_bus_of_that_width_is_a_simulator_failure_not_a_mismatch(wide_rtl):
    """The flat-bus component (what was simulated before) still trips Amaranth's simulator:
    reported as SimulatorError (exit 2), never as a failed verdict."""
    genome = wide_genome(2550)
    stim = build_stimulus(genome, "wide", COMB, 0, None, 2, 0)
    with pytest.raises(SimulatorError, match=r"^Amaranth's simulator failed on wide \(ValueError: Exceeds the limit"):
        simulate_component(build_component(genome), stim)
    assert SimulatorError("x").exit_code == 2


@pytest.mark.slow
@pytest.mark.parametrize("pipeline,ports", [(None, COMB), (1, PIPE)])
def test_much_wider_circuit_is_exact_and_a_wrong_wire_is_caught(pipeline, ports):
    """40,000 outputs (320,000-bit buses): 0 mismatches; one rewired output is found."""
    genome = wide_genome(40_000, seed=1)
    circuit = build_word_circuit(genome, pipeline)
    stim = build_stimulus(genome, "wider", ports, circuit.latency, None, 5, 1)
    good = simulate_component(circuit, stim).summary()
    assert good["complete"] and good["vectors"] == len(stim.vectors) and good["mismatches"] == 0
    wrong = 31_337
    bad = simulate_component(build_word_circuit(rewired(genome, wrong, stim.vectors), pipeline), stim).summary()
    assert bad["mismatches"] > 0 and bad["first_mismatch"]["wrong_outputs"] == [wrong]


def test_exception_inside_the_simulator_is_not_a_mismatch(wide_rtl, cli, monkeypatch):
    from amaranth.sim import Simulator

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulator crashed")

    monkeypatch.setattr(Simulator, "add_testbench", broken)
    with pytest.raises(SimulatorError, match="^Amaranth's simulator failed on wide"):
        verify(wide_rtl, sim="amaranth", n_random=2)
    code, out, err = cli("verify", str(wide_rtl), "--sim", "amaranth", "--vectors", "2")
    assert code == 2 and out == ""
    assert err.startswith("error: Amaranth's simulator failed on wide (RuntimeError: simulator crashed); "
                          "this says nothing about the design")


def test_cocotb_simulator_failures_are_not_mismatches(tmp_path):
    log = tmp_path / "icarus_test.log"
    log.write_text("vvp: segmentation fault\n")
    with pytest.raises(SimulatorError, match="^the icarus simulation ended before its testbench finished"):
        cocotb_summary("icarus", CocotbRun(0, 0, None, log))
    with pytest.raises(SimulatorError, match="^cocotb reports 1 failed test"):
        cocotb_summary("icarus", CocotbRun(1, 1, {"mismatches": 0}, log))
    with pytest.raises(SimulatorError, match="^cocotb recorded no test result"):
        cocotb_summary("icarus", CocotbRun(0, 0, {"mismatches": 0}, log))
    assert cocotb_summary("icarus", CocotbRun(1, 1, {"mismatches": 3}, log)) == {"mismatches": 3}
