"""verify_layer(): run real images through the layer engine whose weights come from an evolved
circuit, cycle-accurately, and compare every output activation with the int8 network (torch,
or a TFLite network's int8 reference, ``cgphw.nn.tflite_reference``, equal to LiteRT's
reference kernels bit for bit); then finish the network from the simulated activations and
compare its top-1.

What is compared, per activation: the engine's output (Amaranth's simulator, or Icarus /
Verilator on the Verilog) against torch's int8 layer with the circuit's weights inserted as
``cgphw insert`` inserts them. The verdict also counts how often the engine's integer
reference (exact rounding, see ``cgphw.hw.accel.requant``) and torch disagree on these
images: torch requantises in float32, so a differing activation there is torch's rounding,
not the hardware's. It fails the check all the same (the target is 0). A TFLite network's
requantisation is integer: there the two agree on every value.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cgphw.results import stage_path
from cgphw.errors import MismatchError, UserError
from cgphw.hw.accel.plan import EngineConfig, input_words, locate, output_words
from cgphw.verification import cocotb_run
from cgphw.verification.backends import CocotbBackend, default_simulator, get_backend
from cgphw.verification.design import same_verilog
from cgphw.layer.setup import LayerSetup, exported_layer, external_memory, prepare
from cgphw.layer.stimulus import LayerRun, LayerStimulus

DEFAULT_IMAGES = 100


@dataclass(frozen=True)
class LayerVerdict:
    """The judge's finding on a layer, whole when made (cgphw.results.Result): ``ok`` when
    activations were compared, none differs, nothing else failed and every image's predicted
    class is the same with the layer simulated as in torch."""
    design: str
    layer: str
    simulator: str
    subject: str  # what was simulated
    source: str  # the weight source
    torch_backend: str  # which torch library computed the reference layer here
    images: int = 0
    activations: int = 0  # output activations compared with torch
    mismatches: int = 0
    first_mismatch: dict | None = None
    reference_mismatches: int = 0  # activations where the engine differs from its integer reference
    torch_rounding: int = 0  # activations where the integer reference differs from torch
    cycles: int = 0
    cycles_per_image: float = 0.0
    top1_simulated: float | None = None  # the network's top-1 with this layer simulated
    top1_software: float | None = None  # ... and all in torch
    predictions_equal: int = 0  # images whose predicted class is the same both ways
    engine: dict = field(default_factory=dict)
    requant: dict | None = None  # with all_accumulators: the engine vs torch on every accumulator value
    fault: str | None = None
    problems: tuple[str, ...] = ()
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    network: str = "torch"  # what computed the expected activations: torch, or the TFLite int8 reference

    @property
    def ok(self) -> bool:
        return (self.activations > 0 and self.mismatches == 0 and not self.problems
                and self.predictions_equal == self.images)

    def lines(self) -> list[str]:
        head = (f"{'PASS' if self.ok else 'FAIL'} {self.design} {self.layer} on {self.simulator} "
                f"({self.source} weights): {self.images} images, {self.activations:,} activations, "
                f"{self.mismatches} mismatches vs {self.network} ({self.torch_backend}); {self.cycles:,} cycles "
                f"({self.cycles_per_image:,.0f} per image)")
        if self.top1_simulated is not None and self.top1_software is not None:
            head += (f"; top-1 {100 * self.top1_simulated:.2f} % with {self.layer} simulated, "
                     f"{100 * self.top1_software:.2f} % in {self.network} ({self.predictions_equal}/{self.images} "
                     "predictions equal)")
        lines = [head]
        if self.fault:
            lines.append(f"fault injected on purpose: {self.fault}")
        if self.first_mismatch:
            f = self.first_mismatch
            where = f"position {f['position']}" + (f" (row {f['row']}, column {f['column']})" if "row" in f else "")
            lines.append(f"first mismatch: image {f['image']}, channel {f['channel']}, {where}: expected "
                         f"{f['expected']}, got {f['got']} (integer reference {f['reference']})")
        if self.torch_rounding:
            lines.append(f"the engine's integer reference and {self.network} differ on {self.torch_rounding} "
                         f"activations ({self.network} rounds in float32 there)")
        if self.requant:
            r = self.requant
            lines.append(f"requantisation on every reachable accumulator value: {r['differ']:,} of {r['values']:,} "
                         f"(channel, value) pairs differ from torch ({r['backend']})"
                         + (f", e.g. channel {r['examples'][0][0]} acc {r['examples'][0][1]}: torch "
                            f"{r['examples'][0][2]}, engine {r['examples'][0][3]}" if r["examples"] else ""))
        lines += [f"problem: {p}" for p in self.problems]
        return lines

    def to_json(self) -> dict:
        return {"passed": self.ok, "design": self.design, "layer": self.layer, "simulator": self.simulator,
                "subject": self.subject, "source": self.source, "network": self.network,
                "torch_backend": self.torch_backend,
                "images": self.images, "activations": self.activations, "mismatches": self.mismatches,
                "first_mismatch": self.first_mismatch, "reference_mismatches": self.reference_mismatches,
                "torch_rounding": self.torch_rounding, "cycles": self.cycles,
                "cycles_per_image": round(self.cycles_per_image, 2), "top1_simulated": self.top1_simulated,
                "top1_software": self.top1_software, "predictions_equal": self.predictions_equal,
                "engine": self.engine, "requant": self.requant, "fault": self.fault, "problems": list(self.problems),
                "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3)}


def layer_cycles(setup: LayerSetup) -> int:
    """Clock cycles per image of the setup's engine."""
    from cgphw.hw.accel.datapath import cycles_per_image
    from cgphw.hw.accel.source import source_latency

    return cycles_per_image(setup.geometry, setup.plan, source_latency(setup.source))


