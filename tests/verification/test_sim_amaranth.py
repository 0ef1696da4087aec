"""Amaranth's simulator: the real circuit passes; latency, bubble and reset faults fail."""
from __future__ import annotations

import json

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from sim_fixtures import claim_latency, corrupt, manifest_of

from cgphw.hw.emit import build_component
from cgphw.verification import verify
from cgphw.verification.amaranth_backend import simulate_component
from cgphw.verification.design import load_design
from cgphw.verification.verdict import design_stimulus


def test_combinational_circuit_passes(rtl_comb):
    v = verify(rtl_comb, sim="amaranth", n_random=500)
    assert v.ok, v.lines()
    assert v.mismatches == 0 and v.latency == 0
    assert v.vectors == 1 + 205 + 500 and v.cycles == v.vectors
    assert v.task == {"items": 1, "weights": 16, "equal": 16, "error_se": 0.0, "reported_error_se": 0.0}


def test_pipelined_circuit_passes(rtl_pipe):
    v = verify(rtl_pipe, sim="amaranth", n_random=300)
    assert v.ok, v.lines()
    assert v.latency == 3 and v.cycles > v.vectors


@pytest.mark.parametrize("delta", [1, -1])
def test_latency_off_by_one_fails(rtl_pipe, delta):
    claim_latency(rtl_pipe, 3 + delta)
    v = verify(rtl_pipe, sim="amaranth", n_random=50)
    assert not v.ok and v.mismatches > 0
    assert v.first_mismatch["valid_out"]["expected"] != v.first_mismatch["valid_out"]["got"]


class HandPipeline(wiring.Component):
    """The combinational circuit followed by ``stages`` registers, with faults on demand."""

    def __init__(self, genome, stages, reset_valid=True, leak_bubbles=False):
        self.core = build_component(genome)
        self.stages, self.reset_valid, self.leak_bubbles = stages, reset_valid, leak_bubbles
        n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
        super().__init__({"stored": In(data.ArrayLayout(signed(8), n_in)),
                          "weights": Out(data.ArrayLayout(signed(8), n_out)),
                          "valid_in": In(1), "valid_out": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        m.d.comb += self.core.stored.eq(self.stored)
        value, valid = self.core.weights, self.valid_in | self.leak_bubbles
        for _ in range(self.stages):
            reg = Signal(self.core.weights.shape(), reset_less=True)
            vreg = Signal(reset_less=not self.reset_valid)
            m.d.sync += [reg.eq(value), vreg.eq(valid)]
            value, valid = reg, vreg
        m.d.comb += [self.weights.eq(value), self.valid_out.eq(valid)]
        return m


def run_hand(rtl_pipe, **faults):
    design = load_design(rtl_pipe)
    stages = faults.pop("stages", design.latency)
    board = simulate_component(HandPipeline(design.genome, stages, **faults), design_stimulus(design, 40, 0))
    return board.summary()


def test_hand_pipeline_without_faults_passes(rtl_pipe):
    assert run_hand(rtl_pipe)["mismatches"] == 0


def test_deliberately_delayed_design_fails(rtl_pipe):
    s = run_hand(rtl_pipe, stages=4)
    assert s["mismatches"] > 0


def test_valid_that_ignores_reset_fails(rtl_pipe):
    s = run_hand(rtl_pipe, reset_valid=False)
    assert s["mismatches"] > 0
    assert s["first_mismatch"]["valid_out"] == {"expected": 0, "got": 1}


def test_bubbles_leaking_through_fail(rtl_pipe):
    s = run_hand(rtl_pipe, leak_bubbles=True)
    assert s["mismatches"] > 0
    assert s["first_mismatch"]["valid_out"] == {"expected": 0, "got": 1}


def test_corrupted_verilog_is_not_vouched_for(rtl_comb):
    corrupt(rtl_comb)
    v = verify(rtl_comb, sim="amaranth", n_random=10)
    assert not v.ok and v.mismatches == 0
    assert "differs from the Verilog" in v.problems[0]


def test_run_directory_is_exported_then_verified(run_dir):
    v = verify(run_dir, sim="amaranth", n_random=20, pipeline=2)
    assert v.ok and v.latency == 2


def test_reported_error_that_the_circuit_does_not_have_is_a_mismatch(run_dir, rtl_comb):
    """A claimed error the genome does not give is caught before any simulation, in a run
    (best.json) and in an export (the manifest's source metrics)."""
    from cgphw.errors import MismatchError

    best = run_dir / "best.json"
    doc = json.loads(best.read_text())
    doc["metrics"]["error_se"] = 3.0
    best.write_text(json.dumps(doc))
    with pytest.raises(MismatchError, match="claims error_se 3.0"):
        verify(run_dir, sim="amaranth", n_random=20)
    path = manifest_of(rtl_comb)
    doc = json.loads(path.read_text())
    doc["source"]["metrics"]["error_se"] = 3.0
    path.write_text(json.dumps(doc))
    with pytest.raises(MismatchError, match="claims error_se 3.0"):
        verify(rtl_comb, sim="amaranth", n_random=20)


def test_manifest_with_wrong_port_width_is_bad_input(rtl_comb):
    from cgphw.errors import UserError

    path = manifest_of(rtl_comb)
    doc = json.loads(path.read_text())
    doc["ports"][0]["width"] = 64
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="input port 'stored' of 72 bits"):
        verify(rtl_comb, sim="amaranth")
