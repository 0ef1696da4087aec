"""Fixtures of the verification tests: a real evolved circuit (the thesis' LeNet-5 conv1
filter 0, core -> ring, found by `cgphw evolve`, error 0) as a run directory and exports."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cgphw.task import example_task

DATA = Path(__file__).parent / "data"


def make_run_dir(tmp_path: Path) -> Path:
    """A run directory whose best is the real circuit, on its task."""
    from cgphw.cgp.genome import load_genome
    from cgphw.cgp.search import record_run

    run = tmp_path / "lenet5_core_ring"
    record_run(load_genome(DATA / "lenet5_core_ring_best.json"), example_task(), out=run)
    return run


def export_run(run: Path, out: Path, pipeline: int | None = None) -> Path:
    from cgphw.hw.export import export

    return export(run, out_dir=out, pipeline=pipeline).directory


def rehash(rtl: Path, name: str) -> None:
    """Record a file's current sha256 in the manifest, as if export had written it: a
    tamperer who did so is then caught by simulation, not by the hash."""
    path = manifest_of(rtl)
    doc = json.loads(path.read_text())
    doc["sha256"][name] = hashlib.sha256((rtl / name).read_bytes()).hexdigest()
    path.write_text(json.dumps(doc))


def manifest_of(rtl: Path) -> Path:
    return rtl / f"{rtl.name}.json"


def corrupt(rtl: Path, rehashed: bool = True) -> str:
    """Flip one operator of the exported Verilog (an XOR that drives output 0 into an OR);
    ``rehashed``: record the new file's hash too, so only simulation can catch it."""
    verilog = rtl / f"{rtl.name}.v"
    text = verilog.read_text()
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("assign") and " ^ " in line:
            lines[i] = line.replace(" ^ ", " | ", 1)
            verilog.write_text("".join(lines))
            if rehashed:
                rehash(rtl, verilog.name)
            return lines[i].strip()
    raise AssertionError("the exported Verilog has no XOR to corrupt")


def claim_latency(rtl: Path, latency: int) -> None:
    """Make the manifest claim another latency (the hardware stays as it is)."""
    path = manifest_of(rtl)
    doc = json.loads(path.read_text())
    doc["latency"] = latency
    path.write_text(json.dumps(doc))
