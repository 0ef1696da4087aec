"""Cycle-by-cycle simulation of a mapped netlist with registers fed back (counters, state
machines, accumulators), for switching activity measured on a real workload.

``activity.simulate`` runs feed-forward pipelines with a whole time series per net; here
time advances one clock cycle at a time and the parallelism is across *lanes*: up to 64
independent runs (e.g. 64 images) share one uint64 per net, bit b belonging to lane b.
Cells are evaluated level by level, all cells of one type and level in one numpy step.
Zero-delay model, as in ``activity``: each net changes at most once per cycle (no glitches).

Protocol per cycle: ``set`` the input ports, ``get`` outputs (combinational logic settles
on demand), then ``clock`` — registers take their D, and every net's transitions since the
previous cycle are counted per lane.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from cgphw.errors import UserError
from cgphw.hw.netlist import Netlist

_CLOCK = ("clk",)
_OPS = {
    "$_BUF_": lambda a: a, "$_NOT_": lambda a: ~a,
    "$_AND_": lambda a, b: a & b, "$_NAND_": lambda a, b: ~(a & b),
    "$_OR_": lambda a, b: a | b, "$_NOR_": lambda a, b: ~(a | b),
    "$_XOR_": lambda a, b: a ^ b, "$_XNOR_": lambda a, b: ~(a ^ b),
    "$_ANDNOT_": lambda a, b: a & ~b, "$_ORNOT_": lambda a, b: a | ~b,
    "$_MUX_": lambda a, b, s: (a & ~s) | (b & s),
}


class GateSim:
    def __init__(self, netlist: Netlist, lanes: int = 64):
        if not 1 <= lanes <= 64:
            raise UserError(f"a gate-level simulation runs 1..64 lanes, got {lanes}")
        self.netlist, self.lanes = netlist, lanes
        self.mask = np.uint64((1 << lanes) - 1) if lanes < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        index: dict = {"0": 0, "1": 1, "x": 0, "z": 0}
        def slot(bit):
            if bit not in index:
                index[bit] = len(index) - 2  # "x" and "z" share slot 0
            return index[bit]
        for bits in list(netlist.inputs.values()) + list(netlist.outputs.values()):
            for b in bits:
                slot(b)
        for c in netlist.cells:
            slot(c.output)
            for b in c.inputs:
                slot(b)
        self.n = len(index) - 2
        self.index = index
        self.ports_in = {p: np.array([slot(b) for b in bits]) for p, bits in netlist.inputs.items() if p not in _CLOCK}
        self.ports_out = {p: np.array([slot(b) for b in bits]) for p, bits in netlist.outputs.items()}
        self.flop_q = np.array([slot(f.output) for f in netlist.flops], dtype=np.int64)
        self.flop_d = np.array([slot(f.inputs[0]) for f in netlist.flops], dtype=np.int64)
        self.groups = self._levelise()
        self.val = np.zeros(self.n, np.uint64)
        self.val[1] = self.mask  # constant 1
        self.prev: np.ndarray | None = None
        self.transitions = np.zeros(self.n, np.int64)
        self.cycles = 0
        self.windows = 0  # cycle-to-cycle transitions counted so far
        self.settled = False

    def _levelise(self):
        level: dict[int, int] = {}
        out_slot = {}
        groups: defaultdict[tuple[int, str], tuple[list, list]] = defaultdict(lambda: ([], []))
        for c in self.netlist.logic:  # topological order
            ins = [self.index[b] for b in c.inputs]
            lv = 1 + max((level.get(s, 0) for s in ins), default=0)
            o = self.index[c.output]
            level[o] = lv
            out_slot[c.name] = o
            g = groups[(lv, c.type)]
            g[0].append(ins)
            g[1].append(o)
        return [(_OPS[t], np.array(ins, np.int64).T, np.array(outs, np.int64))
                for (lv, t), (ins, outs) in sorted(groups.items())]

    # --- ports ------------------------------------------------------------------------------
    def set(self, port: str, values) -> None:
        """Drive an input port of up to 64 bits: one value per lane (or one for all)."""
        if port not in self.ports_in:
            raise UserError(f"{self.netlist.top} has no input port {port!r}")
        width = len(self.ports_in[port])
        if width > 64:
            raise UserError(f"port {port} is {width} bits wide: drive it with set_words")
        v = np.broadcast_to(np.asarray(values, np.uint64), (self.lanes,))
        self.set_words(port, (v[:, None] >> np.arange(width, dtype=np.uint64)[None, :]) & np.uint64(1))

    def set_words(self, port: str, bit_matrix: np.ndarray) -> None:
        """Drive an input port from a bit matrix uint8 [lanes, width] (fast for wide ports)."""
        if port not in self.ports_in:
            raise UserError(f"{self.netlist.top} has no input port {port!r}")
        bits = self.ports_in[port]
        m = np.asarray(bit_matrix, np.uint64)
        if m.shape != (self.lanes, len(bits)):
            raise UserError(f"port {port} takes [{self.lanes}, {len(bits)}] bits, got {list(m.shape)}")
        self.val[bits] = (m << np.arange(self.lanes, dtype=np.uint64)[:, None]).sum(axis=0, dtype=np.uint64)
        self.settled = False

    def get_bits(self, port: str) -> np.ndarray:
        """An output port's bits per lane: uint8 [lanes, width], bit 0 first."""
        self._settle()
        words = self.val[self.ports_out[port]]
        return ((words[None, :] >> np.arange(self.lanes, dtype=np.uint64)[:, None]) & np.uint64(1)).astype(np.uint8)

    def get(self, port: str) -> np.ndarray:
        """An output port's value per lane (uint64 [lanes]), for ports of up to 64 bits."""
        bits = self.get_bits(port)
        if bits.shape[1] > 64:
            raise UserError(f"port {port} is {bits.shape[1]} bits wide: read it with get_bits")
        return (bits.astype(np.uint64) << np.arange(bits.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64)

    def _settle(self) -> None:
        if self.settled:
            return
        val = self.val
        for op, ins, outs in self.groups:
            val[outs] = op(*(val[i] for i in ins))
        self.settled = True

    def clock(self) -> None:
        """End the cycle: count transitions since the last cycle, then registers take D."""
        self._settle()
        if self.prev is not None:
            self.transitions += np.bitwise_count((self.val ^ self.prev) & self.mask)
            self.windows += 1
        self.prev = self.val.copy()
        self.val[self.flop_q] = self.val[self.flop_d]
        self.cycles += 1
        self.settled = False

    def reset_counts(self) -> None:
        """Forget the transitions counted so far (e.g. those of the reset)."""
        self.transitions[:] = 0
        self.windows = 0

    def toggles(self) -> dict[str, float]:
        """Cell name -> output transitions per lane per counted cycle."""
        counted = max(self.windows, 1) * self.lanes
        return {c.name: float(self.transitions[self.index[c.output]]) / counted for c in self.netlist.cells}
