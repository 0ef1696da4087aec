"""The network of a campaign: a cgphw model file (the shipped LeNet-5 by default), a TFLite
network (the shipped 'mobilenetv2' or a .tflite file), or a torchvision MobileNetV2 state
dict imported once into the campaign folder (model.pt)."""
from __future__ import annotations

from pathlib import Path

from cgphw.campaign import stages
from cgphw.campaign.experiment import environment_path
from cgphw.errors import UserError
from cgphw.files import read_json


def prepare_model(table: dict, out: Path, note=lambda _m: None) -> dict:
    """{"path", "sha256"} of the model every run uses."""
    if table.get("torchvision"):
        return _imported(table, out, note)
    path = environment_path(table["path"], "model.path")
    file = stages.model_file(path)
    if not file.is_file():
        raise UserError(f"model file {file} does not exist (model.path)")
    return {"path": path if path in ("lenet5", "mobilenetv2") else str(file), "sha256": stages.file_digest(file)}


def _imported(table: dict, out: Path, note) -> dict:
    source = Path(environment_path(table["torchvision"], "model.torchvision"))
    if not source.is_file():
        raise UserError(f"torchvision state dict {source} does not exist (model.torchvision)")
    calibration = table.get("calibration")  # only float weights need it
    calibration = environment_path(calibration, "model.calibration", required=False) if calibration else None
    target = out / "model.pt"
    want = {"source_sha256": stages.file_digest(source), "calibration": calibration,
            "calibration_images": table["calibration_images"]}
    meta_path = target.with_suffix(".json")
    if target.is_file() and meta_path.is_file():
        meta = read_json(meta_path)
        made = meta.get("import", {}) if isinstance(meta, dict) else {}
        same = made.get("source_sha256") == want["source_sha256"] and (
            made.get("kind") == "int8" or all(made.get(k) == v for k, v in want.items()))
        if same and meta.get("model_sha256") == stages.file_digest(target):
            return {"path": str(target), "sha256": meta["model_sha256"]}
    note(f"importing {source} into {target} ...")
    stages.import_torchvision(source, target, calibration, table["calibration_images"])
    return {"path": str(target), "sha256": stages.file_digest(target)}
