"""What the layer engine does, before any hardware exists: its geometry (lanes, taps, weight
reuse), how its weight buffer is filled from a weight source (``LoadPlan``), and the order in
which activations stream in and results stream out.

Dataflow (output-stationary, weights held per group of lanes):

    for each image, for each group g of P output channels (lanes),
      for each chunk of ``reuse`` output positions:
        LOAD  the weight buffer (P lanes x K weights) from the weight source, step by step
        for each position p of the chunk, for each slice s of T taps:
          accept one input word (T activation codes: taps s*T .. s*T+T-1 of p's window)
          acc[lane] += sum_t (x_t - input_zero_point) * w[lane, s*T + t]      (int32-style)
        after the last slice: requantise acc[lane] -> one output word (P codes) for p

A depthwise layer (each output channel reads its own input channel) takes P x T codes per word
instead: lane l's T taps of its channel's window, lane after lane; the lanes share nothing but
the schedule.

So a weight fetched from the source is used ``reuse`` times (once per position of the chunk);
``reuse`` = all positions of an image loads each weight once per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cgphw.errors import UserError


@dataclass(frozen=True)
class EngineConfig:
    """Engine parameters; None = the layer's natural choice."""
    lanes: int | None = None  # P: output channels in parallel (default: all channels)
    taps: int | None = None  # T: MACs per lane per cycle (default: the whole window K)
    reuse: int | None = None  # positions per weight load (default: all positions of an image)
    mult_bits: int = 32  # requantisation multiplier width

    def to_json(self) -> dict:
        return {"lanes": self.lanes, "taps": self.taps, "reuse": self.reuse, "mult_bits": self.mult_bits}


@dataclass(frozen=True)
class Geometry:
    channels: int  # C_out
    fan_in: int  # K
    positions: int  # output positions per image
    lanes: int  # P
    taps: int  # T
    reuse: int  # positions per weight load
    depthwise: bool = False  # each lane reads its own input channel (P x T codes per word)

    @property
    def word_codes(self) -> int:
        """Activation codes per input word."""
        return self.taps * (self.lanes if self.depthwise else 1)

    @property
    def slices(self) -> int:
        return self.fan_in // self.taps

    @property
    def groups(self) -> int:
        return self.channels // self.lanes

    @property
    def chunks(self) -> int:
        return math.ceil(self.positions / self.reuse)

    @property
    def words_per_image(self) -> int:
        return self.groups * self.positions * self.slices

    @property
    def outputs_per_image(self) -> int:
        return self.groups * self.positions

    @property
    def loads_per_image(self) -> int:
        return self.groups * self.chunks

    @property
    def macs_per_image(self) -> int:
        return self.channels * self.positions * self.fan_in

    def to_json(self) -> dict:
        return {"channels": self.channels, "fan_in": self.fan_in, "positions": self.positions, "lanes": self.lanes,
                "taps": self.taps, "reuse": self.reuse, "depthwise": self.depthwise, "slices": self.slices,
                "groups": self.groups,
                "chunks": self.chunks, "words_per_image": self.words_per_image,
                "loads_per_image": self.loads_per_image, "macs_per_image": self.macs_per_image}


def layer_geometry(config: EngineConfig, layer) -> Geometry:
    """The geometry of the engine for a ``QuantLayer``; UserError for a layer it cannot compute."""
    if layer.groups != 1 and not layer.depthwise:
        raise UserError(f"layer {layer.name} is a grouped convolution ({layer.groups} groups of "
                        f"{layer.input_shape[0] // layer.groups} input channels): the engine computes dense "
                        "(groups = 1) and depthwise (groups = input = output channels) layers only")
    return resolve(config, layer.out_channels, layer.fan_in, layer.positions, layer.depthwise)


def resolve(config: EngineConfig, channels: int, fan_in: int, positions: int, depthwise: bool = False) -> Geometry:
    lanes = channels if config.lanes is None else config.lanes
    taps = fan_in if config.taps is None else config.taps
    reuse = positions if config.reuse is None else config.reuse
    if not (isinstance(lanes, int) and 1 <= lanes <= channels and channels % lanes == 0):
        raise UserError(f"--lanes must divide the layer's {channels} output channels, got {lanes}")
    if not (isinstance(taps, int) and 1 <= taps <= fan_in and fan_in % taps == 0):
        raise UserError(f"--taps must divide the layer's {fan_in} weights per channel, got {taps}")
    if not (isinstance(reuse, int) and 1 <= reuse <= positions):
        raise UserError(f"--reuse must lie in 1..{positions} (output positions per image), got {reuse}")
    if lanes * taps > 4096:
        raise UserError(f"{lanes} lanes x {taps} taps = {lanes * taps} MACs is more than this engine builds (4096)")
    return Geometry(channels, fan_in, positions, lanes, taps, reuse, depthwise)


