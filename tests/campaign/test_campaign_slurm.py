"""A campaign on a real one-node SLURM on 127.0.0.1 (slurm_local.sh starts and stops it):
the same results as the local cluster's, every worker job cancelled mid-campaign and the
campaign still finishing (the lost jobs are submitted again), a relative --out under a
job's --chdir, and a second run doing no work. Skips, never fails, where SLURM is not
installed or cannot start (CI installs it: tests/campaign/slurm_local.sh install)."""
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cgphw.campaign.cluster import ClusterSettings
from cgphw.campaign.experiment import load_experiment
from cgphw.campaign.flow import read_log
from cgphw.campaign.runner import run_campaign
from cgphw.files import read_json

from campaign_fixtures import experiment_file

SCRIPT = Path(__file__).with_name("slurm_local.sh")
KERNEL = "values:-42,-36,64,19,67,127,60,54,16->26,-61,-64,-60,22,-25,102,-5,32,32,-62,-9,-12,-32,-96,-76"
SEARCH = f"""stages = ["evolve"]
[task]
selector = "{KERNEL}"
[search]
grid = "5x5"
threshold = 0
seed = [1, 2]
generations = 400_000
checkpoint_every = 0.2
"""
COMPARED = ["run", "error", "energy", "gates", "generations", "evaluations", "genome_hash", "reached"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_slurm(tmp_path_factory):
    needed = ("slurmctld", "slurmd", "sbatch", "scancel", "squeue", "sinfo", "munged")
    missing = [c for c in needed if shutil.which(c) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing; tests/campaign/slurm_local.sh install)")
    if os.geteuid() != 0:
        pytest.skip("starting a one-node SLURM needs root (its daemons run as root here)")
    folder = tmp_path_factory.mktemp("slurm")
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True,
                                 timeout=90)
    except subprocess.TimeoutExpired:
        started = None
    if started is None or started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)
        why = "timed out" if started is None else (started.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"a one-node SLURM could not start here: {why}")
    yield folder / "slurm.conf"
    subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)


def _jobs(conf: Path) -> list[str]:
    done = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "SLURM_CONF": str(conf)})
    return done.stdout.split()


def test_a_campaign_on_slurm_survives_every_job_cancelled_and_matches_the_local_cluster(
        local_slurm, tmp_path, monkeypatch, dask_client):
    exp = load_experiment(experiment_file(tmp_path / "e.toml", SEARCH))
    local = run_campaign(exp, tmp_path / "local", client=dask_client, show_progress=False)
    assert local.ok

    monkeypatch.setenv("SLURM_CONF", str(local_slurm))
    monkeypatch.chdir(tmp_path)
    jobs_root = tmp_path / "job-start"  # the jobs start here (--chdir), not where `cgphw run` is
    jobs_root.mkdir()
    settings = ClusterSettings(kind="slurm", walltime="00:10:00", memory="1GB", cores=1, workers=2, interface="lo",
                               job_extra=(f"--chdir={jobs_root}",), worker_wait=240)
    out = Path("on-slurm")  # relative on purpose
    cancelled: list[str] = []

    def cancel_every_job_once_a_run_searches():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            checkpoints = [read_json(p) for p in (tmp_path / out).glob("runs/*/evolve/checkpoint.json")]
            if any(c.get("generation") for c in checkpoints):
                cancelled.extend(_jobs(local_slurm))
                subprocess.run(["scancel", *cancelled], timeout=30, check=False)
                return
            time.sleep(0.2)

    canceller = threading.Thread(target=cancel_every_job_once_a_run_searches)
    canceller.start()
    try:
        result = run_campaign(exp, out, cluster=settings, show_progress=False)
    finally:
        canceller.join()
    assert cancelled, "no run reached its first checkpoint before the campaign ended"
    assert result.ok and result.ran == 2 and result.out == tmp_path / out
    assert list(jobs_root.iterdir()) == []  # nothing landed where the jobs started
    on_slurm = result.table().sort_values("run")[COMPARED].reset_index(drop=True)
    reference = local.table().sort_values("run")[COMPARED].reset_index(drop=True)
    assert on_slurm.equals(reference)
    # a run cut short by the cancel continued from its checkpoint on a newly submitted job
    starts = [[e for e in read_log(p) if e["stage"] == "evolve" and e["event"] == "start"]
              for p in (tmp_path / out / "runs").iterdir()]
    assert any(len(s) >= 2 and s[-1].get("resumed_from", 0) > 0 for s in starts)
    assert any((tmp_path / out / "dask-logs").iterdir())
    # the finished campaign does no work: nothing is submitted again
    again = run_campaign(exp, out, cluster=settings, show_progress=False)
    assert (again.ran, again.reused) == (0, 2)
