"""One weight layer of an int8 TFLite network as the layer engine takes it: a ``QuantLayer``
(TFLite's int8 codes held as code + 128, see ``cgphw.quantlayer``), and its input and output
codes on images as the int8 reference (``cgphw.nn.tflite_reference``, equal to LiteRT's
reference kernels bit for bit) computes them, with the network's changed weights in place.

Operators without weights (ADD, MEAN, AVERAGE_POOL_2D, RESHAPE, QUANTIZE, SOFTMAX) are not
layers the engine computes; ``find_layer`` says so when one is named.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.tflite_model import ACTIVATIONS, WEIGHT_OPERATORS, TFLiteModel, WeightLayer
from cgphw.quantlayer import QuantLayer
from cgphw.tflite_requant import activation_range

# why the engine cannot compute an operator without weights
NOT_A_LAYER = {
    "ADD": "an elementwise sum of two tensors (a residual connection), each rescaled on its own",
    "MEAN": "an average over the feature map, not a weighted sum",
    "AVERAGE_POOL_2D": "an average over windows, not a weighted sum",
    "RESHAPE": "a change of shape, no arithmetic",
    "QUANTIZE": "a change of zero point and scale of one tensor",
    "SOFTMAX": "exponentials and a division over the classes",
}


def find_layer(model: TFLiteModel, name: str) -> WeightLayer:
    """The weight layer ``name`` (as ``cgphw model layers`` lists them). An operator without
    weights named by its index (``op12``) or output tensor name is refused saying why."""
    by_name = {w.name: w for w in model.layers}
    if name in by_name:
        return by_name[name]
    ops = [op for op in model.operators
           if name == f"op{op.index}" or name == model.tensors[op.outputs[0]].name]
    if ops and ops[0].kind not in WEIGHT_OPERATORS:
        op = ops[0]
        raise UserError(f"operator {op.index} ({op.kind}, output {model.tensors[op.outputs[0]].name}) is not a layer "
                        f"the engine computes: it is {NOT_A_LAYER.get(op.kind, 'an operator without weights')}; the "
                        "engine computes CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layers (`cgphw model layers`)")
    if ops:
        return next(w for w in model.layers if w.operator.index == ops[0].index)
    return model.layer(name)  # the UserError listing the layers


def _quant(model: TFLiteModel, index: int) -> tuple[float, int]:
    t = model.tensors[index]
    return float(t.scale), t.zero_point


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after): the odd one at the end."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def engine_order(layer: WeightLayer, array: np.ndarray) -> np.ndarray:
    """An array in the layout of the layer's TFLite weights (conv [O, KH, KW, I], depthwise
    [1, KH, KW, C], FC [O, I]), optionally with trailing dimensions, as [C_out, K, ...] in the
    QuantLayer's window order (input channel, then row, then column)."""
    shape, extra = layer.weights.shape, array.shape[len(layer.weights.shape):]
    if layer.operator.kind == "CONV_2D":
        o, kh, kw, i = shape
        moved = np.moveaxis(array, 3, 1)  # [O, I, KH, KW, ...]
        return moved.reshape(o, i * kh * kw, *extra)
    if layer.operator.kind == "DEPTHWISE_CONV_2D":
        _, kh, kw, c = shape
        return np.moveaxis(array[0], 2, 0).reshape(c, kh * kw, *extra)  # [C, KH, KW, ...]
    return array.reshape(shape[0], shape[1], *extra)


