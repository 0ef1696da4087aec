"""The contract between cgphw and a layer-engine testbench: what to stream in, what must
come out (``cgphw-layer-stimulus/1``, an ``.npz``), and what the testbench saw
(``LayerRun``, written as ``cgphw-layer-run/1``).

The testbench drives ``in_data``/``in_valid`` with ``words`` one after the other (a word is
taken at the clock edge where ``in_ready`` is high), answers ``w_addr`` reads from ``memory``
one cycle later, and records every ``out_data`` word shown with ``out_valid`` until
``results`` words came out or ``max_cycles`` passed. It only records; cgphw compares.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgphw.errors import UserError
from cgphw.files import atomic_file, parse_json
from cgphw.npz import read_npz

FORMAT = "cgphw-layer-stimulus/1"
RUN_FORMAT = "cgphw-layer-run/1"
RESET_CYCLES = 2
# a layer's words for many images exceed a task's cap; bytes still bound what is read
MAX_ARRAY_BYTES = 1 << 30


@dataclass(frozen=True, eq=False)
class LayerStimulus:
    top: str
    words: np.ndarray  # uint8 [n_words, T]
    expected: np.ndarray  # uint8 [results, P]
    memory: np.ndarray | None  # int8 [steps, V]: the external weight memory, if the engine reads one
    max_cycles: int
    meta: dict  # layer, images, geometry, ... (for people; the testbench needs none of it)

    @property
    def results(self) -> int:
        return int(self.expected.shape[0])

    def write(self, fh) -> None:
        """Write the .npz to an open binary file."""
        arrays = {"words": self.words, "expected": self.expected,
                  "meta": np.array(json.dumps({"format": FORMAT, "top": self.top, "max_cycles": self.max_cycles,
                                               **self.meta}))}
        if self.memory is not None:
            arrays["memory"] = self.memory
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays to allow_pickle

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, "wb") as fh:
                self.write(fh)
        except OSError as exc:
            raise UserError(f"cannot write the stimulus file {path} ({exc.strerror or exc})") from None
        return path


def load_stimulus(path: str | os.PathLike) -> LayerStimulus:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"layer stimulus file {path} does not exist")
    doc = read_npz(path, {"meta": "U", "words": "u", "expected": "u", "memory": "i"}, "layer stimulus file",
                   MAX_ARRAY_BYTES, MAX_ARRAY_BYTES)
    if {"meta", "words", "expected"} - set(doc) or doc["meta"].shape != ():
        raise UserError(f"{path} is not a layer stimulus file (it needs meta, words and expected)")
    meta = parse_json(str(doc["meta"]), f"the meta entry of {path}")
    words, expected, memory = doc["words"], doc["expected"], doc.get("memory")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a {FORMAT} file")
    if words.dtype != np.uint8 or words.ndim != 2 or expected.dtype != np.uint8 or expected.ndim != 2:
        raise UserError(f"{path}: words and expected results must be 2-D uint8 arrays")
    if memory is not None and (memory.dtype != np.int8 or memory.ndim != 2):
        raise UserError(f"{path}: the weight memory must be a 2-D int8 array")
    top, max_cycles = meta.pop("top", None), meta.pop("max_cycles", None)
    if not isinstance(top, str) or type(max_cycles) is not int or max_cycles < 1:
        raise UserError(f"{path}: its meta needs the top module's name and max_cycles >= 1")
    meta.pop("format")
    return LayerStimulus(top, words, expected, memory, max_cycles, meta)


@dataclass(frozen=True, eq=False)
class LayerRun:
    """What a simulation showed: every result word in order, and how long it took."""
    outputs: np.ndarray  # uint8 [results seen, P]
    unknown: np.ndarray  # bool [results seen]: the word held X or Z bits
    cycles: int  # clock cycles after reset until the last result (or the limit)
    complete: bool  # all expected results came out
    simulator: str

    def save(self, path: str | os.PathLike) -> None:
        with atomic_file(Path(path), "wb") as fh:
            np.savez_compressed(fh, outputs=self.outputs, unknown=self.unknown, meta=np.array(json.dumps(
                {"format": RUN_FORMAT, "cycles": self.cycles, "complete": self.complete,
                 "simulator": self.simulator})))


def load_run(path: str | os.PathLike) -> LayerRun:
    doc = read_npz(path, {"meta": "U", "outputs": "u", "unknown": "b"}, "layer run file", MAX_ARRAY_BYTES,
                   MAX_ARRAY_BYTES)
    if {"meta", "outputs", "unknown"} - set(doc) or doc["meta"].shape != ():
        raise UserError(f"{path} is not a {RUN_FORMAT} file (it needs meta, outputs and unknown)")
    meta = parse_json(str(doc["meta"]), f"the meta entry of {path}")
    outputs, unknown = doc["outputs"], doc["unknown"]
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise UserError(f"{path} is not a {RUN_FORMAT} file")
    return LayerRun(outputs, unknown, int(meta["cycles"]), bool(meta["complete"]), str(meta["simulator"]))


def pack_words(rows: np.ndarray) -> list[int]:
    """uint8/int8 rows -> flat bus words (element i at bits [8i+7:8i])."""
    raw = np.ascontiguousarray(rows).view(np.uint8)
    return [int.from_bytes(raw[i].tobytes(), "little") for i in range(raw.shape[0])]


class Recorder:
    """The testbench's loop, shared by every simulator: call ``cycle`` once per clock cycle
    with what the ports show; it says what to drive next."""

    def __init__(self, stimulus: LayerStimulus):
        self.stim = stimulus
        self.words = pack_words(stimulus.words)
        self.memory = pack_words(stimulus.memory) if stimulus.memory is not None else None
        self.width = stimulus.expected.shape[1]
        self.next_word = 0
        self.outputs: list[int] = []
        self.cycles = 0
        self.read_address: int | None = None

    @property
    def done(self) -> bool:
        return len(self.outputs) >= self.stim.results or self.cycles >= self.stim.max_cycles

    def drive(self) -> tuple[int, int, int | None]:
        """(in_valid, in_data, w_data or None) for this cycle."""
        valid = int(self.next_word < len(self.words))
        data = self.words[self.next_word] if valid else 0
        w_data = None
        if self.memory is not None and self.read_address is not None:
            w_data = self.memory[self.read_address] if self.read_address < len(self.memory) else 0
        return valid, data, w_data

    def observe(self, in_ready: int, out_valid: int, out_data: int | None,
                w_read: int = 0, w_addr: int | None = None) -> None:
        """What the ports showed before this cycle's clock edge."""
        if out_valid:
            self.outputs.append(-1 if out_data is None else out_data)  # X/Z reads as a mismatch
        if in_ready and self.next_word < len(self.words):
            self.next_word += 1
        if self.memory is not None:
            self.read_address = w_addr if w_read else self.read_address
        self.cycles += 1

    def result(self, simulator: str) -> LayerRun:
        unknown = np.array([o < 0 for o in self.outputs], bool)
        raw = b"".join(max(o, 0).to_bytes(self.width, "little") for o in self.outputs)
        outputs = np.frombuffer(raw, np.uint8).reshape(-1, self.width).copy()
        return LayerRun(outputs, unknown, self.cycles, len(self.outputs) >= self.stim.results, simulator)
