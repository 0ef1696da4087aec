"""Selectors: turn int8 layers into CGP tasks (stored weights -> weights to compute).

Selector strings (LAYER defaults to the first layer with 5x5 kernels where one is needed):
  core-ring[:LAYER][:concat]  3x3 core of each 5x5 kernel -> its 16-weight ring; one item per
                              kernel, or one item of all chosen kernels concatenated
  ring-core[:LAYER][:concat]  the reverse
  layer:A->B                  all weights of layer A -> all weights of layer B (one item)
  const:L1[,L2...]            no inputs -> every weight of the layers (one item; value bank)
  first-n:N[:LAYER]           the layer's first N weights (flat order) -> the whole layer
  rows:N[:LAYER]              one item per output channel of the layer: the channel's first N
                              weights -> all its weights (a 1x1 layer or classifier a row at a time)
  address:LAYER               a computed ROM: a weight's flat index -> that weight; one item
                              per weight, inputs = the index's bytes (little-endian, int8 bit
                              patterns; one byte up to 256 weights), one output

The task's meta records where each input comes from and where each target lives, as runs
[layer, first flat index, count] per item, so that outputs can be put back (``place``).
"""
from __future__ import annotations

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.layers import extract, list_layers
from cgphw.task import Task, expand_location_runs, location_runs

SELECTORS = ("core-ring", "ring-core", "layer", "const", "first-n", "rows", "address")
CORE = [(r, c) for r in range(1, 4) for c in range(1, 4)]
RING = [(0, c) for c in range(5)] + [p for r in range(1, 4) for p in ((r, 0), (r, 4))] + [(4, c) for c in range(5)]
CORE_FLAT = [r * 5 + c for r, c in CORE]
RING_FLAT = [r * 5 + c for r, c in RING]


