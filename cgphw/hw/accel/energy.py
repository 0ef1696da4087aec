"""Energy of a layer engine per image: synthesise it to the calibrated cell set (the Yosys
flow of ``cgphw.hw.synth``), run the mapped netlist cycle by cycle on real activations
(``seqsim``, one image per lane) and price every cell's measured transitions and every
flip-flop's clock with the cell model (``cgphw.hw.cells``).

Memories outside the engine are not synthesised: words read through the ``w_data`` port are
priced with the SRAM read energy of the gate cost table (``memory.sram_read_pj_per_byte``,
Horowitz ISSCC 2014, 45 nm), per byte read.

ABC runs a lighter script than the per-gate calibration (``strash; dc2; &nf``): the default
one (``&fraig``, ``scorr``, ``&dch``) takes many minutes on an engine with tens of thousands
of cells and registers; the cell set and the pricing are the same.
"""
from __future__ import annotations

import json
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


def synthesise_engine(component, top: str, library: CellLibrary) -> MappedEngine:
    """Map an engine (any Amaranth component) to the cell set of the energy model."""
    rtlil = emit.to_rtlil(component, top)
    script = [ENGINE_ABC if cmd.startswith("abc ") else cmd for cmd in synthesis_script(top)]
    script = [cmd for cmd in script if not cmd.startswith(("tee ", "write_verilog"))]
    run = run_yosys(script, {"design.il": rtlil}, ("mapped.json",), timeout_s=SYNTH_TIMEOUT_S)
    netlist = parse_yosys_json(json.loads(run.files["mapped.json"]), top)
    missing = sorted({c.type for c in netlist.cells if c.type != "$_BUF_"} - set(library.cells))
    if missing:
        raise UserError(f"cell table {library.path} has no row for cell types {missing}")
    counts = {t: n for t, n in netlist.cell_counts().items() if t != "$_BUF_"}
    return MappedEngine(netlist, counts, sum(counts.values()), len(netlist.flops), library.area(netlist))


@dataclass(frozen=True, eq=False)
class GateRun:
    outputs: np.ndarray  # uint8 [lanes, results, P]: what the netlist produced
    cycles: int  # clock cycles from the first word to the last result (the same in every lane)
    port_reads: int  # words read from the external weight memory (per lane)
    energy_pj_per_cycle: float  # logic and registers, mean over the counted cycles
    toggles: dict[str, float]


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
    mem_bits = None if memory is None else np.unpackbits(np.ascontiguousarray(memory).view(np.uint8), axis=-1,
                                                         bitorder="little")
    limit = max_cycles or 4 * n_words + 10_000
    sim.set("rst", 1)
    sim.set("in_valid", 0)
    if external:
        sim.set_words("w_data", np.zeros((lanes, mem_bits.shape[1]), np.uint8))
    for _ in range(RESET_CYCLES):
        sim.clock()
    sim.set("rst", 0)
    sim.reset_counts()
    out, k, cycles, reads, pending = [], 0, 0, 0, None
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
            reads += pending is not None
        sim.clock()
        cycles += 1
        if ready and k < n_words:
            k += 1
    toggles = sim.toggles()
    per_cycle = library.energy_fj(netlist, toggles) / 1000.0 * library.energy_to_anchor
    p = len(netlist.outputs["out_data"]) // 8
    codes = np.stack(out, axis=1) if out else np.zeros((lanes, 0, p), np.uint8)
    return GateRun(codes, cycles, reads, per_cycle, toggles)


def _same(values: np.ndarray, port: str) -> int:
    """The value every lane agrees on (control is data-independent: a disagreement is a bug)."""
    first = int(values[0])
    if np.any(values != values[0]):
        raise UserError(f"lanes disagree on {port}: the engine's control depends on the data")
    return first
