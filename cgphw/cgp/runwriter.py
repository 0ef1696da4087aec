"""The run directory's one writer (``RunWriter``): claims the directory (marker, lock),
writes the task, cost table and config at the start, then checkpoint + best (+ the Pareto
front: pareto.json and pareto.csv) and stats.csv.
A write that fails (disk full, read-only folder) stops the run with one sentence and leaves
the last checkpoint whole. The layout and the records are in ``cgp.rundir``."""
from __future__ import annotations

import csv
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

from cgphw import dirs
from cgphw.cgp.pareto import PARETO, PARETO_CSV, FrontRecord, front_csv
from cgphw.cgp.genome import Genome
from cgphw.cgp.metrics import Metrics
from cgphw.cgp.rundir import (BEST, CHECKPOINT, CONFIG, COSTS, RUN_FILES, STATS, TASK, BestRecord, Checkpoint,
                              Run, RunConfig, load_run)
from cgphw.costs import CostTable
from cgphw.errors import UserError
from cgphw.files import atomic_file, read_json, sha256_file, write_json_atomic, write_text_atomic
from cgphw.task import Task

STATS_FIELDS = ("generation", "time", "error", "energy", "delay", "gates", "event")


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
        assert self.stats is not None, "open_stats first"
        try:
            self.stats.add(generation, seconds, m, event)
            if flush:
                self.stats.flush()
        except OSError as exc:
            raise self._failure(self.directory / STATS, exc) from None

    def save(self, snapshot: dict, seconds: float, stop_reason: str | None, genome: Genome, metrics: Metrics,
             value_bank: dict | None, front: FrontRecord | None = None) -> None:
        """checkpoint.json, then best.json, then pareto.json and pareto.csv (each whole or not at
        all; the checkpoint first: it alone decides how a resume goes on)."""
        compact = Genome.from_json(snapshot["genome"], source="the engine's snapshot")
        checkpoint = Checkpoint(self.config.run_id, int(snapshot["generation"]), float(seconds), stop_reason,
                                compact.digest(), snapshot)
        best = BestRecord(self.config.run_id, genome.to_json(), genome.digest(), metrics, value_bank)
        indent = None if "archive" in snapshot else 1  # an archive: one genome per member, written compactly
        self._write(CHECKPOINT, lambda path: write_json_atomic(path, checkpoint.to_json(), indent=indent))
        self.saved_generation = checkpoint.generation
        self._write(BEST, lambda path: write_json_atomic(path, best.to_json()))
        if front is not None:
            self._write(PARETO, lambda path: write_json_atomic(path, front.to_json(), indent=None))
            self._write(PARETO_CSV, lambda path: write_text_atomic(path, front_csv(front.points)))

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
