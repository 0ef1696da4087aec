"""Switching activity measured by simulating a mapped netlist, not assumed.

The netlist is driven with a seeded sequence of random input vectors, one per clock
cycle (one per evaluation for combinational logic), and every cell output's value is
computed bit-parallel: each net holds its whole time series packed into bytes. The
activity of a cell is the number of transitions of its output per evaluation.

Zero-delay model: a cell's output changes at most once per evaluation, so glitches
(spurious transitions while a carry ripples) are not counted; real adders and above
all multipliers glitch, so the measured energy is a lower bound of that effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from cgphw.errors import UserError
from cgphw.hw.netlist import Bit, Netlist

_OPS: dict[str, Callable] = {
    "$_BUF_": lambda a: a,
    "$_NOT_": lambda a: ~a,
    "$_AND_": lambda a, b: a & b,
    "$_NAND_": lambda a, b: ~(a & b),
    "$_OR_": lambda a, b: a | b,
    "$_NOR_": lambda a, b: ~(a | b),
    "$_XOR_": lambda a, b: a ^ b,
    "$_XNOR_": lambda a, b: ~(a ^ b),
    "$_ANDNOT_": lambda a, b: a & ~b,
    "$_ORNOT_": lambda a, b: a | ~b,
    "$_MUX_": lambda a, b, s: (a & ~s) | (b & s),
}
CLOCK_PORTS = ("clk",)


@dataclass(frozen=True)
class Activity:
    evaluations: int  # transitions observed (= stimulus length - 1)
    toggles: dict[str, float]  # cell name -> output transitions per evaluation
    outputs: dict[str, np.ndarray]  # output port -> int64 values [evaluations + 1]


def random_stimulus(netlist: Netlist, evaluations: int, seed: int,
                    fixed: Mapping[str, int] | None = None,
                    below: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Independent uniform values per input port and step (``evaluations + 1`` steps),
    except ports held ``fixed`` (e.g. rst=0, valid_in=1) and ports drawn in
    [0, ``below[port]``) (e.g. a ROM address). Clock ports are not driven."""
    rng = np.random.default_rng(seed)
    fixed, below = dict(fixed or {}), dict(below or {})
    stimulus: dict[str, np.ndarray] = {}
    for port, bits in sorted(netlist.inputs.items()):
        if port in CLOCK_PORTS:
            continue
        width = len(bits)
        if port in fixed:
            stimulus[port] = np.full(evaluations + 1, fixed[port], np.int64)
        elif port in below:
            stimulus[port] = rng.integers(0, below[port], evaluations + 1, dtype=np.int64)
        else:  # bytes, so any width draws uniformly
            raw = rng.integers(0, 256, (evaluations + 1, (width + 7) // 8), dtype=np.uint8)
            bitsx = np.unpackbits(raw, axis=1, bitorder="little")[:, :width]
            stimulus[port] = (bitsx.astype(np.uint64) << np.arange(width, dtype=np.uint64)).sum(1).astype(np.int64) \
                if width < 64 else bitsx  # wide ports keep their bit matrix
    return stimulus


def simulate(netlist: Netlist, stimulus: Mapping[str, np.ndarray], max_passes: int = 256) -> Activity:
    """Run the netlist over the stimulus; flip-flops start at 0 and take D each step."""
    steps = _steps(netlist, stimulus)
    nbytes = (steps + 7) // 8
    zeros, ones = np.zeros(nbytes, np.uint8), np.full(nbytes, 0xFF, np.uint8)
    base: dict[Bit, np.ndarray] = {"0": zeros, "1": ones, "x": zeros, "z": zeros}
    for port, bits in netlist.inputs.items():
        if port in CLOCK_PORTS:
            continue
        matrix = _bit_matrix(stimulus[port], len(bits))
        for i, b in enumerate(bits):
            base[b] = np.packbits(matrix[:, i])
    flop_q: dict[Bit, np.ndarray] = {f.output: zeros for f in netlist.flops}
    for _ in range(max_passes):  # registers: iterate Q[t] = D[t-1] until it settles
        values: dict[Bit, np.ndarray] = {**base, **flop_q}
        for c in netlist.logic:
            values[c.output] = _OPS[c.type](*(values[b] for b in c.inputs))
        new_q: dict[Bit, np.ndarray] = {f.output: _delay_one(values[f.inputs[0]], steps) for f in netlist.flops}
        if all(np.array_equal(new_q[q], flop_q[q]) for q in flop_q):
            break
        flop_q = new_q
    else:
        raise UserError(f"{netlist.top} feeds registers back into themselves; "
                        "activity simulation supports feed-forward pipelines only")
    toggles = {}
    for c in netlist.cells:
        series = np.unpackbits(values[c.output], count=steps)
        toggles[c.name] = float(np.count_nonzero(series[1:] != series[:-1])) / (steps - 1)
    outputs = {port: _port_values([values[b] if b in values else zeros for b in bits], steps)
               for port, bits in netlist.outputs.items()}
    return Activity(steps - 1, toggles, outputs)


def _steps(netlist: Netlist, stimulus: Mapping[str, np.ndarray]) -> int:
    lengths = set()
    for port in netlist.inputs:
        if port in CLOCK_PORTS:
            continue
        if port not in stimulus:
            raise UserError(f"no stimulus for input port {port} of {netlist.top}")
        lengths.add(len(stimulus[port]))
    if len(lengths) > 1:
        raise UserError(f"stimulus ports of {netlist.top} differ in length: {sorted(lengths)}")
    steps = lengths.pop() if lengths else 2
    if steps < 2:
        raise UserError("activity needs at least two input vectors")
    return steps


def _bit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2:  # already bits [steps, width]
        return values.astype(np.uint8)
    shifts = np.arange(width, dtype=np.uint64)
    return ((values.astype(np.int64).astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)


def _delay_one(packed: np.ndarray, steps: int) -> np.ndarray:
    series = np.unpackbits(packed, count=steps)
    return np.packbits(np.concatenate([[0], series[:-1]]).astype(np.uint8))


def _port_values(packed_bits: list[np.ndarray], steps: int) -> np.ndarray:
    """Unsigned integer value of a port per step (ports wider than 62 bits: bit matrix)."""
    matrix = np.stack([np.unpackbits(p, count=steps) for p in packed_bits], axis=1) if packed_bits \
        else np.zeros((steps, 0), np.uint8)
    if matrix.shape[1] > 62:
        return matrix
    return (matrix.astype(np.int64) << np.arange(matrix.shape[1], dtype=np.int64)).sum(1)
