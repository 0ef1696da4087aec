"""What is verified: an exported RTL directory (manifest ``cgphw-rtl/1``), read and
checked so a backend gets ports, latency, genome and task without guessing."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgphw.cgp.genome import Genome
from cgphw.errors import UserError
from cgphw.files import read_json
from cgphw.hw.manifest import find_manifest
from cgphw.verify.stimulus import Ports


@dataclass(frozen=True, eq=False)
class Design:
    directory: Path
    manifest: dict
    top: str
    verilog: Path
    latency: int
    pipeline: int | None
    ports: Ports
    genome: Genome
    task_inputs: np.ndarray | None
    task_targets: np.ndarray | None
    task_weights: np.ndarray | None  # float [items, n_out] error weights (0 = don't care); None = all 1
    metrics: dict | None  # what the search reported (error_se, threshold, ...), if known


def _port(ports: dict, name: str | None, direction: str, width: int | None, manifest: Path) -> str | None:
    if name is None:
        return None
    entry = ports.get(name)
    if entry is None or entry.get("direction") != direction:
        raise UserError(f"{manifest} names {direction} port {name!r} but its port list lacks it")
    if width is not None and int(entry.get("width", -1)) != width:
        raise UserError(f"{manifest}: port {name} is {entry.get('width')} bits wide, expected {width}")
    return name


def load_design(path: str | os.PathLike) -> Design:
    manifest_path = find_manifest(path)
    if manifest_path is None:
        raise UserError(f"{path} holds no cgphw-rtl manifest (NAME.json written by `cgphw export`)")
    doc = read_json(manifest_path)
    directory = manifest_path.parent
    try:
        genome = Genome.from_json(doc["genome"], source=f"the genome in {manifest_path}")
        top = str(doc["top"])
        latency = int(doc["latency"])
        pipeline = None if doc.get("pipeline") is None else int(doc["pipeline"])
        ports = {str(p["name"]): p for p in doc["ports"]}
        verilog = directory / str((doc.get("files") or {}).get("verilog", f"{doc['name']}.v"))
        valid = doc.get("valid") or {}
        clock, reset = doc.get("clock"), doc.get("reset")
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{manifest_path} is not a valid cgphw-rtl manifest ({exc.__class__.__name__}: {exc})") from None
    if not verilog.is_file():
        raise UserError(f"{manifest_path} names Verilog file {verilog.name}, which is missing")
    if latency < 0:
        raise UserError(f"{manifest_path} claims a negative latency ({latency})")
    n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
    has_valid = "valid_in" in ports or bool(valid)
    design_ports = Ports(
        stored=_port(ports, "stored" if n_in else None, "input", 8 * n_in, manifest_path),
        weights=_port(ports, "weights", "output", 8 * n_out, manifest_path),
        clock=_port(ports, clock, "input", 1, manifest_path) if clock else None,
        reset=_port(ports, reset, "input", 1, manifest_path) if reset else None,
        valid_in=_port(ports, valid.get("in", "valid_in"), "input", 1, manifest_path) if has_valid else None,
        valid_out=_port(ports, valid.get("out", "valid_out"), "output", 1, manifest_path) if has_valid else None)
    if latency and clock is None:
        raise UserError(f"{manifest_path} claims latency {latency} but names no clock")
    task = doc.get("task")
    inputs = targets = None
    if task:
        try:
            targets = np.array(task["targets"], np.int64).reshape(-1, n_out)
            # items from the targets: reshape(-1, 0) is ambiguous for a circuit without inputs
            inputs = np.array(task["inputs"], np.int64).reshape(len(targets), n_in)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{manifest_path}: task inputs/targets do not fit {n_in} inputs and {n_out} outputs") from None
        if inputs.min(initial=0) < -128 or inputs.max(initial=0) > 127:
            raise UserError(f"{manifest_path}: task inputs are not int8")
        inputs, targets = inputs.astype(np.int8), targets.astype(np.int8)
    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    metrics = source.get("metrics") or doc.get("metrics")
    weights = _error_weights(doc, targets) if task else None
    return Design(directory, doc, top, verilog, latency, pipeline, design_ports, genome, inputs, targets,
                  weights, metrics if isinstance(metrics, dict) else None)


def _error_weights(doc: dict, targets: np.ndarray) -> np.ndarray | None:
    """Per-target error weights (don't-cares as 0) from the manifest's task; None = all 1."""
    task = doc["task"]
    if task.get("weights") is None and task.get("mask") is None:
        return None
    try:
        w = np.ones(targets.shape) if task.get("weights") is None else np.array(task["weights"], float)
        if task.get("mask") is not None:
            w = np.where(np.array(task["mask"], bool), w, 0.0)
        return w.reshape(targets.shape)
    except (ValueError, TypeError):
        raise UserError(f"the manifest's task weights/mask do not match its targets' shape {targets.shape}") from None


def resolve_manifest(path: Path, work: Path, pipeline: int | None) -> Path:
    """The manifest to verify: PATH's own (an RTL directory or NAME.json), or that of a run,
    best.json or genome exported first into ``work/rtl`` with ``pipeline``."""
    manifest = None if path.is_dir() and (path / "best.json").is_file() else find_manifest(path)
    if manifest is None:
        if path.is_dir() and not (path / "best.json").is_file():
            raise UserError(f"{path} is neither an RTL directory (from `cgphw export`) nor a run directory")
        return find_manifest(export_to(path, work / "rtl", pipeline))
    if pipeline is not None:
        raise UserError("--pipeline applies to a run or genome; an RTL directory already fixes its pipeline")
    return manifest


def export_to(path: str | os.PathLike, out_dir: Path, pipeline: int | None) -> Path:
    """Export a run or genome with cgphw's exporter into ``out_dir``; returns the RTL directory."""
    from cgphw.hw.export import export  # Amaranth: only when a run must be exported

    directory, _ = export(path, out_dir=out_dir, pipeline=pipeline, force=True)
    return directory
