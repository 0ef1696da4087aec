"""The engine's requantisation against torch's on *every* accumulator value a layer can
produce (not only those some images happen to reach): each channel's reachable range, torch's
code for each value there (``nn.reference.requant_table``), the engine's fixed-point code.
A TFLite layer is checked the same way against TFLite's reference functions written out
(``cgphw.tflite_requant``), channel by channel over its own range."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgphw.hw.accel.requant import Requant, TfliteRequant
from cgphw.quantlayer import QuantLayer

MAX_VALUES = 20_000_000  # accumulator values per check (a torch run per value)
MAX_TFLITE_VALUES = 2_000_000_000  # (channel, accumulator) pairs per TFLite check (numpy, ~50 M/s)
CHUNK = 4_000_000


@dataclass(frozen=True)
class RequantCheck:
    backend: str
    values: int  # (channel, accumulator) pairs compared
    differ: int  # pairs where torch and the engine give different codes
    examples: tuple  # (channel, acc, torch, engine) of the first few differences

    def to_json(self) -> dict:
        return {"backend": self.backend, "values": self.values, "differ": self.differ,
                "examples": [list(e) for e in self.examples]}


def accumulator_range(layer: QuantLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the smallest and largest accumulator any input codes 0..255 give."""
    w = layer.kernel_matrix.astype(np.int64)
    zp = int(layer.input_zero_point)
    lo, hi = w * (0 - zp), w * (255 - zp)
    return np.minimum(lo, hi).sum(1), np.maximum(lo, hi).sum(1)


def requant_check(layer: QuantLayer, requant: Requant | TfliteRequant, engine: str | None = None) -> RequantCheck:
    from cgphw.errors import UserError

    if isinstance(requant, TfliteRequant):
        return tflite_requant_check(layer, requant)
    from cgphw.nn import quant
    from cgphw.nn.reference import requant_table, torch_backend

    engine = engine or quant.ENGINE
    lo, hi = accumulator_range(layer)
    span = int(hi.max() - lo.min() + 1)
    if span > MAX_VALUES:
        raise UserError(f"layer {layer.name} reaches {span:,} accumulator values, more than this check runs "
                        f"({MAX_VALUES:,})")
    acc, table = requant_table(layer, int(lo.min()), int(hi.max()), engine)
    ours = requant.apply(acc[:, None], channel_axis=1)
    inside = (acc[:, None] >= lo[None, :]) & (acc[:, None] <= hi[None, :])
    differ = (ours != table) & inside
    examples = tuple((int(c), int(acc[i]), int(table[i, c]), int(ours[i, c]))
                     for i, c in np.argwhere(differ)[:5])
    return RequantCheck(torch_backend(layer, engine), int(inside.sum()), int(differ.sum()), examples)


def tflite_requant_check(layer: QuantLayer, requant: TfliteRequant) -> RequantCheck:
    """The engine's form of TFLite's requantisation against the reference functions, on every
    accumulator value each channel can reach."""
    from cgphw.errors import UserError

    lo, hi = accumulator_range(layer)
    total = int((hi - lo + 1).sum())
    if total > MAX_TFLITE_VALUES:
        raise UserError(f"layer {layer.name} reaches {total:,} (channel, accumulator) pairs, more than this check "
                        f"runs ({MAX_TFLITE_VALUES:,})")
    differ, examples = 0, list[tuple[int, int, int, int]]()
    for c in range(requant.channels):
        one = _one_channel(requant, c)
        for start in range(int(lo[c]), int(hi[c]) + 1, CHUNK):
            acc = np.arange(start, min(start + CHUNK, int(hi[c]) + 1), dtype=np.int64)[:, None]
            ours, theirs = one.apply(acc, channel_axis=1)[:, 0], one.reference(acc, channel_axis=1)[:, 0]
            wrong = np.flatnonzero(ours != theirs)
            differ += int(wrong.size)
            examples += [(c, int(acc[i, 0]), int(theirs[i]), int(ours[i])) for i in wrong[: 5 - len(examples)]]
    return RequantCheck("tflite reference kernels", total, differ, tuple(examples))


def _one_channel(requant: TfliteRequant, c: int) -> TfliteRequant:
    from dataclasses import replace

    return replace(requant, multipliers=(requant.multipliers[c],), shifts=(requant.shifts[c],),
                   biases=(requant.biases[c],))
