"""An int8 TFLite network read from its flatbuffer (the ``tflite`` schema package).

Read are the tensors (shape, type, quantisation, constant bytes), the operators and the
positions of every constant's bytes in the file, so that changed weights can be written into
a copy of the file (``patched``). Only int8 CNNs built from the operators in ``OPERATORS``
are accepted: int8 activations (per-tensor), int8 symmetric per-channel (or per-tensor)
weights, int32 biases; uint8 only where a QUANTIZE converts the graph's input or output.
Anything else (a float or uint8-weight model, another operator, an index out of range, a
damaged file) is a ``UserError`` naming what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgphw.errors import UserError

OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "RESHAPE",
             "QUANTIZE", "SOFTMAX")
WEIGHT_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
LAYER_PREFIX = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc"}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8", 10: "float64"}
MAX_BYTES = 1 << 31  # flatbuffers address 2 GiB; larger models keep weights outside the tree



def checked_codes(name: str, codes, shape) -> np.ndarray:
    """Replacement weights for layer ``name`` of any network (torch or TFLite): int8 of the
    layer's ``shape``, else one UserError saying which."""
    codes = np.asarray(codes)
    if codes.dtype != np.int8:
        raise UserError(f"weights for layer {name} must be int8, got {codes.dtype}")
    if codes.shape != tuple(shape):
        raise UserError(f"weights for layer {name} have shape {list(codes.shape)}, the layer needs {list(shape)}")
    return codes

@dataclass(frozen=True, eq=False)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name ('int8', 'int32', 'uint8', ...) or 'type N'
    scales: np.ndarray  # float32, empty when not quantised
    zero_points: np.ndarray  # int64
    quantized_dim: int
    data_offset: int | None  # where a constant's bytes start in the file; None for activations
    data_size: int = 0

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points.size else 0


@dataclass(frozen=True)
class Operator:
    index: int
    kind: str  # one of OPERATORS
    inputs: tuple[int, ...]  # tensor indices; -1: an optional input left out
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class WeightLayer:
    """A weight-carrying operator: conv (weights [O, KH, KW, I]), depthwise ([1, KH, KW, C]), FC ([O, I])."""
    name: str  # conv0, dw1, ..., by position among the weight layers
    operator: Operator
    weights: Tensor
    bias: Tensor | None


@dataclass(frozen=True, eq=False)
class TFLiteModel:
    path: str | None
    content: bytes
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    outputs_at: int  # where the graph's output tensor indices (int32) lie in the file

    @property
    def logits(self) -> int:
        """The tensor before the final SOFTMAX (the graph's output when there is none)."""
        softmax = [op for op in self.operators if op.kind == "SOFTMAX"]
        return softmax[-1].inputs[0] if softmax else self.outputs[0]

    @property
    def layers(self) -> tuple[WeightLayer, ...]:
        out: list[WeightLayer] = []
        for op in self.operators:
            if op.kind in WEIGHT_OPERATORS:
                bias = self.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                out.append(WeightLayer(f"{LAYER_PREFIX[op.kind]}{len(out)}", op, self.tensors[op.inputs[1]], bias))
        return tuple(out)

    def layer(self, name: str) -> WeightLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = [w.name for w in self.layers]
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise UserError(f"the model has no int8 layer named {name!r} (layers: {shown})")

    def constant(self, tensor: Tensor) -> np.ndarray:
        """A constant tensor's values (a read-only view of the file's bytes)."""
        if tensor.data_offset is None:
            raise UserError(f"tensor {tensor.index} ({tensor.name}) holds no constant data")
        raw = np.frombuffer(self.content, np.uint8, tensor.data_size, tensor.data_offset)
        return raw.view(np.dtype(tensor.dtype).newbyteorder("<")).reshape(tensor.shape)

    def patched(self, replacements: dict[str, np.ndarray], output: int | None = None) -> bytes:
        """A copy of the file with these layers' int8 weights replaced (same shapes: scales,
        zero points and biases stay) and, given ``output``, that tensor as the graph's output."""
        content = bytearray(self.content)
        if output is not None:
            content[self.outputs_at:self.outputs_at + 4] = np.int32(output).astype("<i4").tobytes()
        for name, codes in replacements.items():
            tensor = self.layer(name).weights
            codes = checked_codes(name, codes, tensor.shape)
            assert tensor.data_offset is not None  # a weight layer's weights are constant (checked on reading)
            content[tensor.data_offset:tensor.data_offset + tensor.data_size] = codes.tobytes()
        return bytes(content)


