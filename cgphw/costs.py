"""CostTable: per-gate energy, area and delay, read from a gate_costs.json file.

The default table is package data (``cgphw/data/gate_costs.json``), written by
``cgphw calibrate``; the file states its own source. Constants and wires cost zero.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from cgphw.errors import UserError
from cgphw.files import parse_json

FORMAT = "cgphw-gate-costs/1"
MAX_FIGURE = 1e4  # per gate: pJ, area unit, ns


def default_costs_path() -> Path:
    return Path(str(resources.files("cgphw") / "data" / "gate_costs.json"))


@dataclass(frozen=True)
class GateCost:
    energy_pj: float  # energy per evaluation
    area: float  # in the table's area unit
    delay_ns: float


@dataclass(frozen=True)
class CostTable:
    gates: dict[int, GateCost]
    source: str
    path: str = ""
    sha256: str = ""
    memory: dict = field(default_factory=dict)  # e.g. sram_read_pj_per_byte, dram_read_pj_per_byte

    def arrays(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(energy, area, delay) float64 arrays aligned with the gate ids given."""
        missing = [i for i in ids if i not in self.gates]
        if missing:
            raise UserError(f"cost table {self.path or self.source} has no entry for gate ids {missing}")
        return tuple(np.array([getattr(self.gates[i], f) for i in ids], np.float64)  # type: ignore[return-value]
                     for f in ("energy_pj", "area", "delay_ns"))  # mypy cannot count the three

    def to_json(self) -> dict:
        """A gate_costs.json document holding this table (what ``load_costs`` reads)."""
        return {"format": FORMAT, "source": self.source, "memory": dict(self.memory),
                "gates": {str(i): {"energy_pj": c.energy_pj, "area": c.area, "delay_ns": c.delay_ns}
                          for i, c in sorted(self.gates.items())}}

    def describe(self) -> dict:
        # The package's own table is named portably, not by this machine's install path.
        default = self.path and Path(self.path).resolve() == default_costs_path().resolve()
        return {"path": "cgphw:data/gate_costs.json" if default else self.path,
                "sha256": self.sha256, "source": self.source}


def load_costs(path: str | os.PathLike | None = None) -> CostTable:
    path = Path(path) if path is not None else default_costs_path()
    if not path.is_file():
        raise UserError(f"cost table {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise UserError(f"cost table {path} is not a text file") from None
    doc = parse_json(text, f"cost table {path}")
    try:
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        gates = {int(k): GateCost(float(v["energy_pj"]), float(v["area"]), float(v["delay_ns"]))
                 for k, v in doc["gates"].items()}
        for gid, c in gates.items():  # the search sums them as integers: keep far from int64 overflow
            if not all(0 <= x <= MAX_FIGURE for x in (c.energy_pj, c.area, c.delay_ns)):
                raise ValueError(f"gate {gid} has energy/area/delay {c.energy_pj}, {c.area}, {c.delay_ns}; "
                                 f"each must be a number from 0 to {MAX_FIGURE:g}")
        memory = doc.get("memory", {})
        if not isinstance(memory, dict):
            raise ValueError("memory must be a JSON object")
        for key, value in memory.items():
            if key.endswith("_per_byte") and not (isinstance(value, (int, float)) and 0 <= value <= MAX_FIGURE):
                raise ValueError(f"memory.{key} must be a number from 0 to {MAX_FIGURE:g}, got {value!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"cost table {path} is malformed ({exc})") from None
    return CostTable(gates, str(doc.get("source", "")), str(path), hashlib.sha256(raw).hexdigest(), dict(memory))
