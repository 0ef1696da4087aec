"""Synthesis to the calibrated cell set, its cost report, and formal equivalence.

``synthesise`` maps an RTLIL design with Yosys (``synth -flatten``, flip-flops legalised
to plain D flip-flops, ``abc -g`` onto the two-input gate set the cell table prices) and
prices the mapped netlist with the cell model: area, longest path, and energy per
evaluation from measured switching activity. ``prove_equivalent`` shows with a SAT
miter that a mapped netlist computes what the RTL does, for every input.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from cgphw.errors import UserError
from cgphw.hw.activity import Activity, random_stimulus, simulate
from cgphw.hw.cells import CellLibrary
from cgphw.hw.netlist import Netlist, parse_yosys_json
from cgphw.hw.yosys import YosysError, run_yosys

GATE_SET = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"
ABC_COMMAND = f"abc -g {GATE_SET}"
ACTIVITY_EVALUATIONS = 4096
MAX_EVALUATIONS = 1_000_000  # activity simulation memory grows with it


def _safe_top(top: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top or ""):
        raise UserError(f"top module name {top!r} is not a plain identifier")
    return top


def synthesis_script(top: str, source: str = "design.il") -> list[str]:
    reader = "read_rtlil" if source.endswith(".il") else "read_verilog -sv"
    return [
        f"{reader} {source}",
        f"hierarchy -check -top {top}",
        f"synth -flatten -top {top}",
        "dfflegalize -cell $_DFF_P_ 01",  # resets and enables become logic the table prices
        ABC_COMMAND,
        "opt_clean -purge",
        "delete t:$scopeinfo",
        "tee -q -o stat_cmos.txt stat -tech cmos",
        "write_json mapped.json",
        "write_verilog -noattr -noexpr mapped.v",  # cell instances: reads back cell for cell
    ]


@dataclass(frozen=True)
class Mapped:
    """A design mapped to the gate set: the netlist, its Verilog, Yosys' own figures."""
    netlist: Netlist
    verilog: str
    transistors: int
    log: str


def synthesise(rtl: str, top: str, language: str = "rtlil", label: str = "") -> Mapped:
    """Map RTL text (RTLIL, or Verilog with language="verilog") in a fresh Yosys process;
    ``label`` (e.g. the file name) prefixes any error."""
    source = "design.il" if language == "rtlil" else "design.v"
    try:
        run = run_yosys(synthesis_script(_safe_top(top), source), {source: rtl},
                        ("mapped.json", "mapped.v", "stat_cmos.txt"))
    except YosysError as exc:
        if not label:
            raise
        raise YosysError(f"{label}: {exc}", exc.log, exc.command) from None
    return Mapped(parse_yosys_json(json.loads(run.files["mapped.json"]), top),
                  run.text("mapped.v"), _transistors(run.text("stat_cmos.txt")), run.log)


def read_netlist(verilog: str, top: str) -> Mapped:
    """Load a mapped gate-level Verilog netlist (e.g. one ``synthesise`` wrote) as is."""
    run = run_yosys(["read_verilog -icells mapped.v", f"hierarchy -check -top {_safe_top(top)}", "proc",
                     "flatten", "tee -q -o stat_cmos.txt stat -tech cmos", "write_json mapped.json"],
                    {"mapped.v": verilog}, ("mapped.json", "stat_cmos.txt"))
    return Mapped(parse_yosys_json(json.loads(run.files["mapped.json"]), top), verilog,
                  _transistors(run.text("stat_cmos.txt")), run.log)


def _transistors(stat_text: str) -> int:
    match = re.search(r"Estimated number of transistors:\s*(\d+)", stat_text)
    return int(match.group(1)) if match else 0  # Yosys prints nothing for an empty design


@dataclass(frozen=True)
class CostReport:
    cells: dict[str, int]
    n_cells: int  # logic cells and flip-flops, buffers excluded
    transistors: int
    area: float
    depth: int
    delay_ns: float
    energy_pj: float  # per evaluation, measured activity, at the anchors' 45 nm / 0.9 V
    energy_pj_library: float  # the same at the cell library's own supply voltage
    activity: float  # mean output transitions per cell per evaluation
    simulation: Activity

    def to_json(self) -> dict:
        return {"cells": self.cells, "n_cells": self.n_cells, "transistors": self.transistors,
                "area": round(self.area, 6), "depth": self.depth, "delay_ns": round(self.delay_ns, 6),
                "energy_pj": round(self.energy_pj, 9), "energy_pj_library": round(self.energy_pj_library, 9),
                "activity": round(self.activity, 6)}