def operator_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def read_tflite(source: str | os.PathLike | bytes) -> TFLiteModel:
    """The int8 network of a .tflite file (or its bytes), every index and type checked."""
    if isinstance(source, (bytes, bytearray)):
        content, where, path = bytes(source), "the TFLite model", None
    else:
        path = Path(source)
        where = f"TFLite model {path}"
        if not path.is_file():
            raise UserError(f"{where} does not exist")
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{where} is larger than 2 GiB, which a TFLite flatbuffer cannot be")
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {where} ({exc.strerror or exc})") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise UserError(f"{where} is not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = _parse(content, where)
    except UserError:
        raise
    except Exception as exc:  # a damaged or hostile buffer fails anywhere inside the generated reader
        raise UserError(f"{where} is damaged: its flatbuffer cannot be read ({type(exc).__name__})") from None
    model = TFLiteModel(str(path) if path else None, content, *model)
    _check(model, where)
    return model


def _in_file(start: int, size: int, content: bytes, what: str, where: str) -> None:
    if start < 0 or size < 0 or start + size > len(content):
        raise UserError(f"{where} is damaged: {what} lies outside the file")


def _parse(content: bytes, where: str):
    import tflite

    root = tflite.Model.GetRootAsModel(content, 0)
    if root.SubgraphsLength() != 1:
        raise UserError(f"{where} has {root.SubgraphsLength()} subgraphs; only single-graph networks are supported")
    graph = root.Subgraphs(0)
    names = operator_names()
    codes = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append(f"custom operator {custom.decode(errors='replace')}" if custom else
                     names.get(builtin, f"operator code {builtin}"))
    n_buffers = root.BuffersLength()
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if any(v < 0 for v in shape):
            raise UserError(f"{where}: tensor {i} has a dynamic or negative shape {list(shape)}")
        q = t.Quantization()
        scales = np.asarray(q.ScaleAsNumpy() if q is not None and q.ScaleLength() else [], np.float32)
        zeros = np.asarray(q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else [], np.int64)
        qdim = int(q.QuantizedDimension()) if q is not None else 0
        buffer_index = int(t.Buffer())
        if not 0 <= buffer_index < n_buffers:
            raise UserError(f"{where}: tensor {i} names buffer {buffer_index}, out of range 0..{n_buffers - 1}")
        offset, size = None, 0
        buf = root.Buffers(buffer_index)
        if buffer_index > 0 and buf.DataLength() > 0:
            start = buf._tab.Vector(buf._tab.Offset(4))  # the bytes' absolute position, to patch them
            offset, size = int(start), int(buf.DataLength())
            _in_file(offset, size, content, f"the bytes of tensor {i}", where)
        elif buffer_index > 0 and buf.Offset() > 1:
            offset, size = int(buf.Offset()), int(buf.Size())
            _in_file(offset, size, content, f"the bytes of tensor {i}", where)
        tensors.append(Tensor(i, t.Name().decode(errors="replace") if t.Name() else f"tensor {i}", shape,
                              DTYPES.get(t.Type(), f"type {t.Type()}"), scales, zeros, qdim, offset, size))
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = op.OpcodeIndex()
        if not 0 <= code < len(codes):
            raise UserError(f"{where}: operator {i} names operator code {code}, out of range")
        kind = codes[code]
        if kind not in OPERATORS:
            raise UserError(f"{where}: operator {i} is {kind}, which cgphw does not support "
                            f"(supported: {', '.join(OPERATORS)})")
        inputs = tuple(int(v) for v in op.InputsAsNumpy()) if op.InputsLength() else ()
        outputs = tuple(int(v) for v in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        for t in inputs + outputs:
            if not -1 <= t < len(tensors):
                raise UserError(f"{where}: operator {i} ({kind}) names tensor {t}, out of range 0..{len(tensors) - 1}")
        operators.append(Operator(i, kind, inputs, outputs, _options(kind, op)))
    ins = tuple(int(v) for v in graph.InputsAsNumpy()) if graph.InputsLength() else ()
    outs = tuple(int(v) for v in graph.OutputsAsNumpy()) if graph.OutputsLength() else ()
    if len(ins) != 1 or len(outs) != 1:
        raise UserError(f"{where} has {len(ins)} inputs and {len(outs)} outputs; cgphw reads one of each")
    for t in ins + outs:
        if not 0 <= t < len(tensors):
            raise UserError(f"{where}: the graph's input or output tensor {t} is out of range 0..{len(tensors) - 1}")
    outputs_at = int(graph._tab.Vector(graph._tab.Offset(8)))  # SubGraph.outputs, as tflite.SubGraph reads it
    _in_file(outputs_at, 4, content, "the graph's output list", where)
    return tuple(tensors), tuple(operators), ins, outs, outputs_at


def _options(kind: str, op) -> dict:
    import tflite

    table = op.BuiltinOptions()
    if table is None:
        return {}
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
        cls = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
               "AVERAGE_POOL_2D": tflite.Pool2DOptions}[kind]
        o = cls()
        o.Init(table.Bytes, table.Pos)
        doc = {"stride": (o.StrideH(), o.StrideW()), "padding": "SAME" if o.Padding() == 0 else "VALID",
               "activation": o.FusedActivationFunction()}
        if kind == "AVERAGE_POOL_2D":
            doc["filter"] = (o.FilterHeight(), o.FilterWidth())
        else:
            doc["dilation"] = (o.DilationHFactor(), o.DilationWFactor())
        if kind == "DEPTHWISE_CONV_2D":
            doc["depth_multiplier"] = o.DepthMultiplier()
        return doc
    if kind == "ADD":
        o = tflite.AddOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": o.FusedActivationFunction()}
    if kind == "FULLY_CONNECTED":
        o = tflite.FullyConnectedOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": o.FusedActivationFunction(), "keep_num_dims": bool(o.KeepNumDims())}
    if kind == "RESHAPE":
        o = tflite.ReshapeOptions()
        o.Init(table.Bytes, table.Pos)
        return {"new_shape": tuple(int(v) for v in o.NewShapeAsNumpy())} if o.NewShapeLength() else {}
    if kind == "MEAN":
        o = tflite.ReducerOptions()
        o.Init(table.Bytes, table.Pos)
        return {"keep_dims": bool(o.KeepDims())}
    if kind == "SOFTMAX":
        o = tflite.SoftmaxOptions()
        o.Init(table.Bytes, table.Pos)
        return {"beta": float(o.Beta())}
    return {}


