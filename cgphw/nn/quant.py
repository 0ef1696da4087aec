"""The one adapter over torch's eager-mode int8 quantization (nothing else imports torch.ao).

Recipe (as in the original study): fused conv(+bn)+ReLU, per-channel symmetric qint8
weights, quint8 activations, x86 (fbgemm-compatible) engine, quantization-aware training.
ImageNet MobileNetV2 as the study used it: QNNPACK, per-tensor weights, post-training
calibration (``prepare_per_tensor`` / ``convert``), or torchvision's own int8 weights.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from torch import nn

import torch.ao.nn.intrinsic.quantized as _nniq
import torch.ao.nn.quantized as _nnq
import torch.ao.quantization as _tq

ENGINE = "x86"
PER_TENSOR_ENGINE = "qnnpack"
QuantStub = _tq.QuantStub
DeQuantStub = _tq.DeQuantStub
FloatFunctional = _nnq.FloatFunctional  # a residual add that has an int8 form
# Converted modules whose weights are int8 codes with per-output-channel scales.
WEIGHTED_INT8 = (_nnq.Conv2d, _nnq.Linear, _nniq.ConvReLU2d, _nniq.LinearReLU)


def is_quantized_state(state: dict) -> bool:
    """Does a state dict hold a converted int8 network (quantized tensors, packed params)?"""
    return any(getattr(v, "is_quantized", False) or k.endswith("_packed_params._packed_params")
               for k, v in state.items())


@contextlib.contextmanager
def quiet():
    """Silence torch.ao's deprecation notices (the eager API still works in 2.x)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated.*")
        warnings.filterwarnings("ignore", message=r".*_aminmax.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*must run observer before calling calculate_qparams.*")
        yield


def use_engine(engine: str = ENGINE) -> None:
    torch.backends.quantized.engine = engine


def prepare_qat(model: nn.Module, fuse_groups: list[list[str]]) -> nn.Module:
    """Fuse the groups and insert fake-quantizers, in place; returns the model in train mode."""
    use_engine()
    with quiet():
        model.train()
        if fuse_groups:
            _tq.fuse_modules_qat(model, fuse_groups, inplace=True)
        model.qconfig = _tq.get_default_qat_qconfig(ENGINE)
        _tq.prepare_qat(model, inplace=True)
    return model


def prepare_per_tensor(model: nn.Module, fuse_groups: list[list[str]]) -> nn.Module:
    """Fuse (conv+bn+ReLU folded for inference) and insert QNNPACK observers: per-tensor
    symmetric qint8 weights, quint8 activations; in place, eval mode, ready to calibrate."""
    use_engine(PER_TENSOR_ENGINE)
    with quiet():
        model.eval()
        if fuse_groups:
            _tq.fuse_modules(model, fuse_groups, inplace=True)
        model.qconfig = _tq.get_default_qconfig(PER_TENSOR_ENGINE)
        _tq.prepare(model, inplace=True)
    return model


def freeze_observers(qat_model: nn.Module) -> None:
    """Stop moving the activation/weight ranges (the last fine-tuning epochs)."""
    qat_model.apply(_tq.disable_observer)


def freeze_bn(qat_model: nn.Module) -> None:
    import torch.ao.nn.intrinsic.qat as _nniqat

    qat_model.apply(_nniqat.freeze_bn_stats)


def convert(qat_model: nn.Module, engine: str = ENGINE) -> nn.Module:
    """The int8 model (eval mode) of a QAT (or calibrated) model, which is left untouched."""
    import copy

    use_engine(engine)
    with quiet():
        model = copy.deepcopy(qat_model).eval()
        return _tq.convert(model, inplace=False)


def weighted_layers(int8_model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every int8 conv / linear layer, in definition order."""
    return [(n, m) for n, m in int8_model.named_modules() if isinstance(m, WEIGHTED_INT8)]


def layer_kind(module: nn.Module) -> str:
    if isinstance(module, (_nnq.Conv2d, _nniq.ConvReLU2d)):
        return "depthwise-conv" if module.groups > 1 and module.groups == module.in_channels else "conv"
    return "linear"


def read_int8(module: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes int8 in the weight's shape, per-channel scales float64, zero points int64)."""
    weight = module.weight()  # type: ignore[operator]  # a quantized module's weight is a method
    if weight.qscheme() not in (torch.per_channel_symmetric, torch.per_channel_affine):
        scale = np.full(weight.shape[0], weight.q_scale(), np.float64)
        zero = np.full(weight.shape[0], weight.q_zero_point(), np.int64)
    else:
        scale = weight.q_per_channel_scales().double().numpy()
        zero = weight.q_per_channel_zero_points().long().numpy()
    return weight.int_repr().numpy().astype(np.int8), scale, zero


def write_int8(module: nn.Module, codes: np.ndarray) -> None:
    """Replace the int8 codes of a layer in place, keeping its scales, zero points and bias."""
    with quiet():
        _write_int8(module, codes)


def _write_int8(module: nn.Module, codes: np.ndarray) -> None:
    weight = module.weight()  # type: ignore[operator]  # a quantized module's weight is a method
    new = torch.from_numpy(np.ascontiguousarray(codes, np.int8))
    if weight.qscheme() in (torch.per_channel_symmetric, torch.per_channel_affine):
        qweight = torch._make_per_channel_quantized_tensor(
            new, weight.q_per_channel_scales(), weight.q_per_channel_zero_points(), weight.q_per_channel_axis())
    else:
        qweight = torch._make_per_tensor_quantized_tensor(new, weight.q_scale(), weight.q_zero_point())
    module.set_weight_bias(qweight, module.bias())  # type: ignore[operator]  # methods, as weight
