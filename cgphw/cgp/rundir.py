"""The run directory: one reader (``load_run`` -> ``Run``) and one writer (``RunWriter``).

Files (names fixed, so no path in them can lead elsewhere):
  .cgphw            marker: cgphw owns this directory (cgphw.dirs); .cgphw.lock: one writer
  config.json       ``RunConfig`` (format cgphw-run-config/2): every setting, the run's id,
                    the sha256 of task.npz and costs.json as they were at the start
  task.npz          the task, copied          costs.json   the cost table, copied
  checkpoint.json   ``Checkpoint`` (cgphw-checkpoint/2): the engine's state, written with
                    the best at the start, every N s, at the end and on SIGINT/SIGTERM
  best.json         the best genome, its hash and ``Metrics`` (cgphw-run/2)
  stats.csv         a row per improvement and about one per second

``load_run`` believes nothing it has not checked: format versions; every field's type; the
task's and cost table's sha256 against config.json; run ids (files of another run are a
mix-up); genome hashes and grids; and that best.json's metrics and value bank are what its
genome gives when evaluated again. Malformed files are a UserError (exit 2); well-formed
files that contradict each other or the re-evaluation are a MismatchError (exit 1).
"""
from __future__ import annotations

import csv
import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from cgphw import dirs, records
from cgphw.cgp.genome import Genome, Grid
from cgphw.cgp.metrics import Metrics, check_reproduced, circuit_metrics
from cgphw.cgp.valuebank import value_bank as make_value_bank
from cgphw.costs import CostTable, load_costs
from cgphw.errors import MismatchError, UserError
from cgphw.files import atomic_file, member, read_json, sha256_file, write_json_atomic
from cgphw.task import Task, load_task

CONFIG_FORMAT = "cgphw-run-config/2"
CHECKPOINT_FORMAT = "cgphw-checkpoint/2"
RUN_FORMAT = "cgphw-run/2"  # best.json
CONFIG, TASK, COSTS, STATS, CHECKPOINT, BEST = (
    "config.json", "task.npz", "costs.json", "stats.csv", "checkpoint.json", "best.json")
RUN_FILES = (CONFIG, TASK, COSTS, STATS, CHECKPOINT, BEST)  # a new file a run writes goes here too
STATS_FIELDS = ("generation", "time", "error", "energy", "delay", "gates", "event")


# --- the records ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRecord:
    sha256: str  # of task.npz as the run wrote it
    items: int
    n_inputs: int
    n_outputs: int
    source: str = ""  # the file the task came from, if any (informational)


