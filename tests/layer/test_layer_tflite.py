"""The layer engine on MobileNetV2's int8 TFLite layers: TFLite's integer requantisation
(against its reference functions, on every accumulator value), depthwise convolution and
TensorFlow's SAME padding, all against LiteRT's reference-kernel tensors on the shipped photos.

The engine is simulated on a tile of each layer (a block of output rows, columns and
channels, the photos' real LiteRT inputs under it, the padding where the tile touches the
border): a whole 112 x 112 map takes minutes in Amaranth's simulator (see docs/mobilenet_engine.md).
"""
from __future__ import annotations

import numpy as np
import pytest
from litert_fixtures import layer_io, missing_model, tflite_layer

from cgphw.errors import UserError
from cgphw.hw.accel.plan import EngineConfig, layer_geometry
from cgphw.hw.accel.requant import TfliteRequant, layer_requant
from cgphw.tflite_requant import (
    activation_range,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from cgphw.layer.verify import run_engine
from cgphw.layer.requant_check import tflite_requant_check
from cgphw.verification.backends import missing_reason

needs_model = pytest.mark.skipif(missing_model() is not None, reason=str(missing_model()))

FIRST_CONV, DEPTHWISE, PROJECTION, CLASSIFIER = 1, 5, 6, 64  # operators: 3->32 stride 2; depthwise 96
# stride 2; 1x1 96->24; the classifier, a 1x1 conv 1280->1001 on the pooled features
TILES = {
    # name: (operator, photo, output rows, columns, channels, engine)
    "first-conv": (FIRST_CONV, "cat.bmp", range(108, 112), range(104, 112), None, EngineConfig()),
    "depthwise": (DEPTHWISE, "parrot.jpg", range(52, 56), range(0, 8), range(32, 64),
                  EngineConfig(lanes=16)),
    "projection": (PROJECTION, "hot_dog.jpg", range(0, 2), range(20, 28), None, EngineConfig(lanes=8, taps=32)),
    "classifier": (CLASSIFIER, "grace_hopper.bmp", range(0, 1), range(0, 1), range(600, 614),
                   EngineConfig(lanes=7, taps=64)),
}
FAULTY = ("first-conv", "depthwise", "projection")  # the classifier's buffer (1280 weights a lane) builds slowly


def _tile(name):
    index, photo, rows, cols, channels, config = TILES[name]
    layer = tflite_layer(index)
    x, y = layer_io(index, photo)
    part, xt = layer.tile(x, rows, cols, channels)
    picked = slice(None) if channels is None else slice(channels.start, channels.stop)
    return layer, part, xt, y[:, picked, rows.start:rows.stop, cols.start:cols.stop], config


# --- TFLite's functions, pinned down on values worked out by hand ------------------------
def test_tflite_rounding_functions():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(0.1) == (1717986918, -3)  # 0.8 * 2**31 = 1717986918.4
    assert quantize_multiplier(0.0) == (0, 0)
    a = np.array([1 << 30, -(1 << 30), 3, -3, -(1 << 31)])
    b = np.array([1 << 30, 1 << 30, 1 << 30, 1 << 30, -(1 << 31)])
    # 2ab / 2**32: 2**29; -2**29; 1.5 -> 2; -1.5 -> -1 (the nudge then truncation); saturation
    np.testing.assert_array_equal(saturating_rounding_doubling_high_mul(a, b),
                                  [1 << 29, -(1 << 29), 2, -1, (1 << 31) - 1])
    # ties away from zero: 2.5 -> 3, -2.5 -> -3, -1.5 -> -2, 1.25 -> 1, -1.75 -> -2, shift 0 keeps x
    x, exponent = np.array([5, -5, -6, 5, -7, -7]), np.array([1, 1, 2, 2, 2, 0])
    np.testing.assert_array_equal(rounding_divide_by_pot(x, exponent), [3, -3, -2, 1, -2, -7])
    assert activation_range("RELU6", 6 / 255, -128) == (-128, 127)
    assert activation_range("RELU6", 0.05, -100) == (-100, 20)
    assert activation_range("NONE", 0.3, 7) == (-128, 127)


@needs_model
def test_same_padding_as_tensorflow():
    conv = tflite_layer(FIRST_CONV)
    assert (conv.input_shape, conv.stride, conv.output_hw) == ((3, 224, 224), (2, 2), (112, 112))
    assert conv.padding == (0, 0) and conv.padding_after == (1, 1)  # nothing top/left, one bottom/right
    assert conv.input_zero_point == -1 + 128  # TFLite's int8 zero point -1, held as code + 128
    dw = tflite_layer(DEPTHWISE)
    assert dw.depthwise and dw.groups == 96 and dw.fan_in == 9 and dw.output_hw == (56, 56)
    assert dw.input_zero_point == 0 and (dw.output_low, dw.output_high) == (0, 255)  # ReLU6 outputs: -128..127


# --- the engine's requantisation against TFLite's on every accumulator value ---------------
def _ties_up(x, exponent):
    """RoundingDivideByPOT with ties toward +inf (TFLite's optimized kernels): a near miss."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    return (x + ((np.int64(1) << exponent) >> 1)) >> exponent


@needs_model
@pytest.mark.parametrize("index", [FIRST_CONV, DEPTHWISE, PROJECTION])
def test_tflite_requant_on_every_accumulator(index):
    layer = tflite_layer(index)
    requant = layer_requant(layer)
    assert isinstance(requant, TfliteRequant)
    check = tflite_requant_check(layer, requant)
    assert check.values > 1_000_000
    assert check.differ == 0, check.examples


@needs_model
def test_the_check_sees_another_rounding_of_ties(monkeypatch):
    """Ties toward +inf instead of away from zero differ on negative halves only: the
    projection (no ReLU) has them; after a ReLU6 they all clamp to the lowest code."""
    layer = tflite_layer(PROJECTION)
    monkeypatch.setattr("cgphw.tflite_requant.rounding_divide_by_pot", _ties_up)
    check = tflite_requant_check(layer, layer_requant(layer))
    assert check.differ > 0
    assert all(theirs == ours + 1 for _c, _acc, theirs, ours in check.examples)  # -x.5 up, not down


@needs_model
def test_integer_reference_equals_litert_on_whole_layers():
    """The engine's arithmetic in numpy on whole feature maps of a photo: every activation."""
    for index, photo in ((FIRST_CONV, "bird.bmp"), (DEPTHWISE, "dragonfly.bmp"), (PROJECTION, "grace_hopper.bmp")):
        layer = tflite_layer(index)
        x, y = layer_io(index, photo)
        got = layer_requant(layer).apply(layer.accumulators(x)).reshape(y.shape)
        np.testing.assert_array_equal(got, y)
        assert len(np.unique(y)) > 100


# --- the engine, simulated, against LiteRT's tensors ----------------------------------------
@needs_model
@pytest.mark.parametrize("name", [n if n in FAULTY else pytest.param(n, marks=pytest.mark.slow) for n in TILES])
def test_engine_equals_litert(name):
    _, part, xt, want, config = _tile(name)
    assert len(np.unique(want)) > min(20, want.size // 2)  # many codes, not a constant map
    np.testing.assert_array_equal(run_engine(part, xt, config=config), want)


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize("index, photo", [(FIRST_CONV, "bird.bmp"), (DEPTHWISE, "dragonfly.bmp"),
                                          (PROJECTION, "grace_hopper.bmp")])
def test_engine_equals_litert_on_whole_feature_maps(index, photo):
    """Every activation of a photo (first conv: 112 x 112 x 32), all lanes: 30-50 s each."""
    layer = tflite_layer(index)
    x, y = layer_io(index, photo)
    timing: dict = {}
    np.testing.assert_array_equal(run_engine(layer, x, config=EngineConfig(), timing=timing), y)
    geometry = layer_geometry(EngineConfig(), layer)
    assert timing["cycles"] <= geometry.words_per_image + geometry.channels + 64  # one word per cycle


@needs_model
@pytest.mark.parametrize("fault", ["requant-shift", "weight-bit", "acc-reset"])
@pytest.mark.parametrize("name", FAULTY)
def test_a_wrong_engine_differs_from_litert(name, fault):
    _, part, xt, want, config = _tile(name)
    assert (run_engine(part, xt, config=config, fault=fault) != want).any()


@needs_model
@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.skipif(missing_reason("icarus") is not None, reason=str(missing_reason("icarus")))
@pytest.mark.parametrize("name", FAULTY)
def test_engine_verilog_in_icarus_equals_litert(name, tmp_path):
    _, part, xt, want, config = _tile(name)
    got = run_engine(part, xt, config=config, source="sram", sim="icarus", workdir=tmp_path)
    np.testing.assert_array_equal(got, want)


# --- what the engine refuses -------------------------------------------------------------
@needs_model
def test_layers_and_parameters_the_engine_cannot_take():
    from dataclasses import replace

    dw = tflite_layer(DEPTHWISE)
    grouped = replace(tflite_layer(PROJECTION), groups=2,
                      weights=np.ascontiguousarray(tflite_layer(PROJECTION).weights[:, :48]))
    with pytest.raises(UserError, match="grouped convolution"):
        layer_geometry(EngineConfig(), grouped)
    for bad in (EngineConfig(lanes=7), EngineConfig(taps=4)):
        with pytest.raises(UserError, match="must divide"):
            layer_geometry(bad, dw)
    huge = replace(dw, int_bias=np.full(dw.out_channels, (1 << 31) - 1, np.int64))
    with pytest.raises(UserError, match="int32"):
        layer_requant(huge)


def test_engine_left_shifts_of_scales_above_one_half():
    """MobileNetV2's scales all shift right; a layer with s_in * s_w / s_out >= 0.5 shifts left
    first (TFLite's MultiplyByQuantizedMultiplier): the engine against the written-out functions."""
    from cgphw.quantlayer import QuantLayer

    rng = np.random.default_rng(19)
    weights = rng.integers(-4, 5, (4, 2, 3, 3)).astype(np.int8)  # small sums: scales above 1/2 spread them
    x = rng.integers(94, 107, (2, 2, 6, 6)).astype(np.uint8)
    scales = np.array([0.6, 1.5, 2.5, 0.01])  # with s_in / s_out = 1: shifts 0 (0.5..1), 1, 2 left and 6 right
    bias = rng.integers(-100, 100, 4)
    layer = QuantLayer("left", "conv", weights, scales, bias * scales, 0.002, 100, 0.002, 120, False, (2, 6, 6),
                       (1, 1), (1, 1), quantisation="tflite", int_bias=bias, clamp=(3, 250))
    requant = layer_requant(layer)
    assert isinstance(requant, TfliteRequant) and sorted(requant.shifts) == [-6, 0, 1, 2]
    want = requant.reference(layer.accumulators(x)).reshape(len(x), *layer.output_shape)
    assert len(np.unique(want)) > 60 and (want == 3).any() and (want == 250).any()  # both ends of the clamp
    np.testing.assert_array_equal(run_engine(layer, x, config=EngineConfig(lanes=2, taps=9)), want)
