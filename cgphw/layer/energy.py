"""layer_energy(): the energy of one image through the layer engine with each weight source,
from synthesis and gate-level simulation on real images (``cgphw.hw.accel.energy``).

The datapath (weight buffer, MACs, accumulators, requantisation, control) is synthesised with
its weights arriving on a port, as in a programmable accelerator: the same netlist for every
source. Each source is synthesised on its own and driven with the requests the datapath made
(so constant weights are never folded into the multipliers across that boundary), and memory
reads are priced per byte. One more row synthesises the engine *with* its ROM: synthesis then
folds the constant weights into the multipliers (weights in silicon, no longer programmable).

Rows per reuse (output positions per weight load):
  sram          every weight read from an SRAM beside the engine (1.25 pJ per byte)
  circuit-sram  the circuit's stored weights read from SRAM, the rest computed by the circuit
  rom           every weight in a ROM (synthesised)
  circuit       the circuit with its stored weights in a ROM (synthesised together)

``channels=K`` measures the engine on the layer's first K output channels (whole lane groups of
the same engine, the same input images) and scales each per-image energy and cycle count by
C/K: every output channel of a layer costs the same MACs, and a source's work is per weight it
yields. SRAM bytes are counted on the whole layer's load plan (exact); the rest is an estimate
whose error is how far the sampled channels' switching differs from the others', except that a
ROM of K channels' words costs less per read than one of all: the ROM-fed rows are lower bounds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from cgphw.progress import step
from cgphw.results import stage_path
from cgphw.errors import UserError
from cgphw.hw.accel.energy import cells_pj_per_cycle, run_netlist, run_source, synthesise_engine
from cgphw.hw.accel.plan import EngineConfig, input_words, layer_geometry, output_words, plan_load
from cgphw.hw.accel.source import SourceSpec, build_source
from cgphw.layer.setup import LayerSetup, prepare

DEFAULT_IMAGES = 64  # one gate-level run: one image per lane


@dataclass(frozen=True)
class EnergyRow:
    source: str
    reuse: int  # output positions per weight load
    loads_per_image: int
    cycles_per_image: int
    datapath_pj: float  # the engine around the weights (same netlist for every programmable source)
    source_pj: float  # the weight source's own logic and registers
    memory_pj: float  # SRAM reads
    bytes_read: int  # per image, from SRAM
    source_cells: int
    source_area: float

    @property
    def weight_pj(self) -> float:
        return self.source_pj + self.memory_pj

    @property
    def total_pj(self) -> float:
        return self.datapath_pj + self.weight_pj

    def to_json(self) -> dict:
        return {"source": self.source, "reuse": self.reuse, "loads_per_image": self.loads_per_image,
                "cycles_per_image": self.cycles_per_image, "datapath_pj": round(self.datapath_pj, 3),
                "source_pj": round(self.source_pj, 4), "memory_pj": round(self.memory_pj, 3),
                "weight_pj": round(self.weight_pj, 3), "total_pj": round(self.total_pj, 3),
                "bytes_read_per_image": self.bytes_read, "source_cells": self.source_cells,
                "source_area_um2": round(self.source_area, 3)}


@dataclass(frozen=True)
class LayerEnergy:
    """Energy per image of a layer per weight source, whole when made (cgphw.results.Result):
    ``ok`` once gate-level outputs were compared with torch (a difference raises)."""
    design: str
    layer: str
    images: int
    macs_per_image: int
    weights: int  # weights in the layer
    generated: int  # of which the circuit computes
    sram_pj_per_byte: float
    rows: tuple[EnergyRow, ...] = ()
    datapaths: dict = field(default_factory=dict)  # reuse -> cells, flops, area, pJ, registers pJ
    hard_wired: dict | None = None
    checked_activations: int = 0  # gate-level outputs compared with the int8 network (all equal, or an error)
    seconds: float = 0.0
    sample: tuple[int, int] | None = None  # (K, C): measured on the first K of C output channels, scaled by C/K

    @property
    def ok(self) -> bool:
        return self.checked_activations > 0

    def to_json(self) -> dict:
        return {"design": self.design, "layer": self.layer, "images": self.images,
                "macs_per_image": self.macs_per_image, "weights": self.weights, "generated": self.generated,
                "sram_pj_per_byte": self.sram_pj_per_byte, "rows": [r.to_json() for r in self.rows],
                "datapaths": self.datapaths, "hard_wired": self.hard_wired,
                "checked_activations": self.checked_activations, "seconds": round(self.seconds, 1),
                "sample": None if self.sample is None else {"channels": self.sample[0], "of": self.sample[1],
                                                            "scale": round(self.sample[1] / self.sample[0], 6)}}

    def lines(self) -> list[str]:
        out = [f"{self.design} {self.layer}: energy per image ({self.images} real images, gate level, "
               f"{self.macs_per_image:,} MACs per image; {self.generated} of {self.weights} weights computed "
               f"by the circuit)"]
        if self.sample is not None:
            k, c = self.sample
            out.append(f"measured on output channels 0..{k - 1} of {c}: energies and cycles per image scaled by "
                       f"{c}/{k} = {c / k:.4g}; SRAM bytes counted on the whole layer; cells and areas are the "
                       "sample's")
        out += [f"{'source':<13} {'reuse':>6} {'loads':>6} {'datapath pJ':>12} {'source pJ':>10} {'SRAM pJ':>9} "
                f"{'weights pJ':>11} {'total pJ':>11} {'weights %':>9}"]
        for r in self.rows:
            out.append(f"{r.source:<13} {r.reuse:>6} {r.loads_per_image:>6} {r.datapath_pj:>12,.0f} "
                       f"{r.source_pj:>10,.2f} {r.memory_pj:>9,.1f} {r.weight_pj:>11,.1f} {r.total_pj:>11,.0f} "
                       f"{100 * r.weight_pj / r.total_pj:>8.2f}%")
        if self.hard_wired:
            h = self.hard_wired
            out.append(f"{'hard-wired':<13} {h['reuse']:>6} {'-':>6} {h['energy_pj']:>12,.0f} {'':>10} {'':>9} "
                       f"{'':>11} {h['energy_pj']:>11,.0f}   (ROM synthesised into the engine: weights folded "
                       f"into the multipliers, {h['cells']:,} cells)")
        for reuse, d in self.datapaths.items():
            out.append(f"datapath at reuse {reuse}: {d['cells']:,} cells ({d['flops']:,} flip-flops), "
                       f"{d['area_um2']:,.0f} um2, {d['cycles_per_image']:,} cycles per image; registers "
                       f"{d['registers_pj']:,.0f} pJ of {d['energy_pj']:,.0f} pJ, of which the weight buffer "
                       f"({d['weight_buffer_flops']:,} flip-flops, clocked every cycle) "
                       f"{d['weight_buffer_pj']:,.0f} pJ")
        out.append(f"gate-level outputs equal the int8 network on all {self.checked_activations:,} activations")
        return out


def layer_energy(path, layer: str = "conv1", *, images: int = DEFAULT_IMAGES, model: str | None = None,
                 data: str = "mnist5k", split: str = "test", config: EngineConfig | None = None,
                 reuses: tuple[int | None, ...] = (None, 1), channels: int | None = None, costs=None, cells=None,
                 progress=None) -> LayerEnergy:
    """Energy per image of the engine for ``layer`` with each weight source, at each weight
    reuse in ``reuses`` (None: all positions of an image per load); ``images`` (<= 64) real
    images, one per gate-level lane. ``channels``: measure on the layer's first K output
    channels (a multiple of the lanes) and scale by C/K (None: all of them; see the module doc).
    ``progress`` hears about each long step (cgphw.progress)."""
    path = stage_path(path)  # a run or export directory, or the RunResult / Run / ExportResult for it
    from cgphw.costs import load_costs
    from cgphw.hw.cells import load_cells
    from cgphw.layer.setup import layer_images, load_circuit, network_for

    def say(what: str) -> None:
        step(progress, what)

    start = time.perf_counter()
    if not 1 <= images <= 64:
        raise UserError(f"--images must lie in 1..64 (one image per gate-level lane), got {images}")
    library = load_cells(cells)
    sram = _sram_pj_per_byte(load_costs(costs))
    net = network_for(load_circuit(path), model)
    chosen, arrays = layer_images(net, data, split, images)
    config = config or EngineConfig()
    whole = prepare(path, layer, arrays, net, config, "sram")
    k = _sample_size(whole, channels)
    base = _first_channels(whole, k)
    scale = whole.geometry.channels / k
    n_in = base.circuit.genome.grid.n_inputs
    generated = int(sum(1 for g in whole.plan.writes for (_i, v, _l, _k) in g if v >= n_in))
    rows: list[EnergyRow] = []
    datapaths: dict = {}
    checked = 0
    sources = _standalone_sources(base, library, say)
    for reuse in dict.fromkeys(reuses):
        full = whole if reuse == config.reuse else prepare(path, layer, arrays, net, replace(config, reuse=reuse),
                                                           "sram")
        setup = _first_channels(full, k)
        run, mapped = _datapath(setup, library, say)
        checked += _check(setup, run)
        g = setup.geometry
        buffer = mapped.flops_of(r"w\d+_\d+")
        cycles = round(run.cycles * scale)
        datapath_pj = run.energy_pj * scale
        datapaths[g.reuse] = {"cells": mapped.n_cells, "flops": mapped.flops, "area_um2": round(mapped.area, 1),
                              "cycles_per_image": cycles, "energy_pj": round(datapath_pj, 1),
                              "registers_pj": round(run.register_pj_per_cycle * run.cycles * scale, 1),
                              "weight_buffer_flops": len(buffer),
                              "weight_buffer_pj": round(cells_pj_per_cycle(mapped.netlist, run.toggles, library,
                                                                           buffer) * run.cycles * scale, 1)}
        for kind in ("sram", "circuit-sram", "rom", "circuit"):
            logic, cells_, area = 0.0, 0, 0.0
            if kind != "sram":
                netlist, cells_, area, spec, memory = sources[kind]
                say(f"simulating the {kind} source alone at reuse {g.reuse}")
                src = run_source(netlist, run.requests, library, spec.step_values(memory), memory)
                logic = src.energy_pj_per_cycle * run.cycles * scale
            read = _bytes_read(full, kind)  # the whole layer's plan: exact, not scaled
            rows.append(EnergyRow(kind, g.reuse, full.geometry.loads_per_image, cycles, datapath_pj, logic,
                                  read * sram, read, cells_, area))
    hard_wired = _hard_wired(base, library, say, scale)
    checked += hard_wired.pop("checked")
    return LayerEnergy(base.circuit.name, layer, len(chosen), whole.geometry.macs_per_image, whole.layer.weights.size,
                       generated, sram, tuple(rows), datapaths, hard_wired, checked, time.perf_counter() - start,
                       None if k == whole.geometry.channels else (k, whole.geometry.channels))


def _sample_size(setup: LayerSetup, channels: int | None) -> int:
    """K, the output channels measured: whole lane groups of the engine, so the sample runs the
    same datapath over fewer groups. Every kind the engine computes (dense conv, depthwise,
    linear) spends the same MACs on each output channel."""
    g = setup.geometry
    if channels is None:
        return g.channels
    if not (1 <= channels <= g.channels and channels % g.lanes == 0):
        raise UserError(f"--channels must be a multiple of the engine's {g.lanes} lanes in 1..{g.channels} (the "
                        f"layer's output channels), got {channels}")
    return channels


def _first_channels(setup: LayerSetup, k: int) -> LayerSetup:
    """The (sram) setup of the layer restricted to its first ``k`` output channels: the same
    engine, input and load plan for those channels' lane groups, their reference outputs."""
    from cgphw.hw.accel.requant import layer_requant

    q, g, plan = setup.layer, setup.geometry, setup.plan
    if k == g.channels:
        return setup
    writers = np.zeros((g.channels, g.fan_in, 2), np.int64)  # the plan's writers back: (step, value) per weight
    for group, writes in enumerate(plan.writes):
        for i, v, lane, tap in writes:
            writers[group * g.lanes + lane, tap] = (plan.group_steps[group][i], v)
    if q.kind == "conv":
        oh, ow = q.output_hw
        part, inputs = q.tile(setup.inputs, range(oh), range(ow), range(k))
    else:
        part, inputs = replace(q, weights=q.weights[:k], weight_scales=q.weight_scales[:k], bias=q.bias[:k],
                               int_bias=None if q.int_bias is None else q.int_bias[:k]), setup.inputs
    config = replace(setup.config, lanes=g.lanes, taps=g.taps, reuse=g.reuse)
    geometry = layer_geometry(config, part)
    sampled = plan_load(writers[:k], geometry, plan.values)
    return replace(setup, layer=part, inputs=inputs, outputs=setup.outputs[:, :k], geometry=geometry,
                   requant=layer_requant(part, config.mult_bits), plan=sampled,
                   source=SourceSpec("port", sampled.values, sampled.steps), config=config)


