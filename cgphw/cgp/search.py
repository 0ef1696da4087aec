"""(1+lambda) evolution strategy over CGP genomes: the Python API (`evolve`, `resume`).

Phase 1 minimises the squared error until SE <= t^2 * N; phase 2 then minimises energy,
error, delay and gate count lexicographically while keeping SE <= t^2 * N. An offspring
equal to the parent replaces it in both phases (neutral drift). Every offspring evaluated
is offered to the Pareto archive (pareto_kernels.py), written as pareto.json. With objective
"pareto", phase 2 keeps a child only when it is no worse than the parent in all four
figures, and every ``rotate_every`` generations the parent is the next archive member
within the threshold (parents.Rotation): the search works along the front itself; the best
(best.json) is then the member the lexicographic order ranks first.
The generation loop runs compiled (loop.py) in chunks; between chunks Python checks the
clock, writes progress, stats and checkpoints. Chunk boundaries never change the trajectory:
a run stopped by a generation count, by patience or at a perfect circuit is the same however
it is split.
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cgphw.cgp import loop
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.genome import Genome, grid_for
from cgphw.cgp.jit import announce_compile
from cgphw.cgp.metrics import Metrics, search_metrics, summary_lines
from cgphw.cgp.start import first_parent
from cgphw.cgp.parallel import TeamSize, resolve_workers
from cgphw.cgp.pareto import FrontWriter, Rotation, archive_state, restore_archive, restore_cursor
from cgphw.cgp.problem import build_problem
from cgphw.cgp.rundir import CostsRecord, RunConfig, TaskRecord
from cgphw.cgp.runwriter import RunWriteError, RunWriter
from cgphw.cgp.settings import SEED, Limits, SearchSettings, check_seed
from cgphw.cgp.valuebank import ValueBank, value_bank as make_value_bank
from cgphw.costs import CostTable, load_costs
from cgphw.errors import UserError
from cgphw.progress import ProgressCallback, step
from cgphw.task import Task, load_task

CHUNK_SECONDS = 0.25
PROGRESS_SECONDS = 1.0


class Interrupted(Exception):
    """SIGINT/SIGTERM during a run: the checkpoint was saved; the message says how to resume."""


@dataclass(frozen=True, eq=False)
class RunResult:
    """A finished search (cgphw.results.Result): ``ok`` when its best circuit reached the
    task's error threshold."""
    genome: Genome  # computes the task's outputs (value-bank runs: the expanded genome)
    metrics: Metrics
    run_dir: Path | None
    stop_reason: str  # generations | time | patience | perfect
    generations: int
    evaluations: int
    seconds: float  # search time (what --time-budget counts)
    value_bank: dict | None = None
    startup_seconds: float = 0.0  # before the search: loading, compiling kernels, the first parent

    @property
    def ok(self) -> bool:
        return bool(self.metrics.threshold_reached)

    def to_json(self) -> dict:
        """What `cgphw evolve --json` prints."""
        return {"run_dir": str(self.run_dir), "stop_reason": self.stop_reason, "metrics": self.metrics.to_json(),
                "genome": self.genome.to_json()}

    def lines(self) -> list[str]:
        return summary_lines(self.metrics, self.genome, self.value_bank,
                             f"run {self.run_dir}  (stopped: {self.stop_reason})")


