"""Weight sources: where the layer engine's weights come from, all behind one interface.

A source answers a request for step ``step`` (``request`` high) with ``values`` (V int8
values) and ``valid`` exactly ``latency`` cycles later (0: in the same cycle), one request per
cycle. Sources hold no output register: the engine's weight buffer is the register, and a
second one would only burn clock energy while the weights sit still.

* ``CircuitSource`` — the evolved circuit: the item's stored weights (a ROM of
  ``stored[steps, n_in]``, or read from an external memory) feed the circuit; values are
  the stored weights followed by the circuit's outputs (V = n_in + n_out).
* ``RomSource`` — the baseline: every value in a ROM word (``words[steps, V]``), nothing computed.
* ``PortSource`` — an external memory (register file or SRAM beside the engine): the engine
  drives ``w_addr``/``w_read`` and the memory answers on ``w_data`` one cycle later.

``SourceSpec`` says which one to build (plain values), so the engine, the export manifest and
the energy report name sources the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from cgphw.cgp.genome import Genome
from cgphw.errors import UserError
from cgphw.hw import emit

WORD = signed(8)
KINDS = ("circuit", "rom", "port")


@dataclass(frozen=True, eq=False)
class SourceSpec:
    kind: str  # circuit | rom | port
    values: int  # V: values per step
    steps: int
    genome: Genome | None = None  # circuit
    stored: np.ndarray | None = None  # circuit: int8 [steps, n_in]; None = read from an external memory
    words: np.ndarray | None = None  # rom: int8 [steps, V]
    pipeline: int | None = None  # circuit: register bank every K logic levels

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"unknown weight source {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.kind == "circuit":
            if self.genome is None:
                raise UserError("a circuit weight source needs a genome")
            n_in, n_out = self.genome.grid.n_inputs, self.genome.grid.n_outputs
            if self.values != n_in + n_out:
                raise UserError(f"a circuit source yields {n_in} stored + {n_out} generated values, not {self.values}")
            if self.stored is not None and self.stored.shape != (self.steps, n_in):
                raise UserError(f"stored weights must be [{self.steps}, {n_in}], got {list(self.stored.shape)}")
        if self.kind == "rom" and (self.words is None or self.words.shape != (self.steps, self.values)):
            raise UserError(f"a ROM source needs words [{self.steps}, {self.values}]")

    @property
    def circuit_genome(self) -> Genome:
        """The genome of a circuit source (``__post_init__`` checked it is there)."""
        assert self.genome is not None, f"a {self.kind} source has no circuit"
        return self.genome

    @property
    def port_values(self) -> int:
        """Values per step read from an external memory (0 when everything is on chip)."""
        if self.kind == "port":
            return self.values
        if self.kind == "circuit" and self.stored is None:
            return self.circuit_genome.grid.n_inputs
        return 0

    def step_values(self, port_words: np.ndarray | None = None) -> np.ndarray:
        """int8 [steps, V]: what the source yields at each step (the software model);
        ``port_words`` are the external memory's contents where the source reads one."""
        if self.kind == "rom":
            assert self.words is not None  # __post_init__ checked
            return self.words
        if self.kind == "port":
            return _checked_words(port_words, self.steps, self.values)
        stored = self.stored if self.stored is not None else _checked_words(port_words, self.steps,
                                                                            self.circuit_genome.grid.n_inputs)
        return np.concatenate([stored, self.circuit_genome.evaluate(stored)], axis=1).astype(np.int8)

    def describe(self) -> dict:
        doc = {"kind": self.kind, "values_per_step": self.values, "steps": self.steps,
               "external_values_per_step": self.port_values}
        if self.kind == "circuit":
            doc.update({"genome_hash": self.circuit_genome.digest(),
                        "stored": "rom" if self.stored is not None else "port",
                        "pipeline": self.pipeline, "n_inputs": self.circuit_genome.grid.n_inputs,
                        "n_outputs": self.circuit_genome.grid.n_outputs})
        return doc


def _checked_words(words, steps: int, values: int) -> np.ndarray:
    if words is None or np.shape(words) != (steps, values):
        raise UserError(f"the external weight memory must hold [{steps}, {values}] int8 values")
    return np.asarray(words, np.int8)


def step_bits(steps: int) -> int:
    return max(1, (steps - 1).bit_length())