def _bytes_read(setup: LayerSetup, kind: str) -> int:
    """SRAM bytes one image reads: every weight each load writes (sram), or the circuit's stored
    weights for every step each load evaluates (circuit-sram); on-chip sources read none."""
    plan, chunks = setup.plan, setup.geometry.chunks
    if kind == "sram":
        return chunks * sum(len(w) for w in plan.writes)
    if kind == "circuit-sram":
        return chunks * sum(len(s) for s in plan.group_steps) * setup.circuit.genome.grid.n_inputs
    return 0


def _sram_pj_per_byte(costs) -> float:
    memory = getattr(costs, "memory", None) or {}
    value = memory.get("sram_read_pj_per_byte") if isinstance(memory, dict) else None
    if value is None:
        raise UserError("the gate cost table has no memory.sram_read_pj_per_byte figure")
    return float(value)


def _streams(setup: LayerSetup):
    q, g = setup.layer, setup.geometry
    win = q.windows(setup.inputs)
    words = np.stack([input_words(win[i:i + 1], g) for i in range(len(win))])
    n = len(setup.inputs)
    expected = np.stack([output_words(setup.outputs[i:i + 1].reshape(1, q.out_channels, q.positions), g)
                         for i in range(n)])
    return words, expected


def _datapath(setup: LayerSetup, library, say):
    from cgphw.layer.verify import build_engine
    from cgphw.layer.setup import external_memory

    engine = build_engine(setup)
    say(f"synthesising the datapath (reuse {setup.geometry.reuse}; a few minutes)")
    mapped = synthesise_engine(engine, "datapath", library)
    say(f"gate-level simulation of the datapath: {mapped.n_cells:,} cells, {len(setup.inputs)} images")
    words, _ = _streams(setup)
    run = run_netlist(mapped.netlist, words, setup.geometry.outputs_per_image, library, external_memory(setup))
    return run, mapped


