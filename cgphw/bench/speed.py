"""`cgphw bench`: three fixed, seeded workloads shaped like the thesis' experiments, timed
on the compiled (1+lambda) loop from a random parent (phase 1, the search's busiest part),
on one thread and on all of them in the same run, and on one thread with the Pareto archive
(every offspring offered to it, as `evolve` does by default) beside one without.

The two large workloads use seeded synthetic int8 weights shaped like LeNet-5's conv1
(6x1x5x5 = 150) and conv2 (16x6x5x5 = 2,400), quantized per output channel to +-127 like
the real network, until real weights are wired in.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from cgphw.task import Task, example_task

# offspring evaluations/s of the original C++/OpenMP implementation on 2 cores, and ours' targets
ORIGINAL = {"5x5": 183_000, "500x30": 1_850, "256x31-bank": 3_950}
TARGET = {"5x5": 366_000, "500x30": 18_500, "256x31-bank": 39_500}


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    task: Task
    rows: int
    cols: int
    levels_back: int
    lam: int
    mutation_max: float
    value_bank: bool


def synthetic_layer(rng: np.random.Generator, channels: int, per_channel: int) -> np.ndarray:
    """int8 weights of a conv layer: normal values, symmetric per-channel scale to 127."""
    w = rng.normal(0.0, 1.0, size=(channels, per_channel))
    w = np.round(w / np.abs(w).max(axis=1, keepdims=True) * 127)
    return w.astype(np.int8).reshape(-1)


def lenet_like_weights(seed: int = 2027) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return synthetic_layer(rng, 6, 25), synthetic_layer(rng, 16, 150)


def workloads() -> list[Workload]:
    conv1, conv2 = lenet_like_weights()
    bypass = Task(conv1[None, :], conv2[None, :], meta={"name": "synthetic conv1 -> conv2"})
    both = np.concatenate([conv1, conv2])[None, :]
    bank = Task(np.zeros((1, 0), np.int8), both, meta={"name": "synthetic conv1+conv2, no input"})
    return [
        Workload("5x5", "LeNet-5 core -> ring, 9 -> 16", example_task(), 5, 5, 5, 4, 0.15, False),
        Workload("500x30", "layer bypass 150 -> 2,400 (synthetic)", bypass, 500, 30, 30, 4, 0.01, False),
        Workload("256x31-bank", f"value bank 0 -> 2,550 ({np.unique(both).size} distinct, synthetic)",
                 bank, 256, 31, 31, 4, 0.01, True),
    ]


def run_workload(w: Workload, seconds: float, seed: int = 1, workers: int | None = None) -> dict:
    """Offspring/s of ``w`` on one thread, on ``workers`` threads and on one thread with a
    Pareto archive, side by side: engines from the same parent follow the same trajectory
    (the result depends on neither the thread count nor the archive), so they run the same
    generation ranges in turns and every figure compares identical work under the same load."""
    from cgphw.cgp.engine import Engine, available_cpus, seed_stream
    from cgphw.cgp.genome import random_genome
    from cgphw.cgp.search import setup_engine
    from cgphw.cgp.settings import SearchSettings
    from cgphw.costs import load_costs

    team = max(1, min(int(workers or available_cpus()), w.lam))
    # the engine as measured since the first benchmarks: uniform mutation, no archive but in ARCHIVE
    settings = SearchSettings(w.rows, w.cols, w.levels_back, lam=w.lam, mutation="uniform",
                              mutation_max=w.mutation_max, value_bank=w.value_bank, start="random", pareto_size=0)
    _, one = setup_engine(w.task, load_costs(), settings)
    engines: dict[int | str, Engine] = {1: one, team: Engine(one.problem, w.lam, w.mutation_max, workers=team),
                                       ARCHIVE: Engine(one.problem, w.lam, w.mutation_max,
                                                       pareto_size=SearchSettings.pareto_size)}
    start = random_genome(one.problem.grid, np.random.default_rng(seed))
    threads = {n: (n if isinstance(n, int) else 1) for n in engines}  # (ARCHIVE: one thread)
    for n, e in engines.items():
        e.restore(start, int(seed_stream(seed)[0]))
        e.offer_parent()
        e.run(20, workers=threads[n])  # compile (or load the cache) outside the timing
    active0 = one.active_count()
    c0 = one.counters()
    wall = dict.fromkeys(engines, 0.0)
    cpu = dict.fromkeys(engines, 0.0)
    chunk = 64
    while sum(wall.values()) < seconds * len(engines):
        end = one.generation + chunk
        for n, e in engines.items():
            t, c = time.perf_counter(), time.process_time()
            e.run(end, workers=threads[n])
            e.take_records()
            wall[n] += time.perf_counter() - t
            cpu[n] += time.process_time() - c  # every thread's CPU time: what the team really got
        per_generation = wall[1] / (one.generation - 20)
        chunk = max(1, min(4 * chunk, int(0.1 / max(per_generation, 1e-9))))  # turns of about 0.1 s
    if any(not np.array_equal(e.G, one.G) for e in engines.values()):
        raise RuntimeError("the thread team or the archive changed the trajectory of one thread")
    c1 = one.counters()
    gens = c1["generations"] - c0["generations"]
    offspring = c1["evaluations"] - c0["evaluations"]
    evaluated = c1["evaluated"] - c0["evaluated"]
    node_evals = c1["node_evals"] - c0["node_evals"]
    active = (active0 + one.active_count()) / 2
    rate = {n: offspring / wall[n] for n in engines}
    row = {"workload": w.name, "what": w.what, "grid": f"{w.rows}x{w.cols}", "levels_back": w.levels_back,
           "lambda": w.lam, "mutation_max": w.mutation_max, "workers": team, "generations": gens,
           "seconds_1": round(wall[1], 3), f"seconds_{team}": round(wall[team], 3),
           "offspring_per_s_1": rate[1], "offspring_per_s": rate[team], "speedup": rate[team] / rate[1],
           "generations_per_s": gens / wall[team], "cpu_seconds_1": round(cpu[1], 3),
           "cpu_seconds": round(cpu[team], 3), "cpu_use": cpu[team] / wall[team],
           "offspring_per_cpu_s_1": offspring / max(cpu[1], 1e-9), "active_nodes": active,
           "ns_per_active_node": 1e9 * wall[1] / max(1, offspring) / max(1.0, active),
           "node_evals_per_offspring": node_evals / max(1, evaluated),
           "ns_per_node_eval": 1e9 * wall[1] / max(1, node_evals),
           "original_cpp_2cores": ORIGINAL[w.name], "target": TARGET[w.name],
           "offspring_per_s_archive": offspring / wall[ARCHIVE], "archive_cost": wall[ARCHIVE] / wall[1] - 1,
           "archive_cpu_cost": cpu[ARCHIVE] / max(cpu[1], 1e-9) - 1,
           "archive_points": len(engines[ARCHIVE].member_keys()), **{f"archive_{k}": v for k, v in
                                                                 engines[ARCHIVE].archive_counters().items()}}
    row["meets_target"] = row["offspring_per_s"] >= TARGET[w.name]
    return row


ARCHIVE = "archive"  # the engine with a Pareto archive, in run_workload


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    from cgphw.cgp.engine import available_cpus

    return {"cpu": model, "cpu_count": os.cpu_count(), "available_cpus": available_cpus(),
            "load_average": [round(x, 2) for x in load]}


def run_bench(seconds: float = 3.0, names=None, workers: int | None = None) -> dict:
    """Every workload on one thread and on ``workers`` (default: all available CPUs)."""
    before = machine()
    rows = [run_workload(w, seconds, workers=workers) for w in workloads() if names is None or w.name in names]
    return {"machine": before, "load_after": machine()["load_average"], "results": rows}
