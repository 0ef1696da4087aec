"""The Pareto archive: it holds only non-dominated circuits, each re-evaluating to its stored
figures, within its capacity; a chosen point exports and verifies; resume restores it
exactly; the thread count changes it no more than the best; --objective pareto too."""
import json
from dataclasses import replace

import numpy as np
import pytest

from cgphw import Limits, SearchSettings, evolve, export, load_run, resume
from cgphw.cgp.engine import Engine, seed_stream
from cgphw.cgp.pareto import dominates_or_equals
from cgphw.cgp.genome import grid_for, random_genome
from cgphw.cgp.metrics import circuit_metrics
from cgphw.cgp.problem import build_problem
from cgphw.costs import load_costs
from cgphw.errors import MismatchError, UserError
from cgphw.task import Task, example_task

SETTINGS = SearchSettings(5, 5, 5, threshold=0.5, pareto_size=16)


def points(run_dir):
    """pareto.json's points (all but the run id, which differs between runs)."""
    doc = json.loads((run_dir / "pareto.json").read_text())
    return doc["points"], doc["offered"], doc["entered"]


def test_archive_holds_only_non_dominated_points_that_reevaluate(tmp_path):
    task = example_task()
    r = evolve(task, SETTINGS, Limits(generations=20_000), seed=5, out=tmp_path / "run")
    run = load_run(tmp_path / "run")
    front = run.pareto
    doc = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert doc["format"] == "cgphw-pareto/1" and doc["size"] == 16 and doc["generation"] == 20_000
    assert doc["entered"] > 16 and 2 <= len(front) <= 16  # it was full and thinned
    costs = load_costs()
    for p in front:
        fresh = circuit_metrics(p.genome, costs, task, 0.5)
        for k in ("error_se", "energy_pj", "delay_ns", "gates", "area", "threshold_reached"):
            assert p.metrics[k] == fresh[k], (p.index, k)
        assert p.metrics.active_nodes == len(p.genome.active_nodes())
    for a in front:
        assert not any(dominates_or_equals(b.metrics, a.metrics) for b in front if b is not a)
    # the point the lexicographic order ranks first is never thinned: it is no worse than the winner
    def rank(m):
        return (m.energy_pj, m.error_se, m.delay_ns, m.gates)
    assert r.ok and min(rank(p.metrics) for p in front if p.metrics.threshold_reached) <= rank(r.metrics)
    csv = (tmp_path / "run" / "pareto.csv").read_text().splitlines()
    assert csv[0].startswith("point,error_se,") and len(csv) == len(front) + 1
    assert [float(line.split(",")[1]) for line in csv[1:]] == [p.metrics.error_se for p in front]
    # a changed point is refused: its figures no longer match its genome
    doc["points"][0]["metrics"]["energy_pj"] += 0.001
    (tmp_path / "run" / "pareto.json").write_text(json.dumps(doc))
    changed = load_run(tmp_path / "run")
    with pytest.raises(MismatchError, match="point 0 of"):
        _ = changed.pareto
    doc["points"][0]["genome_hash"] = doc["points"][1]["genome_hash"]
    (tmp_path / "run" / "pareto.json").write_text(json.dumps(doc))
    with pytest.raises(MismatchError, match="hash"):
        load_run(tmp_path / "run")


def test_export_of_a_chosen_point_verifies(tmp_path):
    from cgphw.verification.verdict import verify

    task = example_task()
    evolve(task, SETTINGS, Limits(generations=20_000), seed=5, out=tmp_path / "run")
    front = load_run(tmp_path / "run").pareto
    k = len(front) - 1  # the largest error: not the best
    result = export(tmp_path / "run", out_dir=tmp_path / "rtl", point=k)
    assert result.manifest.genome == front[k].genome
    assert result.manifest.doc.source["pareto_point"]["index"] == k
    assert result.manifest.doc.source["metrics"]["error_se"] == front[k].metrics.error_se
    assert verify(result.directory, sim="amaranth", n_random=50).ok
    cheap = export(tmp_path / "run", out_dir=tmp_path / "rtl", point=None, max_error=0.5)
    fit = [p for p in front if p.metrics.threshold_reached]
    chosen = cheap.manifest.doc.source["pareto_point"]
    assert chosen["max_error"] == 0.5 and front[chosen["index"]].metrics.energy_pj == min(
        p.metrics.energy_pj for p in fit)
    with pytest.raises(UserError, match="--point must be from 0"):
        export(tmp_path / "run", out_dir=tmp_path / "rtl", point=len(front))