@dataclass(frozen=True)
class CostsRecord:
    sha256: str  # of costs.json as the run wrote it
    path: str  # where the table came from ("cgphw:data/gate_costs.json" for the packaged one)
    source: str  # the table's own statement of origin


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run, fixed at its start (resume may raise generations/time_budget).
    To add a setting, add a field with a default (older config files then read as that)."""
    run_id: str
    task: TaskRecord
    costs: CostsRecord
    rows: int
    cols: int
    levels_back: int
    lam: int = field(metadata={"json": "lambda"})
    mutation_max: float
    threshold: float
    value_bank: bool
    function_set: tuple[int, ...]
    seed: int
    generations: int | None
    time_budget: float | None
    patience: int | None
    checkpoint_every: float

    def to_json(self) -> dict:
        return {"format": CONFIG_FORMAT, **records.to_json(self)}

    @classmethod
    def from_json(cls, doc, source: str = CONFIG) -> "RunConfig":
        return records.from_json(cls, _versioned(doc, CONFIG_FORMAT, source), source)


@dataclass(frozen=True)
class Checkpoint:
    """What a resume continues from. ``state`` is the engine's snapshot (genome, RNG,
    counters), checked by the engine when restored; its genome is hashed here."""
    run_id: str
    generation: int
    seconds: float
    stop_reason: str | None  # None while the run can go on
    genome_hash: str
    state: dict

    def to_json(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, **records.to_json(self)}

    @classmethod
    def from_json(cls, doc, source: str = CHECKPOINT) -> "Checkpoint":
        return records.from_json(cls, _versioned(doc, CHECKPOINT_FORMAT, source), source)

    @property
    def genome(self) -> Genome:
        return Genome.from_json(self.state.get("genome"), source=f"the genome of {CHECKPOINT}")


@dataclass(frozen=True)
class BestRecord:
    """best.json: the best circuit so far (the expanded genome of a value-bank run)."""
    run_id: str
    genome: dict
    genome_hash: str
    metrics: Metrics
    value_bank: dict | None  # value-bank runs: values, counts, group, compact_genome

    def to_json(self) -> dict:
        return {"format": RUN_FORMAT, **records.to_json(self)}

    @classmethod
    def from_json(cls, doc, source: str = BEST) -> "BestRecord":
        return records.from_json(cls, _versioned(doc, RUN_FORMAT, source), source)


def _versioned(doc, expected: str, source: str) -> dict:
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != expected:
        family = expected.split("/")[0] + "/"
        why = ("is from another version of cgphw" if isinstance(found, str) and found.startswith(family)
               else "is not a cgphw run file of that kind")
        raise UserError(f"{source} has format {found!r}, expected {expected!r}: it {why}")
    return {k: v for k, v in doc.items() if k != "format"}


# --- the reader -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Run:
    """A run directory as read by ``load_run``: every part checked against the others."""
    directory: Path
    config: RunConfig
    task: Task
    costs: CostTable
    checkpoint: Checkpoint
    genome: Genome  # best so far; computes the task's outputs (value bank: expanded)
    metrics: Metrics  # equal to a re-evaluation of ``genome``
    value_bank: dict | None

    @property
    def threshold_reached(self) -> bool:
        return bool(self.metrics.threshold_reached)

    @property
    def finished(self) -> bool:
        return self.checkpoint.stop_reason is not None

    @property
    def stats_path(self) -> Path:
        return self.directory / STATS


def load_run(directory: str | os.PathLike) -> Run:
    """Read and check a run directory (see the module text). UserError when a file is missing
    or malformed; MismatchError when files disagree with each other or with a re-evaluation."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"run directory {directory} does not exist")
    config = read_config(directory)
    task_path, costs_path = member(directory, TASK, "the task"), member(directory, COSTS, "the cost table")
    for path in (task_path, costs_path):
        if not path.is_file():
            raise UserError(f"run directory {directory} lacks {path.name}")
    if sha256_file(task_path) != config.task.sha256:
        raise MismatchError(f"{task_path} is not the task the run started with (its sha256 differs from the "
                            f"one {CONFIG} recorded): another task was put in its place")
    if sha256_file(costs_path) != config.costs.sha256:
        raise MismatchError(f"{costs_path} differs from the cost table the run started with "
                            f"(its sha256 differs from the one {CONFIG} recorded)")
    task = load_task(task_path)
    t = config.task
    if (task.n_items, task.n_inputs, task.n_outputs) != (t.items, t.n_inputs, t.n_outputs):
        raise MismatchError(f"{task_path} has {task.n_items} items, {task.n_inputs} inputs and {task.n_outputs} "
                            f"outputs but {CONFIG} recorded {t.items}, {t.n_inputs} and {t.n_outputs}")
    costs = load_costs(costs_path)
    bank = make_value_bank(task) if config.value_bank else None
    checkpoint = _read_checkpoint(directory, config)
    _check_genome(checkpoint.genome, checkpoint.genome_hash, config, bank.n_values if bank else task.n_outputs,
                  directory / CHECKPOINT)
    best = _read_best(directory, config)
    source = directory / BEST
    genome = Genome.from_json(best.genome, source=f"the genome in {source}")
    _check_genome(genome, best.genome_hash, config, task.n_outputs, source)
    fresh = circuit_metrics(genome, costs, task, config.threshold, task.n_targets)
    if best.metrics.threshold != config.threshold:
        raise MismatchError(f"{source} claims threshold {best.metrics.threshold!r} but the run's is {config.threshold!r}")
    check_reproduced(best.metrics, fresh, str(source))
    if bank is not None:
        _check_value_bank(best.value_bank, bank, genome, source)
    elif best.value_bank is not None:
        raise MismatchError(f"{source} holds a value bank but the run does not use one")
    return Run(directory, config, task, costs, checkpoint, genome, best.metrics, best.value_bank)


def read_config(directory: Path) -> RunConfig:
    path = directory / CONFIG
    if not path.is_file():
        raise UserError(f"{directory} has no {CONFIG}: it is not a cgphw run directory")
    return RunConfig.from_json(read_json(path), str(path))


def _read_checkpoint(directory: Path, config: RunConfig) -> Checkpoint:
    path = directory / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{directory} has no {CHECKPOINT}: the run stopped before it started; "
                        f"start it again with --force")
    checkpoint = Checkpoint.from_json(read_json(path), str(path))
    _same_run(checkpoint.run_id, config, path)
    if checkpoint.seconds < 0 or checkpoint.generation < 0:
        raise UserError(f"{path} is malformed: negative seconds or generation")
    return checkpoint


