"""TFLite's int8 SOFTMAX as its reference kernel computes it: gemmlowp fixed point throughout
(input differences in Q5.26, exp on negative values by a Taylor polynomial and a barrel
shifter of constants, the sum in Q12.19, its reciprocal by Newton-Raphson). Plain int64
numpy arrays holding int32 values; every step rounds as gemmlowp does."""
from __future__ import annotations

import numpy as np

from cgphw.tflite_requant import (INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot,
                                  saturating_rounding_doubling_high_mul as _mul)

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
# exp(-2**k) in Q0.31 for k = -2..4: the barrel shifter's factors (gemmlowp's constants)
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
              (4, 242))


def _shift_left_saturating(x: np.ndarray, exponent: int) -> np.ndarray:
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_minus_quarter_to_zero(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)  # a + 1/8: the Taylor expansion is around -1/8
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_mul(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + _mul(constant_term, x + poly)


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """exp(a) for a <= 0 given in Q5.26; the result in Q0.31."""
    fractional_bits = 31 - SCALED_DIFF_INTEGER_BITS
    quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_interval_minus_quarter_to_zero(_shift_left_saturating(a_mod_quarter_minus_quarter,
                                                                           SCALED_DIFF_INTEGER_BITS))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in EXP_BARREL:
        if SCALED_DIFF_INTEGER_BITS > exponent:
            bit = (remainder & (1 << (fractional_bits + exponent))) != 0
            result = np.where(bit, _mul(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) in Q0.31, by three Newton-Raphson steps in Q2.29."""
    half_denominator = (a + INT32_MAX + 1) >> 1  # RoundingHalfSum(a, 1): the sum is positive here
    x = 1515870810 + _mul(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - _mul(half_denominator, x)
        x = x + _shift_left_saturating(_mul(x, one_minus), 2)
    return _shift_left_saturating(x, 1)


def _reciprocal(total: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q0.31 reciprocal of the normalised total, bits over unit), TFLite's GetReciprocal."""
    headroom_plus_one = 32 - np.vectorize(int.bit_length, otypes=[np.int64])(total)
    bits_over_unit = integer_digits - headroom_plus_one
    shifted_minus_one = ((total << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return _one_over_one_plus_x(shifted_minus_one), bits_over_unit


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, smallest difference that counts) as the kernel prepares them."""
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    multiplier, shift = quantize_multiplier(real)
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << int(shift))
    return int(multiplier), int(shift), -int(np.floor(radius))


def softmax(x: np.ndarray, beta: float, input_scale: float) -> np.ndarray:
    """int8 softmax over the last axis; the output scale is 1/256 with zero point -128 (as required)."""
    multiplier, left_shift, diff_min = softmax_params(beta, input_scale)
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    counted = diff >= diff_min
    scaled = _mul(diff << left_shift, multiplier)
    exps = exp_on_negative_values(np.where(counted, scaled, 0))
    sum_of_exps = np.where(counted, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0).sum(axis=-1,
                                                                                                 keepdims=True)
    scale, bits_over_unit = _reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    out = rounding_divide_by_pot(_mul(scale, exps), bits_over_unit + 31 - 8) - 128
    return np.where(counted, np.clip(out, -128, 127), -128).astype(np.int8)
