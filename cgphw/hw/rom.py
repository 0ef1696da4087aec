"""The baseline a circuit must beat: the same weights held in a ROM, one read per weight.

The ROM is a ``Switch`` on ``addr`` with one ``Case`` per word: in Verilog a ``case``
table of constants. With fixed contents and no write port that is what a mask ROM is at
gate level — an address decoder and an OR plane. Yosys's ``proc`` turns such a table into a
``$mem`` ROM (``proc_rom``) and ``synth`` maps that to logic in the same cell set as the
circuits, so the two compare cell for cell (an Amaranth ``Memory`` with ``init`` and a
combinational read port gave the identical netlist for the LeNet-5 ring: 29 cells). A
script that runs ``proc`` and then needs plain logic (``sat``, a miter) uses
``proc -norom`` or maps the memory (``memory_map``) first.
Addresses past the last word read 0.

Read timing: combinational (``latency == 0``) by default, matching the combinational
circuit; ``registered=True`` adds one output register (``latency == 1``, ``clk``/``rst``),
matching a pipelined circuit. One read yields one weight, so the energy of a generated
weight is that of one read.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cgphw.errors import UserError


def addr_width(words: int) -> int:
    return max(1, (words - 1).bit_length())


class WeightRom(wiring.Component):
    """``data`` = int8 word ``addr`` of the ROM (0 past the end); latency 0, or 1 when registered."""

    def __init__(self, values: Sequence[int] | np.ndarray, registered: bool = False):
        self.values = rom_words(values)
        self.registered = bool(registered)
        self.clocked = self.registered
        self.latency = 1 if self.registered else 0
        super().__init__(wiring.Signature({"addr": In(unsigned(addr_width(len(self.values)))),
                                           "data": Out(signed(8))}))

    def elaborate(self, platform):
        m = Module()
        word = Signal(signed(8), name="word")
        with m.Switch(self.addr):
            for address, value in enumerate(self.values):
                with m.Case(address):
                    m.d.comb += word.eq(value)
        if self.registered:
            m.d.sync += self.data.eq(word)
        else:
            m.d.comb += self.data.eq(word)
        return m


def rom_words(values: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    words = np.asarray(values).ravel()
    if words.size == 0:
        raise UserError("a weight ROM needs at least one word")
    if not np.issubdtype(words.dtype, np.integer) or words.min() < -128 or words.max() > 127:
        raise UserError("weight ROM words must be int8 values (-128..127)")
    return tuple(int(v) for v in words)


def build_rom(values: Sequence[int] | np.ndarray, registered: bool = False) -> WeightRom:
    rom_words(values)  # fail before an Elaboratable exists (Amaranth warns about unused ones)
    return WeightRom(values, registered)
