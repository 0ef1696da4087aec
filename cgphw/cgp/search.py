"""(1+lambda) evolution strategy over CGP genomes: the Python API (`evolve`, `resume`).

Phase 1 minimises the squared error until SE <= t^2 * N; phase 2 then minimises energy,
error, delay and gate count lexicographically while keeping SE <= t^2 * N. An offspring
equal to the parent replaces it in both phases (neutral drift). The generation loop runs
compiled (es.py) in chunks; between chunks Python checks the clock, writes progress,
stats and checkpoints. Chunk boundaries never change the trajectory: a run stopped by a
generation count, by patience or at a perfect circuit is the same however it is split.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from cgphw import gates as G
from cgphw.cgp import es
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.genome import Genome, grid_for
from cgphw.cgp.jit import announce_compile
from cgphw.cgp.metrics import Metrics
from cgphw.cgp.operators import check_operators, first_parent, resolve_start
from cgphw.cgp.parallel import TeamSize, resolve_workers
from cgphw.cgp.problem import build_problem
from cgphw.cgp.rundir import CostsRecord, RunConfig, TaskRecord
from cgphw.cgp.runwriter import RunWriteError, RunWriter
from cgphw.cgp.valuebank import ValueBank, value_bank as make_value_bank
from cgphw.costs import CostTable, load_costs
from cgphw.errors import UserError
from cgphw.task import Task, load_task

DEFAULT_GENERATIONS = 1_000_000  # used when no stopping rule is given: a run always ends
CHUNK_SECONDS = 0.25
PROGRESS_SECONDS = 1.0
MAX_COUNT = 10**18  # generations / patience: the compiled loop counts in int64


class Interrupted(Exception):
    """SIGINT/SIGTERM during a run: the checkpoint was saved; the message says how to resume."""


@dataclass(frozen=True, eq=False)
class RunResult:
    genome: Genome  # computes the task's outputs (value-bank runs: the expanded genome)
    metrics: Metrics
    run_dir: Path | None
    threshold_reached: bool
    stop_reason: str  # generations | time | patience | perfect
    generations: int
    evaluations: int
    seconds: float  # search time (what --time-budget counts)
    value_bank: dict | None = None
    startup_seconds: float = 0.0  # before the search: loading, compiling kernels, the first parent


def evolve(task: Task | str | Path, rows: int, cols: int, levels_back: int | None = None, lam: int = 4,
           mutation_max: float = 0.15, threshold: float = 0.0, value_bank: bool = False,
           function_set="seed27", seed: int = 0, generations: int | None = None,
           time_budget: float | None = None, patience: int | None = None, out: str | Path | None = None,
           costs: CostTable | str | Path | None = None, progress: Callable[[dict], None] | None = None,
           checkpoint_every: float = 30.0, force: bool = False, workers: int | str = "auto",
           mutation: str = "single", adaptive: bool = False, start: str = "auto") -> RunResult:
    """Evolve a circuit for ``task`` from a first parent drawn from ``seed``. With ``out``
    the run is written to that run directory (cgphw.cgp.rundir), which must be new, empty, or
    (with ``force``) an earlier run's.

    ``start``: "random"; "constructive" (every wanted value built from the constants,
    constructive.py); "auto" = constructive for value-bank and no-input tasks, else random.
    ``mutation``: "single" (one active gene per child, Goldman & Punch), "active" (1..k
    active genes) or "uniform" (1..k genes), k = ceil(mutation_max * genes); ``adaptive``
    lets k follow the 1/5th success rule up to that (es.py). ``workers`` ("auto" or N
    threads, parallel.py) never changes the result."""
    started = time.monotonic()
    source = "" if isinstance(task, Task) else str(task)
    task = task if isinstance(task, Task) else load_task(task)
    table = costs if isinstance(costs, CostTable) else load_costs(costs)
    generations, time_budget, patience = check_limits(generations, time_budget, patience)
    if generations is None and time_budget is None and patience is None:
        generations = DEFAULT_GENERATIONS
    if int(seed) < 0:
        raise UserError(f"the seed must be a non-negative integer, got {seed}")
    start = resolve_start(start, value_bank, task.n_inputs)
    check_operators(mutation, adaptive, start)
    team = TeamSize(*resolve_workers(workers))
    announce_compile(progress)
    config = _new_config(task, table, source, rows, cols, levels_back, lam, mutation_max, threshold, value_bank,
                         function_set, seed, generations, time_budget, patience, checkpoint_every, mutation,
                         adaptive, start)
    bank, engine = _setup(task, table, config, team.most)
    grid = engine.problem.grid
    engine.restore(first_parent(start, bank.compact if bank else task, grid, table, seed), int(seed_stream(seed)[0]))
    startup = _warm_up(engine, started)  # before the run directory: a Ctrl-C here leaves none
    writer = None
    if out is not None:
        writer = RunWriter.start(out, force, task, table, config)
        config = writer.config
    return _drive(engine, bank, task, table, config, writer, 0.0, progress, keep_stats_upto=None, team=team,
                  startup=startup)


def record_run(genome: Genome, task: Task | str | Path, out: str | Path, threshold: float = 0.0,
               costs: CostTable | str | Path | None = None, seed: int = 0, force: bool = False) -> RunResult:
    """Write a run directory whose parent and best is ``genome`` at generation 0 (a circuit
    found elsewhere, or made by hand): show, export, verify and insert then read it like any
    run, and ``resume(out, generations=N)`` searches on from it with evolve's defaults."""
    source = "" if isinstance(task, Task) else str(task)
    task = task if isinstance(task, Task) else load_task(task)
    table = costs if isinstance(costs, CostTable) else load_costs(costs)
    g = genome.grid
    config = _new_config(task, table, source, g.rows, g.cols, g.levels_back, 4, 0.15, threshold, False,
                         list(g.function_ids), seed, 1, None, None, 30.0, "single", False, "random")
    bank, engine = _setup(task, table, config)
    engine.restore(genome, int(seed_stream(seed)[0]))
    writer = RunWriter.start(out, force, task, table, config)
    try:
        _, metrics, _ = _final(engine, bank, writer.config, 0.0, 0.0, None)
        writer.open_stats(None)
        writer.stats_row(0, 0.0, engine.metrics(), "start", flush=True)
        writer.save(engine.snapshot(), 0.0, None, genome, metrics, None)
    finally:
        writer.close()
    return RunResult(genome, metrics, Path(out), bool(metrics.threshold_reached), "recorded", 0, 0, 0.0, None)