def core_and_ring(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(9 core weights row-major, 16 ring weights: row 0, rows 1-3 first/last, row 4) of a 5x5 kernel."""
    flat = np.asarray(kernel).reshape(25)
    return flat[CORE_FLAT], flat[RING_FLAT]


def make_task(model, selector: str, *, layer: str | None = None, filters: list[int] | None = None) -> Task:
    """The task ``selector`` picks from the network ``model`` (a network, or what
    ``cgphw.load_model`` takes: None, 'mobilenetv2', a .pt or .tflite file)."""
    from cgphw.nn.networks import load_model

    model = load_model(model)
    name, _, rest = selector.partition(":")
    parts = [p for p in rest.split(":") if p] if rest else []
    if name in ("core-ring", "ring-core"):
        concat = "concat" in parts
        named = [p for p in parts if p != "concat"]
        if len(named) > 1:
            raise UserError(f"selector {selector!r} names more than one layer")
        task = _kernel_task(model, name == "ring-core", _pick_layer(model, named, layer), filters, concat)
    elif filters is not None:
        raise UserError("--filters applies only to the core-ring and ring-core selectors")
    elif name == "layer":
        source, arrow, target = rest.partition("->")
        if not arrow or not source or not target:
            raise UserError(f"selector {selector!r} must look like layer:A->B")
        if layer is not None:
            raise UserError("--layer does not apply to layer:A->B, which names both layers")
        task = _whole_task(model, [source], [target])
    elif name == "const":
        names = [n for n in rest.split(",") if n]
        if names and layer is not None:
            raise UserError("give the layers either in the selector (const:L1,L2) or with --layer, not both")
        names = names or ([layer] if layer else [])
        if not names:
            raise UserError("selector const needs layers, e.g. const:conv1,conv2")
        if len(set(names)) != len(names):  # a repeated layer would name each of its weights twice
            raise UserError(f"selector {selector!r} names a layer more than once")
        task = _whole_task(model, [], names)
    elif name == "first-n":
        if not parts or not parts[0].isdigit() or int(parts[0]) < 1:
            raise UserError(f"selector {selector!r} must look like first-n:N[:LAYER] with N >= 1")
        task = _first_n_task(model, int(parts[0]), _pick_layer(model, parts[1:], layer, any_shape=True))
    elif name == "rows":
        if not parts or not parts[0].isdigit() or int(parts[0]) < 1:
            raise UserError(f"selector {selector!r} must look like rows:N[:LAYER] with N >= 1")
        task = _rows_task(model, int(parts[0]), _pick_layer(model, parts[1:], layer, any_shape=True))
    elif name == "address":
        if "," in rest or len(parts) > 1:
            raise UserError(f"selector {selector!r} names more than one layer: an address circuit computes "
                            "one layer's weights, e.g. address:conv1")
        if not parts and layer is None:
            raise UserError("selector address needs a layer, e.g. address:conv1")
        task = _address_task(model, _pick_layer(model, parts, layer, any_shape=True))
    else:
        raise UserError(f"unknown selector {selector!r}: use one of {', '.join(SELECTORS)}")
    meta = dict(task.meta, selector=selector, model={"arch": model.arch, "path": model.name})
    return Task(task.inputs, task.targets, meta=meta)


def _pick_layer(model, named: list[str], option: str | None, any_shape: bool = False) -> str:
    if len(named) > 1:
        raise UserError(f"a selector names one layer, got {', '.join(named)}")
    if named and option and named[0] != option:
        raise UserError(f"the selector names layer {named[0]} but --layer says {option}")
    if named:
        return named[0]
    if option:
        return option
    for info in list_layers(model):
        if any_shape or info.shape[-2:] == (5, 5):
            return info.name
    raise UserError("the model has no layer with 5x5 kernels: name one with --layer")


def _kernel_task(model, reverse: bool, layer: str, filters, concat: bool) -> Task:
    codes = extract(model, layer)
    if codes.ndim != 4 or codes.shape[-2:] != (5, 5):
        raise UserError(f"layer {layer} has weights of shape {list(codes.shape)}; core-ring needs 5x5 kernels")
    chosen = list(range(codes.shape[0])) if filters is None else list(filters)
    bad = [f for f in chosen if not 0 <= f < codes.shape[0]]
    if bad or not chosen:
        raise UserError(f"layer {layer} has filters 0..{codes.shape[0] - 1}; cannot choose {bad or 'none'}")
    if len(set(chosen)) != len(chosen):  # a repeated filter would count its error twice
        raise UserError(f"--filters names a filter more than once: {','.join(map(str, chosen))}")
    ins, outs, at_in, at_out = [], [], [], []
    for f in chosen:
        for c in range(codes.shape[1]):
            core, ring = core_and_ring(codes[f, c])
            base = (f * codes.shape[1] + c) * 25
            src, dst = (ring, core) if reverse else (core, ring)
            src_flat, dst_flat = (RING_FLAT, CORE_FLAT) if reverse else (CORE_FLAT, RING_FLAT)
            ins.append(src)
            outs.append(dst)
            at_in.append([(layer, base + i) for i in src_flat])
            at_out.append([(layer, base + i) for i in dst_flat])
    if concat:
        ins, outs = [np.concatenate(ins)], [np.concatenate(outs)]
        at_in, at_out = [sum(at_in, [])], [sum(at_out, [])]
    return Task(np.array(ins, np.int8), np.array(outs, np.int8),
                meta=_where(model, at_in, at_out, kernels=[[f, c] for f in chosen for c in range(codes.shape[1])]))


def _whole_task(model, sources: list[str], targets: list[str]) -> Task:
    flat = {n: extract(model, n).ravel() for n in dict.fromkeys(sources + targets)}
    ins = np.concatenate([flat[n] for n in sources]) if sources else np.zeros(0, np.int8)
    outs = np.concatenate([flat[n] for n in targets])
    at_in = [[(n, i) for n in sources for i in range(flat[n].size)]]
    at_out = [[(n, i) for n in targets for i in range(flat[n].size)]]
    return Task(ins[None, :].astype(np.int8), outs[None, :].astype(np.int8), meta=_where(model, at_in, at_out))


def _first_n_task(model, n: int, layer: str) -> Task:
    flat = extract(model, layer).ravel()
    if n > flat.size:
        raise UserError(f"layer {layer} has only {flat.size} weights, fewer than first-n:{n}")
    return Task(flat[None, :n].copy(), flat[None, :].copy(),
                meta=_where(model, [[(layer, i) for i in range(n)]], [[(layer, i) for i in range(flat.size)]]))


def _rows_task(model, n: int, layer: str) -> Task:
    codes = extract(model, layer)
    flat = np.arange(codes.size).reshape(codes.shape)
    # a TFLite depthwise layer keeps its channels last ([1, KH, KW, C]); every other layer first
    depthwise = next(info.kind for info in list_layers(model) if info.name == layer) == "depthwise-conv"
    rows = flat.reshape(-1, codes.shape[-1]).T if depthwise and codes.shape[0] == 1 else flat.reshape(len(flat), -1)
    if n > rows.shape[1]:
        raise UserError(f"layer {layer} has {rows.shape[1]} weights per output channel, fewer than rows:{n}")
    values = codes.ravel()[rows]
    return Task(values[:, :n].copy(), values.copy(),
                meta=_where(model, [[(layer, int(i)) for i in row[:n]] for row in rows],
                            [[(layer, int(i)) for i in row] for row in rows]))


def address_inputs(n_words: int) -> np.ndarray:
    """[n_words, bytes] int8: the bytes of each address 0..n_words-1, lowest first, as int8 bit
    patterns, so that the circuit's stored port read as one unsigned number is the address."""
    n_bytes = max(1, ((n_words - 1).bit_length() + 7) // 8)
    index = np.arange(n_words, dtype=np.int64)
    return np.stack([(index >> (8 * b)) & 0xFF for b in range(n_bytes)], axis=1).astype(np.uint8).view(np.int8)


def _address_task(model, layer: str) -> Task:
    flat = extract(model, layer).ravel()
    ins = address_inputs(flat.size)
    n_bytes = ins.shape[1]
    names = [f"address bits {8 * b + 7}..{8 * b}" for b in range(n_bytes)]
    return Task(ins, flat[:, None].astype(np.int8),
                meta=_where(model, [[] for _ in range(flat.size)], [[(layer, i)] for i in range(flat.size)],
                            address={"layer": layer, "words": int(flat.size)},
                            input_names=names, output_names=[f"{layer} weight"]))


def _where(model, at_in, at_out, **extra) -> dict:
    used = dict.fromkeys(name for item in at_in + at_out for name, _ in item)
    shapes = {name: list(extract(model, name).shape) for name in used}
    return {"layers": shapes, "inputs_from": [location_runs(item) for item in at_in],
            "targets_at": [location_runs(item) for item in at_out], **extra}


def target_locations(meta: dict) -> list[list[tuple[str, int]]]:
    """Per item, per output: (layer, flat index) where that target weight lives."""
    if "targets_at" not in meta:
        raise UserError("the task does not record where its targets live (it was not made by `cgphw task make`)")
    try:
        return expand_location_runs(meta["targets_at"])
    except ValueError:
        raise UserError("the task's meta.targets_at is malformed: per item it lists "
                        "[layer, first flat index, count] runs") from None


def place(model, task: Task, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """Layer name -> int8 codes: the model's codes with the task's targets replaced by ``outputs``."""
    outputs = np.asarray(outputs)
    if outputs.shape != task.targets.shape:
        raise UserError(f"circuit outputs have shape {list(outputs.shape)}, the task's targets "
                        f"{list(task.targets.shape)}")
    where = target_locations(task.meta)
    if len(where) != outputs.shape[0] or any(len(item) != outputs.shape[1] for item in where):
        raise UserError("the task's target map does not match its targets' shape")
    layers = {name for item in where for name, _ in item}
    codes = {name: extract(model, name).ravel().copy() for name in sorted(layers)}
    for name, index in (loc for item in where for loc in item):
        if index >= codes[name].size:
            raise UserError(f"the task places a weight at {name}.flat[{index}] but layer {name} has "
                            f"{codes[name].size} weights: the task was made from another network")
    shapes = task.meta.get("layers", {})
    if not isinstance(shapes, dict):
        raise UserError("the task's meta.layers is malformed: it must map layer names to shapes")
    for name, shape in shapes.items():
        if name in codes and list(extract(model, name).shape) != list(shape):
            raise UserError(f"layer {name} has shape {list(extract(model, name).shape)} in this model "
                            f"but {shape} in the task: the task was made from another network")
    _check_insert_map(task, where)
    for i, item in enumerate(where):
        for j, (name, index) in enumerate(item):
            if task.mask is None or task.mask[i, j]:
                codes[name][index] = outputs[i, j]
    return {name: flat.astype(np.int8).reshape(extract(model, name).shape) for name, flat in codes.items()}


def _check_insert_map(task: Task, where: list[list[tuple[str, int]]]) -> None:
    """UserError when two counted outputs land on one weight (the later would silently win), or
    an output lands on a stored input other than its own item's input of the same index (as
    first-n's outputs re-emit the stored weights they start with)."""
    try:
        stored = expand_location_runs(task.meta["inputs_from"]) if "inputs_from" in task.meta else []
    except ValueError:
        raise UserError("the task's meta.inputs_from is malformed: per item it lists "
                        "[layer, first flat index, count] runs") from None
    inputs = {tuple(loc): (i, v) for i, item in enumerate(stored) for v, loc in enumerate(item)}
    seen: dict[tuple[str, int], tuple[int, int]] = {}
    for i, item in enumerate(where):
        for j, (name, index) in enumerate(item):
            if task.mask is not None and not task.mask[i, j]:
                continue
            loc = (name, index)
            if loc in seen:
                raise UserError(f"the task places item {seen[loc][0]} output {seen[loc][1]} and item {i} output {j} "
                                f"both at {name}.flat[{index}]: its insert map names one weight twice")
            seen[loc] = (i, j)
            if loc in inputs and inputs[loc] != (i, j):
                raise UserError(f"the task places item {i} output {j} at {name}.flat[{index}], the circuit's stored "
                                f"input {inputs[loc][1]} of item {inputs[loc][0]}: it would overwrite what the "
                                "circuit reads")