def evolve(task: Task | str | Path, settings: SearchSettings, limits: Limits | None = None, *, seed: int = SEED,
           out: str | Path | None = None, progress: ProgressCallback | None = None,
           workers: int | str = "auto", force: bool = False, costs: CostTable | str | Path | None = None) -> RunResult:
    """Evolve a circuit for ``task`` (a Task or a task file) as ``settings`` say, until
    ``limits`` (default: Limits(), DEFAULT_GENERATIONS), from a first parent drawn from
    ``seed``. With ``out`` the run is written to that run directory (cgphw.cgp.rundir), which
    must be new, empty, or (with ``force``) an earlier run's. ``workers`` ("auto" or N
    threads, parallel.py) never changes the result; ``costs``: the gate cost table (default:
    the packaged one).

    ``settings.start``: "random"; "constructive" (every wanted value built from the constants,
    constructive.py); "auto" = constructive for value-bank and no-input tasks, else random.
    ``settings.mutation``: "single" (one active gene per child, Goldman & Punch), "active"
    (1..k active genes) or "uniform" (1..k genes), k = ceil(mutation_max * genes);
    ``adaptive`` lets k follow the 1/5th success rule up to that (loop.py). ``pareto_size``:
    the Pareto archive's capacity (0: none); ``objective`` "lexicographic" or "pareto" (module
    text), whose parent moves along the front every ``rotate_every`` generations."""
    started = time.monotonic()
    if not isinstance(settings, SearchSettings) or not isinstance(limits, (Limits, type(None))):
        raise UserError("evolve takes a SearchSettings and a Limits (cgphw.SearchSettings, cgphw.Limits)")
    seed = check_seed(seed)
    source = "" if isinstance(task, Task) else str(task)
    task = task if isinstance(task, Task) else load_task(task)
    table = costs if isinstance(costs, CostTable) else load_costs(costs)
    settings = settings.resolved(task.n_inputs)
    team = TeamSize(*resolve_workers(workers))
    config = _new_config(task, table, source, settings, limits or Limits(), seed)
    bank, engine = setup_engine(task, table, config, team.most)  # checks the grid: a bad one is no reason to compile
    announce_compile(progress)
    grid = engine.problem.grid
    engine.restore(first_parent(settings.start, bank.compact if bank else task, grid, table, seed),
                   int(seed_stream(seed)[0]))
    engine.offer_parent()
    startup = _warm_up(engine, started)  # before the run directory: a Ctrl-C here leaves none
    writer = None
    if out is not None:
        writer = RunWriter.start(out, force, task, table, config)
        config = writer.config
    return _drive(engine, bank, task, table, config, writer, 0.0, progress, keep_stats_upto=None, team=team,
                  startup=startup, rotation=Rotation(config.rotate_every) if config.objective == "pareto" else None)


def record_run(genome: Genome, task: Task | str | Path, *, out: str | Path,
               threshold: float = SearchSettings.threshold, costs: CostTable | str | Path | None = None,
               seed: int = SEED, force: bool = False) -> RunResult:
    """Write a run directory whose parent and best is ``genome`` at generation 0 (a circuit
    found elsewhere, or made by hand): show, export, verify and insert then read it like any
    run, and ``resume(out, generations=N)`` searches on from it with evolve's defaults."""
    source = "" if isinstance(task, Task) else str(task)
    task = task if isinstance(task, Task) else load_task(task)
    table = costs if isinstance(costs, CostTable) else load_costs(costs)
    g = genome.grid
    # the genome is the first parent: recorded as a random start, whatever the task
    settings = SearchSettings(g.rows, g.cols, g.levels_back, threshold=threshold, function_set=g.function_ids,
                              start="random")
    config = _new_config(task, table, source, settings, Limits(generations=1), check_seed(seed))
    bank, engine = setup_engine(task, table, config)
    engine.restore(genome, int(seed_stream(seed)[0]))
    engine.offer_parent()
    writer = RunWriter.start(out, force, task, table, config)
    try:
        _, metrics, _ = _final(engine, bank, writer.config, 0.0, 0.0, None)
        writer.open_stats(None)
        writer.stats_row(0, 0.0, engine.metrics(), "start", flush=True)
        writer.save(_snapshot(engine, None), 0.0, None, genome, metrics, None,
                    FrontWriter(engine, bank, threshold).record(writer.config.run_id, writer.config.objective))
    finally:
        writer.close()
    return RunResult(genome, metrics, Path(out), "recorded", 0, 0, 0.0, None)


def _new_config(task: Task, table: CostTable, source: str, settings: SearchSettings, limits: Limits,
                seed: int) -> RunConfig:
    """A run's settings; run id and hashes are filled in when its directory is written."""
    described = table.describe()
    return RunConfig.of(TaskRecord("", task.n_items, task.n_inputs, task.n_outputs, source),
                        CostsRecord("", described["path"], described["source"]), settings, limits, seed)


