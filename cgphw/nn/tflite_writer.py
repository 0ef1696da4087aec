"""Writing an int8 TFLite flatbuffer: tensors, operators and their options, one subgraph.

Written with the ``flatbuffers`` Builder and the builder functions the ``tflite`` package
generates from TFLite's schema (``tflite.Conv2DOptionsStart`` ...), so the file follows the
schema field by field; what is written is exactly what the reader (``tflite_model``) reads
back: shapes, int8/int32 types, per-channel quantisation, constant bytes (each buffer
aligned to 16 bytes, as TFLite's own converter does) and the options of the operators in
``tflite_model.OPERATORS`` (any other builtin operator is written without options, which
is how tests make networks cgphw must refuse). Used to cut a network into the part before and after a layer
(``tflite_cut``) and to build small test networks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.tflite_model import DTYPES, Operator, operator_names

TYPES = {name: code for code, name in DTYPES.items()}
# Operator versions LiteRT's kernels accept for int8 (per-channel) tensors; a copied network keeps its own.
VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "ADD": 2, "MEAN": 2, "AVERAGE_POOL_2D": 2,
            "FULLY_CONNECTED": 4, "RESHAPE": 1, "QUANTIZE": 2, "SOFTMAX": 2}
PADDING = {"SAME": 0, "VALID": 1}


@dataclass(frozen=True)
class TensorDef:
    """One tensor to write; ``data``: a constant's values (None for an activation)."""
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: int8, uint8, int32, ...
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dim: int = 0
    data: np.ndarray | None = None


def operator_versions(content: bytes) -> dict[str, int]:
    """The version of each operator kind in a TFLite file (its kernels are chosen by it)."""
    import tflite

    names = operator_names()
    root = tflite.Model.GetRootAsModel(content, 0)
    found = {}
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        found[names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")] = int(code.Version())
    return found


def write_tflite(tensors: Sequence[TensorDef], operators: Sequence[Operator], inputs: Sequence[int],
                 outputs: Sequence[int], versions: Mapping[str, int] | None = None,
                 description: str = "written by cgphw") -> bytes:
    """The flatbuffer of one graph; operators' ``inputs``/``outputs`` index ``tensors`` and
    their ``options`` are those ``tflite_model`` reads."""
    import flatbuffers
    import tflite

    unknown = sorted({op.kind for op in operators} - set(vars(tflite.BuiltinOperator)))
    if unknown:
        raise UserError(f"cannot write operators {', '.join(unknown)}: TFLite has no such builtin operator")
    b = flatbuffers.Builder(1024 + sum(t.data.nbytes for t in tensors if t.data is not None))
    kinds = sorted({op.kind for op in operators})
    buffers = [_buffer(b, None)]
    tensor_offsets = []
    for t in tensors:
        if t.dtype not in TYPES:
            raise UserError(f"cannot write tensor {t.name!r} of type {t.dtype}")
        buffer_index = 0
        if t.data is not None:
            buffers.append(_buffer(b, np.ascontiguousarray(t.data, np.dtype(t.dtype).newbyteorder("<"))))
            buffer_index = len(buffers) - 1
        tensor_offsets.append(_tensor(b, t, buffer_index))
    operator_offsets = [_operator(b, op, kinds.index(op.kind)) for op in operators]
    codes = []
    for kind in kinds:
        code = getattr(tflite.BuiltinOperator, kind)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, (versions or {}).get(kind, VERSIONS.get(kind, 1)))
        codes.append(tflite.OperatorCodeEnd(b))
    graph_tensors = _offsets(b, tflite.SubGraphStartTensorsVector, tensor_offsets)
    graph_ops = _offsets(b, tflite.SubGraphStartOperatorsVector, operator_offsets)
    graph_in, graph_out = _ints(b, inputs), _ints(b, outputs)
    name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, graph_tensors)
    tflite.SubGraphAddInputs(b, graph_in)
    tflite.SubGraphAddOutputs(b, graph_out)
    tflite.SubGraphAddOperators(b, graph_ops)
    tflite.SubGraphAddName(b, name)
    graph = tflite.SubGraphEnd(b)
    model_codes = _offsets(b, tflite.ModelStartOperatorCodesVector, codes)
    model_graphs = _offsets(b, tflite.ModelStartSubgraphsVector, [graph])
    model_buffers = _offsets(b, tflite.ModelStartBuffersVector, buffers)
    text = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, model_codes)
    tflite.ModelAddSubgraphs(b, model_graphs)
    tflite.ModelAddDescription(b, text)
    tflite.ModelAddBuffers(b, model_buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _offsets(b, start, items: Sequence[int]) -> int:
    start(b, len(items))
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _ints(b, values: Sequence[int], dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype).reshape(-1))


