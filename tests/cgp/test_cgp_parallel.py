"""Threads and operators: the thread count never changes a run (same genome, state and
counters for 1, 2 or 3 threads, and for chunks that switch between them), with every
mutation operator; resume stays exact with threads and an adaptive rate."""
import json

import numpy as np
import pytest

from cgphw import Limits, SearchSettings, evolve, resume
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.genome import grid_for, random_genome
from cgphw.cgp.metrics import circuit_metrics
from cgphw.cgp.parallel import TeamSize, resolve_workers
from cgphw.cgp.problem import build_problem
from cgphw.costs import load_costs
from cgphw.errors import UserError
from cgphw.task import Task, example_task

OPERATORS = [("uniform", False), ("uniform", True), ("single", False), ("active", False), ("active", True)]


def layer_like_task(seed=7, n_in=6, n_out=40):
    rng = np.random.default_rng(seed)
    return Task(rng.integers(-128, 128, (1, n_in), dtype=np.int8), rng.integers(-60, 60, (1, n_out), dtype=np.int8))


def engines_for(task, rows, cols, lam, mutation, adaptive, threshold, teams):
    grid = grid_for(task.n_inputs, task.n_outputs, rows, cols, cols)
    problem = build_problem(task, grid, load_costs(), threshold=threshold)
    start = random_genome(grid, np.random.default_rng(3))
    out = []
    for _ in teams:
        e = Engine(problem, lam, 0.05, mutation, adaptive, workers=3)
        e.restore(start, int(seed_stream(3)[0]))
        out.append(e)
    return out


@pytest.mark.parametrize("mutation,adaptive", OPERATORS)
def test_thread_count_never_changes_the_run(mutation, adaptive):
    task = layer_like_task()
    plans = [[1], [2], [3], [2, 1, 3, 1]]  # team size per chunk; the last switches every chunk
    engines = engines_for(task, 6, 12, 5, mutation, adaptive, 3.0, plans)
    for e, plan in zip(engines, plans, strict=True):
        for i, gen_end in enumerate(range(1500, 12_001, 1500)):
            e.run(gen_end, workers=plan[i % len(plan)])
            e.take_records()
    ref = engines[0]
    assert ref.generation == 12_000 and ref.counters()["evaluated"] > 0
    metrics = [e.metrics() for e in engines]  # (also makes every engine's depths valid)
    for e, m in zip(engines[1:], metrics[1:], strict=True):
        assert np.array_equal(e.G, ref.G) and m == metrics[0]
        assert np.array_equal(e.parent.st, ref.parent.st) and e.parent.rng[0] == ref.parent.rng[0]
        assert e.parent.rate[0] == ref.parent.rate[0]
    three = engines[2]  # a team of 3 in every chunk: each thread's replica ends as the parent
    for w in range(three.n_replicas):
        assert np.array_equal(three.replicas.Gr[w], ref.G) and np.array_equal(three.replicas.RCr[w], ref.RC)
        assert np.array_equal(three.replicas.actr[w], ref.actbits)
        assert np.array_equal(three.replicas.accr[w, :4], ref.acc[:4])
    genome = ref.genome()
    m = circuit_metrics(genome, load_costs(), task)
    got = ref.metrics()
    assert all(got[k] == m[k] for k in ("error_se", "energy_pj", "delay_ns", "gates"))


def test_more_threads_than_offspring_and_lambda_not_divisible():
    task = layer_like_task(seed=9)
    for lam in (1, 3):
        a, b = engines_for(task, 5, 8, lam, "active", True, 2.0, [1, 3])
        a.run(6000, workers=1)
        b.run(6000, workers=3)
        assert b.n_replicas == min(3, lam) and np.array_equal(a.G, b.G) and np.array_equal(a.parent.st, b.parent.st)


def test_adaptive_rate_moves_within_its_bounds():
    task = layer_like_task(seed=4)
    (e,) = engines_for(task, 6, 12, 4, "uniform", True, 0.0, [1])
    assert e.parent.rate[0] == e.kmax > 1  # starts at the ceiling
    seen = []
    for gen_end in range(200, 8001, 200):
        e.run(gen_end)
        seen.append(float(e.parent.rate[0]))
    assert min(seen) >= 1.0 and max(seen) <= e.kmax
    assert min(seen) < e.kmax / 4  # failures shrink it ...
    assert len(set(seen)) > 3  # ... successes grow it again


