"""Insertion without re-running what did not change: a TFLite network cut before its first
changed layer, fed with the unchanged network's activations at the cut.

The operators of a TFLite graph are stored in execution order, so changing the weights of
operator k leaves every tensor the operators before k compute unchanged. The tensors live
at the cut are those computed before k (or the graph's input) and read from k on: one in a
chain of layers, two inside a residual block of MobileNetV2 (the block's input waits for
its ADD). Two new flatbuffers are written from the network's own tensors, options and
operator versions (``tflite_writer``): the *head* (operators before k, the live tensors
as its outputs) and the *tail* (operators from k on, the live tensors as its inputs, the
changed weights in place). LiteRT's default interpreter runs both as it runs the whole
network, kernel for kernel, so the tail's logits are bit for bit those of the whole
patched network (tested at an early layer, inside a residual block and at the classifier).

The head's outputs for a set of images are kept in memory (``ActivationCache``, keyed by
the network file's hash, the cut and the images' hash), so the many insertions into one
layer (a campaign, a sensitivity scan) run the head once. They cost the live tensors' size
per image, in MobileNetV2 1.2 MB at most (before dw4: 112x112x96 int8), 15.7 kB before
conv51, 1.3 kB before the classifier, 7.2 MB for all 53 cuts together. The cache holds
``CACHE_BYTES`` (1 GiB: ~890 images at the largest cut, ~68,000 at conv51) per process;
where a cut's activations for the images would not fit, the whole network runs instead.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from cgphw.nn.tflite_model import TFLiteModel
from cgphw.nn.tflite_writer import TensorDef, operator_versions, write_tflite

CACHE_BYTES = 1 << 30  # activations kept for later insertions, all cuts and image sets together


def live_tensors(model: TFLiteModel, start: int) -> tuple[int, ...]:
    """The activations computed before operator ``start`` (or the graph's input) that
    operators from ``start`` on read, in order of their index."""
    before = {model.inputs[0]} | {t for op in model.operators[:start] for t in op.outputs}
    read = {t for op in model.operators[start:] for t in op.inputs if t >= 0}
    return tuple(sorted(before & read))


def subgraph(model: TFLiteModel, first: int, stop: int, inputs: tuple[int, ...], outputs: tuple[int, ...],
             weights: Mapping[str, np.ndarray] | None = None) -> bytes:
    """A flatbuffer of the operators ``first``..``stop - 1`` with these graph inputs and
    outputs (tensor indices of ``model``); ``weights``: layer -> int8 codes in place of the file's."""
    from cgphw.nn.tflite_model import Operator

    replaced = {model.layer(name).weights.index: np.asarray(codes) for name, codes in (weights or {}).items()}
    ops = model.operators[first:stop]
    used = sorted({*inputs, *outputs} | {t for op in ops for t in op.inputs + op.outputs if t >= 0})
    renumber = {t: i for i, t in enumerate(used)}
    tensors = []
    for index in used:
        t = model.tensors[index]
        data = replaced.get(index, model.constant(t) if t.data_offset is not None else None)
        tensors.append(TensorDef(t.name, t.shape, t.dtype, tuple(float(s) for s in t.scales),
                                 tuple(int(z) for z in t.zero_points), t.quantized_dim, data))
    kept = [Operator(i, op.kind, tuple(renumber.get(t, -1) for t in op.inputs),
                     tuple(renumber[t] for t in op.outputs), op.options) for i, op in enumerate(ops)]
    return write_tflite(tensors, kept, [renumber[t] for t in inputs], [renumber[t] for t in outputs],
                        operator_versions(model.content), f"cgphw: operators {first}..{stop - 1} of a network")


@dataclass(frozen=True)
class Cut:
    """A network cut before operator ``start``: its head and tail flatbuffers."""
    start: int
    live: tuple[int, ...]  # tensor indices of the original network, the tail's inputs in this order
    head: bytes | None  # None when the cut is at the graph's input (no operator before it)
    tail: bytes


def first_changed(model: TFLiteModel, layers) -> int:
    """The index of the first operator whose weights any of these layers are."""
    return min(model.layer(name).operator.index for name in layers)


def cut(model: TFLiteModel, start: int, weights: Mapping[str, np.ndarray] | None = None,
        output: int | None = None) -> Cut:
    """The network cut before operator ``start``; the tail's output: ``output`` (default the
    graph's) and its layers carry ``weights`` (all of them at or after ``start``)."""
    live = live_tensors(model, start)
    head = None if live == (model.inputs[0],) else subgraph(model, 0, start, model.inputs, live)
    tail = subgraph(model, start, len(model.operators), live, (model.outputs[0] if output is None else output,),
                    weights)
    return Cut(start, live, head, tail)


class ActivationCache:
    """The head's outputs per (network, cut, images), least recently used dropped first,
    at most ``limit`` bytes in all (a lock: a worker may measure on several threads)."""

    def __init__(self, limit: int = CACHE_BYTES):
        self.limit = limit
        self.entries: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()
        self.lock = threading.Lock()

    @property
    def size(self) -> int:
        return sum(a.nbytes for arrays in list(self.entries.values()) for a in arrays)

    def get(self, key: tuple) -> tuple[np.ndarray, ...] | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: tuple, arrays: tuple[np.ndarray, ...]) -> None:
        need = sum(a.nbytes for a in arrays)
        if need > self.limit:
            return
        with self.lock:
            while self.entries and self.size + need > self.limit:
                self.entries.popitem(last=False)
            self.entries[key] = arrays


_cache = ActivationCache()


def images_digest(images: np.ndarray) -> str:
    h = hashlib.blake2b(f"{images.dtype}{images.shape}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def bytes_per_image(model: TFLiteModel, start: int) -> int:
    """The memory the activations at the cut before operator ``start`` take per image."""
    return sum(int(np.prod(model.tensors[t].shape[1:])) * np.dtype(model.tensors[t].dtype).itemsize
               for t in live_tensors(model, start))


def fits(model: TFLiteModel, start: int, n_images: int, cache: ActivationCache | None = None) -> bool:
    """Whether the activations at this cut for ``n_images`` images fit the cache."""
    return bytes_per_image(model, start) * n_images <= (_cache if cache is None else cache).limit


def head_activations(model: TFLiteModel, c: Cut, images: np.ndarray, run,
                     cache: ActivationCache | None = None) -> tuple[np.ndarray, ...]:
    """The live tensors at the cut for ``images`` (cached); ``run(content, inputs)`` runs a
    flatbuffer on a tuple of batch-first arrays and returns its outputs."""
    cache = _cache if cache is None else cache
    key = (hashlib.sha256(model.content).hexdigest(), c.start, images_digest(images))
    found = cache.get(key)
    if found is None:
        found = (images,) if c.head is None else run(c.head, (images,))
        cache.put(key, found)
    return found
