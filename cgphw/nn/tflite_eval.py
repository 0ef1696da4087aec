"""Accuracy of an int8 TFLite network on images, fast: LiteRT runs the flatbuffer (with the
changed weights written into a copy) image by image on one thread; the images are decoded
and cut once (shorter side 256, centre crop 224) and kept while the same images are
measured again (an insertion measures before and after, a campaign many networks).

The network's output k + 1 is class k when it has 1001 outputs (ImageNet with background),
output k otherwise. The loss is the cross-entropy of the dequantised pre-softmax logits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.data import Split
from cgphw.nn.tflite_network import TFLiteNetwork
from cgphw.progress import ProgressCallback, step

CHUNK = 25  # images between progress updates
CACHE_IMAGES = 5000  # decoded images kept for the next measurement (150 kB each)


def pixels(split: Split, progress: ProgressCallback | None = None, what: str = "reading images") -> np.ndarray:
    """uint8 [n, 224, 224, 3] of an image split (decoded once for the same files)."""
    files = getattr(split.images, "files", None)
    if files is None:
        raise UserError(f"{split.source} is not an image folder: a TFLite ImageNet network needs RGB images "
                        f"(--data DIR with one folder per class)")
    global _last
    key = tuple(files)
    if _last is not None and _last[0] == key:
        return _last[1]
    result = _decode(key, progress, what)
    if len(key) <= CACHE_IMAGES:
        _last = (key, result)
    return result


_last: tuple[tuple, np.ndarray] | None = None  # (files, their pixels) of the last split read


def _decode(files: tuple, progress, what: str) -> np.ndarray:
    from cgphw.nn.imagefolder import load_pixels

    out = np.empty((len(files), 224, 224, 3), np.uint8)
    for i, path in enumerate(files):
        if i % CHUNK == 0:
            step(progress, what, i, len(files))
        out[i] = load_pixels(path)
    step(progress, what, len(files), len(files))
    return out


def logits(network: TFLiteNetwork, images: np.ndarray, progress: ProgressCallback | None = None,
           what: str = "") -> np.ndarray:
    """float64 [n, classes] dequantised pre-softmax outputs, background column dropped."""
    runner = network.runner()
    out_tensor = network.model.tensors[network.model.logits]
    rows = []
    for i in range(0, len(images), CHUNK):
        step(progress, what or "int8 network (LiteRT)", i, len(images))
        rows.append(runner(images[i:i + CHUNK]))
    step(progress, what or "int8 network (LiteRT)", len(images), len(images))
    q = np.concatenate(rows) if rows else np.zeros((0, int(np.prod(out_tensor.shape[1:]))), np.int8)
    scores = (q.astype(np.float64) - out_tensor.zero_point) * float(out_tensor.scale)
    return scores[:, 1:] if scores.shape[1] == 1001 else scores


def measure(network: TFLiteNetwork, split: Split, progress: ProgressCallback | None = None, what: str = ""):
    """Top-1, top-5 and loss (an ``Accuracy``) of the network on an image split."""
    import torch

    from cgphw.nn.accuracy import score

    if len(split) == 0:
        raise UserError(f"data {split.source} holds no images to measure accuracy on")
    images = pixels(split, progress)
    out = logits(network, images, progress, what)
    if split.labels.max() >= out.shape[1]:
        raise UserError(f"{split.source} has class {int(split.labels.max())}, the network only {out.shape[1]} classes")
    return score(torch.from_numpy(out), split.labels, split.source)


@dataclass(frozen=True)
class Speed:
    """Images per CPU second (per core: one thread) of the evaluation and of its parts,
    measured side by side in one process; on a busy machine wall-clock rates are lower."""
    images: int
    end_to_end: float  # decode + resize + crop + LiteRT + top-k, as ``measure`` does it
    decode: float  # decode + resize + crop alone
    invoke: float  # LiteRT's invoke alone (the images already decoded)
    end_to_end_wall: float  # the end-to-end pass per wall-clock second
    cpu_per_wall: float  # CPU seconds per wall second over it (1.0: a whole core)

    def as_dict(self) -> dict:
        return {"images": self.images, "end_to_end_per_cpu_s": self.end_to_end, "decode_per_cpu_s": self.decode,
                "litert_invoke_per_cpu_s": self.invoke,
                "end_to_end_per_wall_s": self.end_to_end_wall, "cpu_per_wall": self.cpu_per_wall}

    def line(self) -> str:
        return (f"{self.images} images, one thread, per CPU second: end to end {self.end_to_end:.0f}/s; "
                f"decoding alone {self.decode:.0f}/s; LiteRT invoke alone {self.invoke:.0f}/s (wall clock: end to end "
                f"{self.end_to_end_wall:.0f}/s, CPU/wall {self.cpu_per_wall:.2f})")


def speed(network: TFLiteNetwork, split: Split) -> Speed:
    """Evaluation speed, each part timed in turn on the same images in this process."""
    if len(split) == 0:
        raise UserError(f"data {split.source} holds no images to time")
    files = tuple(split.images.files)  # type: ignore[attr-defined]
    runner = network.runner()
    runner(_decode(files[:1], None, ""))  # the first invoke prepares XNNPACK
    clocks = [(time.perf_counter(), time.process_time())]
    out = [runner(_decode(files[i:i + CHUNK], None, "")) for i in range(0, len(files), CHUNK)]
    np.argsort(np.concatenate(out), axis=1)[:, -5:]
    clocks.append((time.perf_counter(), time.process_time()))
    images = _decode(files, None, "")
    clocks.append((time.perf_counter(), time.process_time()))
    runner(images)
    clocks.append((time.perf_counter(), time.process_time()))
    n = len(files)
    cpu = [b[1] - a[1] for a, b in zip(clocks, clocks[1:], strict=False)]
    wall = clocks[1][0] - clocks[0][0]
    return Speed(n, n / cpu[0], n / cpu[1], n / cpu[2], n / wall, cpu[0] / wall)
