"""The (1+lambda) search: reaches zero error, is bit-identical per seed and per chunking,
resumes exactly after a kill, and value-bank wiring reproduces every target."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cgphw import Limits, SearchSettings, evolve, resume
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.genome import grid_for, load_genome, random_genome
from cgphw.cgp.metrics import circuit_metrics
from cgphw.cgp.problem import build_problem
from cgphw.costs import load_costs
from cgphw.errors import UserError
from cgphw.task import Task, example_task


def small_task():
    a = np.array([3, -7, 50, 100], np.int8)
    b = np.array([1, 20, -9, 64], np.int8)
    targets = np.stack([(a.astype(int) + b), a ^ b, a.astype(int) * 2 - 1], axis=1)
    return Task(np.stack([a, b], axis=1), ((targets + 128) % 256 - 128).astype(np.int8))


def test_search_reaches_zero_error(tmp_path):
    task = small_task()
    r = evolve(task, SearchSettings(rows=3, cols=4), Limits(generations=200_000), seed=3, out=tmp_path / "run")
    assert r.ok and r.metrics["error_se"] == 0.0
    assert np.array_equal(r.genome.evaluate(task.inputs), task.targets)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["format"] == "cgphw-run/2" and best["value_bank"] is None
    for key in ("error_se", "threshold", "threshold_reached", "energy_pj", "area", "delay_ns", "gates",
                "generations", "evaluations", "seconds"):
        assert key in best["metrics"]
    assert load_genome(tmp_path / "run" / "best.json") == r.genome
    ref = circuit_metrics(r.genome, load_costs(), task)
    assert all(best["metrics"][k] == ref[k] for k in ("error_se", "energy_pj", "delay_ns", "gates"))
    rows = (tmp_path / "run" / "stats.csv").read_text().splitlines()
    assert rows[0] == "generation,time,error,energy,delay,gates,event" and "improvement" in rows[2]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["costs"]["sha256"] and (tmp_path / "run" / "task.npz").is_file()


def test_same_seed_is_bit_identical_and_seeds_differ():
    task = example_task()
    runs = [evolve(task, SearchSettings(rows=5, cols=5, levels_back=5), Limits(generations=3000),
                   seed=s) for s in (11, 11, 12)]
    assert runs[0].genome == runs[1].genome and runs[0].metrics["error_se"] == runs[1].metrics["error_se"]
    assert runs[0].genome != runs[2].genome


def test_chunk_boundaries_do_not_change_the_run():
    task = example_task()
    grid = grid_for(9, 16, 5, 5, 5)
    problem = build_problem(task, grid, load_costs(), threshold=1.0)
    engines = [Engine(problem, 4, 0.15) for _ in range(2)]
    start = random_genome(grid, np.random.default_rng(4))
    for e in engines:
        e.restore(start, int(seed_stream(4)[0]))
    engines[0].run(20_000)
    rng = np.random.default_rng(0)
    while engines[1].generation < 20_000:
        engines[1].run(min(20_000, engines[1].generation + int(rng.integers(1, 700))))
    a, b = engines
    assert np.array_equal(a.G, b.G) and a.parent.rng[0] == b.parent.rng[0] and np.array_equal(a.parent.st, b.parent.st)
    assert a.metrics() == b.metrics()


def test_stop_rules_and_unreached_threshold(tmp_path):
    task = example_task()
    r = evolve(task, SearchSettings(rows=5, cols=5), Limits(generations=50), seed=0)
    assert r.stop_reason == "generations" and r.generations == 50 and not r.ok
    r = evolve(task, SearchSettings(rows=2, cols=2), Limits(patience=300), seed=0)
    assert r.stop_reason == "patience"
    zero = Task(np.zeros((1, 0), np.int8), np.zeros((1, 5), np.int8))
    doc = json.loads(load_costs().path and open(load_costs().path).read())
    for gid in ("22", "23", "24"):  # constants cost nothing whatever the calibrated table says
        doc["gates"][gid].update(energy_pj=0.0, area=0.0, delay_ns=0.0)
    (tmp_path / "costs.json").write_text(json.dumps(doc))
    r = evolve(zero, SearchSettings(rows=2, cols=2, function_set="add,const_0,const_1"), Limits(generations=100_000),
               seed=0, costs=tmp_path / "costs.json")
    assert r.stop_reason == "perfect" and r.metrics["energy_pj"] == 0 and r.metrics["error_se"] == 0
    r = evolve(task, SearchSettings(rows=5, cols=5), Limits(time_budget=0.3), seed=0)
    assert r.stop_reason == "time"


def test_value_bank_wiring_reproduces_every_target(tmp_path):
    rng = np.random.default_rng(2)
    values = np.array([1, -1, 0, 2, 64, -128, 127, 3], np.int8)
    targets = values[rng.integers(0, values.size, 60)][None, :]
    task = Task(np.zeros((1, 0), np.int8), targets)
    r = evolve(task, SearchSettings(rows=6, cols=6, value_bank=True, mutation_max=0.05), Limits(generations=300_000),
               seed=1, out=tmp_path / "vb")
    assert r.ok
    assert r.genome.grid.n_outputs == 60
    assert np.array_equal(r.genome.evaluate(task.inputs), targets)
    vb = json.loads((tmp_path / "vb" / "best.json").read_text())["value_bank"]
    assert vb["n_values"] == np.unique(targets).size and sum(vb["counts"]) == 60
    for j, g in enumerate(vb["group"]):
        assert targets[0, j] == vb["values"][g]
    ref = circuit_metrics(r.genome, load_costs(), task)
    assert ref["error_se"] == 0 and ref["energy_pj"] == r.metrics["energy_pj"] and ref["gates"] == r.metrics["gates"]


def test_value_bank_error_equals_full_task_error():
    rng = np.random.default_rng(3)
    task = Task(rng.integers(-5, 5, (3, 2), dtype=np.int8), rng.integers(-3, 3, (3, 30), dtype=np.int8))
    r = evolve(task, SearchSettings(rows=4, cols=4, value_bank=True), Limits(generations=2000), seed=2)
    assert r.metrics["error_se"] == circuit_metrics(r.genome, load_costs(), task)["error_se"]


def test_bad_parameters_are_user_errors():
    task = example_task()
    for kwargs in ({"rows": 0, "cols": 5}, {"rows": 5, "cols": 5, "lam": 0}, {"rows": 5, "cols": 5, "mutation_max": 0},
                   {"rows": 5, "cols": 5, "threshold": -1}, {"rows": 5, "cols": 5, "function_set": "bogus"}):
        with pytest.raises(UserError):
            evolve(task, SearchSettings(**kwargs))
    for kwargs in ({"generations": 0}, {"time_budget": -2}):
        with pytest.raises(UserError):
            evolve(task, SearchSettings(5, 5), Limits(**kwargs))
    with pytest.raises(UserError, match="seed must be from 0 to"):
        evolve(task, SearchSettings(5, 5), seed=2**63)
    with pytest.raises(UserError, match="constant"):
        evolve(Task(np.zeros((1, 0), np.int8), np.zeros((1, 2), np.int8)),
               SearchSettings(rows=2, cols=2, function_set="add"))


CLI = [sys.executable, "-c", "from cgphw.cli import main; main()"]


def start_run(run_dir, generations):
    return subprocess.Popen(CLI + ["evolve", str(run_dir.parent / "task.npz"), "--rows", "5", "--cols", "5",
                                   "--seed", "5", "--generations", str(generations), "--checkpoint-every", "0.2",
                                   "--out", str(run_dir), "--quiet", "--threshold", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run_dir / "checkpoint.json"
        if path.exists():
            try:
                if json.loads(path.read_text())["generation"] > 0:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, sig):
    generations = 800_000
    task = example_task()
    task.save(tmp_path / "task.npz")
    run_dir = tmp_path / "killed"
    proc = start_run(run_dir, generations)
    wait_for_checkpoint(run_dir, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    state = json.loads((run_dir / "checkpoint.json").read_text())
    assert 0 < state["generation"] < generations and state["stop_reason"] is None
    resumed = resume(run_dir)
    whole = evolve(task, SearchSettings(rows=5, cols=5, threshold=0.5), Limits(generations=generations), seed=5)
    assert resumed.generations == whole.generations == generations
    assert resumed.genome == whole.genome
    assert resumed.metrics["energy_pj"] == whole.metrics["energy_pj"]
    assert resumed.metrics["evaluations"] == whole.metrics["evaluations"]
    stats = (run_dir / "stats.csv").read_text().splitlines()
    gens = [int(line.split(",")[0]) for line in stats[1:]]
    assert gens == sorted(gens)
