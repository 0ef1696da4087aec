"""The run directory: its files and records, and its one reader (``load_run`` -> ``Run``);
its one writer is ``cgp.runwriter.RunWriter``.

Files (names fixed, so no path in them can lead elsewhere):
  .cgphw            marker: cgphw owns this directory (cgphw.dirs); .cgphw.lock: one writer
  config.json       ``RunConfig`` (format cgphw-run-config/2): every setting, the run's id,
                    the sha256 of task.npz and costs.json as they were at the start
  task.npz          the task, copied          costs.json   the cost table, copied
  checkpoint.json   ``Checkpoint`` (cgphw-checkpoint/2): the engine's state, written with
                    the best at the start, every N s, at the end and on SIGINT/SIGTERM
  best.json         the best genome, its hash and ``Metrics`` (cgphw-run/2)
  stats.csv         a row per improvement and about one per second
  pareto.json       the Pareto front (``cgp.pareto``: cgphw-pareto/1), and pareto.csv, when
                    the run keeps an archive (``pareto_size`` > 0); written with the best

``load_run`` believes nothing it has not checked: format versions; every field's type; the
task's and cost table's sha256 against config.json; run ids (files of another run are a
mix-up); genome hashes and grids; that best.json's metrics and value bank are what its
genome gives when evaluated again; and pareto.json as ``cgp.pareto.read_front`` checks it (its points
are re-evaluated when ``Run.pareto`` is first read). Malformed files are a UserError (exit 2); well-formed
files that contradict each other or the re-evaluation are a MismatchError (exit 1).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cgphw import records
from cgphw.cgp.pareto import PARETO, PARETO_CSV, FrontPoint, check_figures, read_front
from cgphw.cgp.genome import Genome, Grid
from cgphw.cgp.metrics import Metrics, check_reproduced, circuit_metrics
from cgphw.cgp.settings import Limits, SearchSettings, settings_of
from cgphw.cgp.valuebank import value_bank as make_value_bank
from cgphw.costs import CostTable, load_costs
from cgphw.errors import MismatchError, UserError
from cgphw.files import member, read_json, sha256_file
from cgphw.task import Task, load_task

CONFIG_FORMAT = "cgphw-run-config/2"
CHECKPOINT_FORMAT = "cgphw-checkpoint/2"
RUN_FORMAT = "cgphw-run/2"  # best.json
CONFIG, TASK, COSTS, STATS, CHECKPOINT, BEST = (
    "config.json", "task.npz", "costs.json", "stats.csv", "checkpoint.json", "best.json")
# What runs written before a setting existed used: a config.json without it reads as this (a
# fact of the file format; today's defaults are SearchSettings').
LEGACY: dict[str, Any] = {"mutation": "uniform", "adaptive": False, "start": "random", "objective": "lexicographic",
                          "pareto_size": 0, "rotate_every": 1000}
MAX_COUNTER = 2**63  # the compiled loop counts in int64
RUN_FILES = (CONFIG, TASK, COSTS, STATS, CHECKPOINT, BEST, PARETO, PARETO_CSV)  # a new file a run writes goes here too


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
    # search operators, the Pareto archive and what the search aims at: settings added later,
    # so their defaults are LEGACY's (what the runs written before them used)
    mutation: str = LEGACY["mutation"]
    adaptive: bool = LEGACY["adaptive"]
    start: str = LEGACY["start"]
    objective: str = LEGACY["objective"]
    pareto_size: int = LEGACY["pareto_size"]
    rotate_every: int = LEGACY["rotate_every"]

    @classmethod
    def of(cls, task: TaskRecord, costs: CostsRecord, settings: SearchSettings, limits: Limits,
           seed: int) -> "RunConfig":
        """A new run's config (run id and hashes are filled in when its directory is written)."""
        values = {f.name: getattr(settings, f.name) for f in fields(settings)}
        return cls(run_id="", task=task, costs=costs, seed=int(seed), **values,
                   **{f.name: getattr(limits, f.name) for f in fields(limits)})

    @property
    def settings(self) -> SearchSettings:
        """The run's SearchSettings (start resolved), checked: a UserError naming config.json."""
        return self.search_settings()

    def search_settings(self, where: str = f"{CONFIG}: ") -> SearchSettings:
        return settings_of(SearchSettings, {f.name: getattr(self, f.name) for f in fields(SearchSettings)},
                           prefix=where)

    @property
    def limits(self) -> Limits:
        return Limits(self.generations, self.time_budget, self.patience)

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
    front: tuple[FrontPoint, ...] = field(default=(), repr=False)  # pareto.json as read_front checked it

    @functools.cached_property
    def pareto(self) -> tuple[FrontPoint, ...]:
        """The run's Pareto front (pareto.json; () when the run keeps no archive), sorted by
        (error, energy, delay, gates). Its points' metrics are checked against a re-evaluation of
        their genomes here, on first use (MismatchError; seconds for a layer-sized front)."""
        check_figures(self.front, self.task, self.costs, self.config.threshold, str(self.directory / PARETO))
        return self.front

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
        raise MismatchError(f"{source} claims threshold {best.metrics.threshold!r} "
                            f"but the run's is {config.threshold!r}")
    check_reproduced(best.metrics, fresh, str(source))
    if bank is not None:
        _check_value_bank(best.value_bank, bank, genome, source)
    elif best.value_bank is not None:
        raise MismatchError(f"{source} holds a value bank but the run does not use one")
    config.search_settings(f"{directory / CONFIG}: ")
    front = () if config.pareto_size == 0 else read_front(
        directory, config.run_id, config.pareto_size, config.objective,
        expected_grid(config, task.n_inputs, task.n_outputs), task, config.threshold)
    return Run(directory, config, task, costs, checkpoint, genome, best.metrics, best.value_bank, front)


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
    _check_state(checkpoint, path)
    return checkpoint


# the engine's counters in a checkpoint's state: what each may hold (rng: the uint64 generator state)
STATE_COUNTERS = {"rng": 2**64, "generation": MAX_COUNTER, "stall": MAX_COUNTER, "offspring": MAX_COUNTER,
                  "evaluated": MAX_COUNTER, "node_evals": MAX_COUNTER}


def _check_state(checkpoint: Checkpoint, path: Path) -> None:
    """The state's counters are whole numbers in range (a negative generation would resume into
    another genome), and its generation is the checkpoint's."""
    state = checkpoint.state
    for key, end in STATE_COUNTERS.items():
        value = state.get(key, 0 if key == "node_evals" else None)  # node_evals: absent in older runs
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < end:
            raise UserError(f"{path} is malformed: state.{key} must be a whole number from 0 to {end - 1}, "
                            f"got {value!r}")
    if state["generation"] != checkpoint.generation:
        raise MismatchError(f"{path} records generation {checkpoint.generation} but its state is at generation "
                            f"{state['generation']}: it was changed")


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
