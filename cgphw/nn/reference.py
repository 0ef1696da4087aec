"""The int8 network as the reference of a hardware layer: a layer's quantisation as plain
values (``QuantLayer``), the codes torch feeds it and produces on real images, the network's
outputs when a layer's outputs are replaced, and torch's own int8 modules rebuilt from a
``QuantLayer`` (random layers in tests; the requantisation of every accumulator value).

Which torch code computes a layer (engine ``x86``, as every int8 model here uses): linear
layers always run fbgemm; convolutions run oneDNN when the CPU has AVX512-VNNI and the
weights are symmetric (as here), fbgemm otherwise. Both requantise in float32 (see
``cgphw.hw.accel.requant``); ``torch_backend`` names the one this machine uses.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.ao.nn.intrinsic.quantized as _nniq
import torch.ao.nn.quantized as _nnq

from cgphw.errors import UserError
from cgphw.nn import quant
from cgphw.nn.layers import layer_module
from cgphw.quantlayer import QuantLayer

_RELU_FUSED = (_nniq.ConvReLU2d, _nniq.LinearReLU)


@dataclass(frozen=True, eq=False)
class LayerIO:
    """A layer of a network on some images: its plain-value form, the quint8 codes it took
    in and those torch computed (uint8 [n, *shape])."""
    layer: QuantLayer
    inputs: np.ndarray
    outputs: np.ndarray


def layer_io(model, name: str, images: np.ndarray) -> LayerIO:
    """Run the int8 network on float images [n, ...] and capture layer ``name``'s quantised
    input and output; the QuantLayer carries the input scale and zero point seen there."""
    module = layer_module(model, name)
    if len(images) == 0:
        raise UserError("give at least one image to read a layer's input quantisation from")
    seen = {}

    def hook(_mod, args, out):
        seen["x"], seen["y"] = args[0], out

    handle = module.register_forward_hook(hook)
    try:
        model(torch.from_numpy(np.ascontiguousarray(images)))
    finally:
        handle.remove()
    x, y = seen["x"], seen["y"]
    layer = describe_module(name, module, float(x.q_scale()), int(x.q_zero_point()), tuple(x.shape[1:]))
    return LayerIO(layer, x.int_repr().numpy().astype(np.uint8), y.int_repr().numpy().astype(np.uint8))


def describe_module(name: str, module, input_scale: float, input_zero_point: int,
                    input_shape: tuple[int, ...]) -> QuantLayer:
    """A torch int8 conv / linear module (and the quantisation of its input) as plain values."""
    if not isinstance(module, quant.WEIGHTED_INT8):
        raise UserError(f"layer {name} is not an int8 conv or linear layer")
    codes, scales, zeros = quant.read_int8(module)
    if np.any(zeros != 0):
        raise UserError(f"layer {name} has asymmetric weights (zero points {sorted(set(zeros.tolist()))}); "
                        "the layer engine supports symmetric weights only")
    kind = quant.layer_kind(module)
    stride = padding = (1, 1)
    if kind == "depthwise-conv" or (kind == "conv" and module.groups != 1):
        raise UserError(f"layer {name} is a grouped convolution; the layer engine supports groups=1 only")
    if kind == "conv":
        if tuple(module.dilation) != (1, 1) or module.padding_mode != "zeros":  # type: ignore[arg-type]
            raise UserError(f"layer {name} uses dilation or non-zero padding, which the layer engine lacks")
        stride, padding = tuple(int(s) for s in module.stride), tuple(int(p) for p in module.padding)  # type: ignore[assignment,union-attr]
    bias = module.bias()
    bias = np.zeros(codes.shape[0]) if bias is None else bias.detach().numpy().astype(np.float64)
    return QuantLayer(name, kind, codes, scales.astype(np.float64), bias, float(input_scale), int(input_zero_point),
                      float(module.scale), int(module.zero_point), isinstance(module, _RELU_FUSED),
                      tuple(int(v) for v in input_shape), stride if kind == "conv" else (1, 1),
                      padding if kind == "conv" else (0, 0))


def logits_with_layer_output(model, name: str, images: np.ndarray, outputs: np.ndarray) -> torch.Tensor:
    """The network's outputs on ``images`` when layer ``name`` yields ``outputs`` (uint8 codes
    [n, *shape], e.g. from a simulation) instead of what torch computes there."""
    module = layer_module(model, name)
    outputs = np.ascontiguousarray(outputs, np.uint8)

    def hook(_mod, _args, out):
        if tuple(out.shape) != outputs.shape:
            raise UserError(f"layer {name} yields shape {list(out.shape)}, "
                            f"the given outputs have {list(outputs.shape)}")
        with quant.quiet():
            return torch._make_per_tensor_quantized_tensor(torch.from_numpy(outputs), out.q_scale(), out.q_zero_point())

    handle = module.register_forward_hook(hook)
    try:
        return model(torch.from_numpy(np.ascontiguousarray(images)))
    finally:
        handle.remove()


def predictions(model, images: np.ndarray, layer: str | None = None, outputs: np.ndarray | None = None) -> np.ndarray:
    """int64 [n]: the network's predicted class per image (with ``layer``'s outputs replaced
    by ``outputs`` when given)."""
    if layer is not None:
        assert outputs is not None, "give the layer's outputs with the layer"
        logits = logits_with_layer_output(model, layer, images, outputs)
    else:
        logits = model(torch.from_numpy(np.ascontiguousarray(images)))
    return logits.argmax(1).numpy()


# --- torch's int8 modules rebuilt from plain values ---------------------------------------------
def torch_module(layer: QuantLayer):
    """A torch int8 module computing ``layer``. Build it with the quantized engine already
    chosen: torch packs weights per engine."""
    codes = np.ascontiguousarray(layer.weights, np.int8)
    scales = torch.from_numpy(np.asarray(layer.weight_scales, np.float64))
    qweight = torch._make_per_channel_quantized_tensor(torch.from_numpy(codes), scales,
                                                       torch.zeros(len(scales), dtype=torch.int64), 0)
    cls: type  # a quantized conv or linear module, fused with ReLU or not
    module: _nnq.Conv2d | _nnq.Linear
    with quant.quiet():
        if layer.kind == "conv":
            cls = _nniq.ConvReLU2d if layer.relu else _nnq.Conv2d
            module = cls(codes.shape[1], codes.shape[0], tuple(codes.shape[2:]), stride=layer.stride,
                         padding=layer.padding)
        else:
            cls = _nniq.LinearReLU if layer.relu else _nnq.Linear
            module = cls(codes.shape[1], codes.shape[0])
        module.set_weight_bias(qweight, torch.from_numpy(np.asarray(layer.bias, np.float32)))
    module.scale, module.zero_point = float(layer.output_scale), int(layer.output_zero_point)
    return module


def torch_layer_output(layer: QuantLayer, x: np.ndarray, engine: str = quant.ENGINE) -> np.ndarray:
    """uint8 [n, *output_shape]: what torch's int8 module computes for input codes ``x``."""
    x = layer.check_inputs(x)
    with _engine(engine), quant.quiet():
        module = torch_module(layer)
        qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(x)),
                                                     float(layer.input_scale), int(layer.input_zero_point))
        with torch.inference_mode():
            return module(qx).int_repr().numpy().astype(np.uint8)