# --- filling the weight buffer ----------------------------------------------------------------
@dataclass(frozen=True)
class LoadPlan:
    """How each group's weight buffer is filled: the source delivers ``values`` int8 values
    per step (address 0..steps-1); group g loads ``group_steps[g]`` in order and writes
    value v of its i-th step to buffer slot (lane, k) for every (i, v, lane, k) in
    ``writes[g]``. Every slot of every group is written exactly once per load."""
    steps: int
    values: int
    group_steps: tuple[tuple[int, ...], ...]
    writes: tuple[tuple[tuple[int, int, int, int], ...], ...]

    def assemble(self, step_values: np.ndarray, geometry: Geometry) -> np.ndarray:
        """int8 [C_out, K]: the weights the buffer holds when the source yields ``step_values``
        (int8 [steps, values]) — what the hardware will multiply with."""
        out = np.zeros((geometry.channels, geometry.fan_in), np.int8)
        for g, writes in enumerate(self.writes):
            for i, v, lane, k in writes:
                out[g * geometry.lanes + lane, k] = step_values[self.group_steps[g][i], v]
        return out

    def rom_words(self, weights: np.ndarray, geometry: Geometry) -> np.ndarray:
        """int8 [steps, values]: what a memory must hold to fill the buffers with ``weights``
        ([C_out, K]) by this plan (values no slot reads stay 0)."""
        words = np.zeros((self.steps, self.values), np.int8)
        for g, writes in enumerate(self.writes):
            for i, v, lane, k in writes:
                words[self.group_steps[g][i], v] = weights[g * geometry.lanes + lane, k]
        return words

    def to_json(self) -> dict:
        return {"steps": self.steps, "values": self.values, "group_steps": [list(s) for s in self.group_steps],
                "loads": [len(s) for s in self.group_steps]}


def plan_load(writers: np.ndarray, geometry: Geometry, values: int) -> LoadPlan:
    """A LoadPlan from ``writers`` (int [C_out, K, 2]: the source step and value index that
    yields each weight)."""
    writers = np.asarray(writers)
    if writers.shape != (geometry.channels, geometry.fan_in, 2):
        raise UserError(f"weight writers must be [{geometry.channels}, {geometry.fan_in}, 2], "
                        f"got {list(writers.shape)}")
    steps = int(writers[..., 0].max()) + 1
    group_steps, writes = [], []
    for g in range(geometry.groups):
        block = writers[g * geometry.lanes:(g + 1) * geometry.lanes]
        order = sorted({int(s) for s in block[..., 0].ravel()})
        index = {s: i for i, s in enumerate(order)}
        group_steps.append(tuple(order))
        writes.append(tuple((index[int(block[lane, k, 0])], int(block[lane, k, 1]), lane, k)
                            for lane in range(geometry.lanes) for k in range(geometry.fan_in)))
    return LoadPlan(steps, values, tuple(group_steps), tuple(writes))


def kernel_writers(channels: int, fan_in: int) -> np.ndarray:
    """The plain layout: step c delivers channel c's K weights in window order."""
    c, k = np.meshgrid(np.arange(channels), np.arange(fan_in), indexing="ij")
    return np.stack([c, k], -1)


# --- the streams --------------------------------------------------------------------------
def input_words(windows: np.ndarray, geometry: Geometry) -> np.ndarray:
    """uint8 [words, T] (depthwise: [words, P x T]): the input stream for windows uint8
    [n, positions, K] (depthwise: [n, positions, C x K]), in the order image, group, position, slice."""
    n = windows.shape[0]
    if geometry.depthwise:
        g = geometry
        per_lane = windows.reshape(n, g.positions, g.groups, g.lanes, g.slices, g.taps)
        return np.ascontiguousarray(per_lane.transpose(0, 2, 1, 4, 3, 5)).reshape(-1, g.lanes * g.taps)
    per_group = windows.reshape(n, 1, geometry.positions, geometry.slices, geometry.taps)
    return np.ascontiguousarray(np.broadcast_to(
        per_group, (n, geometry.groups, geometry.positions, geometry.slices, geometry.taps))).reshape(-1, geometry.taps)


def output_words(outputs: np.ndarray, geometry: Geometry) -> np.ndarray:
    """uint8 [results, P]: the expected output stream for codes uint8 [n, C_out, positions]
    (order image, group, position)."""
    n = outputs.shape[0]
    grouped = outputs.reshape(n, geometry.groups, geometry.lanes, geometry.positions)
    return np.ascontiguousarray(grouped.transpose(0, 1, 3, 2)).reshape(-1, geometry.lanes)


def outputs_from_words(words: np.ndarray, geometry: Geometry, n: int) -> np.ndarray:
    """The inverse of ``output_words``: uint8 [n, C_out, positions]."""
    grouped = np.asarray(words, np.uint8).reshape(n, geometry.groups, geometry.positions, geometry.lanes)
    return np.ascontiguousarray(grouped.transpose(0, 1, 3, 2)).reshape(n, geometry.channels, geometry.positions)


def locate(result: int, lane: int, geometry: Geometry) -> tuple[int, int, int]:
    """(image, output channel, position) of lane ``lane`` of the result word ``result``."""
    image, rest = divmod(result, geometry.outputs_per_image)
    group, position = divmod(rest, geometry.positions)
    return image, group * geometry.lanes + lane, position
