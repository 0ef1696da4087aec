"""The export manifest (NAME.json beside the RTL): its one reader, ``load_manifest`` ->
``Manifest``, used by synth and verify. Kept free of Amaranth so readers load quickly.

``load_manifest`` believes nothing it has not checked: the format version; every field's
type; that every file it names is a plain name inside the directory (no folder, no ``..``,
not absolute, no link leading out) whose sha256 is the one recorded at export; the genome
against its hash; the task's shape against the genome; the ports against the genome; the ROM
baseline's words against the task; and the search's metrics against a re-evaluation of the
genome on the task (the figures that need no cost table). Malformed: UserError (exit 2);
well formed but contradicted (an edited file, a swapped genome): MismatchError (exit 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgphw import records
from cgphw.cgp.genome import Genome
from cgphw.cgp.metrics import Metrics, check_reproduced, logic_counts, task_figures
from cgphw.errors import MismatchError, UserError
from cgphw.files import member, parse_json, read_json, sha256_file
from cgphw.task import MAX_VALUES, Task

FORMAT = "cgphw-rtl/2"
_FAMILY = FORMAT.split("/")[0] + "/"


# --- the document, as written by hw.export ------------------------------------------------
@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" | "output"
    width: int  # bits; array ports are flat buses, element i at bits [8*i+7 : 8*i]
    elements: int
    signed: bool


@dataclass(frozen=True)
class Files:
    verilog: str
    rtlil: str
    manifest: str


@dataclass(frozen=True)
class Valid:
    in_: str = field(metadata={"json": "in"})
    out: str


@dataclass(frozen=True)
class BaselineDoc:
    verilog: str
    rtlil: str
    top: str
    latency: int
    clock: str | None
    reset: str | None
    ports: tuple[Port, ...]
    words: int
    contents: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class ManifestDoc:
    name: str
    top: str
    latency: int
    pipeline: int | None
    depth: int
    gates: int
    constants: int
    ports: tuple[Port, ...]
    clock: str | None
    reset: str | None
    valid: Valid | None
    genome: dict
    genome_hash: str
    expressions: tuple[str, ...]
    task: dict | None
    inputs_map: tuple[dict, ...]
    outputs_map: tuple[dict, ...]
    files: Files
    sha256: dict  # file name -> sha256 of every file ``files`` and ``baseline`` name
    baseline: BaselineDoc | None
    source: dict  # kind ("run" | "genome"), path, metrics, value_bank, costs
    baseline_note: str | None = None


# --- the checked view ---------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """The ROM holding the same weights, one per read (address = item * n_outputs + output)."""
    top: str
    verilog: Path
    rtlil: Path
    latency: int
    clock: str | None
    reset: str | None
    ports: tuple[Port, ...]
    values: tuple[int, ...]  # the words, checked against the task's targets
    contents: str


@dataclass(frozen=True, eq=False)
class Manifest:
    """An export directory as read by ``load_manifest``: every part checked."""
    path: Path  # NAME.json
    name: str
    top: str
    latency: int  # cycles from inputs to outputs (0: combinational)
    pipeline: int | None  # a register bank every K logic levels
    ports: tuple[Port, ...]
    clock: str | None
    reset: str | None
    valid: Valid | None
    genome: Genome  # matches genome_hash
    task: Task | None  # the task the circuit was exported with (None for a bare genome)
    metrics: Metrics | None  # what the search reported, re-evaluated where no cost table is needed
    verilog: Path  # inside ``directory``, sha256 as recorded
    rtlil: Path
    baseline: Baseline | None
    doc: ManifestDoc  # the rest, as written (maps, expressions, source, depth, gates)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def genome_hash(self) -> str:
        return self.doc.genome_hash

    def port(self, name: str | None) -> Port | None:
        return next((p for p in self.ports if p.name == name), None)


def find_manifest(path: str | os.PathLike) -> Path | None:
    """The export manifest PATH names: the file itself, or in a directory its NAME.json, else
    its one cgphw-rtl manifest. None when there is none; UserError when several compete."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix == ".json" and _is_manifest(path) else None
    if not path.is_dir():
        raise UserError(f"{path} does not exist")
    named = path / f"{path.name}.json"
    if _is_manifest(named):
        return named
    found = [p for p in sorted(path.glob("*.json")) if _is_manifest(p)]
    if len(found) > 1:
        raise UserError(f"{path} holds several cgphw-rtl manifests ({', '.join(p.name for p in found)}); "
                        "name the one to use")
    return found[0] if found else None


