"""`cgphw bench`: three fixed, seeded workloads shaped like the thesis' experiments, timed
on the compiled (1+lambda) loop from a random parent (phase 1, the search's busiest part).

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


def run_workload(w: Workload, seconds: float, seed: int = 1) -> dict:
    from cgphw.cgp.engine import seed_stream
    from cgphw.cgp.genome import random_genome
    from cgphw.cgp.search import setup_engine
    from cgphw.costs import load_costs

    _, engine = setup_engine(w.task, load_costs(), w.rows, w.cols, w.levels_back, w.lam, w.mutation_max, 0.0,
                             w.value_bank, "seed27")
    engine.restore(random_genome(engine.problem.grid, np.random.default_rng(seed)), int(seed_stream(seed)[0]))
    engine.run(20)  # compile (or load the cache) outside the timing
    active0 = engine.active_count()
    c0 = engine.counters()
    t0, cpu0 = time.perf_counter(), time.process_time()
    chunk = 64
    while True:
        t = time.perf_counter()
        engine.run(engine.generation + chunk)
        engine.take_records()
        dt = time.perf_counter() - t
        if t + dt - t0 >= seconds:
            break
        chunk = max(1, int(chunk * min(4.0, 0.2 / max(dt, 1e-5))))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # the loop is single-threaded: CPU time shows what sharing cost
    c1 = engine.counters()
    gens = c1["generations"] - c0["generations"]
    offspring = c1["evaluations"] - c0["evaluations"]
    evaluated = c1["evaluated"] - c0["evaluated"]
    node_evals = c1["node_evals"] - c0["node_evals"]
    active = (active0 + engine.active_count()) / 2
    return {"workload": w.name, "what": w.what, "grid": f"{w.rows}x{w.cols}", "levels_back": w.levels_back,
            "lambda": w.lam, "mutation_max": w.mutation_max, "seconds": round(elapsed, 3), "generations": gens,
            "generations_per_s": gens / elapsed, "offspring_per_s": offspring / elapsed,
            "evaluated_per_s": evaluated / elapsed, "cpu_seconds": round(cpu, 3),
            "offspring_per_cpu_s": offspring / max(cpu, 1e-9), "active_nodes": active,
            "ns_per_active_node": 1e9 * elapsed / max(1, offspring) / max(1.0, active),
            "node_evals_per_offspring": node_evals / max(1, evaluated),
            "ns_per_node_eval": 1e9 * elapsed / max(1, node_evals),
            "original_cpp_2cores": ORIGINAL[w.name], "target": TARGET[w.name],
            "meets_target": offspring / elapsed >= TARGET[w.name]}


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
    return {"cpu": model, "cpu_count": os.cpu_count(), "threads": 1, "load_average": [round(x, 2) for x in load]}


def run_bench(seconds: float = 3.0, names=None) -> dict:
    before = machine()
    rows = [run_workload(w, seconds) for w in workloads() if names is None or w.name in names]
    return {"machine": before, "load_after": machine()["load_average"], "results": rows}
