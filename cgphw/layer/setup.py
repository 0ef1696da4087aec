"""Everything a layer engine is built from, gathered and cross-checked: the evolved circuit
(a run or an RTL directory) and its task, the int8 network with the circuit's weights put
back exactly as ``cgphw insert`` does, the layer's quantisation as plain values, where each
weight of the layer comes from (a stored weight or a circuit output), and the engine's
geometry and requantisation.

Weight sources (``--source``): ``circuit`` (stored weights in a ROM feed the circuit),
``circuit-sram`` (stored weights read from an external memory), ``rom`` (every weight of the
layer in a ROM) and ``sram`` (every weight read from an external memory). All four fill the
same weight buffer with the same words per step, so they differ only in what the step costs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cgphw.cgp.genome import Genome
from cgphw.errors import UserError
from cgphw.hw.accel.plan import EngineConfig, Geometry, LoadPlan, layer_geometry, plan_load
from cgphw.hw.accel.requant import Requant, TfliteRequant, layer_requant
from cgphw.hw.accel.source import SourceSpec
from cgphw.quantlayer import QuantLayer
from cgphw.task import Task, expand_location_runs

if TYPE_CHECKING:
    from cgphw.nn.tflite_layer import TFLiteLayerIO

SOURCES = ("circuit", "circuit-sram", "rom", "sram")


@dataclass(frozen=True, eq=False)
class Circuit:
    """An evolved circuit with the task that says where its weights go."""
    name: str
    genome: Genome
    task: Task
    rtl_dir: Path | None  # the export directory, when given one


@dataclass(frozen=True, eq=False)
class LayerSetup:
    circuit: Circuit
    model: object  # the network (Int8Model or TFLiteNetwork) with the circuit's weights inserted
    layer: QuantLayer  # the layer of that model (its weights include the generated ones)
    inputs: np.ndarray  # uint8 [n, *input_shape]: what the int8 network feeds the layer on the images
    outputs: np.ndarray  # uint8 [n, *output_shape]: what the int8 network computes
    geometry: Geometry
    requant: Requant | TfliteRequant
    plan: LoadPlan
    source: SourceSpec
    config: EngineConfig
    model_name: str | None  # the model file as reports name it
    model_sha256: str | None
    source_name: str  # one of SOURCES
    tflite_io: TFLiteLayerIO | None = None  # a TFLite network's tensors up to the layer

    @property
    def top(self) -> str:
        return f"{self.circuit.name}_{self.layer.name}".replace(".", "_")


def load_circuit(path: str | os.PathLike) -> Circuit:
    """A run directory (best.json + task.npz), or an RTL directory / manifest from `cgphw export`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir() and (path / "best.json").is_file():
        from cgphw.hw.export import load_source

        source = load_source(path, force=True)  # verification does not need the threshold met
        assert source.task is not None  # a run directory holds its task
        return Circuit(source.default_name, source.genome, source.task, None)
    from cgphw.verification.design import load_design

    design = load_design(path)  # format, hashes, genome and task checked
    if design.task is None:
        raise UserError(f"{design.directory} holds a circuit without its task, so where its weights go is "
                        "unknown; export it from a run made with `cgphw task make`")
    return Circuit(design.top, design.genome, design.task, design.directory)


def exported_layer(path: str | os.PathLike, layer: str):
    """The layer-engine export beside the circuit in RTL directory PATH (``NAME_LAYER.json``,
    checked by ``load_layer_manifest``), or None."""
    from cgphw.hw.accel.layer_manifest import find_layer_manifest, load_layer_manifest
    from cgphw.hw.manifest import find_manifest

    path = Path(path)
    if path.is_dir() and (path / "best.json").is_file():
        return None
    found = find_manifest(path)
    if found is None:
        return None
    top = f"{found.stem}_{layer}".replace(".", "_")
    located = find_layer_manifest(found.parent, top)
    if located is None and (found.parent / f"{top}.v").exists():  # else a fresh engine would pass for it
        raise UserError(f"{found.parent} holds {top}.v but not {top}.json, the manifest `cgphw export --layer` "
                        "writes with it; export the layer again")
    return load_layer_manifest(located) if located else None


