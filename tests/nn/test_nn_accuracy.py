import math

import numpy as np
import pytest
import torch

from cgphw.errors import UserError
from cgphw.nn.accuracy import measure, perturb, score, sensitivity
from cgphw.nn.layers import extract, with_codes


def test_score_top1_top5_and_loss_on_known_logits():
    rows = [[5.0, 1, 0, 0, 0, 0, 0], [0.0, 1, 2, 3, 4, 5, 6], [6.0, 5, 4, 3, 2, 1, 0]]
    labels = [0, 0, 3]  # first: top-1; second: not even top-5; third: top-5 only
    acc = score(torch.tensor(rows), np.array(labels), "x")
    assert acc.top1 == pytest.approx(1 / 3) and acc.top5 == pytest.approx(2 / 3)
    expected = -np.mean([r[y] - math.log(sum(math.exp(v) for v in r)) for r, y in zip(rows, labels, strict=True)])
    assert acc.loss == pytest.approx(expected, rel=1e-9)


def test_perturb_clips_instead_of_wrapping():
    codes = np.array([-128, -127, 0, 126, 127], np.int8)
    assert perturb(codes, 2, "offset", np.random.default_rng(0)).tolist() == [-126, -125, 2, 127, 127]
    assert perturb(codes, -2, "offset", np.random.default_rng(0)).tolist() == [-128, -128, -2, 124, 125]
    moved = perturb(np.zeros(1000, np.int8), 3, "sign", np.random.default_rng(0))
    assert set(moved.tolist()) == {-3, 3}
    uni = perturb(np.zeros(1000, np.int8), 2, "uniform", np.random.default_rng(0))
    assert set(uni.tolist()) == {-2, -1, 0, 1, 2}
    with pytest.raises(UserError, match="unknown sensitivity mode"):
        perturb(codes, 1, "wild", np.random.default_rng(0))


def test_sensitivity_is_seeded_and_hurts_with_k(lenet, small_test):
    rows = sensitivity(lenet, small_test.head(100), [1, 64], ["conv1"], "sign", seed=4)
    again = sensitivity(lenet, small_test.head(100), [64], ["conv1"], "sign", seed=4)
    assert [r["k"] for r in rows] == [1, 64] and rows[1] == again[0]
    assert rows[1]["top1"] < rows[0]["top1"]


def test_sensitivity_group_perturbs_layers_together(lenet, small_test):
    images = small_test.head(100)
    row = sensitivity(lenet, images, [-6], ["conv1+conv2"], "offset")[0]
    both = {n: perturb(extract(lenet, n), -6, "offset", None) for n in ("conv1", "conv2")}
    assert row["layer"] == "conv1+conv2" and row["top1"] == measure(with_codes(lenet, both), images).top1
