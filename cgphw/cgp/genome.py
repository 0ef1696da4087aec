"""Genome: the CGP encoding of a circuit (genotype only; search lives in search.py).

A grid of rows x cols nodes, node index = col * rows + row. Pins 0..n_inputs-1 are the
circuit inputs, pin n_inputs + k is node k. Each node has three genes [in0, in1, gate_id];
then one gene per output (a pin). A node in column c reads the inputs when c < levels_back
(the inputs act as column -1) and the nodes of columns max(0, c - levels_back) .. c - 1;
outputs act as column ``cols``. A node with nothing to read (no inputs, column 0) must hold
a constant gate; its connection genes are then 0 and ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from cgphw import gates as G
from cgphw.errors import UserError
from cgphw.files import read_json, write_json_atomic

FORMAT = "cgphw-genome/1"
MAX_NODES = 1_000_000  # far above useful grids; keeps genes in int32 and memory bounded


@dataclass(frozen=True)
class Grid:
    """The shape of a genome and the rules of what may connect to what."""
    n_inputs: int
    n_outputs: int
    rows: int
    cols: int
    levels_back: int
    function_ids: tuple[int, ...]

    def __post_init__(self):
        for name in ("rows", "cols", "levels_back", "n_outputs"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.n_inputs < 0:
            raise UserError(f"the number of inputs cannot be negative, got {self.n_inputs}")
        if self.rows * self.cols > MAX_NODES:
            raise UserError(f"a {self.rows}x{self.cols} grid has {self.rows * self.cols:,} nodes; "
                            f"at most {MAX_NODES:,} are supported")
        for i in self.function_ids:
            G.gate(i)
        if self.n_inputs == 0 and not self.constant_ids:
            raise UserError("a circuit without inputs needs constant gates (ids 22-26) in its function set")

    @property
    def n_nodes(self) -> int:
        return self.rows * self.cols

    @property
    def n_genes(self) -> int:
        return 3 * self.n_nodes + self.n_outputs

    @property
    def constant_ids(self) -> tuple[int, ...]:
        return tuple(i for i in self.function_ids if G.gate(i).arity == 0)

    def pin_range(self, col: int) -> tuple[bool, int, int]:
        """What column ``col`` (``cols`` for the outputs) may read: (inputs allowed,
        first node pin, end node pin) — node pins form the half-open range [lo, hi)."""
        lo_col = max(0, col - self.levels_back)
        return (col < self.levels_back and self.n_inputs > 0,
                self.n_inputs + lo_col * self.rows, self.n_inputs + col * self.rows)

    def n_choices(self, col: int) -> int:
        inputs_ok, lo, hi = self.pin_range(col)
        return (self.n_inputs if inputs_ok else 0) + (hi - lo)

    def pin_is_allowed(self, col: int, pin: int) -> bool:
        inputs_ok, lo, hi = self.pin_range(col)
        return (inputs_ok and 0 <= pin < self.n_inputs) or lo <= pin < hi

    def to_json(self) -> dict:
        return {"n_inputs": self.n_inputs, "n_outputs": self.n_outputs, "rows": self.rows,
                "cols": self.cols, "levels_back": self.levels_back,
                "function_set": list(self.function_ids)}


@dataclass(frozen=True, eq=False)
class Genome:
    grid: Grid
    genes: np.ndarray  # int32 [3 * n_nodes + n_outputs]

    def __post_init__(self):
        genes = np.ascontiguousarray(self.genes, dtype=np.int32)
        genes.setflags(write=False)
        object.__setattr__(self, "genes", genes)
        check_genes(self.grid, genes)

    def __eq__(self, other) -> bool:
        return isinstance(other, Genome) and self.grid == other.grid and np.array_equal(self.genes, other.genes)

    # --- structure -------------------------------------------------------------------
    @property
    def nodes(self) -> np.ndarray:
        """int32 [n_nodes, 3]: in0, in1, gate id."""
        return self.genes[: 3 * self.grid.n_nodes].reshape(-1, 3)

    @property
    def outputs(self) -> np.ndarray:
        return self.genes[3 * self.grid.n_nodes:]

    def active_nodes(self) -> np.ndarray:
        """Indices of the nodes reachable from the outputs, ascending (= evaluation order)."""
        n_in, nodes = self.grid.n_inputs, self.nodes
        active = np.zeros(self.grid.n_nodes, bool)
        stack = [p - n_in for p in self.outputs if p >= n_in]
        while stack:
            k = stack.pop()
            if active[k]:
                continue
            active[k] = True
            in0, in1, gid = nodes[k]
            arity = G.gate(gid).arity
            for pin in (in0, in1)[:arity]:
                if pin >= n_in:
                    stack.append(pin - n_in)
        return np.flatnonzero(active)

    def digest(self) -> str:
        """Hash of the circuit: grid and genes."""
        return genes_digest(self.grid, self.genes)

    # --- reference evaluation (numpy; the compiled kernels must agree with it) ---------
    def evaluate(self, inputs: np.ndarray) -> np.ndarray:
        """int8 [items, n_outputs] from int8 inputs [items, n_inputs]."""
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.grid.n_inputs:
            raise UserError(f"inputs must have shape [items, {self.grid.n_inputs}], got {inputs.shape}")
        items = inputs.shape[0]
        values: dict[int, np.ndarray] = {p: inputs[:, p].astype(np.int8) for p in range(self.grid.n_inputs)}
        zero = np.zeros(items, np.int8)
        for k in self.active_nodes():
            in0, in1, gid = self.nodes[k]
            g = G.gate(gid)
            a = values[in0] if g.arity >= 1 else zero
            b = values[in1] if g.arity == 2 else a
            values[self.grid.n_inputs + k] = g.apply(a, b)
        return np.stack([values[p] for p in self.outputs], axis=1).reshape(items, -1)

    # --- readable form ---------------------------------------------------------------
    def pin_name(self, pin: int) -> str:
        n_in = self.grid.n_inputs
        return f"in{pin}" if pin < n_in else f"n{pin - n_in}"

    def expressions(self) -> list[str]:
        """The circuit as one assignment per active node, then one per output."""
        lines = []
        for k in self.active_nodes():
            in0, in1, gid = self.nodes[k]
            g = G.gate(gid)
            args = ", ".join(self.pin_name(p) for p in (in0, in1)[: g.arity])
            lines.append(f"n{k} = {g.name}({args})")
        lines += [f"out{j} = {self.pin_name(p)}" for j, p in enumerate(self.outputs)]
        return lines

    # --- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, **self.grid.to_json(),
                "nodes": self.nodes.tolist(), "outputs": self.outputs.tolist()}

    @classmethod
    def from_json(cls, doc: object, source: str = "genome") -> "Genome":
        try:
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
                raise ValueError(f"format must be {FORMAT!r}, found {found!r}")
            n_inputs, n_outputs, rows, cols, levels_back = (
                _whole(doc[k], k) for k in ("n_inputs", "n_outputs", "rows", "cols", "levels_back"))
            grid = Grid(n_inputs, n_outputs, rows, cols, levels_back,
                        tuple(_whole(i, "a function_set entry") for i in doc["function_set"]))
            nodes, outputs = np.asarray(doc["nodes"]), np.asarray(doc["outputs"])
            if any(a.size and a.dtype.kind not in "iu" for a in (nodes, outputs)):
                raise ValueError("nodes and outputs must hold whole numbers in range")  # 1.5 must not pass as 1
            if nodes.shape != (grid.n_nodes, 3):
                raise ValueError(f"nodes must be a {grid.n_nodes} x 3 list, found shape {nodes.shape}")
            if outputs.shape != (grid.n_outputs,):
                raise ValueError(f"outputs must list {grid.n_outputs} pins, found shape {outputs.shape}")
            if np.abs(nodes).max(initial=0) > 2**31 - 1 or np.abs(outputs).max(initial=0) > 2**31 - 1:
                raise ValueError("a gene is out of range")
            return cls(grid, np.concatenate([nodes.ravel(), outputs]).astype(np.int32))
        except (KeyError, TypeError, ValueError, OverflowError, UserError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"{source} is not a valid cgphw genome: {what}") from None

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_json())


def genes_digest(grid: Grid, genes: np.ndarray) -> str:
    """Genome.digest of these genes, without building (and checking) the Genome."""
    h = hashlib.sha256(json.dumps(grid.to_json(), sort_keys=True).encode())
    h.update(np.ascontiguousarray(genes, dtype=np.int32).tobytes())
    return h.hexdigest()[:16]


def _whole(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, found {value!r}")
    return value


def check_genes(grid: Grid, genes: np.ndarray) -> None:
    """Raise UserError naming the first gene that breaks the grid's rules."""
    if genes.shape != (grid.n_genes,):
        raise UserError(f"a genome of this grid has {grid.n_genes} genes, found {genes.size}")
    nodes = genes[: 3 * grid.n_nodes].reshape(-1, 3)
    allowed = set(grid.function_ids)
    for k, (in0, in1, gid) in enumerate(nodes):
        col = k // grid.rows
        if gid not in allowed:
            raise UserError(f"node {k} uses gate {gid}, which is not in the function set {sorted(allowed)}")
        if grid.n_choices(col) == 0:
            if G.gate(gid).arity != 0 or in0 != 0 or in1 != 0:
                raise UserError(f"node {k} has nothing to read, so it must be a constant with connection genes 0")
            continue
        for pin in (in0, in1):
            if not grid.pin_is_allowed(col, int(pin)):
                raise UserError(f"node {k} (column {col}) reads pin {pin}, which it may not reach")
    for j, pin in enumerate(genes[3 * grid.n_nodes:]):
        if not grid.pin_is_allowed(grid.cols, int(pin)):
            raise UserError(f"output {j} reads pin {pin}, which the outputs may not reach")


