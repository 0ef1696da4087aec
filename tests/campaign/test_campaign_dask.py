"""Campaigns on a real Dask LocalCluster: a worker killed mid-run, its run resumed from its
checkpoint elsewhere, the same results as without the kill, nothing finished redone."""
import os
import signal
import threading
import time

from cgphw.campaign.experiment import load_experiment
from cgphw.campaign.flow import execute_run, read_log
from cgphw.campaign.runner import run_campaign
from cgphw.files import read_json

from campaign_fixtures import experiment_file

# The study's test kernel as plain values (no network: the workers need not load torch).
KERNEL = "values:-42,-36,64,19,67,127,60,54,16->26,-61,-64,-60,22,-25,102,-5,32,32,-62,-9,-12,-32,-96,-76"
SEARCH_ONLY = f"""stages = ["evolve"]
[task]
selector = "{KERNEL}"
[search]
grid = "5x5"
threshold = 0
seed = [1, 2]
generations = %d
checkpoint_every = 0.2
"""
COMPARED = ("run", "error", "energy", "gates", "generations", "evaluations", "genome_hash", "reached")


def _worker_of(run_dir):
    """pid of the worker process running the run's search, once it has checkpointed a
    generation past the start."""
    events = read_log(run_dir)
    started = [e for e in events if e["stage"] == "evolve" and e["event"] == "start"]
    checkpoint = run_dir / "evolve" / "checkpoint.json"
    if started and events[-1]["stage"] == "evolve" and checkpoint.is_file() and read_json(checkpoint)["generation"]:
        return int(started[-1]["worker"].rsplit(":", 1)[1])
    return None


def test_a_killed_worker_s_run_resumes_from_its_checkpoint_with_the_same_result(tmp_path, dask_client):
    path = experiment_file(tmp_path / "kill.toml", SEARCH_ONLY % 1_000_000)
    exp = load_experiment(path)
    out = tmp_path / "campaign"
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run_campaign(
        exp, out, client=dask_client, show_progress=False)))
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        specs = read_json(out / "campaign.json")["specs"] if (out / "campaign.json").is_file() else {}
        for run_id in specs:
            pid = _worker_of(out / "runs" / run_id)
            if pid is not None:
                victim = (run_id, pid)
                break
        time.sleep(0.1)
    assert victim is not None, "no run reached its first checkpoint"
    run_id, pid = victim
    os.kill(pid, signal.SIGKILL)
    thread.join(240)
    result = outcome["result"]
    assert result.ok and result.ran == 2
    # the killed run continued from its checkpoint in another worker process
    starts = [e for e in read_log(out / "runs" / run_id) if e["stage"] == "evolve" and e["event"] == "start"]
    assert len(starts) == 2 and starts[1].get("resumed_from", 0) > 0 and starts[1]["worker"] != starts[0]["worker"]
    # the same result as the run never interrupted
    reference = execute_run(specs[run_id], str(tmp_path / "reference"))
    row = result.table().set_index("run").loc[run_id]
    assert {k: row[k] for k in COMPARED if k != "run"} == {k: reference[k] for k in COMPARED if k != "run"}
    # a finished campaign does no work: nothing is submitted, no stage runs again
    logs = {r: len(read_log(out / "runs" / r)) for r in specs}
    again = run_campaign(exp, out, client=dask_client, show_progress=False)
    assert (again.ran, again.reused) == (0, 2)
    assert {r: len(read_log(out / "runs" / r)) for r in specs} == logs


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, dask_client):
    """A run folder holding a user's file is refused (the file stays as it was); the campaign
    reports that run as failed and finishes, or keeps, the others."""
    from cgphw.campaign.runspec import expand
    from cgphw.campaign.models import prepare_model

    path = experiment_file(tmp_path / "fail.toml", SEARCH_ONLY % 20_000)
    out = tmp_path / "campaign"
    first = run_campaign(load_experiment(path, overrides=["search.seed=[1]"]), out, client=dask_client,
                         show_progress=False)
    assert first.ok and first.ran == 1
    exp = load_experiment(path, overrides=["search.seed=[1, 2, 3]"])
    specs = expand(exp, prepare_model(exp.table("model"), out), dict(exp.table("data")))
    blocked = out / "runs" / specs[1].run_id
    blocked.mkdir(parents=True)
    (blocked / "notes.txt").write_text("mine")
    result = run_campaign(exp, out, client=dask_client, show_progress=False)
    assert list(result.failed) == [specs[1].run_id] and "is not a cgphw campaign run" in result.failed[specs[1].run_id]
    assert (result.reused, result.ran) == (1, 1)
    assert sorted(result.table()["run"]) == sorted([specs[0].run_id, specs[2].run_id])
    assert [p.name for p in blocked.iterdir()] == ["notes.txt"] and (blocked / "notes.txt").read_text() == "mine"
