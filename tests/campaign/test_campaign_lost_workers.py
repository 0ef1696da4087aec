"""When every worker is gone (a batch job's wall time, a scancel), a campaign does not show
"running" forever: lost batch jobs are submitted again (dask-jobqueue's adapt), and with no
worker at all for --worker-wait seconds it stops with one line; run again, it continues
with its finished runs kept."""
import logging
import os
import signal
import stat
import threading
import time

import pytest

from cgphw.campaign.cluster import ClusterSettings
from cgphw.campaign.experiment import load_experiment
from cgphw.campaign.progress import Status
from cgphw.campaign.runner import run_campaign
from cgphw.errors import UserError

from campaign_fixtures import experiment_file

KERNEL = "values:-42,-36,64,19->26,-61,-64,-60"
# one short run, then one that searches for its whole time budget
SHORT_THEN_LONG = f"""stages = ["evolve"]
[task]
selector = "{KERNEL}"
[search]
grid = "3x3"
threshold = 0
seed = 1
generations = [1000, 100_000_000]
time_budget = 6
checkpoint_every = 0.5
"""


@pytest.mark.slow
def test_no_worker_at_all_stops_after_the_wait_with_one_line(tmp_path):
    from distributed import Client, LocalCluster

    exp = load_experiment(experiment_file(tmp_path / "e.toml", SHORT_THEN_LONG))
    with LocalCluster(n_workers=0, processes=True, dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        start = time.monotonic()
        with pytest.raises(UserError) as caught:
            run_campaign(exp, tmp_path / "out", client=client, cluster=ClusterSettings(worker_wait=2),
                         show_progress=False)
        assert time.monotonic() - start < 30
    message = str(caught.value)
    assert message.startswith("no Dask worker connected for ") and "0 of 2 runs are finished" in message
    assert "run the same command again to continue" in message and "\n" not in message


def test_the_status_line_says_how_long_no_worker_was_connected():
    status = Status(total=3, done=1, workers=0, idle_seconds=42)
    assert status.line().endswith("no worker connected for 42 s")
    assert "no worker" not in Status(total=3, workers=2).line()


def test_the_wait_has_a_default_by_kind_and_zero_waits_forever():
    assert ClusterSettings().wait_seconds == 120
    assert ClusterSettings(kind="slurm").wait_seconds == 1800
    assert ClusterSettings(kind="tcp://127.0.0.1:8786").wait_seconds == 600
    assert ClusterSettings(worker_wait=5).wait_seconds == 5
    assert ClusterSettings(worker_wait=0).wait_seconds is None


@pytest.mark.slow
def test_all_workers_lost_mid_campaign_stops_and_resumes_with_finished_runs_kept(tmp_path, dask_client):
    from distributed import Client, LocalCluster

    exp = load_experiment(experiment_file(tmp_path / "e.toml", SHORT_THEN_LONG))
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:

        def lose_every_worker_after_the_first_record():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not list(out.glob("runs/*/record.json")):
                time.sleep(0.1)
            cluster.scale(0)

        killer = threading.Thread(target=lose_every_worker_after_the_first_record)
        killer.start()
        with pytest.raises(UserError, match=r"no Dask worker connected for \d+ s .*1 of 2 runs are finished"):
            run_campaign(exp, out, client=client, cluster=ClusterSettings(worker_wait=3), show_progress=False)
        killer.join()
    again = run_campaign(exp, out, client=dask_client, show_progress=False)
    assert again.ok and (again.reused, again.ran) == (1, 1)
    assert len(again.table()) == 2


FAKE_SBATCH = """#!/bin/bash
# sbatch on this machine: the job script runs in the background, in a process group of its own
mkdir -p "$FAKE_SLURM"
cp "$1" "$FAKE_SLURM/job-$$.sh"
setsid bash "$FAKE_SLURM/job-$$.sh" > "$FAKE_SLURM/job-$$.log" 2>&1 < /dev/null &
echo "$!" >> "$FAKE_SLURM/submitted"
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/bash
for job in "$@"; do kill -TERM -- "-$job" 2>/dev/null; done
exit 0
"""
LONG_RUNS = f"""stages = ["evolve"]
[task]
selector = "{KERNEL}"
[search]
grid = "3x3"
threshold = 0
seed = [1, 2]
generations = 100_000_000
time_budget = 8
checkpoint_every = 0.5
"""


@pytest.mark.slow
def test_a_cancelled_batch_job_is_submitted_again_and_the_campaign_finishes(tmp_path, monkeypatch):
    """A stand-in sbatch/scancel runs the real job script dask-jobqueue renders on this
    machine; every job is cancelled while the runs search, and adapt submits a new one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    jobs = tmp_path / "jobs"
    monkeypatch.setenv("FAKE_SLURM", str(jobs))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    exp = load_experiment(experiment_file(tmp_path / "e.toml", LONG_RUNS))
    out = tmp_path / "out"
    settings = ClusterSettings(kind="slurm", walltime="00:10:00", memory="2GB", cores=1, workers=1, interface="lo",
                               worker_wait=120)

    def cancel_every_job_once_a_run_searches():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(out.glob("runs/*/evolve/checkpoint.json")):
            time.sleep(0.2)
        for job in (jobs / "submitted").read_text().split():
            os.killpg(int(job), signal.SIGKILL)  # like a wall time: no goodbye from the worker

    killer = threading.Thread(target=cancel_every_job_once_a_run_searches)
    killer.start()
    try:
        result = run_campaign(exp, out, cluster=settings, show_progress=False)
    finally:
        killer.join()
        for job in (jobs / "submitted").read_text().split() if (jobs / "submitted").is_file() else ():
            try:
                os.killpg(int(job), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert result.ok and result.ran == 2
    assert len((jobs / "submitted").read_text().split()) >= 2  # the lost job was replaced
    assert (out / "dask-logs").is_dir()