class _Source(wiring.Component):
    """Common signature: step/request in, values/valid out (``latency`` cycles later)."""

    def __init__(self, spec: SourceSpec, extra: dict | None = None):
        self.spec = spec
        members = {"step": In(unsigned(step_bits(spec.steps))), "request": In(1),
                   "values": Out(data.ArrayLayout(WORD, spec.values)), "valid": Out(1), **(extra or {})}
        super().__init__(wiring.Signature(members))


def _case_rom(m: Module, index, words: np.ndarray, name: str) -> Signal:
    """A combinational ROM: one case per word (a mask ROM at gate level, as ``cgphw.hw.rom``)."""
    width = 8 * words.shape[1]
    out = Signal(width, name=name)
    with m.Switch(index):
        for address, row in enumerate(words):
            with m.Case(address):
                m.d.comb += out.eq(Const(int.from_bytes(row.astype(np.int8).tobytes(), "little"), width))
    return out


class RomSource(_Source):
    """All values from a ROM word per step; combinational read (latency 0)."""
    latency = 0

    def __init__(self, spec: SourceSpec):
        super().__init__(spec)

    def elaborate(self, platform):
        m = Module()
        assert self.spec.words is not None  # SourceSpec checked
        word = _case_rom(m, self.step, self.spec.words, "rom_word")
        m.d.comb += [self.values.as_value().eq(word), self.valid.eq(self.request)]
        return m


class PortSource(_Source):
    """Values read from an external memory: ``w_addr``/``w_read`` out, ``w_data`` in one
    cycle later (a synchronous SRAM or register-file read)."""
    latency = 1

    def __init__(self, spec: SourceSpec):
        super().__init__(spec, {"w_addr": Out(unsigned(step_bits(spec.steps))), "w_read": Out(1),
                                "w_data": In(data.ArrayLayout(WORD, spec.values))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.w_addr.eq(self.step), self.w_read.eq(self.request),
                     self.values.as_value().eq(self.w_data.as_value())]
        m.d.sync += self.valid.eq(self.request)
        return m


class CircuitSource(_Source):
    """Stored weights (ROM, or an external memory) -> the evolved circuit -> values =
    stored ++ generated: latency = the circuit's own (+1 for an external memory's read)."""

    def __init__(self, spec: SourceSpec):
        n_in = spec.circuit_genome.grid.n_inputs
        extra = {}
        if spec.stored is None and n_in:
            extra = {"w_addr": Out(unsigned(step_bits(spec.steps))), "w_read": Out(1),
                     "w_data": In(data.ArrayLayout(WORD, n_in))}
        self.circuit = emit.build_component(spec.circuit_genome, spec.pipeline)
        # an external memory answers one cycle after the request: one more cycle of latency
        self.read_latency = 1 if extra else 0
        self.latency = self.read_latency + self.circuit.latency
        super().__init__(spec, extra)

    def elaborate(self, platform):
        m = Module()
        m.submodules.circuit = circuit = self.circuit
        n_in = self.spec.circuit_genome.grid.n_inputs
        valid = self.request
        if n_in and self.spec.stored is not None:
            stored = _case_rom(m, self.step, self.spec.stored, "stored_word")
        elif n_in:
            m.d.comb += [self.w_addr.eq(self.step), self.w_read.eq(self.request)]
            stored = self.w_data.as_value()
            nxt = Signal(name="read_valid")
            m.d.sync += nxt.eq(valid)
            valid = nxt
        if n_in:
            m.d.comb += circuit.stored.as_value().eq(stored)
        if circuit.clocked:
            m.d.comb += circuit.valid_in.eq(valid)
            valid = circuit.valid_out
            if n_in:  # the stored weights travel beside the circuit's pipeline
                for bank in range(circuit.latency):
                    held = Signal(8 * n_in, name=f"stored_r{bank}", reset_less=True)
                    m.d.sync += held.eq(stored)
                    stored = held
        values = Cat(stored, circuit.weights.as_value()) if n_in else circuit.weights.as_value()
        m.d.comb += [self.values.as_value().eq(values), self.valid.eq(valid)]
        return m


def source_latency(spec: SourceSpec) -> int:
    """Cycles from a request to its values, without building the source."""
    if spec.kind == "rom":
        return 0
    if spec.kind == "port":
        return 1
    read = 1 if spec.stored is None and spec.circuit_genome.grid.n_inputs else 0
    return read + emit.latency_of(emit.plan(spec.circuit_genome).depth, emit.check_pipeline(spec.pipeline))


def build_source(spec: SourceSpec) -> _Source:
    return {"circuit": CircuitSource, "rom": RomSource, "port": PortSource}[spec.kind](spec)
