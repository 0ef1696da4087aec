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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from cgphw import gates as G
from cgphw.cgp import checkpoint as ck
from cgphw.cgp import es
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.genome import Genome, grid_for
from cgphw.cgp.jit import announce_compile
from cgphw.cgp.operators import LEGACY, check_operators, first_parent, resolve_start
from cgphw.cgp.parallel import TeamSize, resolve_workers
from cgphw.cgp.problem import build_problem
from cgphw.cgp.valuebank import ValueBank, value_bank as make_value_bank
from cgphw.costs import CostTable, load_costs
from cgphw.errors import UserError
from cgphw.files import sha256_file, write_json_atomic
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
    metrics: dict
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
    """Evolve a circuit for ``task`` from a first parent drawn from ``seed``.

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
    cfg = {"format": ck.CONFIG_FORMAT, "task": {"file": "task.npz", "source": source,
                                                "items": task.n_items, "n_inputs": task.n_inputs,
                                                "n_outputs": task.n_outputs},
           "rows": int(rows), "cols": int(cols), "levels_back": int(cols if levels_back is None else levels_back),
           "lambda": int(lam), "mutation_max": float(mutation_max), "threshold": float(threshold),
           "value_bank": bool(value_bank), "seed": int(seed), "mutation": mutation, "adaptive": bool(adaptive),
           "start": start, "generations": generations,
           "time_budget": time_budget, "patience": patience, "checkpoint_every": float(checkpoint_every),
           "function_set": list(G.function_set(function_set)),
           "costs": {**table.describe(), "copy": "costs.json"}}
    bank, engine = _setup(task, table, cfg, team.most)
    grid = engine.problem.grid
    engine.restore(first_parent(start, bank.compact if bank else task, grid, table, seed), int(seed_stream(seed)[0]))
    run_dir = None
    if out is not None:
        run_dir = ck.prepare_run_dir(out, force)
        task.save(run_dir / "task.npz")
        if table.path:
            ck.copy_costs(run_dir, table.path)
            cfg["costs"]["sha256"] = sha256_file(run_dir / "costs.json")
        write_json_atomic(run_dir / "config.json", cfg)
    return _drive(engine, bank, task, table, cfg, run_dir, 0.0, progress, keep_stats_upto=None, team=team,
                  started=started)


def resume(run_dir: str | Path, generations: int | None = None, time_budget: float | None = None,
           progress: Callable[[dict], None] | None = None, workers: int | str = "auto") -> RunResult:
    """Continue a run from its checkpoint; with the same limits the result equals the
    uninterrupted run's. ``generations``/``time_budget`` replace the stored limits."""
    started = time.monotonic()
    team = TeamSize(*resolve_workers(workers))
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg = ck.read_config(run_dir)
    state = ck.read_checkpoint(run_dir)
    task = load_task(run_dir / "task.npz")
    table = load_costs(run_dir / "costs.json")
    if table.sha256 != cfg["costs"].get("sha256"):
        raise UserError(f"{run_dir}/costs.json differs from the cost table the run started with")
    if generations is not None or time_budget is not None:
        g, t, _ = check_limits(generations, time_budget, None)
        cfg["generations"] = g if generations is not None else cfg["generations"]
        cfg["time_budget"] = t if time_budget is not None else cfg["time_budget"]
        write_json_atomic(run_dir / "config.json", cfg)
    check_operators(*(cfg.get(k, LEGACY[k]) for k in ("mutation", "adaptive", "start")), f"{run_dir}/config.json: ")
    announce_compile(progress)
    bank, engine = _setup(task, table, cfg, team.most)
    try:
        genome = Genome.from_json(state["genome"], source=f"{run_dir}/checkpoint.json")
        rate = state.get("rate")
        engine.restore(genome, int(state["rng"]), int(state["generation"]), int(state["stall"]),
                       int(state["offspring"]), int(state["evaluated"]), int(state.get("node_evals", 0)),
                       None if rate is None else float(rate))
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{run_dir}/checkpoint.json holds a malformed state") from None
    return _drive(engine, bank, task, table, cfg, run_dir, float(state["seconds"]), progress,
                  keep_stats_upto=int(state["generation"]), team=team, started=started)


def check_limits(generations, time_budget, patience):
    if generations is not None and not 1 <= int(generations) <= MAX_COUNT:
        raise UserError(f"generations must be from 1 to {MAX_COUNT:.0e}, got {generations}")
    if time_budget is not None and not (float(time_budget) > 0 and math.isfinite(float(time_budget))):
        raise UserError(f"the time budget must be a positive number of seconds, got {time_budget}")
    if patience is not None and not 1 <= int(patience) <= MAX_COUNT:
        raise UserError(f"patience must be from 1 to {MAX_COUNT:.0e} generations, got {patience}")
    return (None if generations is None else int(generations),
            None if time_budget is None else float(time_budget), None if patience is None else int(patience))


