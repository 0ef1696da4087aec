"""export_layer(): `cgphw export RUNDIR --layer conv1` — the circuit's export (``hw.export``)
and, beside it in the same directory, the layer engine fed by that circuit:

  NAME_LAYER.v / .il        the engine (weight source included), Verilog and RTLIL
  NAME_LAYER.json           its manifest (cgphw-layer/1: ports, protocol, geometry, requantisation,
                            the layer's quantisation, what it was built from, file hashes)
  NAME_LAYER_stim.npz       a stimulus of real images with torch's expected results
  NAME_LAYER_tb.py          a cocotb test module (cgphw.layer.testbench) for your own flow

Run the testbench in your CI with ``make -C sim NAME=NAME_LAYER RTL=rtl_out/NAME TEST=NAME_LAYER_tb
CGPHW_STIMULUS=$PWD/rtl_out/NAME/NAME_LAYER_stim.npz`` (see sim/README.md).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cgphw.results import stage_path
from cgphw.errors import UserError
from cgphw.hw.accel.layer_manifest import LayerManifest, layer_manifest_doc, load_layer_manifest
from cgphw.hw.accel.plan import EngineConfig

if TYPE_CHECKING:
    from cgphw.hw.manifest import Manifest

DEFAULT_STIMULUS_IMAGES = 10

TESTBENCH = '''"""cocotb test module for the layer engine {top} (written by `cgphw export --layer`).

The testbench lives in the installed package (cgphw.layer.testbench), so `cgphw verify-layer`
and your flow run the same code. Set CGPHW_STIMULUS to {stimulus} (or a file from
`cgphw verify-layer RTLDIR --layer {layer} --write-stimulus FILE`).
"""
from cgphw.layer.testbench import layer_matches_network  # noqa: F401  (cocotb finds it here)
'''


@dataclass(frozen=True, eq=False)
class LayerExport:
    """What ``export_layer`` wrote (cgphw.results.Result): ``ok`` is always True, since an
    export writes every file or raises."""
    directory: Path
    circuit: Manifest  # the circuit's, as load_manifest reads it back
    layer: LayerManifest
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return True

    def to_json(self) -> dict:
        """What `cgphw export --layer --json` prints."""
        lm = self.layer
        return {"dir": str(self.directory), "name": self.circuit.name, "layer": lm.layer, "engine": lm.top,
                "geometry": lm.doc["geometry"], "ports": lm.doc["ports"],
                "cycles_per_image": lm.doc["cycles_per_image"], "files": list(self.files)}

    def lines(self) -> list[str]:
        lm = self.layer
        g = lm.doc["geometry"]
        return ([f"{self.directory}: circuit {self.circuit.name} and layer engine {lm.top} ({lm.layer}: "
                 f"{g['lanes']} lanes x {g['taps']} taps, {lm.doc['cycles_per_image']} cycles per image)"]
                + [f"  {self.directory / f}" for f in self.files])


def export_layer(path, layer: str = "conv1", *, out_dir: str | os.PathLike = "rtl_out", name: str | None = None,
                 pipeline: int | None = None, force: bool = False, images: int = DEFAULT_STIMULUS_IMAGES,
                 model: str | None = None, data: str = "mnist5k", split: str = "test",
                 config: EngineConfig | None = None, source: str = "circuit") -> LayerExport:
    """Export the run in PATH (as ``cgphw.export``) together with the engine for ``layer`` fed
    by its circuit, and a stimulus of ``images`` real images."""
    path = stage_path(path)  # a run or export directory, or the RunResult / Run / ExportResult for it
    import json

    from cgphw.hw import emit
    from cgphw.hw.export import build_files, check_name, load_source, write_export
    from cgphw.hw.manifest import load_manifest
    from cgphw.layer.verify import build_engine, layer_stimulus
    from cgphw.layer.setup import layer_images, load_circuit, network_for, prepare

    pipeline = emit.check_pipeline(pipeline)
    run = load_source(path, force)
    if run.run is None:
        raise UserError(f"{path} is a bare genome: --layer needs a run, whose task says where the weights go")
    name = check_name(name) if name is not None else run.default_name
    if images < 1:
        raise UserError(f"--stimulus-images must be at least 1, got {images}")
    net = network_for(load_circuit(path), model)
    chosen, arrays = layer_images(net, data, split, images)
    setup = prepare(path, layer, arrays, net, config, source, pipeline=pipeline, name=name)
    engine = build_engine(setup)
    top = setup.top
    files, manifest = build_files(run, name, pipeline)
    stim = layer_stimulus(setup)
    buffer = io.BytesIO()
    stim.write(buffer)
    made: dict[str, tuple[str, bytes | str]] = {
            "verilog": (f"{top}.v", emit.to_verilog(engine, top)), "rtlil": (f"{top}.il", emit.to_rtlil(engine, top)),
            "stimulus": (f"{top}_stim.npz", buffer.getvalue()),
            "testbench": (f"{top}_tb.py", TESTBENCH.format(top=top, stimulus=f"{top}_stim.npz", layer=layer))}
    clash = {n for n, _ in made.values()} & set(files)
    if clash:
        raise UserError(f"the engine's files {sorted(clash)} would overwrite the circuit's: choose another --name")
    q = setup.layer
    model_doc = {"path": setup.model_name, "sha256": setup.model_sha256}
    doc = layer_manifest_doc(top, layer, f"{name}.json", setup.circuit.genome.digest(), setup.config.to_json(),
                             {**setup.source.describe(), "name": setup.source_name}, setup.geometry.to_json(),
                             setup.requant.to_json(), q.describe(), emit.describe_ports(engine),
                             engine.cycles_per_image(),
                             {"images": len(chosen), "data": chosen.source, "results": stim.results,
                              "words": int(len(stim.words)), "expected": "torch's int8 network, the circuit's "
                              "weights inserted as `cgphw insert` does"}, model_doc, made)
    files.update({n: content for n, content in made.values()})
    files[f"{top}.json"] = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    target = Path(out_dir) / name
    written = write_export(target, files, f"{name}.json", manifest)
    return LayerExport(target, load_manifest(target / f"{name}.json"), load_layer_manifest(target / f"{top}.json"),
                       written)
