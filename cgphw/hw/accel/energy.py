"""Energy of a layer engine per image: synthesise it to the calibrated cell set (the Yosys
flow of ``cgphw.hw.synth``), run the mapped netlist cycle by cycle on real activations
(``seqsim``, one image per lane) and price every cell's measured transitions and every
flip-flop's clock with the cell model (``cgphw.hw.cells``).

Memories outside the engine are not synthesised: words read through the ``w_data`` port are
priced with the SRAM read energy of the gate cost table (``memory.sram_read_pj_per_byte``,
Horowitz ISSCC 2014, 45 nm), per byte read.

Synthesis skips ``synth``'s own ABC run (``-noabc``) and maps with a lighter ABC script than
the per-gate calibration (``strash; dc2; &nf``): the default ones (``&fraig``, ``scorr``,
``&dch``) take many minutes to hours on an engine with tens of thousands of cells and
registers. The cell set and the pricing are the same.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from cgphw.errors import UserError
from cgphw.hw import emit
from cgphw.hw.cells import CellLibrary
from cgphw.hw.netlist import Netlist, parse_yosys_json
from cgphw.hw.seqsim import GateSim
from cgphw.hw.synth import GATE_SET, synthesis_script
from cgphw.hw.yosys import run_yosys

ENGINE_ABC = f"abc -script +strash;dc2;&get,-n;&nf;&put -g {GATE_SET}"
SYNTH_TIMEOUT_S = 3600.0
RESET_CYCLES = 2


@dataclass(frozen=True, eq=False)
class MappedEngine:
    netlist: Netlist
    cells: dict[str, int]
    n_cells: int  # logic cells and flip-flops, buffers excluded
    flops: int
    area: float  # um^2 of Nangate45 cells
    flop_wires: dict  # flip-flop cell -> the name of the RTL signal it holds ("" if none survived)

    def flops_of(self, pattern: str) -> set[str]:
        """Flip-flops holding RTL signals whose name matches ``pattern`` (a regular expression)."""
        rx = re.compile(pattern)
        return {cell for cell, wire in self.flop_wires.items() if rx.fullmatch(wire)}


def synthesise_engine(component, top: str, library: CellLibrary) -> MappedEngine:
    """Map an engine (any Amaranth component) to the cell set of the energy model."""
    rtlil = emit.to_rtlil(component, top)
    script = [ENGINE_ABC if cmd.startswith("abc ") else cmd.replace("synth -flatten", "synth -flatten -noabc")
              for cmd in synthesis_script(top)]
    script = [cmd for cmd in script if not cmd.startswith(("tee ", "write_verilog"))]
    run = run_yosys(script, {"design.il": rtlil}, ("mapped.json",), timeout_s=SYNTH_TIMEOUT_S)
    doc = json.loads(run.files["mapped.json"])
    netlist = parse_yosys_json(doc, top)
    missing = sorted({c.type for c in netlist.cells if c.type != "$_BUF_"} - set(library.cells))
    if missing:
        raise UserError(f"cell table {library.path} has no row for cell types {missing}")
    counts = {t: n for t, n in netlist.cell_counts().items() if t != "$_BUF_"}
    return MappedEngine(netlist, counts, sum(counts.values()), len(netlist.flops), library.area(netlist),
                        _flop_wires(doc["modules"][top], netlist))


def _flop_wires(module: dict, netlist: Netlist) -> dict:
    """Flip-flop -> RTL signal name (Yosys keeps user-named wires on register outputs)."""
    named: dict[int | str, str] = {}  # Yosys bit ids; constants are "0", "1", "x"
    for name, net in module.get("netnames", {}).items():
        if name.startswith("$") or net.get("hide_name"):
            continue
        for bit in net["bits"]:
            named.setdefault(bit, name.split(".")[-1])
    return {f.name: named.get(f.output, "") for f in netlist.flops}


def cells_pj_per_cycle(netlist: Netlist, toggles: dict, library: CellLibrary, names: set[str]) -> float:
    """Energy per cycle (pJ, at the anchors' voltage) of the cells named in ``names``."""
    total = 0.0
    for c in netlist.cells:
        if c.name in names:
            cost = library.cells[c.type]
            total += cost.energy_fj * toggles[c.name] + cost.clock_energy_fj
    return total * library.energy_to_anchor / 1000.0


@dataclass(frozen=True, eq=False)
class GateRun:
    outputs: np.ndarray  # uint8 [lanes, results, P]: what the netlist produced
    cycles: int  # clock cycles from the first word to the last result (the same in every lane)
    port_reads: int  # words read from the external weight memory for these images (per lane)
    energy_pj_per_cycle: float  # logic and registers, mean over the counted cycles
    register_pj_per_cycle: float  # of which flip-flops (clock and Q transitions)
    toggles: dict[str, float]
    requests: tuple  # per cycle: the step read from the external memory, or -1

    @property
    def energy_pj(self) -> float:
        return self.energy_pj_per_cycle * self.cycles


def run_netlist(netlist: Netlist, words: np.ndarray, results: int, library: CellLibrary,
                memory: np.ndarray | None = None, max_cycles: int | None = None) -> GateRun:
    """Drive a mapped engine with one input stream per lane (uint8 [lanes, n_words, T]) until
    ``results`` results came out; ``memory`` (int8 [steps, V]) answers ``w_addr`` reads."""
    lanes, n_words = words.shape[:2]
    sim = GateSim(netlist, lanes)
    bits = np.unpackbits(np.ascontiguousarray(words, np.uint8), axis=-1, bitorder="little")  # lanes, words, 8T
    external = "w_data" in sim.ports_in
    if external and memory is None:
        raise UserError("the engine reads an external weight memory: give its words")
    mem_bits = np.zeros((0, 0), np.uint8) if memory is None else np.unpackbits(  # read only when external
        np.ascontiguousarray(memory).view(np.uint8), axis=-1, bitorder="little")
    limit = max_cycles or 4 * n_words + 10_000
    sim.set("rst", 1)
    sim.set("in_valid", 0)
    if external:
        sim.set_words("w_data", np.zeros((lanes, mem_bits.shape[1]), np.uint8))
    for _ in range(RESET_CYCLES):
        sim.clock()
    sim.set("rst", 0)
    sim.reset_counts()
    out: list[np.ndarray] = []
    k, cycles, reads, pending, requests = 0, 0, 0, None, []
    while len(out) < results:
        if cycles >= limit:
            raise UserError(f"the netlist gave {len(out)} of {results} results in {limit} cycles")
        if k < n_words:
            sim.set_words("in_data", bits[:, k])
        sim.set("in_valid", int(k < n_words))
        if external and pending is not None:
            sim.set_words("w_data", np.broadcast_to(mem_bits[pending], (lanes, mem_bits.shape[1])))
        ready = _same(sim.get("in_ready"), "in_ready")
        if _same(sim.get("out_valid"), "out_valid"):
            out.append(np.packbits(sim.get_bits("out_data"), axis=1, bitorder="little"))
        if external:
            pending = int(_same(sim.get("w_addr"), "w_addr")) if _same(sim.get("w_read"), "w_read") else None
            if k < n_words:  # reads after the last word was taken belong to the next image
                requests.append(-1 if pending is None else pending)
                reads += pending is not None
        sim.clock()
        cycles += 1
        if ready and k < n_words:
            k += 1
    toggles = sim.toggles()
    per_cycle, registers = _energy_per_cycle(netlist, toggles, library)
    p = len(netlist.outputs["out_data"]) // 8
    codes = np.stack(out, axis=1) if out else np.zeros((lanes, 0, p), np.uint8)
    return GateRun(codes, cycles, reads, per_cycle, registers, toggles, tuple(requests))


def _energy_per_cycle(netlist: Netlist, toggles: dict, library: CellLibrary) -> tuple[float, float]:
    """(all cells, flip-flops only) in pJ per cycle at the anchors' 45 nm / 0.9 V."""
    scale = library.energy_to_anchor / 1000.0
    total = library.energy_fj(netlist, toggles) * scale
    flops = sum(library.cells[f.type].energy_fj * toggles[f.name] + library.cells[f.type].clock_energy_fj
                for f in netlist.flops) * scale
    return total, flops


@dataclass(frozen=True, eq=False)
class SourceRun:
    cycles: int
    energy_pj_per_cycle: float
    register_pj_per_cycle: float
    port_reads: int  # words the source read from its own external memory

    @property
    def energy_pj(self) -> float:
        return self.energy_pj_per_cycle * self.cycles


def run_source(netlist: Netlist, requests, library: CellLibrary, expected: np.ndarray,
               memory: np.ndarray | None = None) -> SourceRun:
    """Drive a weight source alone with an engine's request pattern (per cycle: the step it
    asks for, or -1), answering its own external reads from ``memory``; every value it
    yields must be ``expected[step]`` (int8 [steps, V])."""
    sim = GateSim(netlist, 1)
    external = "w_data" in sim.ports_in
    if external and memory is None:
        raise UserError("the weight source reads an external memory: give its words")
    mem_bits = np.zeros((0, 0), np.uint8) if memory is None else np.unpackbits(  # read only when external
        np.ascontiguousarray(memory).view(np.uint8), axis=-1, bitorder="little")
    want = np.ascontiguousarray(expected).view(np.uint8)
    clocked = "rst" in sim.ports_in  # a combinational source has neither clock nor reset
    if clocked:
        sim.set("rst", 1)
    sim.set("request", 0)
    sim.set("step", 0)
    if external:
        sim.set_words("w_data", np.zeros((1, mem_bits.shape[1]), np.uint8))
    for _ in range(RESET_CYCLES):
        sim.clock()
    if clocked:
        sim.set("rst", 0)
    sim.reset_counts()
    issued, pending, reads = [], None, 0
    for step in list(requests) + [-1] * 8:  # a few more cycles: the last answers come out
        sim.set("request", int(step >= 0))
        if step >= 0:
            sim.set("step", step)
            issued.append(step)
        if external and pending is not None:
            sim.set_words("w_data", mem_bits[pending][None, :])
        if int(sim.get("valid")[0]):
            got = np.packbits(sim.get_bits("values"), axis=1, bitorder="little")[0]
            if not issued or not np.array_equal(got, want[issued[0]]):
                raise UserError("the weight source alone does not yield the words the engine expects")
            issued.pop(0)
        if external:
            pending = int(sim.get("w_addr")[0]) if int(sim.get("w_read")[0]) else None
            reads += pending is not None
        sim.clock()
    if issued:
        raise UserError(f"the weight source left {len(issued)} requests unanswered")
    per_cycle, registers = _energy_per_cycle(netlist, sim.toggles(), library)
    return SourceRun(len(requests), per_cycle, registers, reads)


def _same(values: np.ndarray, port: str) -> int:
    """The value every lane agrees on (control is data-independent: a disagreement is a bug)."""
    first = int(values[0])
    if np.any(values != values[0]):
        raise UserError(f"lanes disagree on {port}: the engine's control depends on the data")
    return first