def layer_stimulus(setup: LayerSetup) -> LayerStimulus:
    """The input stream of the setup's images and the output stream torch expects."""
    q, g = setup.layer, setup.geometry
    n = len(setup.inputs)
    words = input_words(q.windows(setup.inputs), g)
    expected = output_words(setup.outputs.reshape(n, q.out_channels, q.positions), g)
    cycles = layer_cycles(setup)
    max_cycles = n * cycles + 64
    meta = {"layer": q.name, "images": n, "geometry": g.to_json(), "cycles_per_image": cycles,
            "source": setup.source.describe()}
    return LayerStimulus(setup.top, words, expected, external_memory(setup), max_cycles, meta)


def build_engine(setup: LayerSetup, fault: str | None = None):
    from cgphw.hw.accel.datapath import LayerEngine

    return LayerEngine(setup.geometry, setup.requant, setup.plan, setup.source, setup.layer.input_zero_point, fault)


def verify_layer(path, layer: str = "conv1", *, images: int = DEFAULT_IMAGES, sim: str | None = None,
                 model: str | None = None, data: str = "mnist5k", split: str = "test",
                 config: EngineConfig | None = None, source: str | None = None, fault: str | None = None,
                 workdir: str | Path | None = None, all_accumulators: bool = False) -> LayerVerdict:
    """Verify the layer engine built from the circuit in PATH (run or RTL directory) on
    ``images`` real images of ``data``/``split``; see the module doc for what is compared.
    ``fault`` builds a wrong engine on purpose (``LayerEngine``'s faults) to see the check fail.
    ``all_accumulators`` also compares the requantisation with torch's on every accumulator
    value the layer can produce (a measurement: it does not decide the verdict).
    An RTL directory holding the engine's export (``cgphw export --layer``) is verified with that
    export's parameters, and Icarus / Verilator simulate its Verilog file itself; ``config`` or
    ``source`` other than the export's build the engine afresh."""
    path = stage_path(path)  # a run or export directory, or the RunResult / Run / ExportResult for it
    wall, cpu = time.perf_counter(), time.process_time()
    sim = sim or default_simulator()
    backend = get_backend(sim)
    backend.environment()  # a missing simulator fails before any work
    if images < 1:
        raise UserError(f"--images must be at least 1, got {images}")
    chosen, arrays, net = _images(path, model, data, split, images)
    exported = exported_layer(path, layer)
    setup, exported = _setup(path, layer, arrays, net, config, source, exported)
    stim = layer_stimulus(setup)
    with tempfile.TemporaryDirectory(prefix="cgphw-layer-") as tmp:
        work = cocotb_run.keep_directory(workdir) if workdir is not None else Path(tmp)
        export = None if fault else exported
        job = _VerifyJob(setup, fault, stim, export.files["verilog"] if export is not None else None, work)
        run = backend.simulate_layer(job)
    judged = _judge(setup, stim, run)
    problems = (*job.problems, *judged.pop("problems"))
    requant = None
    if all_accumulators:
        from cgphw.layer.requant_check import requant_check

        requant = requant_check(setup.layer, setup.requant).to_json()
    return LayerVerdict(setup.circuit.name, layer, sim, job.subject, setup.source_name, _reference_name(setup),
                        len(chosen), **judged, **_top1(setup, chosen, arrays, run),
                        engine={**setup.geometry.to_json(), "mult_bits": setup.requant.mult_bits,
                                "cycles_per_image": stim.meta["cycles_per_image"], "top": setup.top},
                        requant=requant, fault=fault, problems=problems,
                        network="TFLite" if setup.tflite_io is not None else "torch",
                        seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu)