def layer_writers(circuit: Circuit, layer: str, shape: tuple[int, ...], model_codes: dict) -> np.ndarray:
    """int [*shape, 2]: for each weight of ``layer`` (in the layer's own weight layout), the task
    item (= source step) and the value index (stored input i, or n_in + circuit output j) that
    yields it. Outputs win over stored inputs and later items over earlier ones, as ``cgphw
    insert`` places them."""
    task, n_in = circuit.task, circuit.genome.grid.n_inputs
    try:
        sources = expand_location_runs(task.meta["inputs_from"]) if n_in else [[] for _ in range(task.n_items)]
        targets = expand_location_runs(task.meta["targets_at"])
    except (KeyError, ValueError):
        raise UserError("the circuit's task does not record where its weights live in the network "
                        "(make it with `cgphw task make`)") from None
    if len(targets) != task.n_items or len(sources) != task.n_items:
        raise UserError("the circuit's task meta does not match its items")
    size = int(np.prod(shape))
    owner = np.full((size, 2), -1, np.int64)
    stored_wrong = 0
    for i, item in enumerate(sources):
        for v, (name, flat) in enumerate(item):
            codes = model_codes.get(name)
            if codes is None or flat >= codes.size:
                raise UserError(f"the circuit's stored weight {name}.flat[{flat}] is not in this model")
            stored_wrong += int(codes.flat[flat] != task.inputs[i, v])
            if name == layer and owner[flat, 0] < 0:
                owner[flat] = (i, v)
    if stored_wrong:
        raise UserError(f"{stored_wrong} of the circuit's stored weights differ from this model's weights: "
                        "its task was made from another model (give that one with --model)")
    layers_touched = set()
    for i, item in enumerate(targets):
        for j, (name, flat) in enumerate(item):
            layers_touched.add(name)
            if name == layer and (task.mask is None or task.mask[i, j]):
                if flat >= size:
                    raise UserError(f"the circuit places a weight at {name}.flat[{flat}] beyond the layer's {size}")
                owner[flat] = (i, n_in + j)
    if layer not in layers_touched:
        raise UserError(f"the circuit's task computes no weight of layer {layer} "
                        f"(it computes weights of {', '.join(sorted(layers_touched)) or 'no layer'})")
    missing = int((owner[:, 0] < 0).sum())
    if missing:
        raise UserError(f"the circuit and its stored weights provide {size - missing} of the {size} weights of "
                        f"layer {layer}; the layer engine needs all of them (e.g. a task made with "
                        "`cgphw task make --selector core-ring:concat`, or core-ring without --filters)")
    return owner.reshape(*shape, 2)


def network_for(circuit: Circuit, model=None):
    """The network the circuit's weights go into: ``model`` (what ``cgphw.load_model`` takes),
    or, when None, the shipped MobileNetV2 for a task made from it, else the shipped LeNet-5.
    UserError when the task was made from another kind of network."""
    from cgphw.nn.networks import load_model
    from cgphw.nn.tflite_network import SHIPPED_FILE, SHIPPED_NAME, TFLiteNetwork

    made = circuit.task.meta.get("model")
    made = made if isinstance(made, dict) else {}
    arch, made_path = made.get("arch"), str(made.get("path"))
    if model is None and arch == "tflite" and made_path == f"cgphw:models/{SHIPPED_FILE}":
        model = SHIPPED_NAME
    net = load_model(model)
    if arch is not None and (arch == "tflite") != isinstance(net, TFLiteNetwork):
        given = net.name or net.arch
        raise UserError(f"the circuit's task was made from {made_path} ({arch}), not from {given}: its weights "
                        f"belong to another network (give that one with --model)")
    return net


def layer_images(net, data=None, split: str = "test", n: int | None = None):
    """(the first ``n`` images of ``data``/``split`` as ``cgphw model eval`` reads them for
    ``net``, the array the layer setup takes: float images for a torch model, uint8 RGB pixels
    [n, 224, 224, 3] for a TFLite network)."""
    from cgphw.nn.tflite_network import TFLiteNetwork, network_images

    chosen = network_images(net, data, split).head(n)
    if isinstance(net, TFLiteNetwork):
        from cgphw.nn.tflite_eval import pixels

        return chosen, pixels(chosen)
    return chosen, chosen.images


