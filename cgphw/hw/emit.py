"""Emission: a genome becomes an Amaranth component built only from the gates' own
Amaranth expressions (``gates.GATES[id].amaranth``), so hardware and evaluator agree.

Two forms:

* combinational (``pipeline=None``): ``latency == 0``; ``weights`` follow ``stored``.
* pipelined (``pipeline=K``): a register bank after every K logic levels and one on the
  outputs; ``valid_in``/``valid_out`` travel alongside; one new ``stored`` set is accepted
  every cycle; ``latency == max(1, ceil(depth / K))`` cycles.

Logic levels: inputs and constants are level 0; a gate is 1 + the highest level of the
pins it reads; the wire gate (``id``, 100) is not logic — it takes its source's level and
is resolved to its source, so it never becomes a signal, a level or a register.
Only active nodes are emitted; an output reading an input or a constant is a plain wire.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Elaboratable, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from cgphw import gates as G
from cgphw.cgp.genome import Genome
from cgphw.errors import UserError

WORD = signed(8)


@dataclass(frozen=True)
class Plan:
    """What the hardware of a genome is, before any Amaranth object exists."""
    n_inputs: int
    gates: dict  # active logic node pin -> (gate id, (operand pins, resolved))
    levels: dict  # pin -> logic level (inputs, constants: 0)
    outputs: tuple  # resolved pin of each output
    depth: int  # highest level among the outputs

    def is_constant(self, pin: int) -> bool:
        return pin in self.gates and G.GATES[self.gates[pin][0]].arity == 0

    @property
    def n_gates(self) -> int:
        """Logic gates: active nodes other than constants and wires (the search's count)."""
        return sum(G.GATES[gid].is_logic for gid, _ in self.gates.values())


def plan(genome: Genome) -> Plan:
    """Resolve wires, keep active logic only, and assign logic levels."""
    n_in, nodes = genome.grid.n_inputs, genome.nodes

    def source(pin: int) -> int:
        while pin >= n_in and int(nodes[pin - n_in][2]) == G.WIRE_ID:
            pin = int(nodes[pin - n_in][0])
        return pin

    gates, levels = {}, {p: 0 for p in range(n_in)}
    for k in genome.active_nodes():  # ascending = operands before readers
        pin = n_in + int(k)
        in0, in1, gid = (int(v) for v in nodes[k])
        if gid == G.WIRE_ID:
            continue  # a wire: no logic of its own; readers are resolved to its source
        arity = G.GATES[gid].arity
        operands = tuple(source(p) for p in (in0, in1)[:arity])
        gates[pin] = (gid, operands)
        levels[pin] = 1 + max((levels[p] for p in operands), default=-1) if arity else 0
    outputs = tuple(source(int(p)) for p in genome.outputs)
    return Plan(n_in, gates, levels, outputs, max((levels[p] for p in outputs), default=0))


def latency_of(depth: int, pipeline: int | None) -> int:
    """Cycles from ``valid_in`` to ``valid_out``: 0 when combinational."""
    if pipeline is None:
        return 0
    return max(1, math.ceil(depth / pipeline))


def check_pipeline(pipeline) -> int | None:
    if pipeline is None:
        return None
    if isinstance(pipeline, bool) or not isinstance(pipeline, int) or pipeline < 1:
        raise UserError(f"--pipeline must be a whole number of logic levels >= 1, got {pipeline!r}")
    return pipeline


class _CircuitLogic:
    """What both forms of a circuit share: the plan, the latency and the logic between the ports."""

    def _setup(self, genome: Genome, pipeline: int | None) -> None:
        self.genome = genome
        self.pipeline = check_pipeline(pipeline)
        self.plan = plan(genome)
        self.depth = self.plan.depth
        self.latency = latency_of(self.depth, self.pipeline)
        self.clocked = self.pipeline is not None

    def stage_of(self, pin: int) -> int:
        """Pipeline stage (1-based) whose logic computes ``pin``; inputs enter at stage 1."""
        return max(1, math.ceil(self.plan.levels[pin] / self.pipeline)) if self.clocked else 1

    def _logic(self, m: Module, stored) -> list:
        """The gates and pipeline banks into ``m``, reading stored input i as ``stored(i)``;
        returns the value of each output as the output bank (or the combinational bus) reads it."""
        p = self.plan
        computed: dict[int, Signal] = {}  # gate pin -> its value in its own stage
        registered: dict[tuple[int, int], Signal] = {}  # (pin, bank) -> register

        def name(pin: int) -> str:
            return f"in{pin}" if pin < p.n_inputs else f"n{pin - p.n_inputs}"

        def at(pin: int, stage: int):
            """The value of ``pin`` as logic of ``stage`` (or output bank stage-1) reads it."""
            if p.is_constant(pin):
                return G.GATES[p.gates[pin][0]].amaranth(None, None)
            value = stored(pin) if pin < p.n_inputs else computed[pin]
            for bank in range(self.stage_of(pin), stage):  # carry it through the banks between
                if (pin, bank) not in registered:
                    reg = Signal(WORD, name=f"{name(pin)}_r{bank}", reset_less=True)
                    m.d.sync += reg.eq(value)
                    registered[(pin, bank)] = reg
                value = registered[(pin, bank)]
            return value

        # ascending pins: operands exist before their readers (no recursion on deep circuits)
        for pin in sorted(p.gates):
            gid, operands = p.gates[pin]
            if G.GATES[gid].arity == 0:
                continue
            stage = self.stage_of(pin)
            args = [at(q, stage) for q in operands] + [None] * (2 - len(operands))
            computed[pin] = Signal(WORD, name=name(pin))
            m.d.comb += computed[pin].eq(G.GATES[gid].amaranth(*args))

        out_stage = self.latency + 1 if self.clocked else 1
        return [at(pin, out_stage) for pin in p.outputs]

    def _valid(self, m: Module, valid_in, valid_out) -> None:
        """``valid_out`` follows ``valid_in`` through one resettable register per bank."""
        valid = valid_in
        for bank in range(1, self.latency + 1):
            nxt = Signal(name=f"valid_r{bank}")  # resets to 0
            m.d.sync += nxt.eq(valid)
            valid = nxt
        m.d.comb += valid_out.eq(valid)

    def _describe(self, form: str) -> str:
        g = self.genome.grid
        timing = (f"pipelined every {self.pipeline} logic levels, latency {self.latency} cycles"
                  if self.clocked else "combinational, latency 0")
        return (f"CGP circuit {self.genome.digest()}{form}: {g.n_inputs} stored weights in, {g.n_outputs} weights "
                f"out, {self.plan.n_gates} gates, depth {self.depth}; {timing}.")


class GenomeCircuit(_CircuitLogic, wiring.Component):
    """A CGP circuit: ``stored`` (int8 array, absent without inputs) in, ``weights`` out.

    ``latency`` is the number of clock cycles from ``valid_in`` to ``valid_out``: 0 for the
    combinational form; ``max(1, ceil(depth / K))`` for ``pipeline=K`` (a register bank every
    K logic levels, the last one on the outputs; reset clears only the valid pipeline — the
    data registers are reset-less and free-running, ``valid_out`` says when they are meaningful).
    """

    def __init__(self, genome: Genome, pipeline: int | None = None):
        self._setup(genome, pipeline)
        n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
        members = {}
        if n_in:
            members["stored"] = In(data.ArrayLayout(WORD, n_in))
        members["weights"] = Out(data.ArrayLayout(WORD, n_out))
        if self.clocked:
            members["valid_in"] = In(1)
            members["valid_out"] = Out(1)
        super().__init__(wiring.Signature(members))
        self.__doc__ = self._describe("")

    def elaborate(self, platform):
        m = Module()
        outputs = self._logic(m, lambda pin: self.stored[pin])
        # one assignment of the whole bus: per-element part-selects make Icarus crawl on wide buses
        m.d.comb += self.weights.as_value().eq(Cat(*outputs))
        if self.clocked:
            self._valid(m, self.valid_in, self.valid_out)
        return m


# int8 values per port word of WordCircuit (512 bits, a 155-digit mask): measured fastest on 409,600
# outputs (16: 0.19 s a cycle, 64: 0.10 s, 256: 0.32 s, 1,024: slower still)
SIM_WORD = 64


def word_sizes(count: int, per_word: int = SIM_WORD) -> list[int]:
    """How many values each word of a bus of ``count`` values holds (the last may hold fewer)."""
    return [min(per_word, count - lo) for lo in range(0, count, per_word)]


class WordCircuit(_CircuitLogic, Elaboratable):
    """The same circuit (same plan, gates, banks and latency as :class:`GenomeCircuit`) with
    ``stored`` and ``weights`` as lists of words of at most ``SIM_WORD`` int8 values, element
    i in word i // SIM_WORD: the form Amaranth's simulator runs. Its Python simulator writes
    every signal's mask as a decimal literal, which Python refuses past 4,300 digits (a bus of
    ~1,800 values), and it rebuilds a whole signal on every change of any of its parts: small
    words, each in its own fragment, keep the 409,600 outputs of a network layer linear.
    """

    def __init__(self, genome: Genome, pipeline: int | None = None, per_word: int = SIM_WORD):
        self._setup(genome, pipeline)
        self.per_word = int(per_word)
        g = genome.grid
        self.stored = [Signal(data.ArrayLayout(WORD, n), name=f"stored_w{k}")
                       for k, n in enumerate(word_sizes(g.n_inputs, self.per_word))]
        self.weights = [Signal(data.ArrayLayout(WORD, n), name=f"weights_w{k}")
                        for k, n in enumerate(word_sizes(g.n_outputs, self.per_word))]
        if self.clocked:
            self.valid_in, self.valid_out = Signal(name="valid_in"), Signal(name="valid_out")
        self.__doc__ = self._describe(f" in words of {self.per_word} values")

    def elaborate(self, platform):
        m = Module()
        per = self.per_word
        outputs = self._logic(m, lambda pin: self.stored[pin // per][pin % per])
        for k, word in enumerate(self.weights):
            part = Module()  # a fragment of its own: it wakes only when one of its outputs changes
            part.d.comb += word.as_value().eq(Cat(*outputs[k * per:(k + 1) * per]))
            m.submodules[f"weights_w{k}"] = part
        if self.clocked:
            self._valid(m, self.valid_in, self.valid_out)
        return m


def build_component(genome: Genome, pipeline: int | None = None) -> GenomeCircuit:
    """The genome as an Amaranth component; see :class:`GenomeCircuit` for ports and latency."""
    return GenomeCircuit(genome, check_pipeline(pipeline))


def build_word_circuit(genome: Genome, pipeline: int | None = None, per_word: int = SIM_WORD) -> WordCircuit:
    """The genome as :class:`WordCircuit`, the form Amaranth's simulator runs at any width."""
    if isinstance(per_word, bool) or not isinstance(per_word, int) or per_word < 1:
        raise UserError(f"a word holds at least one value, got {per_word!r}")
    return WordCircuit(genome, check_pipeline(pipeline), per_word)


def describe_ports(component) -> list[dict]:
    """Verilog ports of a component of this package (circuit or ROM), clock and reset first.

    Array ports are flat buses: element i sits at bits [8*i+7 : 8*i]."""
    ports = []
    if getattr(component, "clocked", False):
        ports += [{"name": "clk", "direction": "input", "width": 1, "elements": 1, "signed": False},
                  {"name": "rst", "direction": "input", "width": 1, "elements": 1, "signed": False}]
    for member_name, member in component.signature.members.items():
        shape = member.shape
        if isinstance(shape, data.ArrayLayout):
            width, elements, is_signed = shape.size, shape.length, shape.elem_shape.signed
        else:
            from amaranth.hdl import Shape

            s = Shape.cast(shape)
            width, elements, is_signed = s.width, 1, s.signed
        ports.append({"name": member_name, "direction": "input" if member.flow == In else "output",
                      "width": width, "elements": elements, "signed": is_signed})
    return ports


def to_verilog(component, name: str) -> str:
    """Verilog text (no source locations, so the output does not depend on this machine)."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


def to_rtlil(component, name: str) -> str:
    from amaranth.back import rtlil

    return rtlil.convert(component, name=name, emit_src=False)
