"""An int8 TFLite network as cgphw's layer functions see it (list, extract, insert codes) and
its fast evaluation with LiteRT: the changed weights are written into a copy of the
flatbuffer, which LiteRT's default interpreter (XNNPACK, one thread) then runs.

The shipped one is MobileNetV2 for ImageNet (``models/mobilenetv2/``); its 1001 outputs
are the background class and the 1000 ImageNet classes in sorted WordNet-id order, so
logit k + 1 is class k. The fast path rounds as XNNPACK does; bit-exact values come from
``cgphw.nn.tflite_reference`` (LiteRT's reference kernels).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgphw.errors import UserError
from cgphw.nn.data import Split
from cgphw.nn.shipped import shipped_file
from cgphw.nn.tflite_model import TFLiteModel, read_tflite

SHIPPED_NAME = "mobilenetv2"
SHIPPED_FILE = "mobilenetv2/tf2_mobilenet_v2_1.0_224_ptq.tflite"
PHOTOS = "mobilenetv2/photos.txt"  # the shipped photos and their classes (1001-way index)
LABELS = "mobilenetv2/imagenet_labels.txt"


def is_tflite_spec(spec) -> bool:
    """Whether a --model value names a TFLite network (the shipped one, or a .tflite file)."""
    return isinstance(spec, TFLiteNetwork) or (spec is not None and (str(spec) == SHIPPED_NAME
                                                                      or str(spec).endswith(".tflite")))


@dataclass(eq=False)
class TFLiteNetwork:
    model: TFLiteModel
    path: str | None = None
    changed: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> int8 codes in place of the file's
    arch: str = "tflite"
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        if self.path is not None and Path(self.path).resolve() == shipped_file(SHIPPED_FILE).resolve():
            return f"cgphw:models/{SHIPPED_FILE}"
        return self.path

    def codes(self, layer: str) -> np.ndarray:
        """A layer's int8 weights (a copy), changed ones included."""
        if layer in self.changed:
            return self.changed[layer].copy()
        return np.array(self.model.constant(self.model.layer(layer).weights))

    def with_codes(self, replacements: dict[str, np.ndarray]) -> "TFLiteNetwork":
        self.model.patched(replacements)  # checks names, shapes and dtypes
        return TFLiteNetwork(self.model, self.path, {**self.changed, **{k: np.array(v) for k, v in
                                                                       replacements.items()}}, self.arch, self.meta)

    def content(self, logits: bool = True) -> bytes:
        """The flatbuffer with the changed weights; ``logits``: the pre-softmax tensor as output."""
        return self.model.patched(self.changed, self.model.logits if logits else None)

    def runner(self) -> "Runner":
        return Runner(self.content())


class Runner:
    """LiteRT's default interpreter (XNNPACK, one thread) on a network's bytes: int8 logits.
    One image per invoke: batches of 16 were measured no cheaper per CPU second."""

    def __init__(self, content: bytes):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError("TFLite networks need LiteRT: pip install ai-edge-litert") from None
        try:
            self.interpreter = Interpreter(model_content=content, num_threads=1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"LiteRT cannot run this TFLite model ({exc})") from None
        self.inputs = [d["index"] for d in self.interpreter.get_input_details()]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """int8 logits [n, classes] of uint8 images [n, H, W, 3], one invoke each."""
        out = self.run((pixels,))[0]
        return out.reshape(len(out), -1) if len(out) else np.zeros((0, 0), np.int8)

    def run(self, inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """The graph's outputs (batch first) for its inputs (batch first, in the graph's order),
        one invoke per item."""
        out: list[list[np.ndarray]] = [[] for _ in self.outputs]
        try:
            for item in range(len(inputs[0])):
                for index, values in zip(self.inputs, inputs, strict=True):
                    self.interpreter.set_tensor(index, values[item][None])
                self.interpreter.invoke()
                for rows, index in zip(out, self.outputs, strict=True):
                    rows.append(self.interpreter.get_tensor(index)[0])
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"LiteRT cannot run this TFLite model ({exc})") from None
        return tuple(np.stack(rows) if rows else np.zeros((0,), np.int8) for rows in out)


def load_network(spec: str | os.PathLike | None = None) -> TFLiteNetwork:
    """The shipped MobileNetV2 (``None`` or 'mobilenetv2') or a .tflite file."""
    if spec is None or str(spec) == SHIPPED_NAME:
        path = shipped_file(SHIPPED_FILE)
        if not path.is_file():
            raise UserError(f"the shipped model cgphw:models/{SHIPPED_FILE} is missing from this installation "
                            f"({path}): reinstall cgphw")
    else:
        path = Path(spec)
    return TFLiteNetwork(read_tflite(path), str(path))


def class_names() -> list[str]:
    """The 1001 output names of the shipped MobileNetV2 (index 0: background)."""
    return shipped_file(LABELS).read_text().splitlines()


