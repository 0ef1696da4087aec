"""Stimulus (vectors, cycle schedule, pipeline model) and scoreboard, without a simulator."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from cgphw.cgp.genome import grid_for, random_genome
from cgphw.errors import UserError
from cgphw.verification.scoreboard import Scoreboard, describe_mismatch, pack, unpack
from cgphw.verification.stimulus import (CORNERS, Ports, build_stimulus, corner_vectors, load_stimulus,
                                   pipeline_model)

PIPE = Ports(clock="clk", reset="rst", valid_in="valid_in", valid_out="valid_out")


def genome(n_in=3, n_out=2, seed=1):
    return random_genome(grid_for(n_in, n_out, 2, 4), np.random.default_rng(seed))


def test_corners_all_combinations_for_few_inputs():
    v = corner_vectors(3)
    assert v.shape == (125, 3)
    assert {tuple(r) for r in v.tolist()} == set(itertools.product(CORNERS, repeat=3))


def test_corners_patterns_for_many_inputs():
    v = corner_vectors(9)
    assert len({tuple(r) for r in v.tolist()}) == len(v)  # no duplicates
    rows = {tuple(r) for r in v.tolist()}
    for c in CORNERS:
        assert (c,) * 9 in rows  # every uniform corner
        for d in CORNERS:  # every input at every corner against every background
            assert all(tuple(d if i != p else c for i in range(9)) in rows for p in range(9))


def test_pack_unpack_roundtrip():
    values = [-128, -1, 0, 1, 127, 42]
    word = pack(values)
    assert word & 0xFF == 0x80 and (word >> 8) & 0xFF == 0xFF
    assert unpack(word, 6) == values


def test_vectors_expected_from_the_evaluator_and_seeded():
    g = genome()
    task = np.array([[5, -7, 100]], np.int8)
    a = build_stimulus(g, "top", Ports(), 0, task, 50, seed=3)
    b = build_stimulus(g, "top", Ports(), 0, task, 50, seed=3)
    c = build_stimulus(g, "top", Ports(), 0, task, 50, seed=4)
    assert np.array_equal(a.vectors, b.vectors) and not np.array_equal(a.vectors, c.vectors)
    assert np.array_equal(a.expected, g.evaluate(a.vectors))
    assert a.groups[0] == ("task", 0, 1) and a.label(0) == "task[0]"
    assert np.array_equal(a.vectors[0], task[0])
    assert len(a.vectors) == 1 + 125 + 50


def test_combinational_schedule_one_vector_per_step():
    s = build_stimulus(genome(), "top", Ports(), 0, None, 10, 0)
    assert np.array_equal(s.cycles[:, 2], np.arange(len(s.vectors)))
    assert np.array_equal(s.expect[:, 1], np.arange(len(s.vectors)))


@pytest.mark.parametrize("latency", [1, 2, 5])
def test_pipeline_schedule_covers_back_to_back_bubbles_and_reset(latency):
    s = build_stimulus(genome(), "top", PIPE, latency, None, 100, 0)
    reset, valid, vec = s.cycles.T
    want_valid, shown = s.expect.T
    # every vector is shown at least once, exactly `latency` cycles after it was driven valid
    assert set(shown[shown >= 0]) == set(range(len(s.vectors)))
    for k in np.flatnonzero(shown >= 0):
        assert valid[k - latency] == 1 and vec[k - latency] == shown[k]
    # bubbles: cycles driven with valid low; they show valid_out low `latency` cycles later
    bubbles = [k for k in np.flatnonzero((valid == 0) & (reset == 0)) if k + latency < len(s.cycles)]
    assert len(bubbles) > 10 and all(want_valid[k + latency] == 0 for k in bubbles)
    # a reset in the middle of a valid stream drops the results in flight
    mid = [k for k in np.flatnonzero(reset) if k > 2]
    assert mid, "no reset while results are in flight"
    k = mid[0]
    assert valid[k - 1] == 1 and want_valid[k + 1] == 0
    assert all(want_valid[j] == 0 for j in range(k + 1, k + 1 + latency))
    # and the stream restarts right after it
    assert valid[k + 1] == 1 and want_valid[k + 1 + latency] == 1


def test_pipeline_model_by_hand():
    # cycles: reset, then vectors 0..3 valid, a bubble, vector 4; latency 2
    cycles = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 9], [0, 1, 4], [0, 0, 0], [0, 0, 0]])
    expect = pipeline_model(cycles, 2, with_valid=True)
    assert expect.tolist() == [[-1, -1], [0, -1], [0, -1], [1, 0], [1, 1], [0, -1], [1, 4]]


def test_latency_off_by_one_changes_the_expectation():
    g = genome()
    a = build_stimulus(g, "top", PIPE, 2, None, 20, 0)
    b = build_stimulus(g, "top", PIPE, 3, None, 20, 0)
    assert not np.array_equal(a.expect[:50], b.expect[:50])


def test_scoreboard_counts_and_first_mismatch():
    s = build_stimulus(genome(), "top", PIPE, 1, None, 5, 0)
    board = Scoreboard(s, "test")
    wrong_at = None
    for k, (valid, vec) in enumerate(s.expect.tolist()):
        word = pack(s.expected[vec]) if vec >= 0 else 0
        if vec >= 0 and wrong_at is None:
            wrong_at, word = k, word ^ 0x01  # flip one bit of output 0
        board.observe(k, max(valid, 0), word)
    summary = board.summary()
    assert summary["mismatches"] == 1 and summary["complete"]
    first = summary["first_mismatch"]
    assert first["cycle"] == wrong_at and first["wrong_outputs"] == [0]
    assert "differ" in describe_mismatch(first)


def test_scoreboard_unreadable_outputs_are_mismatches():
    s = build_stimulus(genome(), "top", Ports(), 0, None, 0, 0)
    board = Scoreboard(s, "test")
    assert not board.observe(0, None, None)
    assert board.summary()["first_mismatch"]["got"] is None


def test_stimulus_file_roundtrip(tmp_path):
    s = build_stimulus(genome(), "top", PIPE, 2, np.array([[1, 2, 3]], np.int8), 7, 0)
    s.save(tmp_path / "s.json")
    t = load_stimulus(tmp_path / "s.json")
    assert t.to_json() == s.to_json()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError):
        load_stimulus(tmp_path / "bad.json")


def test_no_inputs_circuit_has_one_vector():
    g = random_genome(grid_for(0, 3, 1, 2, function_ids=[22, 23, 24, 25, 26]), np.random.default_rng(0))
    s = build_stimulus(g, "top", Ports(stored=None), 0, None, 100, 0)
    assert s.vectors.shape == (1, 0) and s.expected.shape == (1, 3)


def test_no_inputs_stimulus_file_roundtrip(tmp_path):
    g = random_genome(grid_for(0, 2, 1, 2, function_ids=[22, 26]), np.random.default_rng(0))
    s = build_stimulus(g, "top", Ports(stored=None), 0, None, 0, 0)
    s.save(tmp_path / "s.json")
    assert load_stimulus(tmp_path / "s.json").to_json() == s.to_json()