def _new_config(task: Task, table: CostTable, source: str, rows, cols, levels_back, lam, mutation_max, threshold,
                value_bank, function_set, seed, generations, time_budget, patience, checkpoint_every, mutation,
                adaptive, start) -> RunConfig:
    """A run's settings; run id and hashes are filled in when its directory is written."""
    described = table.describe()
    return RunConfig(run_id="", task=TaskRecord("", task.n_items, task.n_inputs, task.n_outputs, source),
                     costs=CostsRecord("", described["path"], described["source"]),
                     rows=int(rows), cols=int(cols), levels_back=int(cols if levels_back is None else levels_back),
                     lam=int(lam), mutation_max=float(mutation_max), threshold=float(threshold),
                     value_bank=bool(value_bank), function_set=tuple(G.function_set(function_set)),
                     seed=int(seed), generations=generations, time_budget=time_budget, patience=patience,
                     checkpoint_every=float(checkpoint_every), mutation=mutation, adaptive=bool(adaptive),
                     start=start)


def resume(run_dir: str | Path, generations: int | None = None, time_budget: float | None = None,
           progress: Callable[[dict], None] | None = None, workers: int | str = "auto") -> RunResult:
    """Continue a run from its checkpoint; with the same limits the result equals the
    uninterrupted run's. ``generations``/``time_budget`` replace the stored limits;
    ``workers`` is free (it never changes the result)."""
    started = time.monotonic()
    team = TeamSize(*resolve_workers(workers))
    writer, run = RunWriter.reopen(run_dir)
    try:
        config = run.config
        if generations is not None or time_budget is not None:
            g, t, _ = check_limits(generations, time_budget, None)
            config = replace(config, generations=g if generations is not None else config.generations,
                             time_budget=t if time_budget is not None else config.time_budget)
            writer.write_config(config)
        check_operators(config.mutation, config.adaptive, config.start, f"{run.directory}/config.json: ")
        announce_compile(progress)
        bank, engine = _setup(run.task, run.costs, config, team.most)
        state = run.checkpoint.state
        try:
            rate = state.get("rate")
            engine.restore(run.checkpoint.genome, int(state["rng"]), int(state["generation"]), int(state["stall"]),
                           int(state["offspring"]), int(state["evaluated"]), int(state.get("node_evals", 0)),
                           None if rate is None else float(rate))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise UserError(f"{run.directory}/checkpoint.json holds a malformed state") from None
        startup = _warm_up(engine, started)
    except BaseException:
        writer.close()
        raise
    return _drive(engine, bank, run.task, run.costs, config, writer, run.checkpoint.seconds, progress,
                  keep_stats_upto=run.checkpoint.generation, team=team, startup=startup)


def check_limits(generations, time_budget, patience):
    if generations is not None and not 1 <= int(generations) <= MAX_COUNT:
        raise UserError(f"generations must be from 1 to {MAX_COUNT:.0e}, got {generations}")
    if time_budget is not None and not (float(time_budget) > 0 and math.isfinite(float(time_budget))):
        raise UserError(f"the time budget must be a positive number of seconds, got {time_budget}")
    if patience is not None and not 1 <= int(patience) <= MAX_COUNT:
        raise UserError(f"patience must be from 1 to {MAX_COUNT:.0e} generations, got {patience}")
    return (None if generations is None else int(generations),
            None if time_budget is None else float(time_budget), None if patience is None else int(patience))


