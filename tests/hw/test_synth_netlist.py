"""The pieces under synthesis: the Yosys runner, the netlist reader, the activity simulator."""
from __future__ import annotations

import numpy as np
import pytest

from cgphw.errors import UserError
from cgphw.hw.activity import random_stimulus, simulate
from cgphw.hw.netlist import parse_yosys_json
from cgphw.hw.yosys import YosysError, run_yosys, yosys_version


def netlist_doc(cells: dict, ports: dict) -> dict:
    return {"modules": {"t": {"attributes": {"top": "00000000000000000000000000000001"},
                              "ports": ports, "cells": cells}}}


def cell(ctype, **conn):
    return {"type": ctype, "connections": {k: [v] for k, v in conn.items()}}


@pytest.mark.yosys
def test_yosys_errors_name_the_command():
    with pytest.raises(YosysError, match=r"read_rtlil missing\.il.*not found"):
        run_yosys(["read_rtlil missing.il"])
    with pytest.raises(UserError, match="no_such_pass"):
        run_yosys(["no_such_pass"])
    assert yosys_version().startswith("Yosys 0.")


def test_and_gate_activity_is_measured_not_assumed():
    """P(an AND output changes between two independent uniform vectors) = 2 * 1/4 * 3/4."""
    doc = netlist_doc({"g": cell("$_AND_", A=2, B=3, Y=4), "n": cell("$_NOT_", A=2, Y=5)},
                      {"a": {"direction": "input", "bits": [2]}, "b": {"direction": "input", "bits": [3]},
                       "y": {"direction": "output", "bits": [4, 5]}})
    net = parse_yosys_json(doc)
    sim = simulate(net, random_stimulus(net, 20000, seed=1))
    assert sim.toggles["g"] == pytest.approx(0.375, abs=0.015)
    assert sim.toggles["n"] == pytest.approx(0.5, abs=0.015)
    stim = random_stimulus(net, 100, seed=2)
    out = simulate(net, stim).outputs["y"]
    assert np.array_equal(out & 1, stim["a"] & stim["b"]) and np.array_equal(out >> 1, 1 - stim["a"])


def test_flip_flops_delay_by_one_cycle_and_feedback_is_refused():
    ports = {"clk": {"direction": "input", "bits": [1]}, "d": {"direction": "input", "bits": [2]},
             "q": {"direction": "output", "bits": [4]}}
    chain = netlist_doc({"f1": cell("$_DFF_P_", C=1, D=2, Q=3), "f2": cell("$_DFF_P_", C=1, D=3, Q=4)}, ports)
    net = parse_yosys_json(chain)
    stim = random_stimulus(net, 50, seed=3)
    q = simulate(net, stim).outputs["q"]
    assert q[0] == 0 and q[1] == 0 and np.array_equal(q[2:], stim["d"][:-2])
    loop = netlist_doc({"f": cell("$_DFF_P_", C=1, D=5, Q=4), "n": cell("$_NOT_", A=4, Y=5)}, ports)
    net = parse_yosys_json(loop)
    with pytest.raises(UserError, match="feed-forward"):
        simulate(net, random_stimulus(net, 50, seed=3), max_passes=8)


def test_netlist_reader_rejects_unmapped_cells_and_loops():
    ports = {"a": {"direction": "input", "bits": [2]}, "y": {"direction": "output", "bits": [3]}}
    with pytest.raises(UserError, match=r"outside the mapped cell set: \['\$add'\]"):
        parse_yosys_json(netlist_doc({"x": cell("$add", A=2, B=2, Y=3)}, ports))
    with pytest.raises(UserError, match="combinational loop"):
        parse_yosys_json(netlist_doc({"x": cell("$_AND_", A=2, B=4, Y=3), "z": cell("$_NOT_", A=3, Y=4)}, ports))


def test_longest_path_counts_cells_and_delays():
    doc = netlist_doc({"a": cell("$_NOT_", A=2, Y=3), "b": cell("$_XOR_", A=3, B=2, Y=4),
                       "c": cell("$_BUF_", A=4, Y=5)},
                      {"x": {"direction": "input", "bits": [2]}, "y": {"direction": "output", "bits": [5, "0"]}})
    net = parse_yosys_json(doc)
    depth, delay = net.longest_path({"$_NOT_": 0.01, "$_XOR_": 0.05, "$_BUF_": 9.0})
    assert depth == 2 and delay == pytest.approx(0.06)
