"""Before the search: the constructive first parent (every wanted value, a legal genome,
reproducible), start-up kept out of the time budget, and a writable numba cache for
read-only installs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgphw import Limits, SearchSettings, evolve
from cgphw.cgp import jit
from cgphw.cgp.constructive import constructive_genome, wanted_values
from cgphw.cgp.genome import Genome, check_genes, grid_for
from cgphw.cgp.metrics import circuit_metrics
from cgphw.cgp.valuebank import value_bank
from cgphw.costs import load_costs
from cgphw.errors import UserError
from cgphw.task import Task

COSTS = load_costs()


def bank_task(n=600, seed=1):
    """A no-input layer: normal int8 weights scaled to +-127 per channel, as in LeNet-5."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (6, n // 6))
    w = np.round(w / np.abs(w).max(axis=1, keepdims=True) * 127).astype(np.int8)
    return Task(np.zeros((1, 0), np.int8), w.reshape(1, -1))


@pytest.mark.parametrize("rows,cols,lb", [(64, 12, 12), (40, 20, 6), (256, 31, 31)])
def test_constructive_start_produces_every_distinct_value(rows, cols, lb):
    task = bank_task()
    compact = value_bank(task).compact
    grid = grid_for(0, compact.n_outputs, rows, cols, lb)
    genome = constructive_genome(compact, grid, COSTS, np.random.default_rng(4))
    check_genes(grid, genome.genes)  # legal in the grid (levels-back included)
    out = genome.evaluate(compact.inputs)
    assert np.array_equal(out, compact.targets)  # every distinct value, exactly
    assert np.unique(out).size == np.unique(task.targets).size > 100
    again = constructive_genome(compact, grid, COSTS, np.random.default_rng(4))
    assert again == genome  # reproducible from the seed
    other = constructive_genome(compact, grid, COSTS, np.random.default_rng(5))
    assert np.array_equal(other.evaluate(compact.inputs), out) and other != genome  # only the filler differs
    assert circuit_metrics(genome, COSTS, compact)["error_se"] == 0
    # one node per wanted value (apart from those a constant gives) and few helpers
    assert genome.active_nodes().size <= np.unique(out).size + 10


def test_constructive_start_in_a_grid_too_small_reads_the_nearest_values():
    task = bank_task(120, seed=2)
    grid = grid_for(0, task.n_outputs, 4, 3, 3)
    genome = constructive_genome(task, grid, COSTS, np.random.default_rng(0))
    check_genes(grid, genome.genes)
    out = genome.evaluate(task.inputs)[0].astype(int)
    built = np.unique(out)
    assert built.size <= 4 * 3
    want = task.targets[0].astype(int)
    assert np.array_equal(np.abs(out - want), np.abs(built[:, None] - want).min(axis=0))  # nearest built


def test_wanted_value_is_the_least_squares_constant_over_items():
    targets = np.array([[10, -5, 7], [20, -6, 7], [31, 100, 7]], np.int8)
    weights = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0]], float)
    task = Task(np.zeros((3, 0), np.int8), targets, weights)
    assert wanted_values(task).tolist() == [20, -5, 0]  # mean 20.3; a tie (-5.5) rounds up; nothing counts


def test_constructive_needs_constants_and_auto_start_picks_it(tmp_path):
    task = bank_task(60, seed=3)
    grid = grid_for(0, task.n_outputs, 8, 8, 8, "add,shl1,const_1")
    g = constructive_genome(task, grid, COSTS, np.random.default_rng(1))  # from 1 by adds and shifts
    assert isinstance(g, Genome)
    with_inputs = grid_for(2, 3, 4, 4, 4, "add,sub")
    with pytest.raises(UserError, match="constant gates"):
        constructive_genome(Task(np.ones((1, 2), np.int8), np.ones((1, 3), np.int8)), with_inputs, COSTS,
                            np.random.default_rng(0))
    r = evolve(task, SearchSettings(rows=16, cols=8, value_bank=True, threshold=1.0), Limits(generations=200),
               seed=1, out=tmp_path / "run", workers=1)
    import json

    assert json.loads((tmp_path / "run" / "config.json").read_text())["start"] == "constructive"
    stats = (tmp_path / "run" / "stats.csv").read_text().splitlines()
    assert stats[1].split(",")[2] == "0.0" and r.ok  # exact from generation 0


