"""Requantisation with a fixed-point multiplier: the integer function the layer engine
computes, and its numpy reference.

Torch computes ``round((acc * s_in * s_w[c] + bias[c]) / s_out)`` in float32 (fbgemm:
``rint(f32(f32(acc) + f32(bias / f32(s_in * s_w))) * f32(s_in * s_w / s_out))``; oneDNN in
another order), so each backend deviates from the exactly rounded value at a few accumulator
values where the real result lies within a float32 rounding error of a half-integer — and the
backends disagree with each other there. The engine aims at the exact value instead, with
one multiplier per output channel and one shift per layer::

    y = clamp(((acc * M[c] + R[c]) >> S) + zero_point, low, 255)
    M[c] = round(s_in * s_w[c] / s_out * 2**S),  R[c] = round((bias[c] / s_out + 1/2) * 2**S)

computed from the exact binary values of the scales (``fractions.Fraction``), with S chosen so
the largest multiplier has ``mult_bits`` bits. ``>> S`` is an arithmetic shift (floor), so
``R`` carries the bias and the rounding half. With 32 bits the fixed-point error is far below
float32's (docs/layer-engine.md: mismatches against torch, measured over every accumulator value).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from cgphw.errors import UserError
from cgphw.quantlayer import QuantLayer

DEFAULT_MULT_BITS = 32


@dataclass(frozen=True)
class Requant:
    multipliers: tuple[int, ...]  # M[c] >= 0, < 2**mult_bits
    offsets: tuple[int, ...]  # R[c]: bias and rounding, in units of 2**-shift
    shift: int  # S (the same for every channel: a constant shift is wiring)
    zero_point: int
    low: int  # output_zero_point with a fused ReLU, else 0
    acc_bits: int  # signed accumulator width that holds any sum of this layer
    mult_bits: int

    high = 255

    @property
    def channels(self) -> int:
        return len(self.multipliers)

    @property
    def product_bits(self) -> int:
        """Signed width of acc * M + R."""
        widest = max(max(abs(r) for r in self.offsets), 1)
        return max(self.acc_bits + self.mult_bits + 1, widest.bit_length() + 1) + 1

    def apply(self, acc: np.ndarray, channel_axis: int = -2) -> np.ndarray:
        """uint8 codes of int64 accumulators (channels along ``channel_axis``)."""
        acc = np.asarray(acc, np.int64)
        shape = [1] * acc.ndim
        shape[channel_axis] = self.channels
        m = np.array(self.multipliers, dtype=object if self.product_bits > 62 else np.int64).reshape(shape)
        r = np.array(self.offsets, dtype=m.dtype).reshape(shape)
        q = (acc.astype(m.dtype) * m + r) >> self.shift
        return np.clip(q + self.zero_point, self.low, self.high).astype(np.uint8)

    def to_json(self) -> dict:
        return {"multipliers": list(self.multipliers), "offsets": list(self.offsets), "shift": self.shift,
                "zero_point": self.zero_point, "low": self.low, "high": self.high,
                "acc_bits": self.acc_bits, "mult_bits": self.mult_bits}


def acc_bits(fan_in: int) -> int:
    """Signed width holding any sum of ``fan_in`` products int8 weight x (code - zero point)."""
    return (fan_in * 128 * 255).bit_length() + 1


def requant_params(layer: QuantLayer, mult_bits: int = DEFAULT_MULT_BITS) -> Requant:
    if not 8 <= mult_bits <= 48:
        raise UserError(f"the requantisation multiplier needs 8..48 bits, got {mult_bits}")
    s_out = Fraction(float(layer.output_scale))
    real_m = [Fraction(float(layer.input_scale)) * Fraction(float(s)) / s_out for s in layer.weight_scales]
    largest = max(real_m)
    # largest * 2**S < 2**mult_bits, as large as possible
    shift = mult_bits - 1 - _floor_log2(largest)
    if shift < 0:
        raise UserError(f"layer {layer.name}: its scale ratio {float(largest):.3g} is too large for a "
                        f"{mult_bits}-bit multiplier")
    one = 1 << shift
    multipliers = tuple(_round(m * one) for m in real_m)
    offsets = tuple(_round((Fraction(float(b)) / s_out + Fraction(1, 2)) * one) for b in layer.bias)
    assert max(multipliers) < 1 << mult_bits
    return Requant(multipliers, offsets, shift, int(layer.output_zero_point), layer.output_low,
                   acc_bits(layer.fan_in), mult_bits)


def exact_requant(layer: QuantLayer, acc: np.ndarray, channel: int) -> np.ndarray:
    """uint8 codes of the exactly rounded real result (half to even) for one channel: the
    yardstick for the fixed-point and the float32 forms. Slow for huge arrays; exact."""
    s = Fraction(float(layer.input_scale)) * Fraction(float(layer.weight_scales[channel]))
    b, s_out = Fraction(float(layer.bias[channel])), Fraction(float(layer.output_scale))
    approx = (np.asarray(acc, np.float64) * float(s) + float(b)) / float(s_out)
    out = np.rint(approx).astype(np.int64)
    # float64 is off only within ~1e-9 of a half-integer: settle those exactly
    for i in np.flatnonzero(np.abs(np.abs(approx - np.floor(approx)) - 0.5) < 1e-6):
        value = (int(acc[i]) * s + b) / s_out
        out[i] = _round_half_even(value)
    return np.clip(out + int(layer.output_zero_point), layer.output_low, 255).astype(np.uint8)


def _floor_log2(x: Fraction) -> int:
    k = x.numerator.bit_length() - x.denominator.bit_length()
    return k if Fraction(2) ** k <= x else k - 1


def _round(x: Fraction) -> int:
    return int((x + Fraction(1, 2)).__floor__())


def _round_half_even(x: Fraction) -> int:
    floor = x.numerator // x.denominator
    rest = x - floor
    return floor + (1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2) else 0)


# --- TFLite's integer requantisation ------------------------------------------------------
@dataclass(frozen=True)
class TfliteRequant:
    """TFLite's per-channel requantisation (``cgphw.tflite_requant``) in the form the engine
    computes it::

        x = (acc + bias[c]) << left[c]
        h = (x * M[c] + 2**30) >> 31                        SaturatingRoundingDoublingHighMul
        y = (h + half[c] - (h < 0 and right[c] > 0)) >> right[c]     RoundingDivideByPOT
        code = clamp(y + zero_point, low, high)

    The high multiply's nudge and truncating division are one floor with 2**30 added (for
    M >= 0 they agree on every x), and the rounding division's threshold is the half less one
    for negative h: shifts and adds only, each channel's constants wired to its lane."""
    multipliers: tuple[int, ...]  # Q31, 0 <= M < 2**31
    shifts: tuple[int, ...]  # TFLite's exponent: left = max(s, 0), right = max(-s, 0)
    biases: tuple[int, ...]  # int32
    zero_point: int  # output zero point (codes 0..255: TFLite's int8 + 128)
    low: int
    high: int
    acc_bits: int
    mult_bits: int = 31
    kind = "tflite"

    @property
    def channels(self) -> int:
        return len(self.multipliers)

    def left(self, c: int) -> int:
        return max(self.shifts[c], 0)

    def right(self, c: int) -> int:
        return max(-self.shifts[c], 0)

    def apply(self, acc: np.ndarray, channel_axis: int = -2) -> np.ndarray:
        """uint8 codes of int64 accumulators (channels along ``channel_axis``), in the engine's form."""
        acc = np.asarray(acc, np.int64)
        shape = [1] * acc.ndim
        shape[channel_axis] = self.channels

        def per_channel(values):
            return np.array(values, np.int64).reshape(shape)

        right = per_channel([self.right(c) for c in range(self.channels)])
        x = (acc + per_channel(self.biases)) << per_channel([self.left(c) for c in range(self.channels)])
        h = (x * per_channel(self.multipliers) + (1 << 30)) >> 31
        half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
        y = (h + half - ((h < 0) & (right > 0))) >> right
        return np.clip(y + self.zero_point, self.low, self.high).astype(np.uint8)

    def reference(self, acc: np.ndarray, channel_axis: int = -2) -> np.ndarray:
        """The same codes by TFLite's reference functions written out (``cgphw.tflite_requant``)."""
        from cgphw.tflite_requant import requantize

        acc = np.asarray(acc, np.int64)
        shape = [1] * acc.ndim
        shape[channel_axis] = self.channels
        codes = requantize(acc + np.reshape(self.biases, shape), np.reshape(self.multipliers, shape),
                           np.reshape(self.shifts, shape), self.zero_point - 128, self.low - 128, self.high - 128)
        return (codes.astype(np.int16) + 128).astype(np.uint8)

    def to_json(self) -> dict:
        return {"kind": self.kind, "multipliers": list(self.multipliers), "shifts": list(self.shifts),
                "biases": list(self.biases), "zero_point": self.zero_point, "low": self.low, "high": self.high,
                "acc_bits": self.acc_bits, "mult_bits": self.mult_bits}


