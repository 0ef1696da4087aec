"""Layer access of an int8 network: list, extract int8 codes, a copy with replaced codes (with_codes)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cgphw.errors import UserError
from cgphw.nn import quant
from cgphw.nn.tflite_model import checked_codes


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # conv, depthwise-conv, linear
    shape: tuple[int, ...]
    weights: int
    distinct: int  # distinct int8 codes
    scale_min: float
    scale_max: float

    def as_dict(self) -> dict:
        doc = asdict(self)
        doc["shape"] = list(self.shape)
        return doc


def _tflite(model):
    """The TFLite network when ``model`` is one (its layers are read from the flatbuffer), else None."""
    from cgphw.nn.tflite_network import TFLiteNetwork

    return model if isinstance(model, TFLiteNetwork) else None


def _tflite_rows(net) -> list[LayerInfo]:
    kinds = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise-conv", "FULLY_CONNECTED": "linear"}
    rows = []
    for layer in net.model.layers:
        codes = net.codes(layer.name)
        rows.append(LayerInfo(layer.name, kinds[layer.operator.kind], tuple(codes.shape), int(codes.size),
                              int(np.unique(codes).size), float(layer.weights.scales.min()),
                              float(layer.weights.scales.max())))
    return rows


def list_layers(model) -> list[LayerInfo]:
    if _tflite(model) is not None:
        return _tflite_rows(model)
    rows = []
    for name, module in quant.weighted_layers(model.module):
        codes, scales, _ = quant.read_int8(module)
        rows.append(LayerInfo(name, quant.layer_kind(module), tuple(codes.shape), int(codes.size),
                              int(np.unique(codes).size), float(scales.min()), float(scales.max())))
    return rows


def layer_module(model, name: str):
    for layer, module in quant.weighted_layers(model.module):
        if layer == name:
            return module
    known = [n for n, _ in quant.weighted_layers(model.module)]
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    raise UserError(f"the model has no int8 layer named {name!r} (layers: {shown})")


def extract(model, name: str) -> np.ndarray:
    """The layer's int8 codes (np.int8, in the weight's shape, e.g. [out, in, kh, kw]; TFLite:
    [out, kh, kw, in], depthwise [1, kh, kw, channels])."""
    if _tflite(model) is not None:
        return model.codes(name)
    return quant.read_int8(layer_module(model, name))[0]


def scales(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-output-channel scales, zero points) of a layer."""
    if _tflite(model) is not None:
        weights = model.model.layer(name).weights
        return weights.scales.astype(np.float64), weights.zero_points
    _, scale, zero = quant.read_int8(layer_module(model, name))
    return scale, zero


def with_codes(model, replacements: dict[str, np.ndarray]):
    """A copy of the model with these layers' int8 codes replaced (scales, zero points, bias kept)."""
    if _tflite(model) is not None:
        return model.with_codes(replacements)
    checked = {name: checked_codes(name, codes, extract(model, name).shape) for name, codes in replacements.items()}
    out = model.copy()
    for name, codes in checked.items():
        quant.write_int8(layer_module(out, name), codes)
    return out
