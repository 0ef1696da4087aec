"""The cell energy model: one table per standard-cell library, read from a JSON file.

Energy of a netlist per evaluation = sum over cells of (energy per output transition
of the cell's type) x (measured transitions per evaluation), plus, for each flip-flop,
its clock energy per cycle. Area and delay come from the same table. The default
table is ``cgphw/data/cells_nangate45.json``; ``--cells FILE`` swaps in another.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

from cgphw.errors import UserError
from cgphw.hw.netlist import FLOP_TYPES, LOGIC_PINS, Netlist

FORMAT = "cgphw-cells/1"
# Every cell type synthesis may leave behind must have a row ($_BUF_ is a wire).
REQUIRED_TYPES = tuple(t for t in LOGIC_PINS if t != "$_BUF_") + FLOP_TYPES


def default_cells_path() -> Path:
    return Path(str(resources.files("cgphw") / "data" / "cells_nangate45.json"))


@dataclass(frozen=True)
class CellCost:
    energy_fj: float  # per output transition (flip-flop: per transition of Q)
    area: float
    delay_ns: float
    clock_energy_fj: float = 0.0  # flip-flops: per clock cycle, whatever the data does


@dataclass(frozen=True)
class CellLibrary:
    name: str
    cells: dict[str, CellCost]
    units: dict
    anchor_scaling: dict  # how to bring energies to the published 45 nm / 0.9 V anchors
    doc: dict = field(repr=False, default_factory=dict)
    path: str = ""
    sha256: str = ""

    @property
    def energy_to_anchor(self) -> float:
        return float(self.anchor_scaling.get("energy_factor", 1.0))

    def describe(self) -> dict:
        # The package's own table is named portably, not by this machine's install path.
        default = self.path and Path(self.path).resolve() == default_cells_path().resolve()
        return {"name": self.name, "path": "cgphw:data/cells_nangate45.json" if default else self.path,
                "sha256": self.sha256}

    def energy_fj(self, netlist: Netlist, toggles: Mapping[str, float]) -> float:
        """Energy per evaluation (fJ) of a netlist given its cells' measured activity."""
        total = 0.0
        for c in netlist.cells:
            if c.type == "$_BUF_":
                continue
            cost = self.cells[c.type]
            total += cost.energy_fj * toggles[c.name] + cost.clock_energy_fj
        return total

    def area(self, netlist: Netlist) -> float:
        return float(sum(self.cells[c.type].area for c in netlist.cells if c.type != "$_BUF_"))

    def delays(self) -> dict[str, float]:
        return {t: c.delay_ns for t, c in self.cells.items()}

    def clk_to_q_ns(self) -> float:
        return max((self.cells[t].delay_ns for t in FLOP_TYPES if t in self.cells), default=0.0)


def load_cells(path: str | os.PathLike | None = None) -> CellLibrary:
    path = Path(path) if path is not None else default_cells_path()
    if not path.is_file():
        raise UserError(f"cell table {path} does not exist")
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"format is {found!r}, expected {FORMAT!r}")
        cells = {}
        for ctype, row in doc["cells"].items():
            cost = CellCost(float(row["energy_fj"]), float(row["area"]), float(row["delay_ns"]),
                            float(row.get("clock_energy_fj", 0.0)))
            if min(cost.energy_fj, cost.area, cost.delay_ns, cost.clock_energy_fj) < 0:
                raise ValueError(f"cell {ctype} has a negative figure")
            cells[ctype] = cost
        missing = [t for t in REQUIRED_TYPES if t not in cells]
        if missing:
            raise ValueError(f"no row for cell types {missing}")
        name, units, scaling = str(doc["library"]), dict(doc.get("units", {})), dict(doc.get("anchor_scaling", {}))
        float(scaling.get("energy_factor", 1.0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UserError(f"cell table {path} is malformed ({what})") from None
    return CellLibrary(name, cells, units, scaling, doc, str(path), hashlib.sha256(raw).hexdigest())