def _images(path, model, data, split, n: int):
    """(the chosen images, what the layer setup takes of them, the network): the network the
    circuit's weights go into, the first ``n`` images of ``data`` as ``cgphw model eval`` reads them."""
    from cgphw.layer.setup import layer_images, load_circuit, network_for

    net = network_for(load_circuit(path), model)
    chosen, arrays = layer_images(net, data, split, n)
    return chosen, arrays, net


def _reference_name(setup: LayerSetup) -> str:
    """What computed the expected activations: torch's int8 library, or the TFLite reference kernels."""
    from cgphw.nn.reference import torch_backend

    return "TFLite reference kernels" if setup.tflite_io is not None else torch_backend(setup.layer)


def _setup(path, layer, arrays, model, config, source, exported):
    """The setup to verify, and the export to simulate (None when the engine differs from it)."""
    if exported is None:
        return prepare(path, layer, arrays, model, config, source or "circuit"), None
    made = EngineConfig(**exported.config)
    kind = exported.source.get("name", "circuit")
    same = (config is None or config == made) and (source is None or source == kind)
    setup = prepare(path, layer, arrays, model, made if config is None else config, source or kind,
                    pipeline=exported.source.get("pipeline"))
    if same:
        check_claims(exported, setup, layer)
    return setup, exported if same else None


def check_claims(exported, setup: LayerSetup, layer: str) -> None:
    """MismatchError unless the layer manifest says what the engine it is verified as is: its
    layer, requantisation and geometry (a manifest claiming another shift must not pass)."""
    built = {"layer": layer, "requant": setup.requant.to_json(), "geometry": setup.geometry.to_json()}
    for key, value in built.items():
        claimed = exported.doc.get(key)
        if key == "geometry" and isinstance(claimed, dict):
            claimed = {"depthwise": False, **claimed}  # exported before depthwise layers existed
        if claimed != value:
            raise MismatchError(f"{exported.path} records {key} {claimed!r}, but the engine built from its circuit "
                                f"and the network has {value!r}: the manifest was changed, or another network was "
                                "given; export the layer again")


@dataclass
class _VerifyJob:
    """The engine to verify, as each backend simulates it (``LayerJob``)."""
    setup: LayerSetup
    fault: str | None
    stim: LayerStimulus
    exported: Path | None  # the export's Verilog file, when it is the engine verified
    work: Path
    subject: str = ""  # what was simulated, for the verdict
    problems: list[str] = field(default_factory=list)  # found while simulating, for the verdict

    def on_amaranth(self) -> LayerRun:
        from cgphw.hw import emit
        from cgphw.layer.sim import simulate_amaranth

        engine = build_engine(self.setup, self.fault)
        self.subject = "Amaranth engine built from the circuit and the network"
        if self.exported is not None and not same_verilog(emit.to_verilog(engine, self.setup.top),
                                                          self.exported.read_text(errors="replace")):
            self.problems.append(f"{self.exported.name} differs from the engine cgphw builds, so Amaranth's "
                                         "simulator cannot vouch for it; verify the file itself with --sim icarus")
        return simulate_amaranth(engine, self.stim, self.setup.top)

    def on_cocotb(self, backend: CocotbBackend) -> LayerRun:
        from cgphw.hw import emit
        from cgphw.layer.sim import simulate_cocotb

        if self.exported is not None:
            verilog = self.exported
            self.subject = f"exported Verilog {self.exported.name}"
        else:  # the engine is built only when simulated or written out
            verilog = self.work / f"{self.setup.top}.v"
            verilog.write_text(emit.to_verilog(build_engine(self.setup, self.fault), self.setup.top))
            self.subject = "Verilog of the engine built from the circuit and the network"
        stim_path = self.stim.save(self.work / "layer_stimulus.npz")
        return simulate_cocotb(backend, verilog, self.setup.top, stim_path, self.work)