def test_threads_sharing_one_block_of_scratch_rows_run_the_same(monkeypatch):
    """Too big for a block of scratch rows per thread, a team shares one: still the same run."""
    import cgphw.cgp.engine as engine_module
    from cgphw.cgp import loop

    task = layer_like_task(seed=11)
    own = engines_for(task, 6, 12, 5, "uniform", False, 3.0, [1, 3])
    monkeypatch.setattr(engine_module, "SCRATCH_BYTES", 0)
    (shared,) = engines_for(task, 6, 12, 5, "uniform", False, 3.0, [3])
    assert own[1].cfg[loop.BLOCKS] == 3 and shared.cfg[loop.BLOCKS] == 1
    assert shared.children.mp.shape[0] == 2 * 5
    for gen_end in range(2000, 8001, 2000):
        for e, team in zip(own + [shared], [1, 3, 3], strict=True):
            e.run(gen_end, workers=team)
    assert own[0].counters()["evaluated"] > 0
    for e in own[1:] + [shared]:
        assert np.array_equal(e.G, own[0].G) and np.array_equal(e.parent.st, own[0].parent.st)


def test_single_mutation_changes_exactly_one_active_gene():
    from cgphw.cgp.offspring import gene_is_active

    task = layer_like_task(seed=5)
    (e,) = engines_for(task, 6, 12, 4, "single", False, 0.0, [1])
    ob = 3 * e.problem.grid.n_nodes
    for gen_end in range(50, 1001, 50):
        e.run(gen_end)
        G, RC = e.G.copy(), e.RC.copy()  # the parent the next generation's children are drawn from
        e.run(gen_end + 1)  # the children's mutations stay in mp / nm
        for c in range(e.lam):
            changed = [int(p) for p in e.children.mp[e.children.srow[c], :e.children.nm[c]]]
            active = [bool(gene_is_active(p, G, RC, e.problem.arity, ob)) for p in changed]
            assert len(set(changed)) == len(changed)
            assert sum(active) == 1 and active[-1]  # inactive genes on the way, then one active gene


@pytest.mark.parametrize("mutation,adaptive", [("single", False), ("active", True), ("uniform", True)])
def test_resume_with_threads_and_operators_equals_one_uninterrupted_run(tmp_path, mutation, adaptive):
    task = example_task()
    settings = SearchSettings(5, 5, 5, threshold=1.0, mutation=mutation, adaptive=adaptive)
    first = evolve(task, settings, Limits(generations=4000), seed=6, out=tmp_path / "run", workers=1)
    assert first.generations == 4000
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["state"]
    assert "rate" in state
    resumed = resume(tmp_path / "run", generations=9000, workers=2)
    whole = evolve(task, settings, Limits(generations=9000), seed=6, workers=1)
    assert resumed.genome == whole.genome and resumed.metrics["evaluations"] == whole.metrics["evaluations"]
    assert resumed.metrics["energy_pj"] == whole.metrics["energy_pj"]


def test_workers_setting_and_team_choice():
    most, auto = resolve_workers("auto")
    assert most >= 1 and auto == (most > 1)
    assert resolve_workers(1) == (1, False)
    for bad in (0, "x", most + 1):
        with pytest.raises(UserError, match="--workers"):
            resolve_workers(bad)
    team = TeamSize(4, True)
    assert team.next() == 1  # one thread while the chunk length settles
    team.observe(1, 100, 0.6)
    sizes = []
    for rate_one, rate_all in ((100, 300), (100, 300)):  # probe: all threads 3x faster
        sizes.append(team.next())
        team.observe(sizes[-1], rate_one if sizes[-1] == 1 else rate_all, 1.0)
        sizes.append(team.next())
        team.observe(sizes[-1], rate_one if sizes[-1] == 1 else rate_all, 1.0)
    assert sizes == [1, 4, 1, 4] and team.next() == 4
    slow = TeamSize(4, True)
    slow.observe(1, 100, 0.6)
    for _ in range(4):
        n = slow.next()
        slow.observe(n, 100 if n == 1 else 105, 1.0)  # not worth the CPUs
    assert slow.next() == 1
    fixed = TeamSize(2, False)
    fixed.observe(2, 1, 100.0)
    assert fixed.next() == 2
