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
from typing import TYPE_CHECKING

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.data import Split
from cgphw.nn.tflite_network import Runner, TFLiteNetwork
from cgphw.progress import ProgressCallback, step

if TYPE_CHECKING:
    from cgphw.nn.tflite_cut import ActivationCache

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
    out_tensor = network.model.tensors[network.model.logits]
    q = int8_logits(network, images, progress, what or "int8 network (LiteRT)")
    q = q.reshape(len(images), -1) if len(q) else np.zeros((0, int(np.prod(out_tensor.shape[1:]))), np.int8)
    scores = (q.astype(np.float64) - out_tensor.zero_point) * float(out_tensor.scale)
    return scores[:, 1:] if scores.shape[1] == 1001 else scores


def int8_logits(network: TFLiteNetwork, images: np.ndarray, progress: ProgressCallback | None = None,
                what: str = "", cut: bool = True, cache: ActivationCache | None = None) -> np.ndarray:
    """The int8 pre-softmax outputs [n, ...] LiteRT computes. A network with changed layers
    runs from its first changed layer on, fed with the unchanged network's activations there
    (``tflite_cut``: the same values bit for bit, computed once per layer and images), when
    ``cut`` and those activations fit the cache (``cache``: a ``tflite_cut.ActivationCache``,
    default the process's); else the whole network runs."""
    from cgphw.nn import tflite_cut

    model = network.model
    if cut and network.changed:
        start = tflite_cut.first_changed(model, network.changed)
        if tflite_cut.fits(model, start, len(images), cache):
            part = tflite_cut.cut(model, start, network.changed, output=model.logits)
            live = tflite_cut.head_activations(model, part, images, lambda content, inputs: _run(
                content, inputs, progress, "activations at the cut"), cache)
            return _run(part.tail, live, progress, what)[0]
    return _run(network.content(), (images,), progress, what)[0]


def _run(content: bytes, inputs: tuple[np.ndarray, ...], progress: ProgressCallback | None,
         what: str) -> tuple[np.ndarray, ...]:
    """A flatbuffer's outputs for these inputs, LiteRT's default interpreter, one image per invoke."""
    runner = Runner(content)
    parts = []
    for i in range(0, len(inputs[0]), CHUNK):
        step(progress, what, i, len(inputs[0]))
        parts.append(runner.run(tuple(x[i:i + CHUNK] for x in inputs)))
    step(progress, what, len(inputs[0]), len(inputs[0]))
    if not parts:
        return tuple(np.zeros((0,), np.int8) for _ in runner.outputs)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


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
    insert_layer: str  # an insertion into this layer, its logits on the decoded images:
    insert_whole: float  # the whole patched network
    insert_cut: float  # from the layer on, the activations before it cached
    insert_first: float  # the first such insertion, which also computes and caches the activations
    insert_identical: bool  # the cut's logits equal the whole network's, bit for bit

    def as_dict(self) -> dict:
        return {"images": self.images, "end_to_end_per_cpu_s": self.end_to_end, "decode_per_cpu_s": self.decode,
                "litert_invoke_per_cpu_s": self.invoke,
                "end_to_end_per_wall_s": self.end_to_end_wall, "cpu_per_wall": self.cpu_per_wall,
                "insert_layer": self.insert_layer, "insert_whole_per_cpu_s": self.insert_whole,
                "insert_cut_per_cpu_s": self.insert_cut, "insert_first_cut_per_cpu_s": self.insert_first,
                "insert_identical": self.insert_identical}

    def line(self) -> str:
        return (f"{self.images} images, one thread, per CPU second: end to end {self.end_to_end:.0f}/s; "
                f"decoding alone {self.decode:.0f}/s; LiteRT invoke alone {self.invoke:.0f}/s (wall clock: end to end "
                f"{self.end_to_end_wall:.0f}/s, CPU/wall {self.cpu_per_wall:.2f})\n"
                f"insertion into {self.insert_layer}: whole network {self.insert_whole:.0f}/s, "
                f"from {self.insert_layer} on with cached activations {self.insert_cut:.0f}/s "
                f"({self.insert_cut / self.insert_whole:.1f}x; "
                f"the first one, caching them, {self.insert_first:.0f}/s); logits "
                f"{'identical' if self.insert_identical else 'DIFFERENT'}")


def speed(network: TFLiteNetwork, split: Split, layer: str | None = None) -> Speed:
    """Evaluation speed, each part timed in turn on the same images in this process; then an
    insertion into ``layer`` (default: the second-last weight layer) run whole and cut."""
    from cgphw.nn.tflite_cut import ActivationCache

    if len(split) == 0:
        raise UserError(f"data {split.source} holds no images to time")
    layer = layer or network.model.layers[-2].name
    codes = network.codes(layer)
    codes.reshape(-1)[::2] = 0  # any change: the work does not depend on the values
    changed = network.with_codes({layer: codes})
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
    cache = ActivationCache()
    whole = int8_logits(changed, images, cut=False)
    clocks.append((time.perf_counter(), time.process_time()))
    first = int8_logits(changed, images, cache=cache)
    clocks.append((time.perf_counter(), time.process_time()))
    again = int8_logits(changed, images, cache=cache)
    clocks.append((time.perf_counter(), time.process_time()))
    n = len(files)
    cpu = [b[1] - a[1] for a, b in zip(clocks, clocks[1:], strict=False)]
    wall = clocks[1][0] - clocks[0][0]
    return Speed(n, n / cpu[0], n / cpu[1], n / cpu[2], n / wall, cpu[0] / wall, layer, n / cpu[3], n / cpu[5],
                 n / cpu[4], bool(np.array_equal(whole, first) and np.array_equal(whole, again)))