def _setup(task: Task, table: CostTable, config: RunConfig, workers: int = 1) -> tuple[ValueBank | None, Engine]:
    return setup_engine(task, table, config.rows, config.cols, config.levels_back, config.lam, config.mutation_max,
                        config.threshold, config.value_bank, list(config.function_set), config.mutation,
                        config.adaptive, workers)


def setup_engine(task: Task, table: CostTable, rows: int, cols: int, levels_back: int, lam: int,
                 mutation_max: float, threshold: float, value_bank: bool, function_set, mutation: str = "uniform",
                 adaptive: bool = False, workers: int = 1) -> tuple[ValueBank | None, Engine]:
    bank = make_value_bank(task) if value_bank else None
    work = bank.compact if bank else task
    grid = grid_for(task.n_inputs, work.n_outputs, rows, cols, levels_back, function_set)
    problem = build_problem(work, grid, table, threshold, n_targets=task.n_targets)
    return bank, Engine(problem, lam, mutation_max, mutation, adaptive, workers)


def _warm_up(engine: Engine, started: float) -> float:
    """Compile (or load) the loop with a run of no generations; the start-up in seconds,
    which the time budget does not count."""
    engine.run(engine.generation)
    return time.monotonic() - started


def _drive(engine: Engine, bank, task: Task, table: CostTable, config: RunConfig, writer: RunWriter | None,
           base_seconds: float, progress, keep_stats_upto, team: TeamSize, startup: float) -> RunResult:
    if progress:
        progress({"event": "ready", "startup_seconds": startup, "constants_only": task.n_inputs == 0})
    run_dir = writer.directory if writer else None
    gen_limit, budget, patience = config.generations, config.time_budget, config.patience
    caught: list[int] = []
    previous = _install_handlers(caught)
    t0 = time.monotonic()
    last_ck = last_tick = t0
    chunk, stop = 256, None

    def seconds():
        return base_seconds + time.monotonic() - t0

    def save(reason):
        if writer:
            genome, metrics, vb = _final(engine, bank, config, seconds(), startup, team)
            writer.save(engine.snapshot(), seconds(), reason, genome, metrics, vb)

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
            t, g0, size = time.monotonic(), engine.generation, team.next()
            code = engine.run(end, patience or 0, size)
            dt = time.monotonic() - t
            team.observe(size, engine.generation - g0, dt)
            chunk = max(1, min(10**7, int(chunk * min(4.0, CHUNK_SECONDS / max(dt, 1e-4)))))
            now = time.monotonic()
            records = engine.take_records()
            if writer:
                for r in records:
                    writer.stats_row(r["generation"], seconds(), r, "improvement")
            stop = {es.DONE_PATIENCE: "patience", es.DONE_PERFECT: "perfect"}.get(code)
            if now - last_tick >= PROGRESS_SECONDS:
                last_tick = now
                info = {**engine.counters(), **engine.metrics(), "seconds": seconds(), "phase": _phase(engine),
                        "workers": size, "rate": float(engine.rate[0]), "active_nodes": engine.active_count()}
                if writer:
                    writer.stats_row(engine.generation, seconds(), info, "progress", flush=True)
                if progress:
                    progress(info)
            if writer and now - last_ck >= config.checkpoint_every:
                last_ck = now
                save(None)
        save(stop)
        if writer:
            writer.stats_row(engine.generation, seconds(), engine.metrics(), f"stop:{stop}", flush=True)
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


def _result(engine, bank, config, run_dir, seconds, stop, startup, team) -> RunResult:
    genome, metrics, vb = _final(engine, bank, config, seconds, startup, team)
    return RunResult(genome, metrics, run_dir, bool(metrics.threshold_reached), stop, engine.generation,
                     metrics.evaluations, seconds, vb, startup)


def _final(engine: Engine, bank: ValueBank | None, config: RunConfig, seconds: float, startup: float,
           team: TeamSize | None):
    """The parent as the run reports it: genome (expanded for a value bank), Metrics, value bank."""
    compact = engine.genome()
    genome = bank.expand(compact) if bank else compact
    m, counters, n = engine.metrics(), engine.counters(), engine.problem.n_targets
    metrics = Metrics(energy_pj=m["energy_pj"], area=m["area"], delay_ns=m["delay_ns"], gates=m["gates"],
                      active_nodes=engine.active_count(), error_se=m["error_se"], n_targets=n,
                      rms_error=math.sqrt(m["error_se"] / max(1, n)), threshold=config.threshold,
                      threshold_reached=m["threshold_reached"], generations=counters["generations"],
                      evaluations=counters["evaluations"], evaluated=counters["evaluated"],
                      node_evals=counters["node_evals"], seconds=round(seconds, 3),
                      startup_seconds=round(startup, 3), workers=team.most if team else None,
                      constants_only=genome.grid.n_inputs == 0)
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