def _read_best(directory: Path, config: RunConfig) -> BestRecord:
    path = directory / BEST
    if not path.is_file():
        raise UserError(f"{directory} has no {BEST}: the run stopped before it started; start it again with --force")
    best = BestRecord.from_json(read_json(path), str(path))
    _same_run(best.run_id, config, path)
    return best


def _same_run(run_id: str, config: RunConfig, path: Path) -> None:
    if run_id != config.run_id:
        raise MismatchError(f"{path} belongs to another run than {CONFIG} beside it (run id {run_id!r}, "
                            f"expected {config.run_id!r}): files of two runs were mixed")


def expected_grid(config: RunConfig, n_inputs: int, n_outputs: int) -> Grid:
    return Grid(n_inputs, n_outputs, config.rows, config.cols, config.levels_back, tuple(config.function_set))


def _check_genome(genome: Genome, recorded_hash: str, config: RunConfig, n_outputs: int, source: Path) -> None:
    if genome.digest() != recorded_hash:
        raise MismatchError(f"the genome in {source} does not match its recorded hash: it was changed")
    if genome.grid != expected_grid(config, config.task.n_inputs, n_outputs):
        raise MismatchError(f"the genome in {source} is not of the run's grid ({config.rows}x{config.cols}, "
                            f"levels-back {config.levels_back}, its function set, {config.task.n_inputs} inputs, "
                            f"{n_outputs} outputs)")


def _check_value_bank(recorded, bank, genome: Genome, source: Path) -> None:
    if not isinstance(recorded, dict) or not isinstance(recorded.get("compact_genome"), dict):
        raise UserError(f"{source} is malformed: a value-bank run records value_bank with its compact_genome")
    compact = Genome.from_json(recorded["compact_genome"], source=f"the compact genome in {source}")
    if compact.grid.n_outputs != bank.n_values or bank.expand(compact) != genome:
        raise MismatchError(f"the compact genome in {source} does not expand to its genome")
    if recorded != bank.describe(compact):
        raise MismatchError(f"the value bank in {source} is not the one its task and genome give")


# --- the writer -------------------------------------------------------------------------------
class RunWriteError(UserError):
    """A file of the run could not be written (disk full, read-only folder). The sentence
    names the last checkpoint as it is when printed (a later save may still have fitted)."""

    def __init__(self, path: Path, exc: OSError, writer: "RunWriter"):
        super().__init__(str(path))
        self.path, self.reason, self.writer = path, exc.strerror or str(exc), writer

    def __str__(self) -> str:
        return (f"cannot write {self.path} ({self.reason}): the run stopped; its last checkpoint (generation "
                f"{self.writer.saved_generation:,}) is intact: make room or fix the folder's permissions, then "
                f"continue with: cgphw evolve --resume {self.writer.directory}")