def _buffer(b, data: np.ndarray | None) -> int:
    import tflite

    vector = None
    if data is not None and data.size:
        raw = data.reshape(-1).view(np.uint8)
        b.StartVector(1, raw.size, 16)  # as CreateNumpyVector, but aligned for any element type
        b.head -= raw.size
        b.Bytes[b.head:b.head + raw.size] = raw.tobytes()
        vector = b.EndVector()
    tflite.BufferStart(b)
    if vector is not None:
        tflite.BufferAddData(b, vector)
    return tflite.BufferEnd(b)


def _tensor(b, t: TensorDef, buffer_index: int) -> int:
    import tflite

    shape = _ints(b, t.shape)
    name = b.CreateString(t.name)
    quantization = None
    if len(t.scales):
        scales = b.CreateNumpyVector(np.asarray(t.scales, np.float32))
        zeros = b.CreateNumpyVector(np.asarray(t.zero_points, np.int64))
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scales)
        tflite.QuantizationParametersAddZeroPoint(b, zeros)
        tflite.QuantizationParametersAddQuantizedDimension(b, t.quantized_dim)
        quantization = tflite.QuantizationParametersEnd(b)
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, TYPES[t.dtype])
    tflite.TensorAddBuffer(b, buffer_index)
    tflite.TensorAddName(b, name)
    if quantization is not None:
        tflite.TensorAddQuantization(b, quantization)
    return tflite.TensorEnd(b)


def _operator(b, op: Operator, code_index: int) -> int:
    import tflite

    options_type, options = _options(b, op)
    ins, outs = _ints(b, op.inputs), _ints(b, op.outputs)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, code_index)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, options)
    return tflite.OperatorEnd(b)


def _options(b, op: Operator) -> tuple[int, int | None]:
    """(BuiltinOptions type, offset) of an operator's options, from the reader's dict."""
    import tflite

    o, kind, kinds = op.options, op.kind, tflite.BuiltinOptions
    activation = o.get("activation", 0)
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        conv = kind == "CONV_2D"
        prefix = "Conv2DOptions" if conv else "DepthwiseConv2DOptions"
        add = {field: getattr(tflite, f"{prefix}Add{field}") for field in
               ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "FusedActivationFunction")}
        getattr(tflite, f"{prefix}Start")(b)
        add["Padding"](b, PADDING[o["padding"]])
        add["StrideH"](b, o["stride"][0])
        add["StrideW"](b, o["stride"][1])
        add["DilationHFactor"](b, o.get("dilation", (1, 1))[0])
        add["DilationWFactor"](b, o.get("dilation", (1, 1))[1])
        add["FusedActivationFunction"](b, activation)
        if not conv:
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, o.get("depth_multiplier", 1))
        return getattr(kinds, prefix), getattr(tflite, f"{prefix}End")(b)
    if kind == "AVERAGE_POOL_2D":
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, PADDING[o["padding"]])
        tflite.Pool2DOptionsAddStrideH(b, o["stride"][0])
        tflite.Pool2DOptionsAddStrideW(b, o["stride"][1])
        tflite.Pool2DOptionsAddFilterHeight(b, o["filter"][0])
        tflite.Pool2DOptionsAddFilterWidth(b, o["filter"][1])
        tflite.Pool2DOptionsAddFusedActivationFunction(b, activation)
        return kinds.Pool2DOptions, tflite.Pool2DOptionsEnd(b)
    if kind == "ADD":
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, activation)
        return kinds.AddOptions, tflite.AddOptionsEnd(b)
    if kind == "FULLY_CONNECTED":
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, activation)
        tflite.FullyConnectedOptionsAddKeepNumDims(b, bool(o.get("keep_num_dims", False)))
        return kinds.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)
    if kind == "MEAN":
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, bool(o.get("keep_dims", False)))
        return kinds.ReducerOptions, tflite.ReducerOptionsEnd(b)
    if kind == "SOFTMAX":
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, o.get("beta", 1.0))
        return kinds.SoftmaxOptions, tflite.SoftmaxOptionsEnd(b)
    if kind == "RESHAPE" and "new_shape" in o:
        shape = _ints(b, o["new_shape"])
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, shape)
        return kinds.ReshapeOptions, tflite.ReshapeOptionsEnd(b)
    return 0, None  # RESHAPE with a shape tensor, QUANTIZE, and operators without options
