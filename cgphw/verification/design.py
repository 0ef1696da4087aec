"""What is verified: an exported RTL directory, read with ``load_manifest`` (format, hashes,
paths, genome, ports and task checked) so a backend gets ports, latency, genome and task
without guessing."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cgphw.cgp.genome import Genome
from cgphw.cgp.metrics import Metrics
from cgphw.errors import UserError
from cgphw.hw.manifest import Manifest, find_manifest, load_manifest
from cgphw.task import Task
from cgphw.verification.stimulus import Ports


@dataclass(frozen=True, eq=False)
class Design:
    directory: Path
    manifest: Manifest
    top: str
    verilog: Path
    latency: int
    pipeline: int | None
    ports: Ports
    genome: Genome
    task: Task | None  # the task the circuit was exported with (its inputs are simulated too)
    metrics: Metrics | None  # what the search reported (error_se, threshold, ...), if known


def load_design(path: str | os.PathLike) -> Design:
    m = load_manifest(path)
    valid = m.valid
    ports = Ports(stored="stored" if m.genome.grid.n_inputs else None, weights="weights", clock=m.clock,
                  reset=m.reset, valid_in=valid.in_ if valid else None, valid_out=valid.out if valid else None)
    return Design(m.directory, m, m.top, m.verilog, m.latency, m.pipeline, ports, m.genome, m.task, m.metrics)


def resolve_manifest(path: Path, work: Path, pipeline: int | None) -> Path:
    """The manifest to verify: PATH's own (an RTL directory or NAME.json), or that of a run,
    best.json or genome exported first into ``work/rtl`` with ``pipeline``."""
    manifest = None if path.is_dir() and (path / "best.json").is_file() else find_manifest(path)
    if manifest is None:
        if path.is_dir() and not (path / "best.json").is_file():
            raise UserError(f"{path} is neither an RTL directory (from `cgphw export`) nor a run directory")
        exported = find_manifest(export_to(path, work / "rtl", pipeline))
        assert exported is not None  # export_to wrote it just now
        return exported
    if pipeline is not None:
        raise UserError("--pipeline applies to a run or genome; an RTL directory already fixes its pipeline")
    return manifest


def export_to(path: str | os.PathLike, out_dir: Path, pipeline: int | None) -> Path:
    """Export a run or genome with cgphw's exporter into ``out_dir``; returns the RTL directory."""
    from cgphw.hw.export import export  # Amaranth: only when a run must be exported

    return export(path, out_dir=out_dir, pipeline=pipeline, force=True).directory
