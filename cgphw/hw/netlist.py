"""A mapped gate-level netlist read from Yosys ``write_json``: ports, cells, timing paths.

Only the fine-grained cells that ``abc -g`` and ``dfflegalize`` leave behind are
understood ($_NOT_, $_AND_, ..., $_MUX_, $_DFF_P_); anything else is reported by name,
so a netlist that was not mapped to the cell set never gets a silent cost of zero.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

from cgphw.errors import UserError

# Input pin order per cell type (the output is always Y, or Q for a flip-flop).
LOGIC_PINS: dict[str, tuple[str, ...]] = {
    "$_BUF_": ("A",), "$_NOT_": ("A",),
    "$_AND_": ("A", "B"), "$_NAND_": ("A", "B"), "$_OR_": ("A", "B"), "$_NOR_": ("A", "B"),
    "$_XOR_": ("A", "B"), "$_XNOR_": ("A", "B"), "$_ANDNOT_": ("A", "B"), "$_ORNOT_": ("A", "B"),
    "$_MUX_": ("A", "B", "S"),
}
FLOP_TYPES = ("$_DFF_P_",)
IGNORED_TYPES = ("$scopeinfo",)  # Amaranth's hierarchy markers: no logic

Bit = int | str  # a net number, or a constant "0" / "1" / "x" / "z"


@dataclass(frozen=True)
class Cell:
    name: str
    type: str
    inputs: tuple[Bit, ...]  # in LOGIC_PINS order; for a flip-flop: (D,)
    output: int

    @property
    def is_flop(self) -> bool:
        return self.type in FLOP_TYPES


@dataclass(frozen=True)
class Netlist:
    top: str
    inputs: dict[str, tuple[Bit, ...]]  # port -> bits, LSB first
    outputs: dict[str, tuple[Bit, ...]]
    logic: tuple[Cell, ...]  # combinational cells in evaluation (topological) order
    flops: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.logic + self.flops

    def cell_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for c in self.cells:
            counts[c.type] += 1
        return dict(sorted(counts.items()))

    def longest_path(self, delay_ns: Mapping[str, float], clk_to_q_ns: float = 0.0) -> tuple[int, float]:
        """(depth in cells, delay in ns) of the longest path from an input or flip-flop
        output to an output or flip-flop input; buffers count as wires."""
        depth: dict[Bit, int] = {}
        arrival: dict[Bit, float] = {}
        for f in self.flops:
            depth[f.output], arrival[f.output] = 0, clk_to_q_ns
        for c in self.logic:
            d = max((depth.get(b, 0) for b in c.inputs), default=0)
            t = max((arrival.get(b, 0.0) for b in c.inputs), default=0.0)
            wire = c.type == "$_BUF_"
            depth[c.output] = d + (0 if wire else 1)
            arrival[c.output] = t + (0.0 if wire else float(delay_ns[c.type]))
        ends = [b for bits in self.outputs.values() for b in bits] + [f.inputs[0] for f in self.flops]
        return (max((depth.get(b, 0) for b in ends), default=0),
                max((arrival.get(b, 0.0) for b in ends), default=0.0))


def parse_yosys_json(doc: dict, top: str | None = None) -> Netlist:
    """Build a Netlist from the document ``write_json`` writes for a flattened design."""
    modules = doc.get("modules", {})
    if top is None:
        tops = [n for n, m in modules.items() if int(m.get("attributes", {}).get("top", 0) or 0)]
        top = tops[0] if len(tops) == 1 else (next(iter(modules)) if len(modules) == 1 else None)
    if top is None or top not in modules:
        raise UserError(f"the netlist has no module {top!r} (found {sorted(modules)})")
    mod = modules[top]
    inputs: dict[str, tuple[Bit, ...]] = {}
    outputs: dict[str, tuple[Bit, ...]] = {}
    for name, port in mod.get("ports", {}).items():
        bits = tuple(port["bits"])
        (inputs if port["direction"] == "input" else outputs)[name] = bits
    logic, flops = [], []
    unknown = set()
    for name, cell in mod.get("cells", {}).items():
        ctype, conn = cell["type"], cell["connections"]
        if ctype in IGNORED_TYPES:
            continue
        if ctype in LOGIC_PINS:
            logic.append(Cell(name, ctype, tuple(conn[p][0] for p in LOGIC_PINS[ctype]), conn["Y"][0]))
        elif ctype in FLOP_TYPES:
            flops.append(Cell(name, ctype, (conn["D"][0],), conn["Q"][0]))
        else:
            unknown.add(ctype)
    if unknown:
        raise UserError(f"the netlist of {top} holds cells outside the mapped cell set: {sorted(unknown)}")
    return Netlist(top, inputs, outputs, _topological(logic, top), tuple(flops))


def _topological(logic: list[Cell], top: str) -> tuple[Cell, ...]:
    driver = {c.output: c for c in logic}
    order: list[Cell] = []
    state: dict[Bit, int] = {}  # 1 = on the stack, 2 = done
    for root in logic:
        if state.get(root.output):
            continue
        stack = [(root, iter(root.inputs))]
        state[root.output] = 1
        while stack:
            cell, pending = stack[-1]
            nxt = next((b for b in pending if b in driver), None)
            if nxt is None:
                stack.pop()
                state[cell.output] = 2
                order.append(cell)
            elif state.get(nxt) == 1:
                raise UserError(f"the netlist of {top} has a combinational loop through net {nxt}")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((driver[nxt], iter(driver[nxt].inputs)))
    return tuple(order)
