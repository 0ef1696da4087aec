"""Amaranth's own simulator as a backend: drives an Amaranth component with the same
stimulus and scoreboard as the cocotb testbench (same cycle convention: inputs set in
cycle k are captured by the clock edge that ends cycle k; outputs are read before it)."""
from __future__ import annotations

import contextlib
import itertools

import numpy as np

from cgphw.errors import SimulatorError, UserError
from cgphw.progress import ProgressCallback, step
from cgphw.verification.scoreboard import Scoreboard
from cgphw.verification.stimulus import Stimulus

CLOCK_PERIOD_S = 10e-9
PROGRESS_EVERY = 256  # cycles


class Bus:
    """An int8 bus port as one signal (a flat bus) or a list of words (``emit.WordCircuit``):
    set and read as bytes, element i at byte i, whatever its cut."""

    def __init__(self, port):
        from amaranth.hdl import Value

        parts = port if isinstance(port, (list, tuple)) else [port]
        self.words = [Value.cast(p) for p in parts]
        ends = list(itertools.accumulate(len(w) // 8 for w in self.words))
        self.spans = list(zip([0, *ends[:-1]], ends, strict=True))

    def values(self, data: bytes) -> list[int]:
        """What to set each word to for the bus bytes ``data``."""
        return [int.from_bytes(data[lo:hi], "little") for lo, hi in self.spans]

    def read(self, ctx) -> int:
        """The bus as one word (element i at bits [8i+7 : 8i]), as the scoreboard reads it."""
        return int.from_bytes(b"".join(ctx.get(w).to_bytes(hi - lo, "little")
                                       for w, (lo, hi) in zip(self.words, self.spans, strict=True)), "little")


def simulate_component(component, stimulus: Stimulus, progress: ProgressCallback | None = None) -> Scoreboard:
    """Run ``stimulus`` on an Amaranth component whose ports follow ``stimulus.ports``
    (a pipelined one clocks on the ``sync`` domain; ``stored``/``weights`` a flat bus or a
    list of words) and return the filled scoreboard. An exception of the simulator itself is
    a SimulatorError: no verdict on the design."""
    with simulator_failures(stimulus.top):
        return _simulate(component, stimulus, progress)


@contextlib.contextmanager
def simulator_failures(top: str):
    """An exception of Amaranth's simulator (its generated code, its limits) inside the block
    becomes a SimulatorError: no verdict on ``top``, never a mismatch."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise SimulatorError(f"Amaranth's simulator failed on {top} ({type(exc).__name__}: {exc}); "
                             "this says nothing about the design: verify it with --sim icarus") from exc


def _simulate(component, stimulus: Stimulus, progress: ProgressCallback | None) -> Scoreboard:
    from amaranth.hdl import ClockDomain, Module, Value
    from amaranth.sim import Simulator

    board = Scoreboard(stimulus, simulator="amaranth")
    ports = stimulus.ports

    def port(name):
        return Value.cast(getattr(component, name)) if name else None

    stored = Bus(getattr(component, ports.stored)) if ports.stored else None
    weights = Bus(getattr(component, ports.weights))
    valid_in, valid_out = port(ports.valid_in), port(ports.valid_out)
    words = [stored.values(v.tobytes()) for v in stimulus.vectors.astype(np.int8)] if stored else []
    cycles = stimulus.cycles.tolist()

    top, reset = component, None
    if stimulus.clocked:
        # Own the sync domain so its reset can be driven like the Verilog `rst` port.
        top = Module()
        top.domains.sync = domain = ClockDomain("sync")
        top.submodules.dut = component
        reset = domain.rst if ports.reset else None
    sim = Simulator(top)
    if stimulus.clocked:
        sim.add_clock(CLOCK_PERIOD_S, domain="sync")

    async def bench(ctx):
        for k, (rst, valid, vector) in enumerate(cycles):
            if k % PROGRESS_EVERY == 0:
                step(progress, "simulating on amaranth (cycles)", k, len(cycles))
            if stored is not None:
                for word, value in zip(stored.words, words[vector], strict=True):
                    ctx.set(word, value)
            if valid_in is not None:
                ctx.set(valid_in, valid)
            if reset is not None:
                ctx.set(reset, rst)
            board.observe(k, ctx.get(valid_out) if valid_out is not None else None, weights.read(ctx))
            if stimulus.clocked:
                await ctx.tick("sync")
            else:
                await ctx.delay(1e-9)

    sim.add_testbench(bench)
    sim.run()
    step(progress, "simulating on amaranth (cycles)", len(cycles), len(cycles))
    return board
