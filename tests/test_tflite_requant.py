"""TFLite's integer requantisation (cgphw.tflite_requant) on values worked out by hand from
the reference kernels' definitions; the whole network's agreement is tests/nn/test_tflite_reference.py."""
from fractions import Fraction

import numpy as np

from cgphw.tflite_requant import (INT32_MAX, INT32_MIN, activation_range, multiply_by_quantized_multiplier,
                                  quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul)


def test_quantize_multiplier_gives_q31_and_shift():
    m, s = quantize_multiplier([0.5, 1.0, 0.75, 0.0, 2.0 ** -40])
    assert m.tolist() == [1 << 30, 1 << 30, 3 << 29, 0, 0] and s.tolist() == [0, 1, 0, 0, 0]
    m, s = quantize_multiplier(1 - 2.0 ** -40)  # rounds up to 1.0: the multiplier halves, the shift grows
    assert (int(m), int(s)) == (1 << 30, 1)


def test_rounding_divide_by_pot_rounds_ties_away_from_zero():
    x = np.array([5, -5, 4, -4, 6, -6, 7, -7])
    assert rounding_divide_by_pot(x, 1).tolist() == [3, -3, 2, -2, 3, -3, 4, -4]
    assert rounding_divide_by_pot(x, 2).tolist() == [1, -1, 1, -1, 2, -2, 2, -2]


def test_saturating_rounding_doubling_high_mul():
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN)) == INT32_MAX
    # ties round up: 1.5 -> 2, -1.5 -> -1 (gemmlowp's nudge is 1 - 2**30 for negative products)
    assert saturating_rounding_doubling_high_mul([1 << 30, -(1 << 30)], 3).tolist() == [2, -1]
    assert saturating_rounding_doubling_high_mul(1 << 30, 1).tolist() == 1  # 0.5 -> 1


def test_multiplier_times_accumulator_is_within_two_roundings_of_the_exact_product():
    # the high multiply rounds to 2**-r (r: the right shift), the shift then to an integer
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 20), 1 << 20, 2000)
    scales = rng.uniform(1e-5, 0.9, 2000)
    m, s = quantize_multiplier(scales)
    got = multiply_by_quantized_multiplier(acc, m, s)
    exact = [Fraction(int(a)) * int(mm) * Fraction(2) ** (int(ss) - 31) for a, mm, ss in zip(acc, m, s, strict=True)]
    bound = [Fraction(1, 2) + Fraction(1, 2 ** (1 - int(ss))) for ss in s]
    assert all(abs(Fraction(int(g)) - e) <= b for g, e, b in zip(got, exact, bound, strict=True))


def test_activation_range_of_relu6_on_the_usual_scale():
    assert activation_range("RELU6", 6 / 255, -128) == (-128, 127)
    assert activation_range("RELU", 0.1, 5) == (5, 127) and activation_range("NONE", 0.1, 5) == (-128, 127)