def test_start_up_is_not_search_time(monkeypatch):
    import time

    from cgphw.cgp import search

    real = search.setup_engine

    def slow_setup(*args, **kwargs):  # stands in for a long first compile
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "setup_engine", slow_setup)
    events = []
    r = evolve(bank_task(60), SearchSettings(rows=8, cols=8), Limits(time_budget=0.5), seed=1, workers=1,
               progress=events.append)
    assert r.stop_reason == "time" and r.generations > 0
    assert r.startup_seconds >= 1.0 and r.metrics["startup_seconds"] >= 1.0 and r.seconds < 1.0
    assert events[0].what == "ready" and events[0].fields["startup_seconds"] >= 1.0


def test_compiling_is_announced(monkeypatch, capsys):
    from cgphw.commands.evolve import progress_printer

    monkeypatch.setattr(jit, "kernels_ready", lambda: False)
    evolve(bank_task(60), SearchSettings(rows=8, cols=8), Limits(generations=10), seed=1, workers=1,
           progress=progress_printer())
    err = capsys.readouterr().err
    assert err.startswith("compiling…") and "start-up" in err


def test_cache_dir_falls_back_when_the_package_is_read_only(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    readonly = blocker / "pkg"  # nothing can be created under a file, not even by root
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert jit.choose_cache_dir(tmp_path, env) is None  # writable package: numba's default
    assert jit.choose_cache_dir(readonly, {"NUMBA_CACHE_DIR": "/x"}) is None  # the user's choice wins
    assert jit.choose_cache_dir(readonly, env) == tmp_path / "xdg" / "cgphw" / "numba"
    env = {"XDG_CACHE_HOME": str(blocker / "xdg")}
    assert jit.choose_cache_dir(readonly, env) == jit.fallback_cache_dirs(env)[1]  # the temp dir


@pytest.mark.slow
def test_read_only_install_compiles_into_a_writable_cache(tmp_path):
    """A copy of the package whose cgp/__pycache__ cannot be created, a HOME and
    XDG_CACHE_HOME that cannot be written either (numba alone then refuses to import the
    kernels): the kernels compile, run and are cached under TMPDIR."""
    site = tmp_path / "site"
    shutil.copytree(Path(jit.__file__).parents[1], site / "cgphw",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (site / "cgphw" / "cgp" / "__pycache__").write_text("blocks the in-tree cache")
    (tmp_path / "nohome").write_text("not a directory")
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "nohome" / "home"), TMPDIR=str(tmp_path / "tmp"),
               XDG_CACHE_HOME=str(tmp_path / "nohome" / "cache"), PYTHONDONTWRITEBYTECODE="1")
    code = ("import numpy as np, cgphw.cgp.kernels as k, os; from cgphw.cgp.engine import evaluate_state;"
            "from cgphw.cgp.genome import grid_for, random_genome; from cgphw.cgp.problem import build_problem;"
            "from cgphw.costs import load_costs; from cgphw.task import Task;"
            "t = Task(np.ones((1, 2), np.int8), np.ones((1, 3), np.int8)); g = grid_for(2, 3, 3, 3);"
            "p = build_problem(t, g, load_costs()); evaluate_state(p, p.to_internal(random_genome(g, "
            "np.random.default_rng(0)))); assert k.__file__.startswith(%r); print(os.environ['NUMBA_CACHE_DIR'])"
            % str(site))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)  # not the checkout: its cgphw would come first
    assert res.returncode == 0, res.stderr
    cache = Path(res.stdout.strip())
    assert cache.parent == tmp_path / "tmp" and list(cache.rglob("*.nbi"))


def test_search_progress_is_the_one_progress_event(monkeypatch):
    """evolve reports as every stage does: Progress events, "searching" generation of limit."""
    from cgphw.cgp import search
    from cgphw.progress import Progress

    monkeypatch.setattr(search, "PROGRESS_SECONDS", 0.0)  # a tick every chunk
    events = []
    evolve(bank_task(60), SearchSettings(rows=8, cols=8), Limits(generations=3000), seed=1, workers=1,
           progress=events.append)
    ticks = [e for e in events if e.what == "searching"]
    assert all(isinstance(e, Progress) for e in events) and ticks
    assert all(e.total == 3000 and e.done == e.fields["generations"] and "error_se" in e.fields for e in ticks)
