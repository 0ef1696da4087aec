"""Requantisation: the engine's fixed point against exact rounding and against torch, on
every accumulator value a layer can produce; torch's fbgemm form pinned down operation by
operation."""
from __future__ import annotations

import numpy as np
import pytest
from layer_fixtures import random_layer

from cgphw.hw.accel.requant import exact_requant, requant_params
from cgphw.nn.reference import fbgemm_requant, requant_table
from cgphw.layer.requant_check import accumulator_range, requant_check


def _every_accumulator(layer):
    lo, hi = accumulator_range(layer)
    return np.arange(int(lo.min()), int(hi.max()) + 1)


def test_fixed_point_equals_exact_rounding_on_every_accumulator():
    layer, _ = random_layer(7, kind="conv", c_in=1, c_out=3, kernel=5)
    acc = _every_accumulator(layer)
    assert len(acc) > 100_000
    exact = np.stack([exact_requant(layer, acc, c) for c in range(layer.out_channels)], 1)
    np.testing.assert_array_equal(requant_params(layer, 32).apply(acc[:, None], channel_axis=1), exact)
    coarse = requant_params(layer, 12).apply(acc[:, None], channel_axis=1)
    assert (coarse != exact).sum() > 0  # too few multiplier bits do show


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_fbgemm_requantisation_is_float32_as_documented(kind):
    layer, _ = random_layer(9, kind=kind, c_in=2 if kind == "conv" else 60, c_out=4)
    acc, table = requant_table(layer, -150_000, 150_000, engine="fbgemm")
    np.testing.assert_array_equal(fbgemm_requant(layer, acc), table)


def test_torch_differs_from_exact_rounding_only_near_ties():
    """torch rounds in float32 (fbgemm as documented, oneDNN in its own order): on a few
    accumulator values in a million its code differs from the exactly rounded one, by one."""
    layer, _ = random_layer(7, kind="conv", c_in=1, c_out=3, kernel=5)
    check = requant_check(layer, requant_params(layer))
    assert check.values > 300_000
    assert check.differ <= check.values * 1e-4
    for _channel, _acc, theirs, ours in check.examples:
        assert abs(theirs - ours) == 1
