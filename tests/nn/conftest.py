"""Shared fixtures of the network tests: the shipped model, a tiny MobileNetV2, small splits."""
import pytest

from cgphw.nn.data import load_split
from cgphw.nn.model import load_model
from cgphw.nn.train import TrainConfig, train

MOBILENET_ARGS = {"width": 0.5, "num_classes": 10, "in_channels": 1, "input_size": 32,
                  "mean": [0.5], "std": [0.5]}


@pytest.fixture(scope="session")
def lenet():
    return load_model()


@pytest.fixture(scope="session")
def test_split():
    return load_split("mnist5k", "test")


@pytest.fixture(scope="session")
def small_test(test_split):
    return test_split.head(200)


@pytest.fixture(scope="session")
def mobilenet():
    """MobileNetV2 width 0.5 on 32x32 MNIST, trained for a few batches only (seconds)."""
    cfg = TrainConfig(arch="mobilenetv2", args=tuple(sorted(MOBILENET_ARGS.items())), epochs=1,
                      qat_epochs=1, max_steps=2, batch=16, seed=3)
    tr = load_split("mnist5k", "train").head(64)
    va = load_split("mnist5k", "validation").head(32)
    model, _ = train(cfg, tr, va)
    return model


@pytest.fixture(scope="session")
def shipped_tflite():
    """The shipped int8 MobileNetV2 (TFLite) and its 7 photos' pixels."""
    from cgphw.nn.tflite_network import load_network, photos

    return load_network(), photos().images.pixels()
