"""Amaranth's own simulator as a backend: drives an Amaranth component with the same
stimulus and scoreboard as the cocotb testbench (same cycle convention: inputs set in
cycle k are captured by the clock edge that ends cycle k; outputs are read before it)."""
from __future__ import annotations

from cgphw.progress import ProgressCallback, step
from cgphw.verify.scoreboard import Scoreboard, pack
from cgphw.verify.stimulus import Stimulus

CLOCK_PERIOD_S = 10e-9
PROGRESS_EVERY = 256  # cycles


def simulate_component(component, stimulus: Stimulus, progress: ProgressCallback | None = None) -> Scoreboard:
    """Run ``stimulus`` on an Amaranth component whose ports follow ``stimulus.ports``
    (a pipelined one clocks on the ``sync`` domain) and return the filled scoreboard."""
    from amaranth.hdl import ClockDomain, Module, Value
    from amaranth.sim import Simulator

    board = Scoreboard(stimulus, simulator="amaranth")
    ports = stimulus.ports

    def port(name):
        return Value.cast(getattr(component, name)) if name else None

    stored, weights = port(ports.stored), port(ports.weights)
    valid_in, valid_out = port(ports.valid_in), port(ports.valid_out)
    words = [pack(v) for v in stimulus.vectors.tolist()]
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
                ctx.set(stored, words[vector])
            if valid_in is not None:
                ctx.set(valid_in, valid)
            if reset is not None:
                ctx.set(reset, rst)
            board.observe(k, ctx.get(valid_out) if valid_out is not None else None, ctx.get(weights))
            if stimulus.clocked:
                await ctx.tick("sync")
            else:
                await ctx.delay(1e-9)

    sim.add_testbench(bench)
    sim.run()
    step(progress, "simulating on amaranth (cycles)", len(cycles), len(cycles))
    return board