def resume(run_dir: str | Path, *, generations: int | None = None, time_budget: float | None = None,
           progress: ProgressCallback | None = None, workers: int | str = "auto") -> RunResult:
    """Continue a run from its checkpoint; with the same limits the result equals the
    uninterrupted run's. ``generations``/``time_budget`` replace the stored limits;
    ``workers`` is free (it never changes the result)."""
    started = time.monotonic()
    team = TeamSize(*resolve_workers(workers))
    writer, run = RunWriter.reopen(run_dir)
    try:
        config = run.config
        if generations is not None or time_budget is not None:
            given = Limits(generations, time_budget)
            config = replace(config, generations=given.generations if generations is not None else config.generations,
                             time_budget=given.time_budget if time_budget is not None else config.time_budget)
            writer.write_config(config)
        bank, engine = setup_engine(run.task, run.costs, config, team.most)
        announce_compile(progress)
        state = run.checkpoint.state
        parent = run.checkpoint.genome
        where = f"{run.directory}/checkpoint.json"
        try:
            rate = state.get("rate")
            engine.restore(parent, int(state["rng"]), int(state["generation"]), int(state["stall"]),
                           int(state["offspring"]), int(state["evaluated"]), int(state.get("node_evals", 0)),
                           None if rate is None else float(rate))
        except UserError:  # the engine's own refusal (a rate out of range) says more than "malformed"
            raise
        except (KeyError, TypeError, ValueError, OverflowError):
            raise UserError(f"{where} holds a malformed state") from None
        rotation = None
        if config.pareto_size:
            restore_archive(engine, state.get("archive"), parent, where)
            if config.objective == "pareto":
                rotation = Rotation(config.rotate_every, restore_cursor(state, where))
        startup = _warm_up(engine, started)
    except BaseException:
        writer.close()
        raise
    return _drive(engine, bank, run.task, run.costs, config, writer, run.checkpoint.seconds, progress,
                  keep_stats_upto=run.checkpoint.generation, team=team, startup=startup, rotation=rotation)


def setup_engine(task: Task, table: CostTable, settings: SearchSettings | RunConfig,
                 workers: int = 1) -> tuple[ValueBank | None, Engine]:
    """The value bank (if the settings use one) and the engine of a search on ``task``."""
    s = settings
    bank = make_value_bank(task) if s.value_bank else None
    work = bank.compact if bank else task
    grid = grid_for(task.n_inputs, work.n_outputs, s.rows, s.cols, s.levels_back, list(s.function_set))
    problem = build_problem(work, grid, table, s.threshold, n_targets=task.n_targets)
    return bank, Engine(problem, s.lam, s.mutation_max, s.mutation, s.adaptive, workers, s.pareto_size, s.objective)


def _warm_up(engine: Engine, started: float) -> float:
    """Compile (or load) the loop with a run of no generations; the start-up in seconds,
    which the time budget does not count."""
    engine.run(engine.generation)
    return time.monotonic() - started


def _drive(engine: Engine, bank, task: Task, table: CostTable, config: RunConfig, writer: RunWriter | None,
           base_seconds: float, progress, keep_stats_upto, team: TeamSize, startup: float,
           rotation: Rotation | None = None) -> RunResult:
    step(progress, "ready", startup_seconds=startup, constants_only=task.n_inputs == 0)
    run_dir = writer.directory if writer else None
    gen_limit, budget, patience = config.generations, config.time_budget, config.patience
    caught: list[int] = []
    previous = _install_handlers(caught)
    t0 = time.monotonic()
    last_ck = last_tick = t0
    chunk, stop = 256, None
    front = FrontWriter(engine, bank, config.threshold) if config.pareto_size else None
    best_key = engine.member_keys()[engine.best_member()] if rotation else None

    def seconds():
        return base_seconds + time.monotonic() - t0

    def save(reason):
        if writer:
            genome, metrics, vb = _final(engine, bank, config, seconds(), startup, team)
            writer.save(_snapshot(engine, rotation), seconds(), reason, genome, metrics, vb,
                        front.record(config.run_id, config.objective) if front else None)

    try:
        if writer:
            writer.open_stats(keep_stats_upto)
            if keep_stats_upto is None:  # a new run: resumable from its first generation on
                writer.stats_row(0, 0.0, engine.metrics(), "start", flush=True)
                save(None)
        while stop is None:
            if gen_limit is not None and engine.generation >= gen_limit:
                stop = "generations"
                break
            if budget is not None and seconds() >= budget:
                stop = "time"
                break
            if caught:
                save(None)
                where = f"; continue with: cgphw evolve --resume {run_dir}" if run_dir else ""
                raise Interrupted(f"interrupted by signal {caught[0]} at generation {engine.generation}"
                                  f"{', checkpoint saved' if run_dir else ''}{where}")
            end = engine.generation + chunk
            if gen_limit is not None:
                end = min(end, gen_limit)
            if rotation:
                end = min(end, rotation.boundary(engine.generation))
            t, g0, size = time.monotonic(), engine.generation, team.next()
            code = engine.run(end, patience or 0, size)
            dt = time.monotonic() - t
            team.observe(size, engine.generation - g0, dt)
            chunk = max(1, min(10**7, int(chunk * min(4.0, CHUNK_SECONDS / max(dt, 1e-4)))))
            now = time.monotonic()
            records = engine.take_records()
            stop = {loop.DONE_PATIENCE: "patience", loop.DONE_PERFECT: "perfect"}.get(code)
            if rotation:  # the parent walks the front: the rows follow the best member instead
                if stop is None:
                    rotation.turn(engine)
                records, best_key = _best_improved(engine, best_key)
            if writer:
                for r in records:
                    writer.stats_row(r["generation"], seconds(), r, "improvement")
            if now - last_tick >= PROGRESS_SECONDS:
                last_tick = now
                shown, active = _best_figures(engine)[:2] if rotation else (engine.metrics(), engine.active_count())
                info = {**engine.counters(), **shown, "seconds": seconds(), "phase": _phase(engine),
                        "workers": size, "rate": float(engine.parent.rate[0]), "active_nodes": active,
                        "front": len(engine.member_keys()) if config.pareto_size else None}
                if writer:
                    writer.stats_row(engine.generation, seconds(), info, "progress", flush=True)
                step(progress, "searching", engine.generation, config.generations or 0, **info)
            if writer and now - last_ck >= config.checkpoint_every:
                last_ck = now
                save(None)
        save(stop)
        if writer:
            shown = _best_figures(engine)[0] if rotation else engine.metrics()
            writer.stats_row(engine.generation, seconds(), shown, f"stop:{stop}", flush=True)
    except RunWriteError:
        try:  # a stats row that did not fit: the checkpoint may still
            save(None)
        except RunWriteError:
            pass
        raise
    finally:
        _restore_handlers(previous)
        if writer:
            writer.close()
    return _result(engine, bank, config, run_dir, seconds(), stop, startup, team)


