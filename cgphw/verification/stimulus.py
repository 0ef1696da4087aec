"""Stimulus: which input vectors a circuit is checked on, cycle by cycle, and what the
software model (``Genome.evaluate``) says every cycle must show.

The expected values are computed here, in the cgphw process; a simulator backend only
drives ``cycles`` and compares against ``expect`` (see scoreboard.py). The file written
by ``save`` is the whole contract between the two ("cgphw-stimulus/1").
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgphw.errors import UserError
from cgphw.files import write_json_atomic

FORMAT = "cgphw-stimulus/1"
CORNERS = (-128, -1, 0, 1, 127)
FULL_CORNER_PRODUCT_MAX_INPUTS = 5  # 5**5 = 3125 vectors; beyond that, patterns only


@dataclass(frozen=True)
class Ports:
    """Names of the design's ports (None = the design does not have it)."""
    stored: str | None = "stored"
    weights: str = "weights"
    clock: str | None = None
    reset: str | None = None
    valid_in: str | None = None
    valid_out: str | None = None


def corner_vectors(n_inputs: int) -> np.ndarray:
    """All combinations of the corner values when there are few inputs; otherwise every
    input at every corner against every uniform corner background, plus alternations."""
    if n_inputs == 0:
        return np.zeros((1, 0), np.int8)
    if n_inputs <= FULL_CORNER_PRODUCT_MAX_INPUTS:
        return np.array(list(itertools.product(CORNERS, repeat=n_inputs)), np.int8)
    rows = []
    for background in CORNERS:
        for position in range(n_inputs):
            for value in CORNERS:
                row = [background] * n_inputs
                row[position] = value
                rows.append(row)
    for a, b in itertools.permutations(CORNERS, 2):
        rows.append([a if i % 2 == 0 else b for i in range(n_inputs)])
    unique, first = np.unique(np.array(rows, np.int8), axis=0, return_index=True)
    return unique[np.argsort(first)]


def random_vectors(n_inputs: int, count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-128, 128, size=(count, n_inputs)).astype(np.int8)


@dataclass(frozen=True, eq=False)
class Stimulus:
    top: str
    ports: Ports
    latency: int
    vectors: np.ndarray  # int8 [V, n_in]
    expected: np.ndarray  # int8 [V, n_out]: the software model on each vector
    groups: tuple[tuple[str, int, int], ...]  # (label, first vector, end vector)
    cycles: np.ndarray  # int32 [C, 3]: reset, valid_in, vector driven on the stored port
    expect: np.ndarray  # int32 [C, 2]: valid_out (-1 = don't care), vector whose outputs show (-1 = none)

    @property
    def clocked(self) -> bool:
        return self.ports.clock is not None

    def label(self, vector: int) -> str:
        for name, lo, hi in self.groups:
            if lo <= vector < hi:
                return f"{name}[{vector - lo}]"
        return f"vector[{vector}]"

    def to_json(self) -> dict:
        return {"format": FORMAT, "top": self.top, "ports": self.ports.__dict__, "latency": self.latency,
                "n_inputs": int(self.vectors.shape[1]), "n_outputs": int(self.expected.shape[1]),
                "groups": [list(g) for g in self.groups], "vectors": self.vectors.tolist(),
                "expected": self.expected.tolist(), "cycles": self.cycles.tolist(), "expect": self.expect.tolist()}

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_json(), indent=None)  # can be tens of MB


def load_stimulus(path: str | os.PathLike) -> Stimulus:
    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {FORMAT!r}")
        n_in, n_out = int(doc["n_inputs"]), int(doc["n_outputs"])
        return Stimulus(doc["top"], Ports(**doc["ports"]), int(doc["latency"]),
                        np.array(doc["vectors"], np.int8).reshape(len(doc["vectors"]), n_in),
                        np.array(doc["expected"], np.int8).reshape(len(doc["expected"]), n_out),
                        tuple((str(a), int(b), int(c)) for a, b, c in doc["groups"]),
                        np.array(doc["cycles"], np.int32).reshape(-1, 3),
                        np.array(doc["expect"], np.int32).reshape(-1, 2))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"stimulus file {path} is not readable ({exc})") from None