def _check(model: TFLiteModel, where: str) -> None:
    """Refuse what the int8 reference cannot compute exactly: float or uint8-weight models,
    asymmetric weights, per-channel activations, constants whose size does not match."""
    t = model.tensors
    for tensor in t:
        if tensor.data_offset is not None:
            expected = int(np.prod(tensor.shape, dtype=np.int64)) * _itemsize(tensor, where)
            if tensor.data_size != expected:
                raise UserError(f"{where} is damaged: tensor {tensor.index} ({tensor.name}) holds {tensor.data_size} "
                                f"bytes, its shape {list(tensor.shape)} needs {expected}")
    graph_io = set(model.inputs) | set(model.outputs)
    for op in model.operators:
        needed = 2 if op.kind in ("ADD", "MEAN", *WEIGHT_OPERATORS) else 1
        if len(op.inputs) < needed or len(op.outputs) != 1 or min(op.inputs[:needed]) < 0:
            raise UserError(f"{where}: operator {op.index} ({op.kind}) has {len(op.inputs)} inputs and "
                            f"{len(op.outputs)} outputs; it needs {needed} and 1")
        activations = [i for i in op.inputs[:1]] + list(op.outputs)
        if op.kind == "ADD":
            activations = [*op.inputs[:2], *op.outputs]
        for index in activations:
            if index < 0:
                raise UserError(f"{where}: operator {op.index} ({op.kind}) lacks a required tensor")
            tensor = t[index]
            allowed = ("int8", "uint8") if op.kind == "QUANTIZE" and index in graph_io else ("int8",)
            if tensor.dtype not in allowed:
                what = "a float model" if tensor.dtype.startswith("float") else f"a {tensor.dtype} activation"
                raise UserError(f"{where} is not an int8 network: operator {op.index} ({op.kind}) reads or writes "
                                f"{what} (tensor {index}, {tensor.name}); only fully int8-quantised models are "
                                f"supported")
            if tensor.scales.size != 1 or tensor.zero_points.size != 1 or not tensor.scale > 0:
                raise UserError(f"{where}: tensor {index} ({tensor.name}) of operator {op.index} ({op.kind}) "
                                f"needs one positive scale and one zero point")
        if op.kind in WEIGHT_OPERATORS:
            _check_weights(model, op, where)
        _check_shapes(model, op, where)


