import numpy as np
import pytest
import torch

from cgphw.errors import UserError
from cgphw.nn.accuracy import logits
from cgphw.nn.layers import extract, list_layers, scales, with_codes


def test_listing_reports_shapes_counts_and_scales(lenet):
    rows = {r.name: r for r in list_layers(lenet)}
    assert rows["conv1"].shape == (6, 1, 5, 5) and rows["conv1"].weights == 150
    assert rows["conv2"].shape == (16, 6, 5, 5) and rows["fc1"].shape == (120, 256)
    assert rows["conv1"].distinct == np.unique(extract(lenet, "conv1")).size
    assert 0 < rows["fc3"].scale_min <= rows["fc3"].scale_max
    assert rows["conv1"].kind == "conv" and rows["fc1"].kind == "linear"


def test_inserting_own_weights_is_bit_identical(lenet, small_test):
    before = logits(lenet, small_test)
    same = with_codes(lenet, {r.name: extract(lenet, r.name) for r in list_layers(lenet)})
    assert torch.equal(before, logits(same, small_test))


def test_inserting_shifted_codes_changes_exactly_those_codes(lenet, small_test):
    codes = extract(lenet, "conv2")
    shifted = np.clip(codes.astype(np.int16) + 3, -128, 127).astype(np.int8)
    changed = with_codes(lenet, {"conv2": shifted})
    assert np.array_equal(extract(changed, "conv2"), shifted)
    assert np.array_equal(extract(lenet, "conv2"), codes)  # the original model is untouched
    for name in ("conv1", "fc1", "fc2", "fc3"):
        assert np.array_equal(extract(changed, name), extract(lenet, name))
    for a, b in zip(scales(lenet, "conv2"), scales(changed, "conv2"), strict=True):
        assert np.array_equal(a, b)
    assert not torch.equal(logits(lenet, small_test), logits(changed, small_test))
    # the dequantised weight moves by exactly 3 scale steps wherever the code was not clipped
    s = scales(lenet, "conv2")[0][:, None, None, None]
    w0 = lenet.module.conv2.weight().dequantize().numpy()
    w1 = changed.module.conv2.weight().dequantize().numpy()
    moved = codes <= 124
    assert np.allclose((w1 - w0)[moved], np.broadcast_to(3 * s, codes.shape)[moved])


def test_insert_refuses_unknown_layers_wrong_shapes_and_dtypes(lenet):
    with pytest.raises(UserError, match="no int8 layer named 'conv9'"):
        with_codes(lenet, {"conv9": np.zeros((6, 1, 5, 5), np.int8)})
    with pytest.raises(UserError, match=r"shape \[6, 25\], the layer needs \[6, 1, 5, 5\]"):
        with_codes(lenet, {"conv1": np.zeros((6, 25), np.int8)})
    with pytest.raises(UserError, match="must be int8, got int16"):
        with_codes(lenet, {"conv1": np.zeros((6, 1, 5, 5), np.int16)})


def test_mobilenet_round_trip_every_layer(mobilenet, small_test):
    images = small_test.head(32)
    before = logits(mobilenet, images)
    names = [r.name for r in list_layers(mobilenet)]
    same = with_codes(mobilenet, {n: extract(mobilenet, n) for n in names})
    assert torch.equal(before, logits(same, images))
    flipped = {n: (extract(mobilenet, n).astype(np.int16) * -1).clip(-128, 127).astype(np.int8) for n in names}
    changed = with_codes(mobilenet, flipped)
    for n in names:
        assert np.array_equal(extract(changed, n), flipped[n]), n
        assert np.array_equal(scales(changed, n)[0], scales(mobilenet, n)[0]), n
    assert not torch.equal(before, logits(changed, images))
