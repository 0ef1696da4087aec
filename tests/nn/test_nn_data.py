import gzip

import numpy as np
import pytest

from cgphw.errors import UserError
from cgphw.nn.data import load_split, write_idx


def test_mnist5k_splits_are_stratified_disjoint_and_reproducible():
    splits = {s: load_split("mnist5k", s) for s in ("train", "validation", "test")}
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [3500, 500, 1000]
    for s, per in (("train", 350), ("validation", 50), ("test", 100)):
        assert np.bincount(splits[s].labels, minlength=10).tolist() == [per] * 10
        assert splits[s].images.shape[1:] == (1, 28, 28) and splits[s].images.dtype == np.float32
        assert 0.0 <= splits[s].images.min() and splits[s].images.max() <= 1.0
    keys = {s: {img.tobytes() for img in splits[s].images} for s in splits}
    assert not keys["test"] & keys["train"] and not keys["test"] & keys["validation"]
    again = load_split("mnist5k", "test")
    assert np.array_equal(again.images, splits["test"].images) and np.array_equal(again.labels, splits["test"].labels)


def _write_mnist_dir(tmp_path, gz: bool, n_train=24, n_test=10):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_loads_test_and_splits_train(tmp_path, gz):
    data = _write_mnist_dir(tmp_path, gz)
    test = load_split(tmp_path, "test")
    images, labels = data["t10k"]
    assert np.array_equal(test.labels, labels)
    assert np.array_equal(np.rint(test.images[:, 0] * 255).astype(np.uint8), images)
    train, val = load_split(tmp_path, "train"), load_split(tmp_path, "validation")
    assert len(train) + len(val) == 24 and len(val) > 0
    both = {img.tobytes() for img in train.images} | {img.tobytes() for img in val.images}
    assert len(both) == 24


def test_eval_needs_only_t10k_files(tmp_path):
    _write_mnist_dir(tmp_path, gz=False)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).unlink()
    assert len(load_split(tmp_path, "test")) == 10
    with pytest.raises(UserError, match="train-images-idx3-ubyte.*missing"):
        load_split(tmp_path, "train")


def test_bad_magic_truncated_and_mismatched_files_are_refused(tmp_path):
    _write_mnist_dir(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    blob = bytearray(path.read_bytes())
    blob[3] = 1  # magic 2049 (labels) where images are expected
    path.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="magic number 2049, expected 2051"):
        load_split(tmp_path, "test")
    _write_mnist_dir(tmp_path, gz=False)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(UserError, match="header"):
        load_split(tmp_path, "test")
    _write_mnist_dir(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(UserError, match="10 images but 9 labels"):
        load_split(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((9, 20, 20), np.uint8))
    with pytest.raises(UserError, match="not \\[n, 28, 28\\]"):
        load_split(tmp_path, "test")


def test_corrupt_gzip_and_missing_sources(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read MNIST file"):
        load_split(tmp_path, "test")
    with pytest.raises(UserError, match="neither 'mnist5k' nor a directory"):
        load_split(tmp_path / "nowhere", "test")
    with pytest.raises(UserError, match="unknown data split"):
        load_split("mnist5k", "dev")
    with gzip.open(tmp_path / "x.gz", "wb") as fh:
        fh.write(b"")


def test_builtin_images_are_package_data_with_their_licence():
    import hashlib

    from cgphw.nn.data import MNIST5K_SHA256, mnist5k_path

    with np.load(mnist5k_path(), allow_pickle=False) as archive:
        images, labels = archive["images"], archive["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == MNIST5K_SHA256
    licence = (mnist5k_path().parent / "LICENSE.txt").read_text()
    assert "Creative Commons Attribution-Share Alike 3.0" in licence and "LeCun" in licence


@pytest.mark.parametrize("damage", ["pixel", "order", "not-npz"])
def test_damaged_builtin_images_are_refused(monkeypatch, tmp_path, damage):
    from cgphw.nn import data as data_mod

    with np.load(data_mod.mnist5k_path(), allow_pickle=False) as archive:
        images, labels = archive["images"].copy(), archive["labels"].copy()
    fake = tmp_path / "mnist5k.npz"
    if damage == "pixel":
        images[4999, 27, 27] ^= 1
        np.savez_compressed(fake, images=images, labels=labels)
    elif damage == "order":  # the same images in another order would move the seeded split
        np.savez_compressed(fake, images=images[::-1], labels=labels[::-1])
    else:
        fake.write_text("not a zip")
    monkeypatch.setattr(data_mod, "mnist5k_path", lambda: fake)
    data_mod._mnist5k_arrays.cache_clear()
    try:
        with pytest.raises(UserError, match="reinstall cgphw"):
            load_split("mnist5k", "test")
    finally:
        data_mod._mnist5k_arrays.cache_clear()