def _check_weights(model: TFLiteModel, op: Operator, where: str) -> None:
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        raise UserError(f"{where}: operator {op.index} ({op.kind}) has no weights")
    w = model.tensors[op.inputs[1]]
    if w.dtype != "int8":
        what = "float" if w.dtype.startswith("float") else w.dtype
        raise UserError(f"{where}: operator {op.index} ({op.kind}) has {what} weights (tensor {w.index}); only "
                        f"int8 symmetric weights are supported")
    if w.data_offset is None:
        raise UserError(f"{where}: the weights of operator {op.index} ({op.kind}) are not constant")
    rank = {"FULLY_CONNECTED": 2}.get(op.kind, 4)
    if len(w.shape) != rank:
        raise UserError(f"{where}: the weights of operator {op.index} ({op.kind}) have shape {list(w.shape)}")
    channel_dim = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
    if w.scales.size not in (1, w.shape[channel_dim]) or (w.scales.size > 1 and w.quantized_dim != channel_dim):
        raise UserError(f"{where}: the weights of operator {op.index} ({op.kind}) are not quantised per tensor "
                        f"or per output channel")
    if np.any(w.zero_points != 0) or not np.all(w.scales > 0):
        raise UserError(f"{where}: the weights of operator {op.index} ({op.kind}) are asymmetric (a zero point "
                        f"other than 0); only symmetric int8 weights are supported")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = model.tensors[op.inputs[2]]
        if b.dtype != "int32" or b.data_offset is None or b.shape != (w.shape[channel_dim],):
            raise UserError(f"{where}: the bias of operator {op.index} ({op.kind}) is not a constant int32 vector "
                            f"of {w.shape[channel_dim]} values")


def _spatial(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return (size - (kernel - 1) * dilation - 1) // stride + 1


def _check_shapes(model: TFLiteModel, op: Operator, where: str) -> None:
    """The shapes an operator's options imply must be those its tensors have (else the
    interpreter and the reference would read past an array)."""
    t = model.tensors
    x, out = t[op.inputs[0]].shape, t[op.outputs[0]].shape
    what = f"{where}: operator {op.index} ({op.kind})"
    opts = op.options
    for key in ("stride", "dilation", "filter"):
        if key in opts and not all(1 <= v <= 1 << 16 for v in opts[key]):
            raise UserError(f"{what} has {key} {list(opts[key])}; each must be at least 1")
    if opts.get("activation", 0) not in (0, 1, 2, 3):
        raise UserError(f"{what} has a fused activation cgphw does not support ({opts['activation']})")
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
        if len(x) != 4 or len(out) != 4:
            raise UserError(f"{what} needs 4-d input and output, got {list(x)} -> {list(out)}")
        if op.kind == "AVERAGE_POOL_2D":
            (kh, kw), channels = opts["filter"], x[3]
        else:
            w = t[op.inputs[1]].shape
            kh, kw = w[1], w[2]
            channels = w[0] if op.kind == "CONV_2D" else w[3]
            wanted_in = w[3] if op.kind == "CONV_2D" else w[3] // max(opts.get("depth_multiplier", 1), 1)
            if x[3] != wanted_in or (op.kind == "DEPTHWISE_CONV_2D" and w[3] != x[3] * opts["depth_multiplier"]):
                raise UserError(f"{what}: weights {list(w)} do not fit the input {list(x)}")
        dilation = opts.get("dilation", (1, 1))
        want = (x[0], _spatial(x[1], kh, opts["stride"][0], dilation[0], opts["padding"]),
                _spatial(x[2], kw, opts["stride"][1], dilation[1], opts["padding"]), channels)
        if tuple(out) != want or min(want) < 1:
            raise UserError(f"{what}: output shape {list(out)}, its input and options give {list(want)}")
    elif op.kind == "FULLY_CONNECTED":
        w = t[op.inputs[1]].shape
        if not x or int(np.prod(x)) % w[1] or int(np.prod(out)) != int(np.prod(x)) // w[1] * w[0]:
            raise UserError(f"{what}: weights {list(w)} do not fit the input {list(x)} and output {list(out)}")
    elif op.kind == "ADD":
        if t[op.inputs[1]].shape != x or out != x:
            raise UserError(f"{what}: inputs {list(x)} and {list(t[op.inputs[1]].shape)} -> {list(out)}; cgphw "
                            f"adds tensors of one shape only")
    elif op.kind in ("RESHAPE", "QUANTIZE", "SOFTMAX"):
        if int(np.prod(x)) != int(np.prod(out)):
            raise UserError(f"{what}: input {list(x)} and output {list(out)} differ in size")
    elif op.kind == "MEAN":
        axes_tensor = t[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        if axes_tensor is None or axes_tensor.dtype != "int32" or axes_tensor.data_offset is None:
            raise UserError(f"{what} needs constant int32 axes")
        axes = [int(a) for a in model.constant(axes_tensor).ravel()]
        if len(x) != 4 or sorted(axes) != [1, 2] or len(out) != 4 or tuple(out) != (x[0], 1, 1, x[3]):
            raise UserError(f"{what}: cgphw averages 4-d tensors over height and width (axes 1, 2, kept), "
                            f"got axes {axes} of {list(x)} -> {list(out)}")


def _itemsize(tensor: Tensor, where: str) -> int:
    try:
        return np.dtype(tensor.dtype).itemsize
    except TypeError:
        raise UserError(f"{where}: tensor {tensor.index} has an unsupported element {tensor.dtype}") from None
