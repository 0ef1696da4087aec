"""ImageNet MobileNetV2 as users have it: a torchvision state dict becomes a cgphw model file.

- float (``mobilenet_v2-b0353104.pth`` from torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1``):
  conv+bn+ReLU folded, then post-training quantisation as the study did it — QNNPACK,
  per-tensor symmetric int8 weights, uint8 activations — calibrated on images of a folder;
- int8 (``mobilenet_v2_qnnpack_37f702c5.pth`` from ``MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1``):
  torchvision's own converted QNNPACK network, loaded code for code.
The network keeps torchvision's module names, so layers are named ``features.0.0`` ...
``features.18.0`` (52 conv layers) and ``classifier.1``. Inputs: 224 x 224 RGB in 0..1; the
network applies the ImageNet mean/std itself.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch

from cgphw.errors import UserError
from cgphw.files import sha256_file, write_json_atomic
from cgphw.nn import quant
from cgphw.nn.mobilenet import BLOCKS, IMAGENET_MEAN, IMAGENET_STD, MobileNetV2, divisible, load_float_state
from cgphw.nn.model import META_FORMAT, Int8Model, per_tensor_skeleton, refuse_non_finite, save_model
from cgphw.progress import ProgressCallback, step

WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # those torchvision and the MobileNetV2 paper use
CALIBRATION_BATCH = 32


def read_state(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"state dict {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a readable torch state dict ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or "features.0.0.weight" not in state:
        raise UserError(f"{path} is not a torchvision MobileNetV2 state dict (no features.0.0.weight)")
    # NaN or infinite weights would fail calibration with a torch error, or quantise silently
    refuse_non_finite({k: v.dequantize() if getattr(v, "is_quantized", False) else v for k, v in state.items()},
                      f"state dict {path}")
    return state


def architecture(state: dict, quantized: bool) -> dict:
    """MobileNetV2 arguments (width, classes) that fit the state dict's shapes."""
    first = state["features.0.0.weight"]
    if quantized:
        packed = state.get("classifier.1._packed_params._packed_params")
        classes = int(packed[0].shape[0]) if isinstance(packed, (tuple, list)) and packed else None
    else:
        classes = int(state["classifier.1.weight"].shape[0]) if "classifier.1.weight" in state else None
    if classes is None:
        raise UserError("the state dict has no classifier.1 weights: it is not a whole MobileNetV2")
    last = 1 + sum(n for _, _, n, _ in BLOCKS)  # the final 1x1 conv: features.18 at full depth
    for width in WIDTHS:
        if divisible(32 * width) == first.shape[0] and f"features.{last}.0.weight" in state \
                and state[f"features.{last}.0.weight"].shape[0] == divisible(1280 * max(1.0, width)):
            return {"width": width, "num_classes": classes, "in_channels": int(first.shape[1]), "input_size": 224,
                    "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    raise UserError(f"the state dict's first layer has {first.shape[0]} channels: no MobileNetV2 width in "
                    f"{WIDTHS} fits it")


def import_mobilenet_v2(source: str | os.PathLike, target: str | os.PathLike, calibration: str | None = None,
                        images: int = 256, progress: ProgressCallback | None = None) -> Int8Model:
    """Write ``target`` (a cgphw model file) from a torchvision MobileNetV2 state dict; a float
    one is calibrated on the first ``images`` images of the folder ``calibration``."""
    from cgphw.nn.imagefolder import is_image_folder, scan

    def say(what: str) -> None:
        step(progress, what)

    source, target = Path(source), Path(target)
    state = read_state(source)
    quantized = quant.is_quantized_state(state)
    args = architecture(state, quantized)
    if quantized:
        module = per_tensor_skeleton("mobilenetv2", args)
        own = module.state_dict()
        # torchvision gives every block a residual add; blocks without a residual have none here
        extra = [k for k in state if k not in own and ".skip_add." in k]
        missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own) - set(extra))
        if missing or unknown:
            raise UserError(f"{source} does not fit MobileNetV2 width {args['width']}: "
                            + (f"missing {missing[:3]}" if missing else f"unexpected {unknown[:3]}"))
        kept = OrderedDict((k, v) for k, v in state.items() if k not in extra)
        # module versions tell quantized modules how their entries are laid out
        kept._metadata = getattr(state, "_metadata", None) or own._metadata  # type: ignore[attr-defined]
        try:
            module.load_state_dict(kept)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise UserError(f"{source} does not load into the int8 MobileNetV2 ({exc})") from None
        how = "torchvision's int8 QNNPACK network, loaded as is"
    else:
        if calibration is None or not is_image_folder(calibration):
            raise UserError(f"{source} holds float weights, which need calibration images: give an image folder "
                            f"(DIR/<class>/<image>; model.calibration in an experiment), got {calibration}")
        load_float_state(MobileNetV2(**args), state)  # checks names and shapes, one clear error
        pictures, _, _ = scan(calibration)
        pictures = pictures[:images]

        def calibrate(net):
            for i in range(0, len(pictures), CALIBRATION_BATCH):
                say(f"calibrating on images {i + 1}-{min(len(pictures), i + CALIBRATION_BATCH)} of {len(pictures)}")
                net(torch.from_numpy(pictures[i:i + CALIBRATION_BATCH].__array__()))

        module = per_tensor_skeleton("mobilenetv2", args, state, calibrate)
        how = (f"float weights, conv+bn+ReLU folded, post-training quantised (QNNPACK, per-tensor symmetric int8 "
               f"weights, uint8 activations) calibrated on {len(pictures)} images of {calibration}")
    meta = {"format": META_FORMAT, "arch": "mobilenetv2", "args": args, "engine": quant.PER_TENSOR_ENGINE,
            "import": {"source": str(source), "source_sha256": sha256_file(source),
                       "kind": "int8" if quantized else "float", "calibration": None if quantized else calibration,
                       "calibration_images": None if quantized else images},
            "quantization": how}
    model = Int8Model("mobilenetv2", args, None, module, meta, engine=quant.PER_TENSOR_ENGINE)
    save_model(model, target)
    model.path = str(target)
    write_json_atomic(target.with_suffix(".json"), dict(meta, model_file=target.name,
                                                        model_sha256=sha256_file(target)))
    return model