class RunWriter:
    """Writes one run directory, holding its lock from ``start`` (or ``reopen``) to ``close``.
    A write that fails stops the run with one sentence; the last checkpoint stays intact."""

    def __init__(self, claim: dirs.Claim, config: RunConfig, saved_generation: int):
        self.claim, self.directory, self.config = claim, claim.directory, config
        self.saved_generation = saved_generation
        self.stats: StatsLog | None = None

    @classmethod
    def start(cls, out: str | os.PathLike, force: bool, task: Task, costs: CostTable,
              config: RunConfig) -> "RunWriter":
        """Claim ``out`` (new, empty, or with ``force`` an earlier run's directory, whose run
        files go; other files stay), write the marker, task, cost table and config."""
        out = Path(out)
        claim = dirs.claim(out, "run", RUN_FILES, replace=force,
                           refuse_replace=f"{out} already holds a run; continue it with --resume {out}, "
                                          "replace it with --force, or choose another --out", legacy=_older_run)
        try:
            if claim.previous is not None:
                dirs.remove_owned(out, claim.previous.files)
            dirs.write_marker(out, dirs.Marker("run", RUN_FILES))
            claim.written.update(RUN_FILES)
            task.save(out / TASK)
            costs_copy = out / COSTS
            with atomic_file(costs_copy, "wb") as fh:
                fh.write(Path(costs.path).read_bytes() if costs.path else _json_bytes(costs.to_json()))
            config = replace(config, run_id=uuid.uuid4().hex,
                             task=replace(config.task, sha256=sha256_file(out / TASK)),
                             costs=replace(config.costs, sha256=sha256_file(costs_copy)))
            write_json_atomic(out / CONFIG, config.to_json())
        except BaseException as exc:
            claim.abandon()
            if isinstance(exc, OSError):
                raise UserError(f"cannot start the run in {out}: {exc.strerror or exc} "
                                f"({exc.filename or out})") from None
            raise
        return cls(claim, config, 0)

    @classmethod
    def reopen(cls, directory: str | os.PathLike) -> tuple["RunWriter", Run]:
        """Lock an existing run directory, then read and check it (``load_run``)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise UserError(f"run directory {directory} does not exist")
        lock = dirs.DirLock(directory).acquire()
        try:
            run = load_run(directory)
            if dirs.read_marker(directory) is None:  # a copy made without the hidden marker
                dirs.write_marker(directory, dirs.Marker("run", RUN_FILES))
        except BaseException:
            lock.release()
            raise
        claim = dirs.Claim(directory, lock, dirs.read_marker(directory), created=False)
        return cls(claim, run.config, run.checkpoint.generation), run

    def write_config(self, config: RunConfig) -> None:
        self._write(CONFIG, lambda path: write_json_atomic(path, config.to_json()))
        self.config = config

    def open_stats(self, keep_upto: int | None) -> "StatsLog":
        try:
            self.stats = StatsLog(self.directory, keep_upto)
        except OSError as exc:
            raise self._failure(self.directory / STATS, exc) from None
        return self.stats

    def stats_row(self, generation: int, seconds: float, m, event: str, flush: bool = False) -> None:
        try:
            self.stats.add(generation, seconds, m, event)
            if flush:
                self.stats.flush()
        except OSError as exc:
            raise self._failure(self.directory / STATS, exc) from None

    def save(self, snapshot: dict, seconds: float, stop_reason: str | None, genome: Genome, metrics: Metrics,
             value_bank: dict | None) -> None:
        """checkpoint.json, then best.json (each whole or not at all)."""
        compact = Genome.from_json(snapshot["genome"], source="the engine's snapshot")
        checkpoint = Checkpoint(self.config.run_id, int(snapshot["generation"]), float(seconds), stop_reason,
                                compact.digest(), snapshot)
        best = BestRecord(self.config.run_id, genome.to_json(), genome.digest(), metrics, value_bank)
        self._write(CHECKPOINT, lambda path: write_json_atomic(path, checkpoint.to_json()))
        self.saved_generation = checkpoint.generation
        self._write(BEST, lambda path: write_json_atomic(path, best.to_json()))

    def close(self) -> None:
        if self.stats is not None:
            self.stats.close()
            self.stats = None
        self.claim.release()

    def _write(self, name: str, write) -> None:
        try:
            write(self.directory / name)
        except OSError as exc:
            raise self._failure(self.directory / name, exc) from None

    def _failure(self, path: Path, exc: OSError) -> RunWriteError:
        return RunWriteError(path, exc, self)


def _older_run(directory: Path) -> dirs.Marker | None:
    """A run directory of cgphw before markers (config format cgphw-run-config/1): its run
    files had today's names, so --force may replace them like a marked run's."""
    try:
        doc = read_json(directory / CONFIG)
    except UserError:
        return None
    return dirs.Marker("run", RUN_FILES) if isinstance(doc, dict) and doc.get("format") == "cgphw-run-config/1" \
        else None


def _json_bytes(doc) -> bytes:
    import json

    return (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()


class StatsLog:
    """stats.csv: one row per improvement and one per progress tick. On resume, rows past
    the checkpoint's generation (and a row cut short by a full disk) are dropped, so the log
    matches the run that continues."""

    def __init__(self, run_dir: Path, keep_upto: int | None = None):
        self.path = Path(run_dir) / STATS
        rows = []
        if keep_upto is not None and self.path.is_file():
            with self.path.open(newline="", errors="replace") as fh:
                rows = [r for r in csv.DictReader(fh) if _whole_row(r) and int(r["generation"]) <= keep_upto]
        with atomic_file(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, STATS_FIELDS)
            w.writeheader()
            w.writerows({k: r[k] for k in STATS_FIELDS} for r in rows)
        self.fh = self.path.open("a", newline="")
        self.writer = csv.writer(self.fh)

    def add(self, generation: int, seconds: float, m, event: str) -> None:
        self.writer.writerow([generation, f"{seconds:.3f}", repr(float(m["error_se"])), repr(float(m["energy_pj"])),
                              repr(float(m["delay_ns"])), int(m["gates"]), event])

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:  # the rows lost are past the last checkpoint, which resume drops anyway
            pass


def _whole_row(row: dict) -> bool:
    return all(isinstance(row.get(k), str) for k in STATS_FIELDS) and row["generation"].isdigit() \
        and (row["event"] in ("start", "improvement", "progress") or row["event"].startswith("stop:"))
