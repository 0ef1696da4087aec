"""TFLite's integer requantisation, as its reference kernels define it, on plain numpy arrays.

A real scale ``s`` becomes a Q31 multiplier and a power-of-two shift (``quantize_multiplier``);
an int32 accumulator is scaled by ``saturating_rounding_doubling_high_mul`` (``a * b / 2**31``
rounded to nearest, ties upward) and ``rounding_divide_by_pot`` (round half away from zero of
``x / 2**e``). Everything is integer arithmetic in int64 (values stay inside int32 as the
kernels keep them), so the results are the kernels' bit for bit. Shared by the int8 network
reference (``cgphw.nn.tflite_reference``) and by the hardware engine, which must match it.

ADD and MEAN have their own rescaling steps (``add_params``/``add``, ``mean_params``/``mean``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
ADD_LEFT_SHIFT = 20  # what the int8/uint8 ADD kernel shifts its inputs left by before rescaling


def _round_half_away(x):
    """std::round on float64 (numpy's round ties to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """(int64 Q31 multipliers, int64 shifts) with ``real ~= multiplier * 2**(shift - 31)``
    (TFLite's QuantizeMultiplier: a zero scale gives (0, 0); a tiny one below 2**-31, too)."""
    real = np.asarray(real, np.float64)
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError("a requantisation scale must be finite and non-negative")
    q, shift = np.frexp(real)
    fixed = _round_half_away(q * float(1 << 31)).astype(np.int64)
    carry = fixed == (1 << 31)  # q rounded up to 1.0
    fixed = np.where(carry, fixed // 2, fixed)
    shift = np.where(carry, shift + 1, shift).astype(np.int64)
    tiny = shift < -31
    fixed, shift = np.where(tiny, 0, fixed), np.where(tiny | (real == 0), 0, shift)
    return fixed, shift


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """The high 32 bits of ``2 * a * b``, rounded to nearest with ties upward (gemmlowp; int32 inputs)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    product = a * b  # |a * b| <= 2**62: no int64 overflow
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C++ division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """``x / 2**exponent`` rounded half away from zero (gemmlowp's RoundingDivideByPOT)."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """``x * multiplier * 2**(shift - 31)`` as TFLite's MultiplyByQuantizedMultiplier rounds it."""
    x, shift = np.asarray(x, np.int64), np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << left, multiplier), right)


def requantize(acc, multiplier, shift, zero_point: int, low: int = -128, high: int = 127) -> np.ndarray:
    """int8 outputs of int32 accumulators (bias included), channels last: per-channel
    ``multiplier``/``shift`` broadcast over the last axis; ``low..high`` is the fused activation."""
    out = multiply_by_quantized_multiplier(acc, multiplier, shift) + zero_point
    return np.clip(out, low, high).astype(np.int8)


def activation_range(activation: str, scale: float, zero_point: int, qmin: int = -128,
                     qmax: int = 127) -> tuple[int, int]:
    """The clamp a fused activation ('NONE', 'RELU', 'RELU6', 'RELU_N1_TO_1') sets on int8 codes."""
    def code(value: float) -> int:
        return zero_point + int(_round_half_away(np.float64(np.float32(value) / np.float32(scale))))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, code(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, code(0.0)), min(qmax, code(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, code(-1.0)), min(qmax, code(1.0))
    raise ValueError(f"unsupported fused activation {activation}")


def conv_multipliers(input_scale: float, weight_scales, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) of a conv/FC layer: ``s_in * s_w[c] / s_out`` in double."""
    real = np.float64(np.float32(input_scale)) * np.asarray(weight_scales, np.float32).astype(np.float64)
    return quantize_multiplier(real / np.float64(np.float32(output_scale)))


@dataclass(frozen=True)
class AddParams:
    """ADD's fixed-point rescaling: each input to a common scale, the sum to the output's."""
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def add_params(scale1: float, scale2: float, output_scale: float) -> AddParams:
    twice_max = 2.0 * float(max(np.float32(scale1), np.float32(scale2)))
    m1, s1 = quantize_multiplier(float(np.float32(scale1)) / twice_max)
    m2, s2 = quantize_multiplier(float(np.float32(scale2)) / twice_max)
    mo, so = quantize_multiplier(twice_max / float(np.float32((1 << ADD_LEFT_SHIFT) * np.float32(output_scale))))
    return AddParams(int(m1), int(s1), int(m2), int(s2), int(mo), int(so))


def add(x1, zero_point1: int, x2, zero_point2: int, params: AddParams, output_zero_point: int,
        low: int = -128, high: int = 127) -> np.ndarray:
    """The int8 ADD kernel: both inputs shifted left by 20, rescaled, summed, rescaled."""
    a = (np.asarray(x1, np.int64) - zero_point1) << ADD_LEFT_SHIFT
    b = (np.asarray(x2, np.int64) - zero_point2) << ADD_LEFT_SHIFT
    total = (multiply_by_quantized_multiplier(a, params.input1_multiplier, params.input1_shift)
             + multiply_by_quantized_multiplier(b, params.input2_multiplier, params.input2_shift))
    out = multiply_by_quantized_multiplier(total, params.output_multiplier, params.output_shift) + output_zero_point
    return np.clip(out, low, high).astype(np.int8)


def divide_rounding_half_away(total, count) -> np.ndarray:
    """``total / count`` rounded half away from zero, as the AVERAGE_POOL kernel does."""
    total = np.asarray(total, np.int64)
    half = count // 2
    up = np.where(total > 0, total + half, total - half)
    return np.where(up >= 0, up // count, -((-up) // count))  # C++ division truncates toward zero


def mean(x, axes: tuple[int, ...], input_scale: float, input_zero_point: int, output_scale: float,
         output_zero_point: int) -> np.ndarray:
    """The int8 MEAN kernel over ``axes`` (kept as size 1): the sum of ``x - zp`` times the
    multiplier of ``s_in / s_out`` with the count folded in (shifted left by floor(log2 count),
    divided by the count, truncating), then rescaled once."""
    x = np.asarray(x, np.int64)
    count = int(np.prod([x.shape[a] for a in axes]))
    total = (x - input_zero_point).sum(axis=axes, keepdims=True)
    real_multiplier, real_shift = quantize_multiplier(np.float64(np.float32(input_scale))
                                                      / np.float64(np.float32(output_scale)))
    fold = min(count.bit_length() - 1, 32, 31 + int(real_shift))
    scaled = multiply_by_quantized_multiplier(total, (int(real_multiplier) << fold) // count, int(real_shift) - fold)
    return np.clip(scaled + output_zero_point, -128, 127).astype(np.int8)