def quant_layer(model: TFLiteModel, layer: WeightLayer, codes: np.ndarray | None = None) -> QuantLayer:
    """The weight layer as a QuantLayer (``codes``: its int8 weights in TFLite's layout in
    place of the file's); UserError for what the engine cannot compute."""
    op = layer.operator
    weights = np.asarray(model.constant(layer.weights) if codes is None else codes, np.int8)
    opts = op.options
    if opts.get("dilation", (1, 1)) != (1, 1):
        raise UserError(f"layer {layer.name} is a dilated convolution (dilation {list(opts['dilation'])}): the "
                        "engine computes dilation 1 only")
    if op.kind == "DEPTHWISE_CONV_2D" and opts.get("depth_multiplier", 1) != 1:
        raise UserError(f"layer {layer.name} is a depthwise convolution with depth multiplier "
                        f"{opts['depth_multiplier']}: the engine computes one output channel per input channel only")
    s_in, zp_in = _quant(model, op.inputs[0])
    s_out, zp_out = _quant(model, op.outputs[0])
    w_scales = layer.weights.scales.astype(np.float64)
    channels = weights.shape[3] if op.kind == "DEPTHWISE_CONV_2D" else weights.shape[0]
    w_scales = np.broadcast_to(w_scales, (channels,)).copy()  # per-tensor: one scale for every channel
    bias = (np.zeros(channels, np.int64) if layer.bias is None
            else np.asarray(model.constant(layer.bias), np.int64))
    activation = ACTIVATIONS[opts.get("activation", 0)]
    low, high = activation_range(activation, s_out, zp_out)
    common: dict[str, Any] = dict(weight_scales=w_scales, bias=bias * s_in * w_scales, input_scale=s_in,
                  input_zero_point=zp_in + 128, output_scale=s_out, output_zero_point=zp_out + 128,
                  relu=activation in ("RELU", "RELU6"), quantisation="tflite", int_bias=bias,
                  clamp=(low + 128, high + 128))
    if op.kind == "FULLY_CONNECTED":
        x = model.tensors[op.inputs[0]].shape
        if int(np.prod(x[1:])) != weights.shape[1]:
            raise UserError(f"layer {layer.name} applies its weights to {int(np.prod(x)) // weights.shape[1]} rows "
                            "per image: the engine computes a fully connected layer on one vector per image")
        return QuantLayer(layer.name, "linear", weights, input_shape=(int(weights.shape[1]),), **common)
    _, h, w, c_in = model.tensors[op.inputs[0]].shape
    if op.kind == "CONV_2D":
        dense = np.ascontiguousarray(weights.transpose(0, 3, 1, 2))  # [O, KH, KW, I] -> [O, I, KH, KW]
        groups = 1
    else:
        dense = np.ascontiguousarray(weights.transpose(3, 0, 1, 2))  # [1, KH, KW, C] -> [C, 1, KH, KW]
        groups = dense.shape[0]
    stride = (int(opts["stride"][0]), int(opts["stride"][1]))
    kh, kw = dense.shape[2:]
    if opts["padding"] == "SAME":
        (top, bottom), (left, right) = _same_padding(h, kh, stride[0]), _same_padding(w, kw, stride[1])
    else:
        top = bottom = left = right = 0
    return QuantLayer(layer.name, "conv", dense, input_shape=(int(c_in), int(h), int(w)), stride=stride,
                      padding=(top, left), groups=groups, pad_end=(bottom, right), **common)


def codes_of(tensor: np.ndarray) -> np.ndarray:
    """int8 activations [n, H, W, C] (or [n, ...]) as the engine's uint8 codes [n, C, H, W]."""
    codes = (tensor.astype(np.int16) + 128).astype(np.uint8)
    return codes.transpose(0, 3, 1, 2) if codes.ndim == 4 else codes.reshape(len(codes), -1)


def _int8_of(codes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``codes_of`` for a tensor of TFLite ``shape`` (batch first)."""
    values = (codes.astype(np.int16) - 128).astype(np.int8)
    if values.ndim == 4:
        values = values.transpose(0, 2, 3, 1)
    return values.reshape((len(codes),) + tuple(shape[1:]))


@dataclass(frozen=True, eq=False)
class TFLiteLayerIO:
    layer: QuantLayer
    inputs: np.ndarray  # uint8 [n, *layer.input_shape]
    outputs: np.ndarray  # uint8 [n, *layer.output_shape]
    values: dict  # tensor index -> int8 values of every tensor up to the layer's output


def _weights_by_op(net) -> dict[int, np.ndarray]:
    return {net.model.layer(name).operator.index: np.asarray(codes) for name, codes in net.changed.items()}


def layer_io(net, name: str, pixels: np.ndarray) -> TFLiteLayerIO:
    """Layer ``name`` of the TFLite network ``net`` (its changed weights in place) and its
    input and output codes on ``pixels`` (the graph's input, [n, H, W, 3]), computed by the
    int8 reference up to that layer."""
    from cgphw.nn.tflite_reference import operator_output

    model = net.model
    layer = find_layer(model, name)
    q = quant_layer(model, layer, net.codes(layer.name))
    if len(pixels) == 0:
        raise UserError("give at least one image")
    weights = _weights_by_op(net)
    values = {model.inputs[0]: np.asarray(pixels)}
    for op in model.operators:
        if op.outputs[0] not in values:
            values[op.outputs[0]] = operator_output(model, op, values, weights)
        if op.index == layer.operator.index:
            break
    x, y = values[layer.operator.inputs[0]], values[layer.operator.outputs[0]]
    return TFLiteLayerIO(q, codes_of(x).reshape(len(x), *q.input_shape), codes_of(y).reshape(len(y), *q.output_shape),
                         values)


def predictions(net, pixels: np.ndarray, io: TFLiteLayerIO, outputs: np.ndarray | None = None) -> np.ndarray:
    """int64 [n]: the class the network predicts per image (0-based: the background output of a
    1001-way network left out), the rest of the network computed from ``io``'s tensors, with
    the layer's outputs replaced by ``outputs`` (uint8 codes [n, *output_shape]) when given."""
    from cgphw.nn.tflite_reference import run_reference

    model = net.model
    start = dict(io.values)
    if outputs is not None:
        out = find_layer(model, io.layer.name).operator.outputs[0]
        start[out] = _int8_of(outputs, model.tensors[out].shape)
    values = run_reference(model, pixels, net.changed, start)
    logits = values[model.logits].reshape(len(pixels), -1)
    classes = logits.argmax(1)
    return classes - 1 if logits.shape[1] == 1001 else classes
