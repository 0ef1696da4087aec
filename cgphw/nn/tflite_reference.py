"""The int8 TFLite network computed in numpy, operator by operator, as LiteRT's reference
kernels (``BUILTIN_REF``) compute it: every tensor bit for bit (tests compare all of them).

Accumulators are summed in float64, which is exact here (|x - zp| <= 255, |w| <= 127 and
at most a few thousand terms stay far below 2**53), then requantised in integers by
``cgphw.tflite_requant``. SAME padding is TensorFlow's (the extra row/column at the end);
padded positions contribute nothing, as in the kernels.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.tflite_model import ACTIVATIONS, Operator, TFLiteModel
from cgphw.nn.tflite_softmax import softmax
from cgphw.tflite_requant import (activation_range, add, add_params, conv_multipliers, divide_rounding_half_away,
                                  mean, multiply_by_quantized_multiplier, quantize_multiplier, requantize)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of TensorFlow's SAME padding."""
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
             padding: str) -> tuple[np.ndarray, int, int]:
    """x [n, H, W, C] (zero-padded for SAME) and the output size; x's zeros are 'no contribution'."""
    n, h, w, c = x.shape
    if padding == "SAME":
        oh, top, bottom = _same_padding(h, kernel[0], stride[0], dilation[0])
        ow, left, right = _same_padding(w, kernel[1], stride[1], dilation[1])
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    else:
        oh = (h - (kernel[0] - 1) * dilation[0] - 1) // stride[0] + 1
        ow = (w - (kernel[1] - 1) * dilation[1] - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise UserError(f"a {kernel[0]}x{kernel[1]} window does not fit a {h}x{w} input")
    return x, oh, ow


def _taps(x: np.ndarray, oh: int, ow: int, ky: int, kx: int, stride, dilation) -> np.ndarray:
    y0, x0 = ky * dilation[0], kx * dilation[1]
    return x[:, y0:y0 + (oh - 1) * stride[0] + 1:stride[0], x0:x0 + (ow - 1) * stride[1] + 1:stride[1], :]


def _accumulate(model: TFLiteModel, op: Operator, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """int64 accumulators (bias included) of a conv, depthwise conv or fully connected operator."""
    zp = model.tensors[op.inputs[0]].zero_point
    centred = x.astype(np.float64) - zp
    w = weights.astype(np.float64)
    if op.kind == "FULLY_CONNECTED":
        acc = centred.reshape(-1, w.shape[1]) @ w.T
    else:
        stride, dilation = op.options["stride"], op.options["dilation"]
        kh, kw = w.shape[1], w.shape[2]
        padded, oh, ow = _windows(centred, (kh, kw), stride, dilation, op.options["padding"])
        if op.kind == "DEPTHWISE_CONV_2D":
            padded = np.repeat(padded, op.options["depth_multiplier"], axis=3)
            acc = np.zeros((x.shape[0], oh, ow, w.shape[3]))
            for ky in range(kh):
                for kx in range(kw):
                    acc += _taps(padded, oh, ow, ky, kx, stride, dilation) * w[0, ky, kx]
        elif kh == kw == 1:
            acc = _taps(padded, oh, ow, 0, 0, stride, dilation) @ w[:, 0, 0, :].T
        else:
            cols = np.concatenate([_taps(padded, oh, ow, ky, kx, stride, dilation)
                                   for ky in range(kh) for kx in range(kw)], axis=3)
            acc = cols @ w.reshape(w.shape[0], -1).T
    acc = acc.astype(np.int64)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        acc += model.constant(model.tensors[op.inputs[2]]).astype(np.int64)
    return acc


def _clamp(model: TFLiteModel, op: Operator) -> tuple[int, int]:
    out = model.tensors[op.outputs[0]]
    activation = ACTIVATIONS.get(op.options.get("activation", 0))
    if activation is None:
        raise UserError(f"operator {op.index} ({op.kind}) has a fused activation cgphw does not support")
    return activation_range(activation, out.scale, out.zero_point)


def weighted(model: TFLiteModel, op: Operator, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A conv / depthwise / FC operator's int8 output for int8 input ``x`` and int8 ``weights``."""
    t_in, t_w, t_out = (model.tensors[i] for i in op.inputs[:2] + op.outputs[:1])
    multiplier, shift = conv_multipliers(t_in.scale, t_w.scales, t_out.scale)
    low, high = _clamp(model, op)
    acc = _accumulate(model, op, x, weights)
    return requantize(acc, multiplier, shift, t_out.zero_point, low, high).reshape((x.shape[0],) + t_out.shape[1:])


def operator_output(model: TFLiteModel, op: Operator, values: Mapping[int, np.ndarray],
                    weights: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    """The output of one operator (batch first) given the values of its input tensors."""
    t = model.tensors
    x = values[op.inputs[0]]
    out = t[op.outputs[0]]
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        w = (weights or {}).get(op.index)
        return weighted(model, op, x, model.constant(t[op.inputs[1]]) if w is None else w)
    if op.kind == "ADD":
        a, b = t[op.inputs[0]], t[op.inputs[1]]
        low, high = _clamp(model, op)
        return add(x, a.zero_point, values[op.inputs[1]], b.zero_point, add_params(a.scale, b.scale, out.scale),
                   out.zero_point, low, high)
    if op.kind == "MEAN":
        axes = tuple(int(v) for v in np.asarray(model.constant(t[op.inputs[1]])).ravel())
        r = mean(x, axes, t[op.inputs[0]].scale, t[op.inputs[0]].zero_point, out.scale, out.zero_point)
        return r.reshape((x.shape[0],) + out.shape[1:])
    if op.kind == "AVERAGE_POOL_2D":
        return _average_pool(model, op, x)
    if op.kind == "RESHAPE":
        return x.reshape((x.shape[0],) + out.shape[1:])
    if op.kind == "QUANTIZE":
        src = t[op.inputs[0]]
        multiplier, shift = quantize_multiplier(np.float64(np.float32(src.scale)) / np.float64(np.float32(out.scale)))
        info = np.iinfo(np.dtype(out.dtype))
        r = multiply_by_quantized_multiplier(x.astype(np.int64) - src.zero_point, multiplier, shift) + out.zero_point
        return np.clip(r, info.min, info.max).astype(out.dtype)
    if op.kind == "SOFTMAX":
        return softmax(x, op.options.get("beta", 1.0), t[op.inputs[0]].scale)
    raise UserError(f"operator {op.index} is {op.kind}, which cgphw does not support")


def _average_pool(model: TFLiteModel, op: Operator, x: np.ndarray) -> np.ndarray:
    """The sum of each window's codes (padding left out) divided by their count, rounded half away from zero."""
    stride, kernel = op.options["stride"], op.options["filter"]
    ones = np.ones(x.shape[:3] + (1,))
    padded, oh, ow = _windows(x.astype(np.float64), kernel, stride, (1, 1), op.options["padding"])
    counts, _, _ = _windows(ones, kernel, stride, (1, 1), op.options["padding"])
    total, count = np.zeros((x.shape[0], oh, ow, x.shape[3])), np.zeros((x.shape[0], oh, ow, 1))
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            total += _taps(padded, oh, ow, ky, kx, stride, (1, 1))
            count += _taps(counts, oh, ow, ky, kx, stride, (1, 1))
    low, high = _clamp(model, op)
    return np.clip(divide_rounding_half_away(total.astype(np.int64), count.astype(np.int64)), low, high).astype(np.int8)


def run_reference(model: TFLiteModel, images: np.ndarray, weights: Mapping[str, np.ndarray] | None = None,
                  start: Mapping[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Every tensor of the network (index -> array, batch first) for input ``images`` (the graph's
    input dtype, [n, ...]); ``weights``: layer name -> int8 codes in place of the file's;
    ``start``: tensors already known (cached activations): operators whose inputs are all
    known and whose output is given are skipped."""
    by_op = {model.layer(name).operator.index: np.asarray(w) for name, w in (weights or {}).items()}
    values: dict[int, np.ndarray] = dict(start or {})
    values[model.inputs[0]] = np.asarray(images)
    for op in model.operators:
        if op.outputs[0] in values:
            continue
        values[op.outputs[0]] = operator_output(model, op, values, by_op)
    return values