def _phase(engine: Engine) -> int:
    return 2 if engine.metrics()["threshold_reached"] else 1


def _snapshot(engine: Engine, rotation: Rotation | None) -> dict:
    """The engine's state, with the Pareto archive and the rotation's cursor when there are."""
    parent = engine.genome()
    state = engine.snapshot(parent)
    if engine.pareto_size:
        state["archive"] = archive_state(engine, parent)
    if rotation:
        state["cursor"] = rotation.state()
    return state


def _best_figures(engine: Engine) -> tuple[dict, int, np.ndarray]:
    """(figures, active nodes, internal genes) of the archive member ranked first lexicographically."""
    internal = engine.member_genes(engine.best_member())
    m, active = engine.member_figures(internal)
    return m, active, internal


def _best_improved(engine: Engine, last):
    """Stats rows for --objective pareto: the best member, when it changed since ``last``."""
    i = engine.best_member()
    key = engine.member_keys()[i]
    if key == last:
        return [], last
    m, _ = engine.member_figures(engine.member_genes(i))
    return [{**m, "generation": engine.member_found(i)}], key


def _result(engine, bank, config, run_dir, seconds, stop, startup, team) -> RunResult:
    genome, metrics, vb = _final(engine, bank, config, seconds, startup, team)
    return RunResult(genome, metrics, run_dir, stop, engine.generation,
                     metrics.evaluations, seconds, vb, startup)


def _final(engine: Engine, bank: ValueBank | None, config: RunConfig, seconds: float, startup: float,
           team: TeamSize | None):
    """The best as the run reports it: genome (expanded for a value bank), Metrics, value bank.
    The best is the parent, or for objective "pareto" the member ranked first lexicographically."""
    if config.objective == "pareto":
        m, active, internal = _best_figures(engine)
        compact = engine.problem.to_genome(internal)
    else:
        m, active, compact = engine.metrics(), engine.active_count(), engine.genome()
    genome = bank.expand(compact) if bank else compact
    counters = engine.counters()
    metrics = search_metrics(m, active, engine.problem.n_targets, config.threshold, genome.grid.n_inputs == 0,
                             generations=counters["generations"], evaluations=counters["evaluations"],
                             evaluated=counters["evaluated"], node_evals=counters["node_evals"],
                             seconds=round(seconds, 3), startup_seconds=round(startup, 3),
                             workers=team.most if team else None)
    return genome, metrics, (bank.describe(compact) if bank else None)


def _install_handlers(caught: list[int]):
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        caught.append(signum)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous) -> None:
    for s, h in (previous or {}).items():
        signal.signal(s, h)