def cost_report(mapped: Mapped, library: CellLibrary, stimulus: Mapping[str, np.ndarray]) -> CostReport:
    netlist = mapped.netlist
    missing = sorted({c.type for c in netlist.cells if c.type != "$_BUF_"} - set(library.cells))
    if missing:
        raise UserError(f"cell table {library.path} has no row for cell types {missing}")
    sim = simulate(netlist, stimulus)
    counts = {t: n for t, n in netlist.cell_counts().items() if t != "$_BUF_"}
    priced = [c for c in netlist.cells if c.type != "$_BUF_"]
    depth, delay = netlist.longest_path(library.delays(), library.clk_to_q_ns())
    activity = float(np.mean([sim.toggles[c.name] for c in priced])) if priced else 0.0
    native_pj = library.energy_fj(netlist, sim.toggles) / 1000.0
    return CostReport(counts, sum(counts.values()), mapped.transistors, library.area(netlist), depth,
                      delay, native_pj * library.energy_to_anchor, native_pj, activity, sim)


def default_stimulus(netlist: Netlist, seed: int, evaluations: int = ACTIVITY_EVALUATIONS,
                     fixed: Mapping[str, int] | None = None, below: Mapping[str, int] | None = None):
    return random_stimulus(netlist, evaluations, seed, {"rst": 0, "valid_in": 1, **(fixed or {})}, below)


@dataclass(frozen=True)
class Proof:
    equivalent: bool
    method: str
    detail: str  # on failure: the counterexample Yosys printed


def prove_equivalent(gold_rtl: str, gate_verilog: str, top: str, gold_language: str = "rtlil",
                     sequential_steps: int = 0) -> Proof:
    """Prove with a Yosys miter and SAT that the mapped netlist equals the RTL for all
    inputs. ``sequential_steps`` > 0 (registered designs): both start from their reset
    state and are compared over every input sequence of that many cycles."""
    top = _safe_top(top)
    gold_src = "gold.il" if gold_language == "rtlil" else "gold.v"
    reader = "read_rtlil" if gold_language == "rtlil" else "read_verilog -sv"
    sat = "sat -verify -prove trigger 0 -show-inputs -show-outputs"
    if sequential_steps > 0:
        sat += f" -set-init-zero -seq {int(sequential_steps)}"
        method = (f"miter -equiv + sat -seq {sequential_steps} from the all-zero (reset) state: "
                  "a bounded proof that covers every input sequence of that length")
    else:
        method = "miter -equiv + sat -prove trigger 0: combinational, all inputs"
    # Each side is elaborated alone (hierarchy -top drops every other module), then both
    # are copied into one design for the miter.
    commands = [f"{reader} {gold_src}", f"hierarchy -top {top}", "proc", "flatten", "memory", "opt_clean",
                "delete t:$scopeinfo",
                f"rename {top} gold", "design -stash gold",
                "read_verilog -icells gate.v", f"hierarchy -top {top}", "proc", "flatten",
                f"rename {top} gate", "design -stash gate",
                "design -copy-from gold -as gold gold", "design -copy-from gate -as gate gate",
                "miter -equiv -flatten -make_outputs gold gate miter", "hierarchy -top miter"]
    if sequential_steps <= 0:
        # Function-preserving clean-up of a combinational miter (ABC merges equal nodes):
        # the SAT problem shrinks several-fold on big circuits; the proof stays a proof.
        commands += ["techmap", "opt -fast", "abc -g AND", "opt_clean"]
    commands.append(sat + " miter")
    try:
        run_yosys(commands, {gold_src: gold_rtl, "gate.v": gate_verilog})
    except YosysError as exc:
        if "model found: FAIL" in exc.log or "SAT proof finished - model found" in exc.log:
            return Proof(False, method, _counterexample(exc.log))
        raise
    return Proof(True, method, "")


def _counterexample(log: str) -> str:
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if "Signal Name" in line), None)
    if start is None:
        return "SAT found inputs on which the two designs differ"
    return "\n".join(line.rstrip() for line in lines[start:start + 40] if line.strip())
