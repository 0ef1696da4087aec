"""cocotb testbench for an exported cgphw circuit (any simulator cocotb supports).

It only drives and compares: the vectors, the cycle schedule and the expected outputs come
from a stimulus file written by cgphw (``cgphw verify --write-stimulus``), named by the
environment variable CGPHW_STIMULUS. A summary (counts, first mismatch) is written to
CGPHW_REPORT (default ``cgphw_report.json`` in the simulator's working directory).
"""
from __future__ import annotations

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from cgphw.verification.scoreboard import Scoreboard, describe_mismatch, pack
from cgphw.verification.stimulus import load_stimulus

CLOCK_PERIOD_NS = 10


def _read(handle) -> int | None:
    """A port's value as an unsigned int, or None when it holds X/Z."""
    value = handle.value
    try:
        return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)
    except ValueError:
        return None


@cocotb.test()
async def circuit_matches_software_model(dut):
    path = os.environ.get("CGPHW_STIMULUS")
    assert path, "set CGPHW_STIMULUS to the stimulus file written by `cgphw verify --write-stimulus`"
    stim = load_stimulus(path)
    board = Scoreboard(stim, simulator=cocotb.SIM_NAME)
    ports = stim.ports
    stored = getattr(dut, ports.stored) if ports.stored else None
    weights = getattr(dut, ports.weights)
    valid_in = getattr(dut, ports.valid_in) if ports.valid_in else None
    valid_out = getattr(dut, ports.valid_out) if ports.valid_out else None
    reset = getattr(dut, ports.reset) if ports.reset else None
    words = [pack(v) for v in stim.vectors.tolist()]

    def drive(rst: int, valid: int, vector: int) -> None:
        if stored is not None:
            stored.value = words[vector]
        if valid_in is not None:
            valid_in.value = valid
        if reset is not None:
            reset.value = rst

    if stim.clocked:
        assert ports.clock is not None  # a clocked stimulus names its clock
        clk = getattr(dut, ports.clock)
        drive(1, 0, 0)
        Clock(clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
        for k, (rst, valid, vector) in enumerate(stim.cycles.tolist()):
            # Drive mid-cycle; the rising edge that ends cycle k captures these inputs.
            await FallingEdge(clk)
            drive(rst, valid, vector)
            await ReadOnly()
            board.observe(k, _read(valid_out) if valid_out is not None else None, _read(weights))
    else:
        for k, (rst, valid, vector) in enumerate(stim.cycles.tolist()):
            drive(rst, valid, vector)
            await Timer(1, unit="ns")
            board.observe(k, None, _read(weights))

    board.save(os.environ.get("CGPHW_REPORT", "cgphw_report.json"))
    assert board.mismatches == 0, (f"{board.mismatches} mismatching cycles; first: "
                                   f"{describe_mismatch(board.first_mismatch)}")  # type: ignore[arg-type]  # set