def _judge(setup: LayerSetup, stim: LayerStimulus, run: LayerRun) -> dict:
    """The verdict's comparison fields: the engine's activations against torch's and against
    its own integer reference."""
    q, g = setup.layer, setup.geometry
    n = len(setup.inputs)
    reference = output_words(setup.requant.apply(q.accumulators(setup.inputs)), g)
    seen = min(len(run.outputs), stim.results)
    got, want, ref = run.outputs[:seen], stim.expected[:seen], reference[:seen]
    wrong = (got != want) | run.unknown[:seen, None]
    first = None
    if wrong.any():
        r, lane = (int(v) for v in np.argwhere(wrong)[0])
        image, channel, position = locate(r, lane, g)
        first = {"image": image, "channel": channel, "position": position, "expected": int(want[r, lane]),
                 "got": None if run.unknown[r] else int(got[r, lane]), "reference": int(ref[r, lane])}
        if q.kind == "conv":
            first["row"], first["column"] = divmod(position, q.output_hw[1])
    incomplete = [] if run.complete else [f"only {len(run.outputs)} of {stim.results} results came out in "
                                          f"{run.cycles} cycles"]
    return {"activations": int(want.size), "mismatches": int(wrong.sum()),
            "reference_mismatches": int(((got != ref) | run.unknown[:seen, None]).sum()),
            "torch_rounding": int((reference != stim.expected).sum()), "cycles": run.cycles,
            "cycles_per_image": run.cycles / n, "first_mismatch": first, "problems": incomplete}


def _top1(setup: LayerSetup, chosen, arrays, run: LayerRun) -> dict:
    """The verdict's top-1 fields: the network finished from the simulated layer against the
    int8 network (none when the simulation did not finish)."""
    from cgphw.hw.accel.plan import outputs_from_words

    if not run.complete:
        return {}
    n, q = len(chosen), setup.layer
    simulated = outputs_from_words(run.outputs[: n * setup.geometry.outputs_per_image], setup.geometry, n)
    simulated = simulated.reshape(n, *q.output_shape)
    if setup.tflite_io is not None:
        from cgphw.nn.tflite_layer import predictions as tflite_predictions

        with_sim = tflite_predictions(setup.model, arrays, setup.tflite_io, simulated)
        software = tflite_predictions(setup.model, arrays, setup.tflite_io)
    else:
        from cgphw.nn.reference import predictions

        with_sim = predictions(setup.model, arrays, q.name, simulated)
        software = predictions(setup.model, arrays)
    return {"top1_simulated": float((with_sim == chosen.labels).mean()),
            "top1_software": float((software == chosen.labels).mean()),
            "predictions_equal": int((with_sim == software).sum())}


def _replaceable_stimulus(out: Path) -> None:
    """``out`` may be written: absent, or a stimulus file cgphw wrote (never a user's file)."""
    from cgphw.layer.stimulus import load_stimulus

    if out.exists() or out.is_symlink():
        try:
            load_stimulus(out)
        except UserError:
            raise UserError(f"{out} exists and is not a layer stimulus file cgphw wrote; cgphw replaces only "
                            "its own: move it away or choose another path") from None