def random_pin(grid: Grid, col: int, rng: np.random.Generator) -> int:
    inputs_ok, lo, hi = grid.pin_range(col)
    n_inp = grid.n_inputs if inputs_ok else 0
    k = int(rng.integers(n_inp + hi - lo))
    return k if k < n_inp else lo + (k - n_inp)


def random_genome(grid: Grid, rng: np.random.Generator) -> Genome:
    """A uniformly random genome of the grid, drawn from a seeded numpy Generator."""
    if grid.n_choices(grid.cols) == 0:
        raise UserError("the outputs can reach no pin: raise levels-back or add inputs")
    genes = np.empty(grid.n_genes, np.int32)
    fids = np.array(grid.function_ids)
    consts = np.array(grid.constant_ids)
    for k in range(grid.n_nodes):
        col = k // grid.rows
        if grid.n_choices(col) == 0:
            genes[3 * k: 3 * k + 3] = (0, 0, consts[rng.integers(consts.size)])
        else:
            genes[3 * k: 3 * k + 3] = (random_pin(grid, col, rng), random_pin(grid, col, rng),
                                       fids[rng.integers(fids.size)])
    for j in range(grid.n_outputs):
        genes[3 * grid.n_nodes + j] = random_pin(grid, grid.cols, rng)
    return Genome(grid, genes)


def load_genome(path: str | os.PathLike) -> Genome:
    """Load a genome file, or the genome inside a run's best.json (the genome alone: nothing
    else in the file is checked or returned; `cgphw.load_run` reads a run)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"genome file {path} does not exist")
    doc = read_json(path)
    if isinstance(doc, dict) and "genome" in doc and isinstance(doc["genome"], dict):
        doc = doc["genome"]
    return Genome.from_json(doc, source=str(path))


def grid_for(n_inputs: int, n_outputs: int, rows: int, cols: int, levels_back: int | None = None,
             function_ids: Sequence[int] | str | None = None) -> Grid:
    return Grid(n_inputs, n_outputs, rows, cols, cols if levels_back is None else levels_back,
                G.function_set(function_ids))