@pytest.mark.parametrize("objective", ["lexicographic", "pareto"])
def test_resume_restores_the_archive_exactly(tmp_path, objective):
    task = example_task()
    settings = replace(SETTINGS, objective=objective, rotate_every=700)
    evolve(task, settings, Limits(generations=6000), seed=5, out=tmp_path / "half")
    resumed = resume(tmp_path / "half", generations=15_000, workers=2)
    whole = evolve(task, settings, Limits(generations=15_000), seed=5, out=tmp_path / "whole")
    assert resumed.genome == whole.genome
    assert points(tmp_path / "half") == points(tmp_path / "whole")


def test_thread_count_never_changes_the_archive():
    rng = np.random.default_rng(7)
    task = Task(rng.integers(-128, 128, (1, 6), dtype=np.int8), rng.integers(-60, 60, (1, 40), dtype=np.int8))
    grid = grid_for(6, 40, 6, 12, 12)
    problem = build_problem(task, grid, load_costs(), threshold=3.0)
    start = random_genome(grid, np.random.default_rng(3))
    engines = []
    for plan in ([1], [2, 1, 3]):
        e = Engine(problem, 5, 0.05, "active", True, workers=3, pareto_size=16)
        e.restore(start, int(seed_stream(3)[0]))
        e.offer_parent()
        for i, gen_end in enumerate(range(1500, 9001, 1500)):
            e.run(gen_end, workers=plan[i % len(plan)])
            e.take_records()
        engines.append(e)
    one, team = engines
    assert one.archive_counters() == team.archive_counters() and one.archive_counters()["entered"] > 16
    assert one.member_keys() == team.member_keys()
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(one.members(), team.members(), strict=True))
    assert np.array_equal(one.G, team.G)


def test_objective_pareto_is_thread_independent_and_keeps_a_front(tmp_path):
    task = example_task()
    settings, limits = replace(SETTINGS, objective="pareto", rotate_every=500), Limits(generations=8000)
    a = evolve(task, settings, limits, seed=5, out=tmp_path / "one", workers=1)
    b = evolve(task, settings, limits, seed=5, out=tmp_path / "two", workers=2)
    assert a.genome == b.genome and points(tmp_path / "one") == points(tmp_path / "two")
    run = load_run(tmp_path / "one")
    assert run.config.objective == "pareto" and run.genome == a.genome
    assert sum(p.metrics.threshold_reached for p in run.pareto) >= 2


def test_bad_archive_settings_are_user_errors():
    task = example_task()
    for kw in (dict(pareto_size=5), dict(objective="pareto", pareto_size=0), dict(objective="front"),
               dict(rotate_every=0)):
        with pytest.raises(UserError):
            evolve(task, SearchSettings(rows=3, cols=3, **kw), Limits(generations=10))


@pytest.mark.parametrize("edit, error, start", [
    (lambda d: d["points"].reverse(), MismatchError, "point 1 of {path} is out of order"),
    (lambda d: d["points"][0].update(found=-1), UserError, "point 0 of {path} is malformed: found must be"),
    (lambda d: d["points"][0].update(found=d["generation"] + 1), UserError, "point 0 of {path} is malformed"),
    (lambda d: d.update(offered=-5), UserError, "{path} is malformed: generation, offered and entered"),
    (lambda d: d.update(entered=d["offered"] + 1), UserError, "{path} is malformed: generation, offered"),
    (lambda d: d.update(entered=1), MismatchError, "{path} holds")])
def test_front_fields_are_range_checked_and_ordered(tmp_path, edit, error, start):
    """A reversed list would make `export --point K` export another circuit than row K of
    pareto.csv; counts out of range are malformed."""
    evolve(example_task(), SETTINGS, Limits(generations=3000), seed=5, out=tmp_path / "run")
    path = tmp_path / "run" / "pareto.json"
    doc = json.loads(path.read_text())
    assert len(doc["points"]) >= 2
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(error) as caught:
        load_run(tmp_path / "run")
    assert str(caught.value).startswith(start.format(path=path)), caught.value
    assert type(caught.value) is error


@pytest.mark.parametrize("edit, start", [
    (lambda a: a["members"][0].update(found=-1), "archive member 0 needs at, genes, found (a generation from 0 to"),
    (lambda a: a.update(entered=a["offered"] + 1), "archive.offered and archive.entered are counts")])
def test_resume_range_checks_the_checkpointed_archive(tmp_path, edit, start):
    evolve(example_task(), SETTINGS, Limits(generations=3000), seed=5, out=tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.json"
    doc = json.loads(path.read_text())
    edit(doc["state"]["archive"])
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=f"^{path} is malformed: " + start.replace("(", r"\(")):
        resume(tmp_path / "run", generations=3100)