def write_layer_stimulus(path, out, layer: str = "conv1", images: int = DEFAULT_IMAGES, model: str | None = None,
                         data: str = "mnist5k", split: str = "test", config: EngineConfig | None = None,
                         source: str | None = None) -> dict:
    """Write the stimulus file of ``images`` real images for the engine built from PATH (for
    ``cgphw.layer.testbench`` in your own cocotb flow); returns what was written."""
    if images < 1:
        raise UserError(f"--images must be at least 1, got {images}")
    _replaceable_stimulus(Path(out))  # before the work: a user's file there stops it
    chosen, arrays, net = _images(path, model, data, split, images)
    setup, _ = _setup(path, layer, arrays, net, config, source, exported_layer(path, layer))
    stim = layer_stimulus(setup)
    stim.save(out)
    return {"stimulus": str(out), "top": setup.top, "images": len(chosen), "words": int(len(stim.words)),
            "results": stim.results, "max_cycles": stim.max_cycles}


@dataclass
class _EngineJob:
    """A datapath-only engine (``run_engine``), as each backend simulates it (``LayerJob``)."""
    engine: Any
    stim: LayerStimulus
    workdir: str | Path | None

    def on_amaranth(self) -> LayerRun:
        from cgphw.layer.sim import simulate_amaranth

        return simulate_amaranth(self.engine, self.stim)

    def on_cocotb(self, backend: CocotbBackend) -> LayerRun:
        from cgphw.hw import emit
        from cgphw.layer.sim import simulate_cocotb

        backend.environment()
        with tempfile.TemporaryDirectory(prefix="cgphw-engine-") as tmp:
            work = cocotb_run.keep_directory(self.workdir) if self.workdir is not None else Path(tmp)
            verilog = work / "layer_engine.v"
            verilog.write_text(emit.to_verilog(self.engine, "layer_engine"))
            return simulate_cocotb(backend, verilog, "layer_engine", self.stim.save(work / "stimulus.npz"), work)


def run_engine(layer, x: np.ndarray, *, config: EngineConfig | None = None, source: str = "rom",
               sim: str = "amaranth", workdir: str | Path | None = None, fault: str | None = None,
               timing: dict | None = None) -> np.ndarray:
    """uint8 [n, *output_shape]: what the layer engine computes for input codes ``x`` (uint8
    [n, *input_shape]) with ``layer``'s own weights in a ROM (``source="rom"``) or read from an
    external memory (``"sram"``) — no circuit; for checking the datapath against torch or
    LiteRT. ``fault``: a wrong engine on purpose; ``timing``, when given, receives the
    simulation's ``cycles``, ``seconds`` (wall) and ``cpu_seconds``."""
    from cgphw.hw.accel.datapath import LayerEngine
    from cgphw.hw.accel.plan import kernel_writers, layer_geometry, outputs_from_words, plan_load
    from cgphw.hw.accel.requant import layer_requant
    from cgphw.hw.accel.source import SourceSpec

    config = config or EngineConfig()
    x = layer.check_inputs(x)
    g = layer_geometry(config, layer)
    plan = plan_load(kernel_writers(layer.out_channels, layer.fan_in), g, layer.fan_in)
    words = plan.rom_words(layer.kernel_matrix, g)
    if source not in ("rom", "sram"):
        raise UserError(f"run_engine takes source rom or sram, got {source!r}")
    spec = SourceSpec("rom", plan.values, plan.steps, words=words) if source == "rom" else \
        SourceSpec("port", plan.values, plan.steps)
    engine = LayerEngine(g, layer_requant(layer, config.mult_bits), plan, spec, layer.input_zero_point, fault)
    n = len(x)
    expected = np.zeros((n * g.outputs_per_image, g.lanes), np.uint8)  # only the count matters here
    stim = LayerStimulus("layer_engine", input_words(layer.windows(x), g), expected,
                         words if source == "sram" else None, n * engine.cycles_per_image() + 64, {})
    started, cpu = time.perf_counter(), time.process_time()
    run = get_backend(sim).simulate_layer(_EngineJob(engine, stim, workdir))
    if timing is not None:
        timing.update(cycles=run.cycles, seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu)
    if not run.complete or run.unknown.any():
        raise UserError(f"the engine gave {len(run.outputs)} of {stim.results} results in {run.cycles} cycles")
    return outputs_from_words(run.outputs, g, n).reshape(n, *layer.output_shape)