def build_stimulus(genome, top: str, ports: Ports, latency: int, task_inputs: np.ndarray | None,
                   n_random: int, seed: int) -> Stimulus:
    """Vectors = task inputs, corner cases, then ``n_random`` seeded random vectors;
    expected = genome.evaluate on each; cycles = the schedule for the design's kind."""
    if n_random < 0:
        raise UserError(f"the number of random vectors cannot be negative, got {n_random}")
    if latency < 0:
        raise UserError(f"the latency cannot be negative, got {latency}")
    n_in = genome.grid.n_inputs
    rng = np.random.default_rng(seed)
    parts = []
    if task_inputs is not None and len(task_inputs):
        parts.append(("task", np.asarray(task_inputs, np.int8).reshape(len(task_inputs), n_in)))
    parts.append(("corner", corner_vectors(n_in)))
    if n_in and n_random:
        parts.append(("random", random_vectors(n_in, n_random, rng)))
    groups, start = [], 0
    for name, block in parts:
        groups.append((name, start, start + len(block)))
        start += len(block)
    vectors = np.concatenate([block for _, block in parts])
    expected = genome.evaluate(vectors)
    if ports.clock is None:
        if latency:
            raise UserError(f"design {top} claims latency {latency} but has no clock")
        cycles = np.stack([np.zeros(len(vectors)), np.ones(len(vectors)), np.arange(len(vectors))], 1)
    else:
        cycles = clocked_schedule(len(vectors), latency, rng, with_valid=ports.valid_in is not None)
    cycles = cycles.astype(np.int32)
    return Stimulus(top, ports, latency, vectors, expected, tuple(groups), cycles,
                    pipeline_model(cycles, latency, with_valid=ports.valid_out is not None))


def clocked_schedule(n_vectors: int, latency: int, rng: np.random.Generator, with_valid: bool) -> np.ndarray:
    """[reset, valid_in, vector] per cycle: reset, every vector back to back, a stretch
    with random bubbles (valid low while the data keeps changing), a reset while results
    are in flight, a restart right after it, then enough idle cycles to drain."""
    rows = [(1, 0, 0), (1, 0, 0)]
    rows += [(0, 1, v) for v in range(n_vectors)]
    if with_valid:
        for v in range(min(n_vectors, 64)):
            rows += [(0, 0, int(rng.integers(n_vectors))) for _ in range(int(rng.integers(0, 3)))]
            rows.append((0, 1, v))
        in_flight = max(latency, 1) + 2
        rows += [(0, 1, v % n_vectors) for v in range(in_flight)]
        rows[-(in_flight // 2) - 1] = (1, 1, rows[-(in_flight // 2) - 1][2])
        rows += [(0, 1, (v + 7) % n_vectors) for v in range(latency + 2)]
    rows += [(0, 0, int(rng.integers(n_vectors))) for _ in range(latency + 2)]
    return np.array(rows, np.int64)


def pipeline_model(cycles: np.ndarray, latency: int, with_valid: bool) -> np.ndarray:
    """What a design with synchronous reset and ``latency`` register stages shows in each
    cycle (inputs driven in cycle k are captured at the clock edge that ends cycle k):
    cycle k shows the vector of cycle k - latency, valid iff it was valid and no reset
    was driven in cycles k - latency .. k - 1. Rows: [valid_out, vector]; -1 = don't care
    (no valid port, or registers not yet reset) and no vector to compare respectively."""
    reset, valid, vector = cycles[:, 0], cycles[:, 1], cycles[:, 2]
    expect = np.full((len(cycles), 2), -1, np.int64)
    for k in range(len(cycles)):
        src = k - latency
        if latency == 0:
            live = bool(valid[k]) or not with_valid
            expect[k] = (int(valid[k]) if with_valid else -1, int(vector[k]) if live else -1)
            continue
        if not reset[:k].any():
            continue  # nothing has reset the registers yet: their contents are unknown
        live = src >= 0 and not reset[src:k].any() and (bool(valid[src]) or not with_valid)
        expect[k] = (int(live) if with_valid else -1, int(vector[src]) if live else -1)
    return expect