def _is_manifest(path: Path) -> bool:  # any version: an old one is then refused by name
    try:
        doc = parse_json(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError, UserError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("format"), str) and doc["format"].startswith(_FAMILY)


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check the manifest of an export directory (or the NAME.json given)."""
    found = find_manifest(path)
    if found is None:
        raise UserError(f"{path} holds no cgphw-rtl manifest (NAME.json written by `cgphw export`)")
    raw = read_json(found)
    found_format = raw.get("format") if isinstance(raw, dict) else None
    if found_format != FORMAT:
        raise UserError(f"{found} has format {found_format!r}, expected {FORMAT!r}: it was written by another "
                        "version of cgphw; export the circuit again")
    doc = records.from_json(ManifestDoc, {k: v for k, v in raw.items() if k != "format"}, str(found))
    named = _check_files(found, doc)
    genome = Genome.from_json(doc.genome, source=f"the genome in {found}")
    if genome.digest() != doc.genome_hash:
        raise MismatchError(f"the genome in {found} does not match its recorded hash: it was changed")
    n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
    if doc.latency < 0 or (doc.pipeline is not None and doc.pipeline < 1):
        raise UserError(f"{found} is malformed: latency must be >= 0 and pipeline >= 1 or null")
    if doc.latency and doc.clock is None:
        raise UserError(f"{found} claims latency {doc.latency} but names no clock")
    _check_ports(found, doc, n_in, n_out)
    task = _task(found, doc.task, n_in, n_out)
    metrics = _metrics(found, doc.source, genome, task)
    baseline = _baseline(found, doc.baseline, named, genome, task) if doc.baseline is not None else None
    return Manifest(found, doc.name, doc.top, doc.latency, doc.pipeline, doc.ports, doc.clock, doc.reset, doc.valid,
                    genome, task, metrics, named[doc.files.verilog], named[doc.files.rtlil], baseline, doc)


def _check_files(found: Path, doc: ManifestDoc) -> dict[str, Path]:
    """Every file named: a plain name inside the directory, present, sha256 as recorded."""
    directory = found.parent
    names = [("files.verilog", doc.files.verilog), ("files.rtlil", doc.files.rtlil)]
    if doc.baseline is not None:
        names += [("baseline.verilog", doc.baseline.verilog), ("baseline.rtlil", doc.baseline.rtlil)]
    member(directory, doc.files.manifest, f"{found}: files.manifest")
    named = {}
    for what, name in names:
        path = member(directory, name, f"{found}: {what}")
        if not path.is_file():
            raise UserError(f"{found} names {what} {name}, which is missing from {directory}")
        named[name] = path
    if set(doc.sha256) != set(named) or not all(isinstance(v, str) for v in doc.sha256.values()):
        raise UserError(f"{found} is malformed: sha256 must give the hash of exactly the files it names "
                        f"({', '.join(sorted(named))})")
    for name, path in named.items():
        if sha256_file(path) != doc.sha256[name]:
            raise MismatchError(f"{path} is not the file `cgphw export` wrote (its sha256 differs from the one "
                                f"{found.name} recorded): it was edited or replaced; export again")
    return named


def _check_ports(found: Path, doc: ManifestDoc, n_in: int, n_out: int) -> None:
    ports = {p.name: p for p in doc.ports}

    def need(name, direction, width):
        p = ports.get(name)
        if p is None or p.direction != direction or (width is not None and p.width != width):
            raise UserError(f"{found} is malformed: it needs the {direction} port {name!r}"
                            + (f" of {width} bits" if width is not None else "") + " that its genome implies")

    if n_in:
        need("stored", "input", 8 * n_in)
    need("weights", "output", 8 * n_out)
    for name in (doc.clock, doc.reset):
        if name is not None:
            need(name, "input", 1)
    if doc.valid is not None:
        need(doc.valid.in_, "input", 1)
        need(doc.valid.out, "output", 1)


def _int8_matrix(value, rows: int | None, cols: int, what: str, found: Path) -> np.ndarray:
    if not isinstance(value, list) or (rows is not None and len(value) != rows) \
            or not all(isinstance(r, list) and len(r) == cols for r in value) or len(value) * max(cols, 1) > MAX_VALUES:
        raise UserError(f"{found} is malformed: task {what} must be {rows if rows is not None else 'items'} "
                        f"rows of {cols} values")
    if not all(isinstance(v, int) and not isinstance(v, bool) and -128 <= v <= 127 for r in value for v in r):
        raise UserError(f"{found} is malformed: task {what} must be int8 whole numbers")
    return np.array(value, np.int8).reshape(len(value), cols)


def _task(found: Path, task, n_in: int, n_out: int) -> Task | None:
    if task is None:
        return None
    known = {"inputs", "targets", "weights", "mask", "meta"}
    if set(task) != known:
        raise UserError(f"{found} is malformed: its task must hold exactly {', '.join(sorted(known))}")
    targets = _int8_matrix(task["targets"], None, n_out, "targets", found)
    inputs = _int8_matrix(task["inputs"], len(targets), n_in, "inputs", found)
    try:
        weights = None if task["weights"] is None else np.array(task["weights"], np.float64)
        mask = None if task["mask"] is None else np.array(task["mask"])
    except (TypeError, ValueError):
        raise UserError(f"{found} is malformed: task weights must be numbers and mask true/false") from None
    if not isinstance(task["meta"], dict):
        raise UserError(f"{found} is malformed: task meta must be a JSON object")
    try:
        return Task(inputs, targets, weights, mask, task["meta"])
    except UserError as exc:
        raise UserError(f"{found}: {exc}") from None


def _metrics(found: Path, source: dict, genome: Genome, task: Task | None) -> Metrics | None:
    recorded = source.get("metrics")
    if recorded is None:
        return None
    stored = Metrics.from_json(recorded, f"{found} (source.metrics)")
    fresh = stored.replace(**logic_counts(genome))
    if task is not None:
        fresh = fresh.replace(**task_figures(genome, task, stored.threshold))
    check_reproduced(stored, fresh, f"{found} (source.metrics)")
    return stored


def _baseline(found: Path, b: BaselineDoc, named: dict, genome: Genome, task: Task | None) -> Baseline:
    if task is not None:
        expected = task.targets.ravel().tolist()
    elif genome.grid.n_inputs == 0:
        expected = genome.evaluate(np.zeros((1, 0), np.int8)).ravel().tolist()
    else:
        raise UserError(f"{found} has a ROM baseline but no task to say what it holds")
    if not all(-128 <= v <= 127 for v in b.values):
        raise UserError(f"{found} is malformed: the baseline's values must be int8")
    if list(b.values) != expected or b.words != len(b.values):
        raise MismatchError(f"the ROM baseline words in {found} are not the weights of its task")
    if b.latency < 0 or (b.latency and b.clock is None):
        raise UserError(f"{found} is malformed: the baseline's latency must be >= 0, with a clock when > 0")
    return Baseline(b.top, named[b.verilog], named[b.rtlil], b.latency, b.clock, b.reset, b.ports, b.values,
                    b.contents)
