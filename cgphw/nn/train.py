"""Training: float pre-training, then quantization-aware fine-tuning, model selection on validation.

Seeded and run with deterministic torch settings: the same seed, thread count and CPU give
bit-identical weights. Augmentation (random rotation, scale and shift) is done with torch's
affine_grid / grid_sample, from a seeded generator.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from cgphw.errors import UserError
from cgphw.nn import quant
from cgphw.nn.accuracy import measure
from cgphw.nn.data import Split
from cgphw.nn.model import Int8Model, float_network, qat_network
from cgphw.progress import ProgressCallback, step


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "lenet5"
    args: tuple = ()  # (key, value) pairs for the architecture
    seed: int = 1
    epochs: int = 100  # float epochs
    qat_epochs: int = 12
    batch: int = 64
    lr: float = 3e-3
    qat_lr: float = 3e-4
    weight_decay: float = 5e-4
    rotate_deg: float = 12.0
    scale: float = 0.1
    shift_px: float = 2.5
    max_steps: int | None = None  # per epoch; for quick tests
    threads: int = 1

    def as_dict(self) -> dict:
        doc = asdict(self)
        doc["args"] = dict(self.args)
        return doc


def augment(images: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    n = images.shape[0]
    u = lambda: torch.rand(n, generator=gen) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle = u() * math.radians(cfg.rotate_deg)
    zoom = 1 + u() * cfg.scale
    size = images.shape[-1]
    tx, ty = u() * cfg.shift_px * 2 / size, u() * cfg.shift_px * 2 / size
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def _epoch(net, split: Split, cfg: TrainConfig, opt, sched, gen, on_step=None) -> float:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # training only: int8 inference ops have no such mode
    try:
        return _epoch_steps(net, split, cfg, opt, sched, gen, on_step)
    finally:
        torch.use_deterministic_algorithms(before)


def _epoch_steps(net, split: Split, cfg: TrainConfig, opt, sched, gen, on_step=None) -> float:
    net.train()
    order = torch.randperm(len(split), generator=gen)
    images, labels = torch.from_numpy(split.images), torch.from_numpy(split.labels)
    total, steps = 0.0, 0
    for start in range(0, len(split), cfg.batch):
        if cfg.max_steps is not None and steps >= cfg.max_steps:
            break
        idx = order[start:start + cfg.batch]
        loss = F.cross_entropy(net(augment(images[idx], cfg, gen)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total, steps = total + loss.item(), steps + 1
        if on_step is not None:
            on_step(steps)
    return total / max(steps, 1)


def _float_accuracy(net, split: Split) -> float:
    net.eval()
    with torch.inference_mode():
        out = torch.cat([net(torch.from_numpy(split.images[i:i + 500])) for i in range(0, len(split), 500)])
    return (out.argmax(1).numpy() == split.labels).mean()


def _steps(split: Split, cfg: TrainConfig) -> int:
    per = math.ceil(len(split) / cfg.batch)
    return min(per, cfg.max_steps) if cfg.max_steps is not None else per


def _optimiser(net, lr: float, cfg: TrainConfig, total_steps: int):
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, total_steps))
    return opt, sched


def train(cfg: TrainConfig, train_split: Split, val_split: Split, float_state: dict | None = None,
          progress: ProgressCallback | None = None) -> tuple[Int8Model, dict]:
    """Train (or fine-tune from ``float_state``) and return the int8 model with a history
    (per epoch: mean training loss and validation top-1)."""
    if len(train_split) == 0 or len(val_split) == 0:
        raise UserError("training needs non-empty train and validation splits")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    args = dict(cfg.args)
    started = time.time()
    history: dict = {"float": [], "qat": []}
    per_epoch = _steps(train_split, cfg)

    net = float_network(cfg.arch, args)
    if float_state is not None:
        net.load_state_dict(float_state)
    best_state, best_acc = {k: v.clone() for k, v in net.state_dict().items()}, -1.0
    if cfg.epochs > 0:
        opt, sched = _optimiser(net, cfg.lr, cfg, cfg.epochs * per_epoch)
        for epoch in range(cfg.epochs):
            loss = _epoch(net, train_split, cfg, opt, sched, gen,
                          _counter(progress, "float training", epoch, per_epoch, cfg.epochs))
            acc = _float_accuracy(net, val_split)
            history["float"].append({"epoch": epoch + 1, "loss": round(loss, 5), "val_top1": float(acc)})
            if acc >= best_acc:  # ties go to the later epoch (more annealed)
                best_acc, best_state = acc, {k: v.clone() for k, v in net.state_dict().items()}
    step(progress, "calibrating the int8 ranges")
    qat = qat_network(cfg.arch, args, best_state)
    best_int8, best_val = Int8Model.from_qat(cfg.arch, args, _calibrate(qat, train_split, cfg)), None
    if cfg.qat_epochs > 0:
        best_val = -1.0
        opt, sched = _optimiser(qat, cfg.qat_lr, cfg, cfg.qat_epochs * per_epoch)
        for epoch in range(cfg.qat_epochs):
            if epoch >= cfg.qat_epochs // 2:  # settle ranges and batch-norm statistics for the last half
                quant.freeze_observers(qat)
                quant.freeze_bn(qat)
            with quant.quiet():
                loss = _epoch(qat, train_split, cfg, opt, sched, gen,
                              _counter(progress, "quantization-aware training", epoch, per_epoch, cfg.qat_epochs))
            candidate = Int8Model.from_qat(cfg.arch, args, qat)
            acc = measure(candidate, val_split).top1
            history["qat"].append({"epoch": epoch + 1, "loss": round(loss, 5), "val_top1": acc})
            if acc >= best_val:
                best_val, best_int8 = acc, candidate
    history["best_float_val_top1"] = float(best_acc) if cfg.epochs > 0 else None
    history["best_int8_val_top1"] = best_val if best_val is not None else measure(best_int8, val_split).top1
    history["seconds"] = round(time.time() - started, 1)
    return best_int8, history


def _counter(progress: ProgressCallback | None, what: str, epoch: int, per_epoch: int, epochs: int):
    """on_step for an epoch: reports training steps done out of all epochs' steps."""
    if progress is None:
        return None
    return lambda steps: step(progress, what, epoch * per_epoch + steps, epochs * per_epoch)


def _calibrate(qat, split: Split, cfg: TrainConfig, batches: int = 8):
    """Let the observers see data before conversion (the whole job when there is no QAT epoch)."""
    quant.freeze_bn(qat)  # keep given batch-norm statistics while observing
    qat.train()
    with torch.no_grad(), quant.quiet():
        for start in range(0, min(len(split), batches * cfg.batch), cfg.batch):
            qat(torch.from_numpy(split.images[start:start + cfg.batch]))
    if cfg.qat_epochs > 0:
        qat.apply(_unfreeze_bn)
    return qat


def _unfreeze_bn(module) -> None:
    if hasattr(module, "freeze_bn") and hasattr(module, "update_bn_stats"):
        module.update_bn_stats()
