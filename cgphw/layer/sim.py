"""Simulators for the layer engine, all driven by the same ``Recorder`` loop: Amaranth's own
simulator on the component, or Icarus / Verilator on its Verilog through cocotb
(``cgphw.layer.testbench``, run by a cocotb backend of ``cgphw.verification.backends``)."""
from __future__ import annotations

from pathlib import Path

from cgphw.errors import SimulatorError
from cgphw.verification.amaranth_backend import simulator_failures
from cgphw.verification.backends import CocotbBackend
from cgphw.layer.stimulus import RESET_CYCLES, LayerRun, LayerStimulus, Recorder, load_run

CLOCK_PERIOD_S = 10e-9


def simulate_amaranth(engine, stimulus: LayerStimulus, top: str = "the layer engine") -> LayerRun:
    """Run ``stimulus`` through an Amaranth layer engine in Amaranth's simulator; a failure of
    the simulator itself is a SimulatorError (no verdict), never a mismatch."""
    with simulator_failures(top):
        return _simulate_amaranth(engine, stimulus)


def _simulate_amaranth(engine, stimulus: LayerStimulus) -> LayerRun:
    from amaranth.hdl import ClockDomain, Module, Value
    from amaranth.sim import Simulator

    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = engine
    rec = Recorder(stimulus)
    in_data, out_data = Value.cast(engine.in_data), Value.cast(engine.out_data)
    external = rec.memory is not None
    w_data = Value.cast(engine.w_data) if external else None
    sim = Simulator(top)
    sim.add_clock(CLOCK_PERIOD_S, domain="sync")

    async def bench(ctx):
        ctx.set(domain.rst, 1)
        for _ in range(RESET_CYCLES):
            await ctx.tick("sync")
        ctx.set(domain.rst, 0)
        while not rec.done:
            valid, data, word = rec.drive()
            ctx.set(engine.in_valid, valid)
            if valid:
                ctx.set(in_data, data)
            if word is not None:
                ctx.set(w_data, word)
            out_valid = ctx.get(engine.out_valid)
            rec.observe(ctx.get(engine.in_ready), out_valid, ctx.get(out_data) if out_valid else None,
                        ctx.get(engine.w_read) if external else 0, ctx.get(engine.w_addr) if external else None)
            await ctx.tick("sync")

    sim.add_testbench(bench)
    sim.run()
    return rec.result("amaranth")


def simulate_cocotb(backend: CocotbBackend, verilog: Path, top: str, stimulus_path: Path, workdir: Path) -> LayerRun:
    """Build ``verilog`` on ``backend`` (Icarus, Verilator) and run the layer testbench with the stimulus file."""
    sim = backend.name
    run_file = Path(workdir).resolve() / f"{sim}_layer_run.npz"
    run_file.unlink(missing_ok=True)
    run = backend.run_testbench([verilog], top, "cgphw.layer.testbench", workdir,
                                {"CGPHW_STIMULUS": str(Path(stimulus_path).resolve()),
                                 "CGPHW_LAYER_RUN": str(run_file)})
    if not run_file.is_file():
        raise SimulatorError(f"the {sim} simulation of {top} ended before its testbench finished, so there is no "
                             f"verdict on the design; log {run.log}:\n{run.log_tail()}")
    return load_run(run_file)