def prepare(path: str | os.PathLike, layer: str = "conv1", images: np.ndarray | None = None,
            model=None, config: EngineConfig | None = None, source: str = "circuit",
            pipeline: int | None = None, name: str | None = None) -> LayerSetup:
    """Gather and check everything the engine for ``layer`` needs; ``images`` (``layer_images``:
    float [n, ...] for a torch model, uint8 pixels for a TFLite network) give the layer's input
    quantisation and the reference activations. ``model``: what ``network_for`` takes.
    ``pipeline``: the circuit's pipelined form (a register bank every K logic levels);
    ``name``: the circuit's name in module names (default: its run or export name)."""
    from dataclasses import replace as _replace

    from cgphw.files import sha256_file
    from cgphw.nn.layers import extract, list_layers, with_codes
    from cgphw.nn.selectors import place
    from cgphw.nn.tflite_network import TFLiteNetwork

    if source not in SOURCES:
        raise UserError(f"unknown weight source {source!r}: choose one of {', '.join(SOURCES)}")
    config = config or EngineConfig()
    circuit = load_circuit(path)
    if name is not None:
        circuit = _replace(circuit, name=name)
    net = network_for(circuit, model)
    tflite = isinstance(net, TFLiteNetwork)
    if tflite:
        from cgphw.nn.tflite_layer import find_layer

        layer = find_layer(net.model, layer).name  # an operator the engine cannot compute is refused here
    names = [info.name for info in list_layers(net)]
    if layer not in names:
        raise UserError(f"the model has no int8 layer named {layer!r} (layers: {', '.join(names)})")
    codes = {n: extract(net, n) for n in names}
    writers = layer_writers(circuit, layer, codes[layer].shape, codes)
    generated = circuit.genome.evaluate(circuit.task.inputs)
    inserted = with_codes(net, place(net, circuit.task, generated))
    if images is None or len(images) == 0:
        raise UserError("give at least one image")
    if tflite:
        from cgphw.nn.tflite_layer import engine_order, layer_io as tflite_io, quant_layer

        weight_layer = inserted.model.layer(layer)
        layer_geometry(config, quant_layer(inserted.model, weight_layer))  # lanes / taps checked before the work
        io: Any = tflite_io(inserted, layer, images)
        writers = engine_order(weight_layer, writers)
    else:
        from cgphw.nn.reference import layer_io

        io = layer_io(inserted, layer, images)
        writers = writers.reshape(writers.shape[0], -1, 2)
    q = io.layer
    geometry = layer_geometry(config, q)
    plan = plan_load(writers, geometry, circuit.genome.grid.n_inputs + circuit.genome.grid.n_outputs)
    spec = _source_spec(source, circuit, plan, q, geometry, pipeline)
    built = plan.assemble(spec.step_values(_external_words(spec, circuit, plan, q, geometry)), geometry)
    if not np.array_equal(built, q.kernel_matrix):  # the load plan must rebuild exactly what insert placed
        raise UserError(f"the engine's weight buffer would hold other weights than layer {layer} of the "
                        f"network with the circuit inserted ({int((built != q.kernel_matrix).sum())} differ)")
    path_of = getattr(net, "path", None)
    return LayerSetup(circuit, inserted, q, io.inputs, io.outputs, geometry, layer_requant(q, config.mult_bits),
                      plan, spec, config, net.name, sha256_file(path_of) if path_of else None, source,
                      io if tflite else None)


def _source_spec(kind: str, circuit: Circuit, plan: LoadPlan, layer: QuantLayer, geometry: Geometry,
                 pipeline: int | None) -> SourceSpec:
    if kind in ("circuit", "circuit-sram"):
        stored = circuit.task.inputs if kind == "circuit" else None
        return SourceSpec("circuit", plan.values, plan.steps, genome=circuit.genome, stored=stored, pipeline=pipeline)
    words = plan.rom_words(layer.kernel_matrix, geometry)
    if kind == "rom":
        return SourceSpec("rom", plan.values, plan.steps, words=words)
    return SourceSpec("port", plan.values, plan.steps)


def _external_words(spec: SourceSpec, circuit: Circuit, plan: LoadPlan, layer: QuantLayer,
                    geometry: Geometry) -> np.ndarray | None:
    """What the external weight memory holds for this source (None when it reads none)."""
    if spec.port_values == 0:
        return None
    if spec.kind == "circuit":
        return circuit.task.inputs
    return plan.rom_words(layer.kernel_matrix, geometry)


def external_memory(setup: LayerSetup) -> np.ndarray | None:
    return _external_words(setup.source, setup.circuit, setup.plan, setup.layer, setup.geometry)
