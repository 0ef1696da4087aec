"""cocotb testbench for per-gate conformance (design from conformance.gates_component).

Drives every (a, b) pair listed in the CGPHW_STIMULUS .npz and compares each gate's
output port byte for byte with the expected bytes cgphw computed from ``Gate.apply``.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import Timer

from cgphw import gates as G


@cocotb.test()
async def gates_match_int8_semantics(dut):
    with np.load(os.environ["CGPHW_STIMULUS"]) as data:
        ids, a, b, expected = data["ids"].tolist(), data["a"], data["b"], data["expected"]
    lanes = b.shape[1]
    b_words = [int.from_bytes(row.tobytes(), "little") for row in b]
    outs = [getattr(dut, f"g{gid}") for gid in ids]
    wrong: dict[int, int] = {}
    first: dict[int, dict] = {}
    for step in range(len(a)):
        dut.a.value = int(a[step]) & 0xFF
        dut.b.value = b_words[step]
        await Timer(1, unit="ns")
        for g, gid in enumerate(ids):
            value = outs[g].value
            got = (np.frombuffer(value.to_unsigned().to_bytes(lanes, "little"), np.uint8)
                   if value.is_resolvable else None)
            want = expected[step, g]
            if got is not None and np.array_equal(got, want):
                continue
            for lane in range(lanes) if got is None else np.flatnonzero(got != want):
                wrong[gid] = wrong.get(gid, 0) + 1
                first.setdefault(gid, {"gate": G.gate(gid).name, "a": int(a[step]), "b": int(b[step][lane]),
                                       "expected": int(want.view(np.int8)[lane]),
                                       "got": None if got is None else int(got.view(np.int8)[lane])})
    with open(os.environ.get("CGPHW_REPORT", "cgphw_report.json"), "w") as fh:
        json.dump({"pairs": len(a) * lanes, "wrong": wrong, "first_wrong": first}, fh)
    assert not wrong, f"gates differ from their int8 semantics: {wrong}; first: {first}"
