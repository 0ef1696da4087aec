"""The engine's requantisation against torch's on *every* accumulator value a layer can
produce (not only those some images happen to reach): each channel's reachable range, torch's
code for each value there (``nn.reference.requant_table``), the engine's fixed-point code."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgphw.hw.accel.requant import Requant
from cgphw.quantlayer import QuantLayer

MAX_VALUES = 20_000_000  # accumulator values per check (a torch run per value)


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


def requant_check(layer: QuantLayer, requant: Requant, engine: str | None = None) -> RequantCheck:
    from cgphw.errors import UserError
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
