"""Fixtures of the verification tests: a real evolved circuit (the thesis' LeNet-5 conv1
filter 0, core -> ring, found by `cgphw evolve`, error 0) as a run directory and exports."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from cgphw.task import example_task

DATA = Path(__file__).parent / "data"


def make_run_dir(tmp_path: Path) -> Path:
    """A run directory holding the real circuit's best.json and its task."""
    run = tmp_path / "lenet5_core_ring"
    run.mkdir()
    shutil.copy(DATA / "lenet5_core_ring_best.json", run / "best.json")
    example_task().save(run / "task.npz")
    return run


def export_run(run: Path, out: Path, pipeline: int | None = None) -> Path:
    from cgphw.hw.export import export

    directory, _ = export(run, out_dir=out, pipeline=pipeline)
    return directory


def manifest_of(rtl: Path) -> Path:
    return rtl / f"{rtl.name}.json"


def corrupt(rtl: Path) -> str:
    """Flip one operator of the exported Verilog (an XOR that drives output 0 into an OR)."""
    verilog = rtl / f"{rtl.name}.v"
    text = verilog.read_text()
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("assign") and " ^ " in line:
            lines[i] = line.replace(" ^ ", " | ", 1)
            verilog.write_text("".join(lines))
            return lines[i].strip()
    raise AssertionError("the exported Verilog has no XOR to corrupt")


def claim_latency(rtl: Path, latency: int) -> None:
    """Make the manifest claim another latency (the hardware stays as it is)."""
    path = manifest_of(rtl)
    doc = json.loads(path.read_text())
    doc["latency"] = latency
    path.write_text(json.dumps(doc))
