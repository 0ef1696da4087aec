"""Scoreboard: compares what a simulator shows, cycle by cycle, with the stimulus'
expectation. Every backend (cocotb on Icarus or Verilator, Amaranth's simulator) feeds
the same scoreboard, so "pass" means the same thing everywhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cgphw.files import write_json_atomic
from cgphw.verification.stimulus import Stimulus


def pack(values) -> int:
    """int8 values -> flat bus word, element i at bits [8i+7 : 8i]."""
    return int.from_bytes(np.asarray(values, dtype=np.int64).astype(np.int8).tobytes(), "little")


def unpack(word: int, count: int) -> list[int]:
    """Flat bus word -> ``count`` int8 values (bytes, not shifts: linear in the bus width)."""
    return np.frombuffer(word.to_bytes(count, "little"), dtype=np.int8).tolist()


class Scoreboard:
    def __init__(self, stimulus: Stimulus, simulator: str):
        self.stimulus = stimulus
        self.simulator = simulator
        self.n_outputs = stimulus.expected.shape[1]
        self.cycles = 0
        self.checks = 0  # cycles whose outputs were compared
        self.vectors_seen: set[int] = set()
        self.mismatches = 0
        self.first_mismatch: dict | None = None
        # What the hardware showed for the task's real inputs (the first time each was due).
        self.task_range = next(((lo, hi) for name, lo, hi in stimulus.groups if name == "task"), (0, 0))
        self.task_outputs: dict[int, list[int] | None] = {}

    def observe(self, cycle: int, valid: int | None, word: int | None) -> bool:
        """Record cycle ``cycle``: ``valid`` is valid_out (None: no such port or not 0/1),
        ``word`` the weights bus (None: not a resolvable 0/1 value). True if it matched."""
        self.cycles += 1
        want_valid, vector = (int(x) for x in self.stimulus.expect[cycle])
        valid_ok = want_valid < 0 or valid == want_valid
        got = None if word is None else unpack(word, self.n_outputs)
        data_ok = True
        if vector >= 0:
            self.checks += 1
            self.vectors_seen.add(vector)
            data_ok = got is not None and got == self.stimulus.expected[vector].tolist()
            if self.task_range[0] <= vector < self.task_range[1]:
                self.task_outputs.setdefault(vector - self.task_range[0], got)
        if valid_ok and data_ok:
            return True
        self.mismatches += 1
        if self.first_mismatch is None:
            self.first_mismatch = self._describe(cycle, want_valid, valid, vector, got)
        return False

    def _describe(self, cycle, want_valid, valid, vector, got) -> dict:
        reset, valid_in, driven = (int(x) for x in self.stimulus.cycles[cycle])
        doc = {"cycle": cycle, "driven": {"vector": self.stimulus.label(driven)}}
        if self.stimulus.ports.reset:
            doc["driven"]["reset"] = reset
        if self.stimulus.ports.valid_in:
            doc["driven"]["valid_in"] = valid_in
        if want_valid >= 0:
            doc["valid_out"] = {"expected": want_valid, "got": valid}
        doc["got"] = got
        if vector >= 0:
            want = self.stimulus.expected[vector].tolist()
            doc.update(vector=self.stimulus.label(vector), inputs=self.stimulus.vectors[vector].tolist(),
                       expected=want,
                       wrong_outputs=list(range(self.n_outputs)) if got is None
                       else [j for j in range(self.n_outputs) if got[j] != want[j]])
        return doc

    def summary(self) -> dict:
        n_task = self.task_range[1] - self.task_range[0]
        task = [self.task_outputs.get(i) for i in range(n_task)] if n_task else None
        return {"task_outputs": task, "simulator": self.simulator, "cycles": self.cycles, "checks": self.checks,
                "vectors": len(self.vectors_seen), "vectors_total": int(len(self.stimulus.vectors)),
                "mismatches": self.mismatches, "first_mismatch": self.first_mismatch,
                "complete": self.cycles == len(self.stimulus.cycles)}

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.summary())


def describe_mismatch(m: dict) -> str:
    """One readable line for a mismatch record."""
    parts = [f"cycle {m['cycle']}"]
    if "vector" in m:
        parts.append(f"vector {m['vector']} inputs={m['inputs']}")
    if "valid_out" in m and m["valid_out"]["expected"] != m["valid_out"]["got"]:
        parts.append(f"valid_out expected {m['valid_out']['expected']} got {m['valid_out']['got']}")
    if "expected" in m:
        parts.append(f"outputs {m['wrong_outputs']} differ: expected={m['expected']} got={m['got']}")
    parts.append("(driven this cycle: " + " ".join(f"{k}={v}" for k, v in m["driven"].items()) + ")")
    return "; ".join(parts)
