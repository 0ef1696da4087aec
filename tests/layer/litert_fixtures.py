"""MobileNetV2's int8 TFLite layers and LiteRT's reference-kernel tensors on the shipped photos,
for checking the layer engine against them (no network: the model and photos are files).

``tflite_layer`` reads one CONV_2D / DEPTHWISE_CONV_2D operator as a ``QuantLayer`` (TFLite's
int8 codes + 128, see ``cgphw.quantlayer``); ``reference_tensors`` runs the photos through
LiteRT's BUILTIN_REF kernels keeping every intermediate tensor.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from cgphw.quantlayer import QuantLayer
from cgphw.tflite_requant import activation_range

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = "tf2_mobilenet_v2_1.0_224_ptq.tflite"
# the package copy first, then the shared folder the model was shipped in
CANDIDATES = (REPO / "models" / "mobilenetv2", REPO / "cgphw" / "data" / "mobilenetv2",
              Path("/work/shared/mobilenetv2"))
PHOTOS = ("cat.bmp", "bird.bmp", "dragonfly.bmp", "parrot.jpg", "hot_dog.jpg", "missvickie_potato_chips.bmp",
          "grace_hopper.bmp")


def model_folder() -> Path | None:
    return next((d for d in CANDIDATES if (d / MODEL_NAME).is_file()), None)


def missing_model() -> str | None:
    """Why the LiteRT tests cannot run here (None: they can)."""
    import importlib.util

    for package in ("ai_edge_litert", "tflite", "PIL"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed"
    return None if model_folder() is not None else f"{MODEL_NAME} is in none of {', '.join(map(str, CANDIDATES))}"


def photo(name: str) -> np.ndarray:
    """uint8 [224, 224, 3]: the photo's shorter side resized to 256 (bilinear), centre crop 224."""
    from PIL import Image

    folder = model_folder()
    assert folder is not None
    with Image.open(folder / "images" / name) as im:
        im = im.convert("RGB")
        scale = 256 / min(im.size)
        im = im.resize((max(256, round(im.width * scale)), max(256, round(im.height * scale))), Image.BILINEAR)
        left, top = (im.width - 224) // 2, (im.height - 224) // 2
        return np.asarray(im.crop((left, top, left + 224, top + 224)), np.uint8)


@lru_cache(maxsize=1)
def _interpreter():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    folder = model_folder()
    assert folder is not None
    it = Interpreter(model_path=str(folder / MODEL_NAME), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


@lru_cache(maxsize=1)
def _flatbuffer():
    import tflite

    folder = model_folder()
    assert folder is not None
    return tflite.Model.GetRootAs((folder / MODEL_NAME).read_bytes(), 0)


def operator(index: int) -> dict:
    return _interpreter()._get_ops_details()[index]


@lru_cache(maxsize=None)
def reference_tensors(photo_name: str, tensors: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The int8 tensors ``tensors`` LiteRT's reference kernels compute for the photo."""
    it = _interpreter()
    it.set_tensor(it.get_input_details()[0]["index"], photo(photo_name)[None])
    it.invoke()
    return tuple(it.get_tensor(i).copy() for i in tensors)


def _quant(details: dict) -> tuple[np.ndarray, np.ndarray]:
    q = details["quantization_parameters"]
    return np.asarray(q["scales"], np.float64), np.asarray(q["zero_points"], np.int64)


def tflite_layer(index: int) -> QuantLayer:
    """Operator ``index`` (CONV_2D or DEPTHWISE_CONV_2D) as a QuantLayer."""
    import tflite

    op = operator(index)
    it = _interpreter()
    details = {t["index"]: t for t in it.get_tensor_details()}
    x_id, w_id, b_id = (int(i) for i in op["inputs"])
    y_id = int(op["outputs"][0])
    raw = _flatbuffer().Subgraphs(0).Operators(index)
    table = raw.BuiltinOptions()
    if op["op_name"] == "CONV_2D":
        options = tflite.Conv2DOptions()
        options.Init(table.Bytes, table.Pos)
        weights = it.get_tensor(w_id).transpose(0, 3, 1, 2)  # [O, KH, KW, I] -> [O, I, KH, KW]
        groups = 1
    elif op["op_name"] == "DEPTHWISE_CONV_2D":
        options = tflite.DepthwiseConv2DOptions()
        options.Init(table.Bytes, table.Pos)
        assert options.DepthMultiplier() == 1
        weights = it.get_tensor(w_id).transpose(3, 0, 1, 2)  # [1, KH, KW, C] -> [C, 1, KH, KW]
        groups = weights.shape[0]
    else:
        raise ValueError(f"operator {index} is a {op['op_name']}")
    assert options.DilationHFactor() == options.DilationWFactor() == 1
    (s_in,), (zp_in,) = _quant(details[x_id])
    (s_out,), (zp_out,) = _quant(details[y_id])
    w_scales, _ = _quant(details[w_id])
    bias = it.get_tensor(b_id).astype(np.int64)
    _, h, w, c_in = details[x_id]["shape"]
    stride = (int(options.StrideH()), int(options.StrideW()))
    kh, kw = weights.shape[2:]
    if options.Padding() == tflite.Padding.SAME:  # TensorFlow puts the odd one at the end
        total = [max((math.ceil(int(n) / s) - 1) * s + int(k) - int(n), 0)
                 for n, s, k in ((h, stride[0], kh), (w, stride[1], kw))]
        before, after = (total[0] // 2, total[1] // 2), (total[0] - total[0] // 2, total[1] - total[1] // 2)
    else:
        before = after = (0, 0)
    names = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
    activation = names[options.FusedActivationFunction()]
    low, high = activation_range(activation, float(s_out), int(zp_out))
    return QuantLayer(details[y_id]["name"].split(";")[0], "conv", np.ascontiguousarray(weights, np.int8), w_scales,
                      bias * float(s_in) * w_scales, float(s_in), int(zp_in) + 128, float(s_out), int(zp_out) + 128,
                      activation in ("RELU", "RELU6"), (int(c_in), int(h), int(w)), stride, before, groups, after,
                      "tflite", bias, (low + 128, high + 128))


def layer_io(index: int, photo_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(input codes uint8 [1, C, H, W], output codes uint8 [1, C, H', W']) of operator ``index``
    on the photo, as LiteRT's reference kernels computed them (int8 + 128)."""
    op = operator(index)
    x, y = reference_tensors(photo_name, (int(op["inputs"][0]), int(op["outputs"][0])))
    def codes(t):
        return (t.astype(np.int16) + 128).astype(np.uint8).transpose(0, 3, 1, 2)
    return codes(x), codes(y)
