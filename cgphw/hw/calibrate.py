"""Gate costs from synthesis: every gate of a function set as an 8-bit operator.

Each gate's own Amaranth expression (the one circuit emission uses) becomes a module
``op`` with inputs a, b and output y (all signed(8)); Yosys maps it to the two-input gate
set in a fresh process; the cell table prices the mapped netlist, with switching activity
measured by simulating it over random input pairs. Constants and wires synthesise to no
cells and so cost zero without a special case. Two reference operators (a full 8x8 -> 16
bit product and the 8-bit sum) go through the same flow to check the model against the
published 45 nm anchors.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from cgphw import gates as G
from cgphw.costs import FORMAT
from cgphw.hw.cells import CellLibrary
from cgphw.hw.synth import ABC_COMMAND, ACTIVITY_EVALUATIONS, CostReport, cost_report, default_stimulus, \
    synthesise, synthesis_script
from cgphw.hw.yosys import ending_children, yosys_version
from cgphw.progress import ProgressCallback, step

TOP = "op"
# Published anchors (45 nm, 0.9 V): Horowitz ISSCC 2014; EvoApproxLib exact 8-bit cells.
ADD_ANCHOR_PJ = 0.03
RATIO_BAND = (0.2 / 0.03, 0.391 / 0.033)  # (6.7, 11.8); both edges count as inside
MEMORY = {
    "sram_read_pj_per_byte": 1.25,
    "dram_read_pj_per_byte": 160.0,
    "source": "Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014, 45 nm, 0.9 V: "
              "8 KB SRAM 64-bit read 10 pJ (1.25 pJ/byte); DRAM 1.3-2.6 nJ per 64-bit access (about 160 pJ/byte)",
}


def operator_rtlil(expression: Callable, out_width: int = 8, out_signed: bool = True) -> str:
    """RTLIL of module ``op``: y = expression(a, b), a and b signed(8)."""
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Shape, Signal, signed

    m = Module()
    a, b = Signal(signed(8), name="a"), Signal(signed(8), name="b")
    y = Signal(Shape(out_width, out_signed), name="y")
    m.d.comb += y.eq(expression(a, b))
    return rtlil.convert(m, ports=[a, b, y], name=TOP)


def gate_rtlil(gate_id: int) -> str:
    return operator_rtlil(G.gate(gate_id).amaranth)


REFERENCES = {  # name -> (what, expression, output width)
    "mul8x8": ("full signed 8x8 -> 16-bit product (what the published multiplier figures measure)",
               lambda a, b: a * b, 16),
    "add8": ("8-bit sum (the add gate itself)", lambda a, b: a + b, 8),
}


def price_operator(rtl: str, library: CellLibrary, seed: int, evaluations: int) -> CostReport:
    mapped = synthesise(rtl, TOP)
    return cost_report(mapped, library, default_stimulus(mapped.netlist, seed, evaluations))


def gate_entry(gate_id: int, report: CostReport) -> dict:
    g = G.gate(gate_id)
    doc = report.to_json()
    return {"name": g.name, "energy_pj": doc.pop("energy_pj"), "area": doc.pop("area"),
            "delay_ns": doc.pop("delay_ns"), **doc, "synthesised": True}


def calibrate(function_ids: Sequence[int], library: CellLibrary, seed: int = 0,
              evaluations: int = ACTIVITY_EVALUATIONS, jobs: int = 2,
              progress: ProgressCallback | None = None) -> dict:
    """The gate-cost document for ``function_ids`` (format cgphw-gate-costs/1)."""
    step(progress, "building the operators")
    jobs_list = [(str(gid), gate_rtlil(gid), seed + gid) for gid in function_ids]
    jobs_list += [(f"ref:{name}", operator_rtlil(expr, width), seed + 1000 + i)
                  for i, (name, (_, expr, width)) in enumerate(REFERENCES.items())]
    finished = []

    def work(job):
        key, rtl, job_seed = job
        report = price_operator(rtl, library, job_seed, evaluations)
        finished.append(key)  # list.append is atomic: the worker threads may share it
        step(progress, "synthesising with Yosys", len(finished), len(jobs_list))
        return key, report

    step(progress, "synthesising with Yosys", 0, len(jobs_list))
    # ending_children inside the pool: on Ctrl-C it kills the children before the pool waits for its threads
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, ending_children():
        reports = dict(pool.map(work, jobs_list))
    gates = {str(gid): gate_entry(gid, reports[str(gid)]) for gid in function_ids}
    refs = {name: reports[f"ref:{name}"] for name in REFERENCES}
    return {
        "format": FORMAT,
        "source": (f"cgphw calibrate: each gate's Amaranth expression synthesised as an 8-bit operator with "
                   f"{yosys_version()} (pyosys) and `{ABC_COMMAND}`, priced with the {library.name} cell table; "
                   f"energy = sum over cells of energy per output transition x transitions per evaluation, "
                   f"measured by zero-delay simulation of the mapped netlist over {evaluations} random input "
                   f"pairs; energies scaled to 45 nm / 0.9 V (x{library.energy_to_anchor}) to match the memory "
                   f"figures"),
        "generated": {
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"yosys": yosys_version(), "pyosys": _version("pyosys"), "amaranth": _version("amaranth"),
                      "cgphw": _version("cgphw")},
            "flow": synthesis_script(TOP),
            "cells": {"library": library.name, "file": Path(library.path).name, "sha256": library.sha256},
            "activity": {"method": "zero-delay simulation of the mapped netlist (glitches not counted): "
                                   "output transitions per cell between consecutive independent uniform "
                                   "random input vectors", "evaluations": evaluations,
                         "seed": f"{seed} + gate id"},
            "function_set": list(function_ids),
        },
        "units": {"energy": "pJ per evaluation at 45 nm / 0.9 V (library energy x anchor factor)",
                  "area": library.units.get("area", "um2"), "delay": "ns"},
        "gates": gates,
        "sanity": sanity_checks(gates, refs, library),
        "memory": dict(MEMORY),
    }


def sanity_checks(gates: dict, refs: dict[str, CostReport], library: CellLibrary) -> dict:
    """Model versus published anchors; energies are already at the anchors' 45 nm / 0.9 V."""
    mul_ref, add_ref = refs["mul8x8"].energy_pj, refs["add8"].energy_pj
    ratio = mul_ref / add_ref if add_ref else float("inf")
    lo, hi = RATIO_BAND
    out = {
        "ratio_band": [round(lo, 3), round(hi, 3)],
        "mul8x8_over_add8": round(ratio, 3),
        "ratio_in_band": bool(lo <= ratio <= hi),
        "ratio_rule": "inclusive band from Horowitz 0.2/0.03 pJ to EvoApproxLib 0.391/0.033 mW (same clock): "
                      "reference operators synthesised by this same flow",
        "add8_pj": round(add_ref, 6),
        "add_anchor_pj": ADD_ANCHOR_PJ,
        "add_within_2x": bool(ADD_ANCHOR_PJ / 2 <= add_ref <= ADD_ANCHOR_PJ * 2),
        "node_scaling": library.anchor_scaling,
        "references": {name: {"what": REFERENCES[name][0], **r.to_json()} for name, r in refs.items()},
    }
    if "1" in gates and "3" in gates and gates["1"]["energy_pj"]:
        out["gate_mul_over_add"] = round(gates["3"]["energy_pj"] / gates["1"]["energy_pj"], 3)
        out["gate_mul_note"] = ("the mul gate keeps only the low 8 bits of the product, so synthesis drops the "
                                "partial products of the high half: its ratio sits below the band, which is "
                                "for full-width multipliers")
    out["passed"] = out["ratio_in_band"] and out["add_within_2x"]
    return out


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
