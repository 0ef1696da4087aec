"""An int8 network and its model file.

A model file (``.pt``) holds only plain data: {"format": "cgphw-model/1", "arch", "args",
"qat_state" (the QAT model's state dict: float tensors), "meta"}. Loading rebuilds the
architecture, loads the state and converts it to int8 — no training, no pickled code, and it
loads with ``torch.load(weights_only=True)``. A state with NaN or infinite values is refused.
A per-tensor QNNPACK model (an imported ImageNet MobileNetV2) stores ``"engine": "qnnpack"``
and its converted ``"int8_state"`` instead.

The shipped LeNet-5 lives in the top-level ``models/`` folder, which wheels carry as package
data (``cgphw.nn.shipped``), so source checkouts, editable and regular installs find it.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cgphw.errors import UserError
from cgphw.files import accepted_by, atomic_file, check_replaceable, read_json
from cgphw.nn import quant
from cgphw.nn.lenet import LeNet5
from cgphw.nn.mobilenet import MobileNetV2
from cgphw.nn.shipped import shipped_file

FORMAT = "cgphw-model/1"
META_FORMAT = "cgphw-model-meta/1"  # NAME.json beside a model file NAME.pt
SHIPPED_MODEL = "lenet5_mnist5k.pt"  # in the shipped models folder
SHIPPED_NAME = f"cgphw:models/{SHIPPED_MODEL}"  # how files and reports name it, on any machine
SHIPPED_NAMES = ("lenet5", SHIPPED_NAME, "cgphw:data/models/lenet5_mnist5k.pt")  # the last: before models/ moved


def shipped_model_path() -> Path:
    """The shipped int8 LeNet-5 (its metadata is the .json beside it)."""
    return shipped_file(SHIPPED_MODEL)


DEFAULT_MODEL = shipped_model_path()
ARCHS = ("lenet5", "mobilenetv2")


def float_network(arch: str, args: dict | None = None) -> LeNet5 | MobileNetV2:
    args = dict(args or {})
    if arch == "lenet5":
        return LeNet5(**args)
    if arch == "mobilenetv2":
        return MobileNetV2(**args)
    raise UserError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")


def qat_network(arch: str, args: dict | None = None, float_state: dict | None = None) -> nn.Module:
    """The architecture with fused modules and fake quantizers, ready for QAT."""
    net = float_network(arch, args)
    if float_state is not None:
        net.load_state_dict(float_state)
    return quant.prepare_qat(net, net.fuse_groups())


@dataclass(eq=False)
class Int8Model:
    arch: str
    args: dict
    qat_state: dict | None  # what the file stores; the int8 module is derived from it (None: per-tensor)
    module: nn.Module  # the converted int8 network (eval mode)
    meta: dict = field(default_factory=dict)
    path: str | None = None
    engine: str = quant.ENGINE  # the quantized engine its packed weights are made for

    @classmethod
    def from_qat(cls, arch: str, args: dict, qat_model: nn.Module, meta: dict | None = None) -> "Int8Model":
        state = {k: v.detach().clone() for k, v in qat_model.state_dict().items()}
        return cls(arch, dict(args), state, quant.convert(qat_model), dict(meta or {}))

    @property
    def name(self) -> str | None:
        """The model file as reports name it: the shipped model portably, others by path."""
        if self.path is not None and Path(self.path).resolve() == DEFAULT_MODEL.resolve():
            return SHIPPED_NAME
        return self.path

    def copy(self) -> "Int8Model":
        """An independent copy whose int8 weights may be changed (the state is shared, read-only)."""
        return Int8Model(self.arch, self.args, self.qat_state, copy.deepcopy(self.module), dict(self.meta), self.path,
                         self.engine)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        quant.use_engine(self.engine)
        with torch.inference_mode(), quant.quiet():
            return self.module(images)


def per_tensor_skeleton(arch: str, args: dict | None = None, float_state: dict | None = None,
                        calibrate=None) -> nn.Module:
    """The per-tensor QNNPACK int8 network of an architecture: from ``float_state`` calibrated by
    ``calibrate(prepared_net)``, or (neither given) uncalibrated, ready to load an int8 state."""
    net = float_network(arch, args)
    if float_state is not None:
        net.load_state_dict(float_state)
    quant.prepare_per_tensor(net, net.fuse_groups())
    if calibrate is not None:
        with torch.inference_mode(), quant.quiet():
            calibrate(net)
    with quant.quiet():
        return quant.convert(net, quant.PER_TENSOR_ENGINE)


def check_model_out(out: str | os.PathLike, force: bool) -> Path:
    """Before a model file is made at ``out``: a .pt name, and neither it nor its metadata
    beside it (NAME.json) replaced without ``force``, except metadata cgphw wrote for a model."""
    out = Path(out)
    if out.suffix != ".pt":
        raise UserError(f"the model file name must end in .pt, got {out}")
    check_replaceable(out, force)
    check_replaceable(out.with_suffix(".json"), force, accepted_by(read_model_meta), "model metadata file")
    return out


def read_model_meta(path: str | os.PathLike) -> dict:
    """A model's metadata file (NAME.json beside NAME.pt, for people and campaigns)."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != META_FORMAT:
        raise UserError(f"{path} is not a cgphw model metadata file ({META_FORMAT})")
    return doc


