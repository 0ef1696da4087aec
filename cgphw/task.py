"""Task: what a CGP circuit must compute (shared by nn/, which makes tasks, and cgp/).

A task file is an ``.npz`` with int8 ``inputs[items, n_in]`` and ``targets[items, n_out]``,
optional float ``weights[items, n_out]`` (per-target error weight) and bool
``mask[items, n_out]`` (True = this target counts; False = don't care), and optional
``meta`` (a JSON string: where each target weight lives in a network, and so on). Tasks
made from a network record locations as runs per item: ``inputs_from`` / ``targets_at`` =
``[[layer, first flat index, count], ...]`` (``location_runs`` / ``expand_location_runs``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgphw.errors import UserError
from cgphw.files import atomic_file, parse_json
from cgphw.npz import MAX_VALUES, NUMBERS, read_npz  # noqa: F401  (MAX_VALUES: the cap other readers share)

# The arrays a task file may hold and their dtype kinds (read_npz checks them, and their
# sizes, from the .npy headers before anything is allocated): numbers of any kind are read,
# so that validate says exactly what a task needs (int8, real weights, a bool mask).
ARRAYS = {"inputs": NUMBERS, "targets": NUMBERS, "weights": NUMBERS, "mask": NUMBERS, "meta": "U"}


@dataclass(frozen=True, eq=False)
class Task:
    inputs: np.ndarray  # int8 [items, n_in] (n_in may be 0)
    targets: np.ndarray  # int8 [items, n_out]
    weights: np.ndarray | None = None  # float64 [items, n_out], >= 0
    mask: np.ndarray | None = None  # bool [items, n_out]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        validate(self.inputs, self.targets, self.weights, self.mask)
        if not self.error_weights().any():
            raise UserError("task has no target that counts: its mask or weights leave every target at weight 0")

    @property
    def n_items(self) -> int:
        return self.targets.shape[0]

    @property
    def n_inputs(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.targets.shape[1]

    @property
    def n_targets(self) -> int:
        """Targets that count (the N of the threshold rule SE <= t^2 * N)."""
        return int(self.targets.size if self.mask is None else self.mask.sum())

    def error_weights(self) -> np.ndarray:
        """float64 [items, n_out]: per-target weight with don't-cares set to 0."""
        w = np.ones(self.targets.shape) if self.weights is None else self.weights.astype(np.float64)
        return w if self.mask is None else np.where(self.mask, w, 0.0)

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {"inputs": self.inputs, "targets": self.targets, "meta": np.array(json.dumps(self.meta))}
        if self.weights is not None:
            arrays["weights"] = self.weights
        if self.mask is not None:
            arrays["mask"] = self.mask
        path = Path(path)
        try:
            with atomic_file(path, "wb") as fh:
                np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays to allow_pickle
        except OSError as exc:
            raise UserError(f"cannot write the task file {path} ({exc.strerror or exc})") from None
        return path


def validate(inputs, targets, weights=None, mask=None) -> None:
    for name, arr in (("inputs", inputs), ("targets", targets)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.int8 or arr.ndim != 2:
            raise UserError(f"task {name} must be a 2-D int8 array [items, n], got "
                            f"{getattr(arr, 'dtype', type(arr).__name__)} of shape {getattr(arr, 'shape', '?')}")
    if inputs.shape[0] != targets.shape[0]:
        raise UserError(f"task inputs have {inputs.shape[0]} items but targets have {targets.shape[0]}")
    if targets.shape[0] == 0 or targets.shape[1] == 0:
        raise UserError("task has no targets: targets must have at least one item and one output")
    if weights is not None:
        real = np.issubdtype(weights.dtype, np.integer) or np.issubdtype(weights.dtype, np.floating)
        if weights.shape != targets.shape or not real:
            raise UserError(f"task weights must be real numbers with the targets' shape {targets.shape}, "
                            f"got {weights.dtype} {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise UserError("task weights must be finite and non-negative")
    if mask is not None and (mask.shape != targets.shape or mask.dtype != np.bool_):
        raise UserError(f"task mask must be bool with the targets' shape {targets.shape}, "
                        f"got {mask.dtype} {mask.shape}")


def load_task(path: str | os.PathLike) -> Task:
    """Read a task file. Its arrays' dtypes and sizes are checked from their headers before
    they are read (``npz.read_npz``); arrays other than the task's are not read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    arrays = read_npz(path, ARRAYS, "task file")
    missing = {"inputs", "targets"} - set(arrays)
    if missing:
        raise UserError(f"task file {path} lacks {', '.join(sorted(missing))}: it needs int8 inputs and targets")
    meta = {}
    if "meta" in arrays:
        if arrays["meta"].dtype.kind != "U" or arrays["meta"].shape != ():
            raise UserError(f"task file {path} has a meta entry that is not a JSON string")
        meta = parse_json(str(arrays["meta"]), f"the meta entry of task file {path}")
        if not isinstance(meta, dict):
            raise UserError(f"task file {path} has a meta entry that is not a JSON object")
    try:
        return Task(arrays["inputs"], arrays["targets"], arrays.get("weights"), arrays.get("mask"), meta)
    except UserError as exc:
        raise UserError(f"task file {path}: {exc}") from None


def location_runs(pairs) -> list[list]:
    """[(layer, flat index)...] -> the meta's runs [[layer, first flat index, count]...],
    joining consecutive indices (how ``inputs_from`` / ``targets_at`` record one item)."""
    runs: list[list] = []
    for name, index in pairs:
        if runs and runs[-1][0] == name and runs[-1][1] + runs[-1][2] == index:
            runs[-1][2] += 1
        else:
            runs.append([name, int(index), 1])
    return runs


def expand_location_runs(items) -> list[list[tuple[str, int]]]:
    """Per item, the meta's runs -> (layer, flat index) of each element; ValueError if malformed."""
    try:
        runs = [[tuple(run) for run in item] for item in items]
    except TypeError:
        raise ValueError("location runs must be lists of [layer, first flat index, count]") from None
    for item in runs:
        for run in item:
            if len(run) != 3 or not isinstance(run[0], str) or any(
                    isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in run[1:]):
                raise ValueError(f"malformed location run {list(run)!r}")
    return [[(name, start + i) for name, start, count in item for i in range(count)] for item in runs]


def example_task() -> Task:
    """The thesis' LeNet-5 conv1 filter 0: 3x3 core -> its 16-weight ring (one item)."""
    core = [-42, -36, 64, 19, 67, 127, 60, 54, 16]
    ring = [26, -61, -64, -60, 22, -25, 102, -5, 32, 32, -62, -9, -12, -32, -96, -76]
    return Task(np.array([core], np.int8), np.array([ring], np.int8),
                meta={"name": "lenet5-conv1-filter0-core-ring", "selector": "core-ring"})