def tflite_requant_params(layer: QuantLayer) -> TfliteRequant:
    """The Q31 multipliers and shifts TFLite derives from the layer's scales; UserError where
    the layer's sums could leave TFLite's int32 arithmetic (C would overflow there)."""
    from cgphw.tflite_requant import conv_multipliers

    assert layer.int_bias is not None  # QuantLayer checks a TFLite layer has it
    m, s = conv_multipliers(layer.input_scale, layer.weight_scales, layer.output_scale)
    multipliers, shifts = tuple(int(v) for v in m), tuple(int(v) for v in s)
    biases = tuple(int(b) for b in layer.int_bias)
    if min(multipliers) < 0:
        raise UserError(f"layer {layer.name}: a negative requantisation scale; the engine computes positive ones")
    w = np.abs(layer.kernel_matrix.astype(np.int64)).sum(1)
    zp = int(layer.input_zero_point)
    widest = w * max(zp, 255 - zp) + np.abs(np.array(biases, np.int64))
    worst = int(max(int(widest[c]) << max(shifts[c], 0) for c in range(len(shifts))))
    if worst >= 1 << 31:
        raise UserError(f"layer {layer.name}: its sums may reach {worst:,}, beyond the int32 arithmetic of TFLite's "
                        "kernels (whose overflow the engine cannot reproduce)")
    return TfliteRequant(multipliers, shifts, biases, int(layer.output_zero_point), layer.output_low,
                         layer.output_high, acc_bits(layer.fan_in))


def layer_requant(layer: QuantLayer, mult_bits: int = DEFAULT_MULT_BITS) -> Requant | TfliteRequant:
    """The requantisation the layer's quantisation calls for: TFLite's integer one (fixed Q31,
    ``mult_bits`` does not apply) or the exactly rounded fixed point for torch's layers."""
    return tflite_requant_params(layer) if layer.quantisation == "tflite" else requant_params(layer, mult_bits)
