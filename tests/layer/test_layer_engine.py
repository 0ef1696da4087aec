"""The layer engine against torch's int8 modules on random layers of several shapes, exactly."""
from __future__ import annotations

import numpy as np
import pytest
from layer_fixtures import random_layer

from cgphw.errors import UserError
from cgphw.hw.accel.plan import EngineConfig
from cgphw.hw.accel.requant import requant_params
from cgphw.nn.reference import torch_layer_output
from cgphw.layer.verify import run_engine
from cgphw.verification.backends import missing_reason

CASES = {
    # name: (layer arguments, engine config)
    "conv-lenet-like": (dict(kind="conv", c_in=1, c_out=6, size=10, kernel=5), EngineConfig()),
    "conv-2in-lanes-taps-reuse": (dict(kind="conv", c_in=2, c_out=4, size=9, kernel=3),
                                  EngineConfig(lanes=2, taps=3, reuse=7)),
    "conv-stride2-pad1-no-relu": (dict(kind="conv", c_in=3, c_out=4, size=8, kernel=3, stride=2, padding=1,
                                       relu=False, out_zp=100), EngineConfig(lanes=1, taps=9)),
    "linear-relu": (dict(kind="linear", c_in=40, c_out=6), EngineConfig(lanes=3, taps=8)),
    "linear-no-relu-zp": (dict(kind="linear", c_in=30, c_out=5, relu=False, out_zp=61), EngineConfig()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_equals_torch_on_random_layers(name):
    args, config = CASES[name]
    layer, x = random_layer(sum(map(ord, name)), **args)
    want = torch_layer_output(layer, x)
    assert want.shape == (len(x), *layer.output_shape)
    assert len(np.unique(want)) > min(20, want.size // 4), "the test layer must exercise many output codes"
    got = run_engine(layer, x, config=config)
    np.testing.assert_array_equal(got, want)
    # the integer reference is what the engine computes, and equals torch here
    reference = requant_params(layer).apply(layer.accumulators(x)).reshape(want.shape)
    np.testing.assert_array_equal(reference, want)


def test_engine_reads_an_external_weight_memory():
    layer, x = random_layer(5, kind="conv", c_in=2, c_out=4, size=7, kernel=3)
    np.testing.assert_array_equal(run_engine(layer, x, config=EngineConfig(lanes=2), source="sram"),
                                  torch_layer_output(layer, x))


@pytest.mark.simulator
@pytest.mark.skipif(missing_reason("icarus") is not None, reason=str(missing_reason("icarus")))
def test_engine_verilog_in_icarus_equals_torch():
    layer, x = random_layer(11, kind="conv", c_in=2, c_out=4, size=7, kernel=3, stride=2, padding=1)
    got = run_engine(layer, x, config=EngineConfig(lanes=2, taps=9), source="sram", sim="icarus")
    np.testing.assert_array_equal(got, torch_layer_output(layer, x))


def test_windows_follow_torch_conv_geometry():
    layer, x = random_layer(3, kind="conv", c_in=2, c_out=3, size=9, kernel=3, stride=2, padding=1)
    assert layer.output_hw == (5, 5)
    win = layer.windows(x)
    assert win.shape == (3, 25, 18)
    # the top-left window reads the zero point where it overhangs the padded border
    assert (win[0, 0].reshape(2, 3, 3)[:, 0, :] == layer.input_zero_point).all()
    np.testing.assert_array_equal(win[0, 6].reshape(2, 3, 3), x[0, :, 1:4, 1:4])


def test_engine_parameters_must_fit_the_layer():
    layer, x = random_layer(1, kind="linear", c_in=30, c_out=5)
    for bad in (EngineConfig(lanes=2), EngineConfig(taps=7), EngineConfig(reuse=2)):
        with pytest.raises(UserError):
            run_engine(layer, x, config=bad)