def _check(setup: LayerSetup, run) -> int:
    _, expected = _streams(setup)
    if run.outputs.shape != expected.shape or np.any(run.outputs != expected):
        bad = int((run.outputs != expected).sum()) if run.outputs.shape == expected.shape else -1
        raise UserError(f"the synthesised netlist differs from the int8 network on {bad} activations: the energy "
                        "would be that of another circuit")
    return int(expected.size)


def _standalone_sources(setup: LayerSetup, library, say) -> dict:
    circuit = setup.circuit
    plan, g, q = setup.plan, setup.geometry, setup.layer
    stored = circuit.task.inputs[:plan.steps]  # the items the plan reads (fewer for a sample of channels)
    specs = {"rom": (SourceSpec("rom", plan.values, plan.steps, words=plan.rom_words(q.kernel_matrix, g)), None),
             "circuit": (SourceSpec("circuit", plan.values, plan.steps, genome=circuit.genome, stored=stored), None),
             "circuit-sram": (SourceSpec("circuit", plan.values, plan.steps, genome=circuit.genome), stored)}
    out = {}
    for kind, (spec, memory) in specs.items():
        say(f"synthesising the {kind} weight source")
        mapped = synthesise_engine(build_source(spec), "source", library)
        out[kind] = (mapped.netlist, mapped.n_cells, mapped.area, spec, memory)
    return out


def _hard_wired(setup: LayerSetup, library, say, scale: float) -> dict:
    from cgphw.hw.accel.datapath import LayerEngine

    g, q, plan = setup.geometry, setup.layer, setup.plan
    spec = SourceSpec("rom", plan.values, plan.steps, words=plan.rom_words(q.kernel_matrix, g))
    engine = LayerEngine(g, setup.requant, plan, spec, q.input_zero_point)
    say("synthesising the engine with its ROM (weights in silicon)")
    mapped = synthesise_engine(engine, "hard_wired", library)
    words, expected = _streams(setup)
    run = run_netlist(mapped.netlist, words, g.outputs_per_image, library)
    if run.outputs.shape != expected.shape or np.any(run.outputs != expected):
        raise UserError("the hard-wired netlist differs from the int8 network")
    return {"reuse": g.reuse, "cells": mapped.n_cells, "flops": mapped.flops, "area_um2": round(mapped.area, 1),
            "cycles_per_image": round(run.cycles * scale), "energy_pj": round(run.energy_pj * scale, 1),
            "registers_pj": round(run.register_pj_per_cycle * run.cycles * scale, 1), "checked": int(expected.size)}
