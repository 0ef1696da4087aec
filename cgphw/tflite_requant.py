"""TFLite's integer requantisation, as its reference kernels compute it (plain integers, numpy;
shared by the network reference and the layer engine, no torch, no HDL here).

Per output channel c of a conv / depthwise / fully connected layer::

    M[c], shift[c] = QuantizeMultiplier(input_scale * weight_scale[c] / output_scale)   (double)
    x   = acc + bias[c]                                                 (int32, bias int32)
    x   = x * 2**max(shift, 0)
    h   = SaturatingRoundingDoublingHighMul(x, M[c])      = round(x * M / 2**31), see below
    y   = RoundingDivideByPOT(h, max(-shift, 0))          ties away from zero
    out = clamp(y + output_zero_point, act_min, act_max)

Each function below is the C code written out in integers (int64 holds every product of two
int32), so the engine's own form (``hw.accel.requant``) can be checked against it on every
accumulator value.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real ~= multiplier * 2**(shift - 31): frexp, then
    ``TfLiteRound`` (half away from zero) of the mantissa times 2**31."""
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = int(math.floor(abs(mantissa) * (1 << 31) + 0.5)) * (1 if mantissa > 0 else -1)  # std::round
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return INT32_MAX, 30
    return q, shift


def effective_scale(input_scale: float, weight_scale: float, output_scale: float) -> float:
    """The real multiplier as TFLite computes it: double(input) * double(filter) / double(output),
    each scale a float32 widened to double."""
    return float(np.float32(input_scale)) * float(np.float32(weight_scale)) / float(np.float32(output_scale))


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int32 a, b -> int32: the high half of 2ab, rounded (the nudge), truncating division."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C's division truncates toward zero
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """x / 2**exponent rounded to nearest, ties away from zero (gemmlowp's form)."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, np.int64) << left)  # int32 arithmetic in C
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def requantize(acc: np.ndarray, bias: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, zero_point: int,
               act_min: int, act_max: int) -> np.ndarray:
    """int64 output codes of int accumulators; per-channel arrays broadcast against ``acc``."""
    x = _wrap32(np.asarray(acc, np.int64) + np.asarray(bias, np.int64))
    y = multiply_by_quantized_multiplier(x, multiplier, shift) + int(zero_point)
    return np.clip(y, act_min, act_max)


def activation_range(activation: str, scale: float, zero_point: int, qmin: int = -128,
                     qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation as a clamp of the output codes."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown fused activation {activation!r}")

    def quantize(real: float) -> int:  # zero_point + TfLiteRound(real / scale), in float32 as TFLite does
        value = float(np.float32(real) / np.float32(scale))
        return int(zero_point) + int(math.copysign(math.floor(abs(value) + 0.5), value))

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)
