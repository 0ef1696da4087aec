import json

import pytest
import torch

from cgphw.errors import UserError
from cgphw.nn import quant
from cgphw.nn.accuracy import logits, measure
from cgphw.nn.data import load_split
from cgphw.nn.model import DEFAULT_MODEL, load_model, save_model
from cgphw.nn.train import TrainConfig, augment, train


def test_shipped_model_reaches_98_percent_on_unseen_images(lenet, test_split):
    acc = measure(lenet, test_split)
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert acc.images == 1000 and acc.top1 == 0.987  # the figure the README states
    assert meta["accuracy"]["test"]["top1"] == acc.top1 and meta["accuracy"]["test"]["loss"] == acc.loss
    assert meta["data"]["source"] == "mnist5k" and meta["test_images"] == 1000
    assert DEFAULT_MODEL.stat().st_size < 1_000_000


def test_shipped_model_is_plain_data_and_int8_per_channel_symmetric(lenet):
    doc = torch.load(DEFAULT_MODEL, weights_only=True)  # refuses pickled code
    assert doc["arch"] == "lenet5" and doc["format"] == "cgphw-model/1"
    names = [n for n, _ in quant.weighted_layers(lenet.module)]
    assert names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for _, module in quant.weighted_layers(lenet.module):
        weight = module.weight()
        # symmetric per-channel: one scale per output channel, every zero point 0
        assert weight.dtype == torch.qint8 and weight.qscheme() in (torch.per_channel_symmetric,
                                                                    torch.per_channel_affine)
        assert weight.q_per_channel_scales().numel() == weight.shape[0]
        assert int(weight.q_per_channel_zero_points().abs().max()) == 0
    # conv+ReLU fused into one int8 module, as in the original study
    assert type(lenet.module.conv1).__name__ == "ConvReLU2d"


def test_tiny_training_run_converts_saves_and_reloads_exactly(tmp_path):
    tr = load_split("mnist5k", "train").head(128)
    va = load_split("mnist5k", "validation").head(64)
    cfg = TrainConfig(epochs=1, qat_epochs=1, max_steps=3, batch=32, seed=5)
    model, history = train(cfg, tr, va)
    assert len(history["float"]) == 1 and len(history["qat"]) == 1
    again, _ = train(cfg, tr, va)
    for key, value in model.qat_state.items():  # seeded + deterministic: bit-identical weights
        assert torch.equal(value, again.qat_state[key]), key
    path = save_model(model, tmp_path / "tiny.pt")
    loaded = load_model(path)
    assert torch.equal(logits(model, va), logits(loaded, va))


def test_augmentation_is_seeded_and_keeps_shape():
    images = torch.from_numpy(load_split("mnist5k", "validation").images[:8])
    cfg = TrainConfig()
    a = augment(images, cfg, torch.Generator().manual_seed(1))
    b = augment(images, cfg, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, images)


def test_bad_model_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable cgphw model"):
        load_model(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a cgphw-model/1 file"):
        load_model(tmp_path / "other.pt")
    doc = torch.load(DEFAULT_MODEL, weights_only=True)
    doc["qat_state"] = {k: v for k, v in doc["qat_state"].items() if not k.startswith("conv2")}
    torch.save(doc, tmp_path / "cut.pt")
    with pytest.raises(UserError, match="does not match its architecture"):
        load_model(tmp_path / "cut.pt")


def test_mobilenet_has_52_convs_and_quantizes(mobilenet):
    layers = quant.weighted_layers(mobilenet.module)
    convs = [n for n, m in layers if quant.layer_kind(m) != "linear"]
    assert len(convs) == 52 and convs[0] == "features.0.0" and convs[-1] == "features.18.0"
    assert sum(quant.layer_kind(m) == "depthwise-conv" for _, m in layers) == 17
    assert type(mobilenet.module.features[0][0]).__name__ == "ConvReLU2d"  # conv+bn+relu folded
    out = mobilenet(torch.from_numpy(load_split("mnist5k", "test").images[:4]))
    assert out.shape == (4, 10) and torch.isfinite(out).all()


def test_mobilenet_loads_torchvision_format_state_and_refuses_misfits():
    from cgphw.nn.mobilenet import MobileNetV2, load_float_state

    source = MobileNetV2(width=0.5, num_classes=10)
    state = source.state_dict()
    assert "features.1.conv.0.0.weight" in state and "classifier.1.weight" in state
    assert "features.18.1.running_mean" in state and "features.2.conv.3.num_batches_tracked" in state
    target = MobileNetV2(width=0.5, num_classes=10)
    load_float_state(target, state)
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in state.items())
    with pytest.raises(UserError, match="does not fit MobileNetV2"):
        load_float_state(MobileNetV2(width=0.5, num_classes=10), {k: v for k, v in state.items() if "18" not in k})
    with pytest.raises(UserError, match="features.0.0.weight has shape"):
        load_float_state(MobileNetV2(width=1.0, num_classes=10), state | {})


def test_shipped_model_is_package_data_and_a_missing_one_says_reinstall(monkeypatch, tmp_path):
    from cgphw.nn import model as model_mod
    from cgphw.nn.shipped import models_dir

    assert DEFAULT_MODEL == models_dir() / "lenet5_mnist5k.pt" and DEFAULT_MODEL.is_file()
    assert DEFAULT_MODEL.with_suffix(".json").is_file()
    monkeypatch.setattr(model_mod, "DEFAULT_MODEL", tmp_path / "gone.pt")
    with pytest.raises(UserError, match=r"shipped model cgphw:models/lenet5_mnist5k.pt is missing .*"
                                        r"reinstall cgphw, or pass --model FILE"):
        model_mod.load_model()