def save_model(model: Int8Model, path: str | os.PathLike) -> Path:
    path = Path(path)
    doc: dict = {"format": FORMAT, "arch": model.arch, "args": json.dumps(model.args), "meta": json.dumps(model.meta)}
    if model.engine == quant.ENGINE:
        doc["qat_state"] = model.qat_state
    else:
        doc.update(engine=model.engine, int8_state=model.module.state_dict())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb") as fh:
            torch.save(doc, fh)
    except OSError as exc:
        raise UserError(f"cannot write the model file {path} ({exc.strerror or exc})") from None
    return path


def load_model(path: str | os.PathLike | None = None) -> Int8Model:
    """A cgphw int8 model file; None or a shipped name ('lenet5') is the shipped LeNet-5."""
    path = DEFAULT_MODEL if path is None or str(path) in SHIPPED_NAMES else Path(path)
    if not path.is_file():
        if path == DEFAULT_MODEL:
            raise UserError(f"the shipped model {SHIPPED_NAME} is missing from this installation ({path}): "
                            f"reinstall cgphw, or pass --model FILE")
        raise UserError(f"model file {path} does not exist")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise UserError(f"model file {path} is not a readable cgphw model ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"model file {path} is not a {FORMAT} file")
    try:
        args, meta = json.loads(doc["args"]), json.loads(doc["meta"])
        if not isinstance(args, dict) or not isinstance(meta, dict):
            raise ValueError("its args and meta must be JSON objects")
        if doc.get("engine", quant.ENGINE) == quant.PER_TENSOR_ENGINE:
            model = Int8Model(doc["arch"], args, None, per_tensor_skeleton(doc["arch"], args), meta,
                              engine=quant.PER_TENSOR_ENGINE)
            model.module.load_state_dict(doc["int8_state"])
            refuse_non_finite({k: v.dequantize() if getattr(v, "is_quantized", False) else v
                               for k, v in doc["int8_state"].items()}, f"model file {path}")
        else:
            net = qat_network(doc["arch"], args)
            net.load_state_dict(doc["qat_state"])
            refuse_non_finite(doc["qat_state"], f"model file {path}")
            model = Int8Model.from_qat(doc["arch"], args, net, meta)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model file {path} does not match its architecture {doc.get('arch')!r} ({exc})") from None
    model.path = str(path)
    return model


def refuse_non_finite(state: dict, what: str) -> None:
    """UserError naming ``what`` (e.g. "model file PATH") and the first tensor of ``state``
    with NaN, or with an infinity where only finite numbers make sense (an observer that
    never ran legitimately holds +-inf as its range)."""
    for key, value in state.items():
        if not torch.is_tensor(value) or not value.is_floating_point():
            continue
        observed_range = key.endswith(("min_val", "max_val"))
        bad = torch.isnan(value) if observed_range else ~torch.isfinite(value)
        if bool(bad.any()):
            raise UserError(f"{what} is damaged: {key} holds {int(bad.sum())} NaN or infinite "
                            f"value(s) of {value.numel()}")
