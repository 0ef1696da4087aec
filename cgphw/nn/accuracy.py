"""How good an int8 network is: top-1, top-5, cross-entropy; and its sensitivity to noise."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cgphw.errors import UserError
from cgphw.nn.data import Split
from cgphw.nn.layers import extract, list_layers, with_codes
from cgphw.progress import ProgressCallback, step

BATCH = 500
SENSITIVITY_MODES = ("sign", "uniform", "offset")


@dataclass(frozen=True)
class Accuracy:
    top1: float  # fraction 0..1
    top5: float
    loss: float  # mean cross-entropy
    images: int
    source: str

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"top-1 {100 * self.top1:.2f} %  top-5 {100 * self.top5:.2f} %  "
                f"loss {self.loss:.4f}  ({self.images} images of {self.source})")


def logits(model, split: Split, progress: ProgressCallback | None = None, what: str = "") -> torch.Tensor:
    """float32 [n, classes]: the int8 network's outputs, computed in fixed batches."""
    what = what or f"int8 network on {split.source}"
    outs = []
    for i in range(0, len(split), BATCH):
        step(progress, what, i, len(split))
        # np.asarray: an image folder's images are read from disk only here
        outs.append(model(torch.from_numpy(np.asarray(split.images[i:i + BATCH]))))
    step(progress, what, len(split), len(split))
    return torch.cat(outs)


def score(out: torch.Tensor, labels: np.ndarray, source: str) -> Accuracy:
    target = torch.from_numpy(labels)
    k = min(5, out.shape[1])
    top = out.topk(k, dim=1).indices
    top1 = (top[:, 0] == target).double().mean().item()
    top5 = (top == target[:, None]).any(dim=1).double().mean().item()
    loss = F.cross_entropy(out.double(), target).item()
    return Accuracy(top1, top5, loss, int(len(labels)), source)


def measure(model, split: Split, progress: ProgressCallback | None = None, what: str = "") -> Accuracy:
    from cgphw.nn.tflite_network import TFLiteNetwork

    if isinstance(model, TFLiteNetwork):  # LiteRT runs it (cgphw.nn.tflite_eval)
        from cgphw.nn import tflite_eval

        return tflite_eval.measure(model, split, progress, what)
    if len(split) == 0:
        raise UserError(f"data {split.source} holds no images to measure accuracy on")
    return score(logits(model, split, progress, what), split.labels, split.source)


def perturb(codes: np.ndarray, k: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Codes moved by k (sign: +-k at random; uniform: any of -k..k; offset: +k), clipped to int8."""
    wide = codes.astype(np.int32)
    if mode == "sign":
        wide += k * rng.choice(np.array([-1, 1]), size=codes.shape)
    elif mode == "uniform":
        wide += rng.integers(-abs(k), abs(k) + 1, size=codes.shape)
    elif mode == "offset":
        wide += k
    else:
        raise UserError(f"unknown sensitivity mode {mode!r}: choose one of {', '.join(SENSITIVITY_MODES)}")
    return np.clip(wide, -128, 127).astype(np.int8)


def sensitivity(model, split: Split, ks: list[int], layers: list[str] | None = None,
                mode: str = "sign", seed: int = 0, progress: ProgressCallback | None = None) -> list[dict]:
    """Accuracy with a layer's codes perturbed by each k, one layer at a time (seeded).

    A layer entry "a+b" perturbs layers a and b together (the study's conv1+conv2 offsets).
    """
    if not ks:
        raise UserError("give at least one noise amplitude k")
    if any(abs(k) > 255 for k in ks):  # codes span -128..127: a larger k only clips
        raise UserError(f"noise amplitudes must lie in -255..255, got {ks}")
    if seed < 0:
        raise UserError(f"the seed must be a non-negative integer, got {seed}")
    entries = layers or [info.name for info in list_layers(model)]
    if any(not [n for n in entry.split("+") if n] for entry in entries):
        raise UserError(f"every layer entry must name a layer (a or a+b), got {entries}")
    base = measure(model, split, progress, "unperturbed network")
    rows: list[dict] = []
    total = len(entries) * len(ks)
    for li, entry in enumerate(entries):
        names = [n for n in entry.split("+") if n]
        codes = {name: extract(model, name) for name in names}
        for k in ks:
            step(progress, f"perturbed layers ({mode})", len(rows), total)
            # One generator per (entry, k): a row does not depend on which other rows ran.
            rng = np.random.default_rng([seed, li, k + 1024])
            noisy = {name: perturb(c, k, mode, rng) for name, c in codes.items()}
            acc = measure(with_codes(model, noisy), split)
            rows.append({"layer": entry, "k": k, "mode": mode, "top1": acc.top1, "top5": acc.top5,
                         "loss": acc.loss, "delta_top1": acc.top1 - base.top1})
    step(progress, f"perturbed layers ({mode})", total, total)
    return rows
