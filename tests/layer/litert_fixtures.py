"""MobileNetV2's int8 TFLite layers and LiteRT's reference-kernel tensors on the shipped photos,
for checking the layer engine against them (no network: the model and photos are files).

``tflite_layer`` reads one CONV_2D / DEPTHWISE_CONV_2D operator as a ``QuantLayer`` with the
package's reader (``cgphw.nn.tflite_layer``: TFLite's int8 codes + 128); ``reference_tensors``
runs the photos through LiteRT's BUILTIN_REF kernels keeping every intermediate tensor, the
yardstick the tests hold the engine and that reader to.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from cgphw.quantlayer import QuantLayer

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
def _model():
    from cgphw.nn.tflite_model import read_tflite

    folder = model_folder()
    assert folder is not None
    return read_tflite(folder / MODEL_NAME)


def operator(index: int) -> dict:
    return _interpreter()._get_ops_details()[index]


@lru_cache(maxsize=None)
def reference_tensors(photo_name: str, tensors: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The int8 tensors ``tensors`` LiteRT's reference kernels compute for the photo."""
    it = _interpreter()
    it.set_tensor(it.get_input_details()[0]["index"], photo(photo_name)[None])
    it.invoke()
    return tuple(it.get_tensor(i).copy() for i in tensors)


def tflite_layer(index: int) -> QuantLayer:
    """Operator ``index`` (CONV_2D or DEPTHWISE_CONV_2D) as the package reads it (``cgphw.nn.tflite_layer``)."""
    from cgphw.nn.tflite_layer import quant_layer

    model = _model()
    layer = next((w for w in model.layers if w.operator.index == index), None)
    if layer is None:
        raise ValueError(f"operator {index} is a {model.operators[index].kind}")
    return quant_layer(model, layer)


def layer_io(index: int, photo_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(input codes uint8 [1, C, H, W], output codes uint8 [1, C, H', W']) of operator ``index``
    on the photo, as LiteRT's reference kernels computed them (int8 + 128)."""
    op = operator(index)
    x, y = reference_tensors(photo_name, (int(op["inputs"][0]), int(op["outputs"][0])))
    def codes(t):
        return (t.astype(np.int16) + 128).astype(np.uint8).transpose(0, 3, 1, 2)
    return codes(x), codes(y)