def photos() -> Split:
    """The shipped photos with their classes (labels 0..999: the 1001-way index minus one)."""
    listing = shipped_file(PHOTOS)
    from cgphw.nn.imagefolder import LazyImages

    files, labels = [], []
    for line in listing.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, index = line.split()[:2]
            files.append(listing.parent / "images" / name)
            labels.append(int(index) - 1)
    return Split(LazyImages(tuple(files)), np.asarray(labels, np.int64),  # type: ignore[arg-type]
                 f"cgphw:models/{PHOTOS}")


def _wordnet_id(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def imagenet_split(data: str | os.PathLike | None = None) -> Split:
    """Images for an ImageNet network: ``None`` (or 'photos') the shipped photos; else an image
    folder with one folder per class, named by WordNet id (all 1000: sorted = class order) or
    by the class's name in the labels file (e.g. 'Egyptian cat': any subset)."""
    if data is None or str(data) in ("photos", "mnist5k"):
        return photos()
    from cgphw.nn.imagefolder import is_image_folder, scan

    directory = Path(data)
    if not directory.is_dir():
        raise UserError(f"image folder {data} does not exist")
    if not is_image_folder(directory):
        raise UserError(f"{directory} holds no images in class folders (DIR/<class>/<image>)")
    images, labels, folders = scan(directory)
    names: dict[str, int] = {}
    for index, line in enumerate(class_names()[1:]):
        names.setdefault(line, index)
        names.setdefault(line.split(",")[0].strip(), index)
    if all(_wordnet_id(f) for f in folders):
        if len(folders) != 1000:
            raise UserError(f"{directory} has {len(folders)} WordNet-id class folders: their sorted order is the class "
                            f"index only with all 1000 (name a subset's folders by class name instead, e.g. "
                            f"'Egyptian cat')")
        return Split(images, labels, f"{directory}:images")  # type: ignore[arg-type]
    unknown = [f for f in folders if f not in names]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise UserError(f"{directory} has class folders that are neither WordNet ids nor ImageNet class names: {shown}")
    mapped = np.asarray([names[folders[k]] for k in labels], np.int64)
    return Split(images, mapped, f"{directory}:images")  # type: ignore[arg-type]


def load_any(model=None):
    """A torch int8 model (``Int8Model``, a .pt file, default the shipped LeNet-5) or a TFLite
    network ('mobilenetv2', a .tflite file, a ``TFLiteNetwork``), as the layer functions take them."""
    from cgphw.nn.model import Int8Model, load_model

    if isinstance(model, (Int8Model, TFLiteNetwork)):
        return model
    return load_network(model) if is_tflite_spec(model) else load_model(model)


def network_images(net, data: str | os.PathLike | None, split: str = "test") -> Split:
    """The images to measure a network on: mnist5k (default) or IDX/image folders for torch
    models; ImageNet image folders (default: the shipped photos) for TFLite networks."""
    if isinstance(net, TFLiteNetwork):
        return imagenet_split(data)
    from cgphw.nn.data import load_split

    return load_split(data if data is not None else "mnist5k", split)


@dataclass(frozen=True)
class TFLiteSummary:
    """What ``import_tflite`` found in a .tflite file."""
    path: str
    sha256: str
    operators: tuple[tuple[str, int], ...]  # (kind, count), most frequent first
    layers: int  # weight layers
    weights: int  # int8 weights in them
    biases: int  # int32 biases
    input_shape: tuple[int, ...]
    classes: int  # network outputs

    def as_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "operators": dict(self.operators), "layers": self.layers,
                "weights": self.weights, "biases": self.biases, "input_shape": list(self.input_shape),
                "classes": self.classes}

    def lines(self) -> list[str]:
        ops = ", ".join(f"{kind} x{count}" for kind, count in self.operators)
        return [f"{self.path}: int8 TFLite network, input {'x'.join(map(str, self.input_shape))}, "
                f"{self.classes} outputs",
                f"operators: {sum(c for _, c in self.operators)} ({ops})",
                f"{self.layers} weight layers, {self.weights:,} int8 weights, {self.biases:,} int32 biases",
                f"use it as --model {self.path}"]


def import_tflite(path: str | os.PathLike) -> TFLiteSummary:
    """Read and check an int8 TFLite CNN (every operator, tensor and quantisation); nothing is
    written: the file itself is the model (``--model FILE.tflite``)."""
    from collections import Counter

    from cgphw.files import sha256_file

    net = load_network(path)
    model = net.model
    layers = model.layers
    return TFLiteSummary(str(path), sha256_file(path),
                         tuple(Counter(op.kind for op in model.operators).most_common()), len(layers),
                         sum(int(np.prod(w.weights.shape)) for w in layers),
                         sum(int(np.prod(w.bias.shape)) for w in layers if w.bias is not None),
                         model.tensors[model.inputs[0]].shape,
                         int(np.prod(model.tensors[model.outputs[0]].shape[1:])))
