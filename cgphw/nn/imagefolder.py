"""ImageNet-style image folders: DIR/<class>/<image>, classes numbered in sorted folder order
(for ImageNet's wnid folders this is the usual 0..999 index of torchvision's models).

Images are read with Pillow when used, not all at once: the shorter side is resized to 256
pixels (bilinear), the centre 224 x 224 is cut out, and the pixels become float32 0..1 in
channel-first order. The ImageNet mean/std normalisation is the network's first step
(``MobileNetV2.mean``/``std``). Images come in a fixed seeded order, so the first N (``--limit``)
are a sample across classes rather than the first class.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cgphw.errors import UserError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
RESIZE, CROP = 256, 224
ORDER_SEED = 20240601


def is_image_folder(path: str | os.PathLike) -> bool:
    """A directory whose sub-folders hold images (and which is not an MNIST IDX folder)."""
    path = Path(path)
    if not path.is_dir() or any(path.glob("*-idx[13]-ubyte*")):
        return False
    return any(_images(d) for d in path.iterdir() if d.is_dir())


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


class LazyImages:
    """The folder's images as an array-like [n, 3, 224, 224] float32 that reads files only
    when converted (``np.asarray``); slicing gives another lazy view."""

    def __init__(self, files: tuple[Path, ...]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), 3, CROP, CROP)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return LazyImages(self.files[index])
        if isinstance(index, (int, np.integer)):
            return load_image(self.files[int(index)])
        return LazyImages(tuple(self.files[int(i)] for i in np.asarray(index).ravel()))

    def pixels(self) -> np.ndarray:
        """uint8 [n, 224, 224, 3]: the images as RGB pixels (what an int8 TFLite network takes)."""
        return np.stack([load_pixels(f) for f in self.files]) if self.files else np.zeros((0, CROP, CROP, 3), np.uint8)

    def __array__(self, dtype=None, copy=None):
        out = np.stack([load_image(f) for f in self.files]) if self.files else np.zeros(self.shape, np.float32)
        return out if dtype is None else out.astype(dtype)


def load_image(path: Path) -> np.ndarray:
    """float32 [3, 224, 224] in 0..1: shorter side resized to 256, centre crop 224."""
    return np.ascontiguousarray(load_pixels(path).transpose(2, 0, 1), np.float32) / np.float32(255.0)


def load_pixels(path: Path) -> np.ndarray:
    """uint8 [224, 224, 3] RGB: shorter side resized to 256 (bilinear), centre crop 224."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            w, h = image.size
            scale = RESIZE / min(w, h)
            size = (RESIZE, int(h * scale)) if w <= h else (int(w * scale), RESIZE)
            image = image.resize(size, Image.Resampling.BILINEAR)
            left, top = round((size[0] - CROP) / 2.0), round((size[1] - CROP) / 2.0)
            pixels = np.asarray(image.crop((left, top, left + CROP, top + CROP)), np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:  # Pillow's errors for damaged files
        raise UserError(f"cannot read the image {path} ({exc.__class__.__name__})") from None
    return pixels


def scan(path: str | os.PathLike) -> tuple[LazyImages, np.ndarray, list[str]]:
    """(images, int64 labels, class names) of an image folder, in the seeded order."""
    path = Path(path)
    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    files, labels = [], []
    for index, name in enumerate(classes):
        found = _images(path / name)
        files += found
        labels += [index] * len(found)
    if not files:
        raise UserError(f"{path} holds no images in class folders ({', '.join(EXTENSIONS)})")
    order = np.random.default_rng(ORDER_SEED).permutation(len(files))
    return (LazyImages(tuple(files[i] for i in order)), np.asarray(labels, np.int64)[order], classes)
