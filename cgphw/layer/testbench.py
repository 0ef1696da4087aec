"""cocotb testbench for an exported cgphw layer engine (any simulator cocotb supports).

It streams the words of a stimulus file (``cgphw verify-layer ... --write-stimulus FILE``,
named by the environment variable CGPHW_STIMULUS) into ``in_data``, answers external weight
reads, and records every result word; at the end it writes what it saw to CGPHW_LAYER_RUN
(default ``cgphw_layer_run.npz``) and fails when any result differs from the expected one
(the first difference is in the failure message).
"""
from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from cgphw.layer.stimulus import RESET_CYCLES, Recorder, load_stimulus

CLOCK_PERIOD_NS = 10


def _read(handle) -> int | None:
    value = handle.value
    try:
        return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)
    except ValueError:  # X or Z
        return None


@cocotb.test()
async def layer_matches_network(dut):
    path = os.environ.get("CGPHW_STIMULUS")
    assert path, "set CGPHW_STIMULUS to the file written by `cgphw verify-layer --write-stimulus`"
    stim = load_stimulus(path)
    rec = Recorder(stim)
    external = rec.memory is not None
    dut.in_valid.value = 0
    dut.in_data.value = 0
    dut.rst.value = 1
    if external:
        dut.w_data.value = 0
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
    for _ in range(RESET_CYCLES):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    while not rec.done:
        # inputs change mid-cycle; the next rising edge takes them
        valid, data, w_data = rec.drive()
        dut.in_valid.value = valid
        if valid:
            dut.in_data.value = data
        if w_data is not None:
            dut.w_data.value = w_data
        await ReadOnly()
        out_valid = _read(dut.out_valid)
        rec.observe(_read(dut.in_ready) or 0, out_valid or 0,
                    _read(dut.out_data) if out_valid else None,
                    (_read(dut.w_read) or 0) if external else 0, _read(dut.w_addr) if external else None)
        await FallingEdge(dut.clk)
    run = rec.result(cocotb.SIM_NAME)
    run.save(os.environ.get("CGPHW_LAYER_RUN", "cgphw_layer_run.npz"))
    assert run.complete, f"{len(run.outputs)} of {stim.results} results in {run.cycles} cycles"
    bad = np.flatnonzero(np.any(run.outputs != stim.expected[: len(run.outputs)], axis=1) | run.unknown)
    assert bad.size == 0, (f"{bad.size} result words differ; first: word {bad[0]}, expected "
                           f"{stim.expected[bad[0]].tolist()}, got {run.outputs[bad[0]].tolist()}")