def requant_table(layer: QuantLayer, acc_low: int, acc_high: int, engine: str = quant.ENGINE,
                  chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(acc int64 [m], codes uint8 [m, C_out]): torch's output for *every* accumulator value
    acc_low..acc_high, each channel with the layer's own scales, bias and output quantisation.

    Torch's requantisation depends only on the accumulator and those numbers, so a probe
    module of the same kind (wide enough to reach the range) whose weights make every sum
    reachable — all 127 but the last, which is 1, inputs around a zero point of 128 — computes
    it for each value in turn."""
    if acc_low > acc_high:
        raise UserError(f"empty accumulator range {acc_low}..{acc_high}")
    span = max(abs(acc_low), abs(acc_high))
    needed = span // (127 * 127) + 2  # inputs: 127 * 127 * (n - 1) >= span
    shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    if layer.kind == "conv":
        kh, kw = layer.weights.shape[2:]
        c_in = max(1, -(-needed // (kh * kw)))
        shape, in_shape = (layer.out_channels, c_in, kh, kw), (c_in, kh, kw)
    else:
        shape, in_shape = (layer.out_channels, needed), (needed,)
    n = int(np.prod(shape[1:]))
    codes = np.full((layer.out_channels, n), 127, np.int8)
    codes[:, -1] = 1
    probe = QuantLayer(layer.name, layer.kind, codes.reshape(shape), layer.weight_scales, layer.bias,
                       layer.input_scale, 128, layer.output_scale, layer.output_zero_point, layer.relu, in_shape)
    acc = np.arange(acc_low, acc_high + 1, dtype=np.int64)
    last = (acc + 63) % 127 - 63  # acc = 127 * total + last, |last| <= 63
    total = (acc - last) // 127  # within -128 (n-1) .. 127 (n-1): spread over the other n-1 inputs
    base, extra = np.divmod(total, n - 1)
    out = []
    with _engine(engine), quant.quiet():
        module = torch_module(probe)
        for i in range(0, len(acc), chunk):
            b, e = base[i:i + chunk], extra[i:i + chunk]
            taps = b[:, None] + (np.arange(n - 1)[None, :] < e[:, None])
            x = (np.concatenate([taps, last[i:i + chunk, None]], 1) + 128).astype(np.uint8)
            qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x.reshape(-1, *in_shape)),
                                                         float(layer.input_scale), 128)
            with torch.inference_mode():
                out.append(module(qx).int_repr().numpy().reshape(len(x), layer.out_channels))
    return acc, np.concatenate(out).astype(np.uint8)


def fbgemm_requant(layer: QuantLayer, acc: np.ndarray) -> np.ndarray:
    """uint8 [m, C_out]: torch's requantisation as fbgemm computes it (``ReQuantizeOutput``
    with a float bias, per-channel scales), operation by operation in float32::

        s = f32(f32(s_in) * f32(s_w[c]));  m = f32(s / f32(s_out));  b = f32(f32(bias[c]) / s)
        y = clamp(rint(f32(f32(f32(acc) + b) * m)) + zero_point, lo, 255)      (rint: to even)
    """
    f32 = np.float32
    acc = np.asarray(acc, np.int64)
    s = (f32(layer.input_scale) * np.asarray(layer.weight_scales, f32)).astype(f32)
    m = (s / f32(layer.output_scale)).astype(f32)
    b = (np.asarray(layer.bias, f32) / s).astype(f32)
    y = np.rint(((acc[:, None].astype(f32) + b[None, :]).astype(f32) * m[None, :]).astype(f32))
    return np.clip(y.astype(np.int64) + int(layer.output_zero_point), layer.output_low, 255).astype(np.uint8)


def torch_backend(layer: QuantLayer, engine: str = quant.ENGINE) -> str:
    """The library that computes ``layer`` here: "fbgemm" or "onednn"."""
    if engine == "fbgemm" or layer.kind == "linear":
        return "fbgemm"
    if engine == "onednn":
        return "onednn"
    return "onednn" if _has_vnni() else "fbgemm"  # torch's rule for x86 (Linux only)


def _has_vnni() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            return "avx512_vnni" in fh.read()
    except OSError:
        return False


class _engine:
    """Use a quantized engine for a block, then restore the previous one."""

    def __init__(self, engine: str):
        if engine not in torch.backends.quantized.supported_engines:
            raise UserError(f"torch here has no quantized engine {engine!r} "
                            f"({', '.join(torch.backends.quantized.supported_engines)})")
        self.engine = engine

    def __enter__(self):
        self.saved = torch.backends.quantized.engine
        torch.backends.quantized.engine = self.engine

    def __exit__(self, *exc):
        torch.backends.quantized.engine = self.saved