def _setup(task: Task, table: CostTable, cfg: dict, workers: int = 1) -> tuple[ValueBank | None, Engine]:
    bank = make_value_bank(task) if cfg["value_bank"] else None
    work = bank.compact if bank else task
    grid = grid_for(task.n_inputs, work.n_outputs, cfg["rows"], cfg["cols"], cfg["levels_back"],
                    cfg["function_set"])
    problem = build_problem(work, grid, table, cfg["threshold"], n_targets=task.n_targets)
    return bank, Engine(problem, cfg["lambda"], cfg["mutation_max"], cfg.get("mutation", LEGACY["mutation"]),
                        cfg.get("adaptive", LEGACY["adaptive"]), workers)


def _drive(engine: Engine, bank, task: Task, table: CostTable, cfg: dict, run_dir: Path | None,
           base_seconds: float, progress, keep_stats_upto, team: TeamSize, started: float) -> RunResult:
    engine.run(engine.generation)  # compiles (or loads) the loop: start-up, not search time
    startup = time.monotonic() - started
    if progress:
        progress({"event": "ready", "startup_seconds": startup})
    stats = ck.StatsLog(run_dir, keep_stats_upto) if run_dir else None
    gen_limit, budget, patience = cfg["generations"], cfg["time_budget"], cfg["patience"]
    caught: list[int] = []
    previous = _install_handlers(caught)
    t0 = time.monotonic()
    last_ck = last_tick = t0
    chunk, stop = 256, None

    def seconds():
        return base_seconds + time.monotonic() - t0

    def save(reason):
        if run_dir:
            ck.write_checkpoint(run_dir, engine.snapshot(), seconds(), reason)
            _write_best(engine, bank, table, cfg, run_dir, seconds(), startup, team)

    try:
        if stats and keep_stats_upto is None:
            stats.add(0, 0.0, engine.metrics(), "start")
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
            if stats:
                for r in records:
                    stats.add(r["generation"], seconds(), r, "improvement")
            stop = {es.DONE_PATIENCE: "patience", es.DONE_PERFECT: "perfect"}.get(code)
            if now - last_tick >= PROGRESS_SECONDS:
                last_tick = now
                info = {**engine.counters(), **engine.metrics(), "seconds": seconds(), "phase": _phase(engine),
                        "workers": size, "rate": float(engine.rate[0])}
                if stats:
                    stats.add(engine.generation, seconds(), info, "progress")
                    stats.flush()
                if progress:
                    progress(info)
            if run_dir and now - last_ck >= cfg["checkpoint_every"]:
                last_ck = now
                save(None)
        save(stop)
        if stats:
            stats.add(engine.generation, seconds(), engine.metrics(), f"stop:{stop}")
    finally:
        _restore_handlers(previous)
        if stats:
            stats.close()
    return _result(engine, bank, table, cfg, run_dir, seconds(), stop, startup, team)


def _phase(engine: Engine) -> int:
    return 2 if engine.metrics()["threshold_reached"] else 1


def _result(engine, bank, table, cfg, run_dir, seconds, stop, startup, team) -> RunResult:
    genome, metrics, vb = _final(engine, bank, cfg, seconds, startup, team)
    return RunResult(genome, metrics, run_dir, metrics["threshold_reached"], stop, engine.generation,
                     metrics["evaluations"], seconds, vb, startup)


def _final(engine: Engine, bank: ValueBank | None, cfg: dict, seconds: float, startup: float, team: TeamSize):
    compact = engine.genome()
    genome = bank.expand(compact) if bank else compact
    metrics = {**engine.metrics(), "threshold": cfg["threshold"], "n_targets": engine.problem.n_targets,
               **engine.counters(), "seconds": round(seconds, 3), "startup_seconds": round(startup, 3),
               "workers": team.most}
    metrics["rms_error"] = math.sqrt(metrics["error_se"] / max(1, metrics["n_targets"]))
    return genome, metrics, (bank.describe(compact) if bank else None)


def _write_best(engine, bank, table, cfg, run_dir, seconds, startup, team) -> None:
    genome, metrics, vb = _final(engine, bank, cfg, seconds, startup, team)
    ck.write_best(run_dir, genome.to_json(), metrics, vb, cfg["costs"])


def _install_handlers(caught: list[int]):
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        caught.append(signum)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous) -> None:
    for s, h in (previous or {}).items():
        signal.signal(s, h)
