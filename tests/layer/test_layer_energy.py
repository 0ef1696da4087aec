"""Gate-level simulation with feedback (seqsim) and the engine's energy measurement: the
mapped netlist must compute what the RTL does before its switching is priced."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from layer_fixtures import random_layer

from cgphw.errors import UserError
from cgphw.hw.accel.energy import run_netlist, run_source, synthesise_engine
from cgphw.hw.accel.datapath import LayerEngine
from cgphw.hw.accel.plan import EngineConfig, input_words, kernel_writers, output_words, plan_load, resolve
from cgphw.hw.accel.requant import requant_params
from cgphw.hw.accel.source import SourceSpec, build_source
from cgphw.hw.cells import load_cells
from cgphw.hw.seqsim import GateSim
from cgphw.nn.reference import torch_layer_output


class Accumulator(wiring.Component):
    """acc += x whenever en; a counter of enabled cycles: registers fed back into themselves."""

    def __init__(self):
        super().__init__(wiring.Signature({"x": In(unsigned(8)), "en": In(1), "acc": Out(unsigned(12)),
                                           "count": Out(unsigned(4))}))

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += [self.acc.eq(self.acc + self.x), self.count.eq(self.count + 1)]
        return m


@pytest.mark.yosys
def test_gate_simulation_with_feedback_matches_the_rtl_in_every_lane():
    library = load_cells()
    mapped = synthesise_engine(Accumulator(), "accumulator", library)
    assert mapped.flops == 16
    rng = np.random.default_rng(0)
    lanes, cycles = 5, 40
    xs, ens = rng.integers(0, 256, (cycles, lanes)), rng.integers(0, 2, (cycles, lanes))
    sim = GateSim(mapped.netlist, lanes)
    sim.set("rst", 1)
    sim.clock()
    sim.set("rst", 0)
    acc, count = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    for t in range(cycles):
        sim.set("x", xs[t])
        sim.set("en", ens[t])
        assert np.array_equal(sim.get("acc"), acc) and np.array_equal(sim.get("count"), count)
        sim.clock()
        acc, count = (acc + xs[t] * ens[t]) % 4096, (count + ens[t]) % 16
    toggles = sim.toggles()
    assert all(0.0 <= v <= 1.0 for v in toggles.values()) and max(toggles.values()) > 0.1
    with pytest.raises(UserError, match="no input port"):
        sim.set("nope", 0)


def _engine(layer, config, source):
    g = resolve(config, layer.out_channels, layer.fan_in, layer.positions)
    plan = plan_load(kernel_writers(layer.out_channels, layer.fan_in), g, layer.fan_in)
    words = plan.rom_words(layer.kernel_matrix, g)
    spec = SourceSpec(source, plan.values, plan.steps, words=words if source == "rom" else None)
    return LayerEngine(g, requant_params(layer), plan, spec, layer.input_zero_point), g, words, spec


@pytest.mark.yosys
def test_engine_netlist_equals_torch_and_its_energy_is_measured():
    library = load_cells()
    layer, x = random_layer(4, kind="linear", c_in=16, c_out=4, images=6)
    engine, g, words, _ = _engine(layer, EngineConfig(lanes=2, taps=8), "port")
    mapped = synthesise_engine(engine, "datapath", library)
    assert len(mapped.flops_of(r"w\d+_\d+")) == 2 * 16 * 8  # the weight buffer survives synthesis
    win = layer.windows(x)
    stream = np.stack([input_words(win[i:i + 1], g) for i in range(len(x))])
    want = torch_layer_output(layer, x)
    expected = np.stack([output_words(want[i:i + 1].reshape(1, layer.out_channels, 1), g) for i in range(len(x))])
    run = run_netlist(mapped.netlist, stream, g.outputs_per_image, library, memory=words)
    np.testing.assert_array_equal(run.outputs, expected)
    assert run.port_reads == layer.out_channels  # each channel's weights once per image (one per lane)
    assert run.energy_pj > run.register_pj_per_cycle * run.cycles > 0
    # the ROM source alone, driven with the requests the datapath made, yields its words
    source_map = synthesise_engine(build_source(SourceSpec("rom", g.fan_in, layer.out_channels, words=words)),
                                   "source", library)
    alone = run_source(source_map.netlist, run.requests, library, words)
    assert alone.cycles == len(run.requests) and alone.port_reads == 0  # a ROM reads no external memory
    assert alone.energy_pj > alone.register_pj_per_cycle * alone.cycles  # reading words toggles its cells
    with pytest.raises(UserError, match="does not yield the words"):
        run_source(source_map.netlist, run.requests, library, np.zeros_like(words) + 1)
