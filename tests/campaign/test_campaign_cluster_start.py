"""Starting a campaign's cluster: a batch system that is not there, a server that is not a
Dask scheduler, processes per job, loopback-only servers, and a campaign folder given
relative to a folder the workers do not start in."""
import os
import socket
import threading
import time

import pytest

from cgphw.campaign import cluster_checks
from cgphw.campaign.cluster import ClusterSettings, open_client
from cgphw.campaign.experiment import load_experiment
from cgphw.campaign.runner import run_campaign
from cgphw.cli import main
from cgphw.errors import UserError

from campaign_fixtures import experiment_file

KERNEL = "values:-42,-36,64,19->26,-61,-64,-60"
SEARCH_ONLY = f"""stages = ["evolve"]
[task]
selector = "{KERNEL}"
[search]
grid = "3x3"
threshold = 0
seed = [1, 2]
generations = 2000
"""
SLURM = """[task]
selector = "core-ring"
[search]
grid = "5x5"
generations = 10
[cluster]
kind = "slurm"
walltime = "01:00:00"
memory = "4GB"
"""


@pytest.mark.parametrize("kind,command", [("slurm", "sbatch"), ("pbs", "qsub")])
def test_a_batch_system_that_is_not_installed_is_one_line_at_once(tmp_path, cli, monkeypatch, kind, command):
    path = experiment_file(tmp_path / "e.toml", SEARCH_ONLY)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    start = time.monotonic()
    code, _, err = cli("run", str(path), "--out", str(tmp_path / "out"), "--cluster", kind,
                       "--walltime", "01:00:00", "--memory", "1GB", "--quiet")
    assert code == 2 and time.monotonic() - start < 60
    assert err.startswith(f"error: --cluster {kind} needs the {kind.upper()} commands") and err.count("\n") == 1
    assert f"{command} and" in err and "not on PATH" in err


class _Server:
    """A loopback TCP server that answers every connection with ``reply`` (None: says nothing)."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.reply = reply
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                if self.reply is not None:
                    conn.sendall(self.reply)
                self.stop.wait(3)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


GARBAGE = {
    # the first 8 bytes are a frame length distributed would try to allocate (about 18 EB)
    "huge length": b"\xff" * 8 + b"not dask at all",
    "http": b"HTTP/1.1 400 Bad Request\r\n\r\n",
    "small length, garbage": (40).to_bytes(8, "little") + bytes(range(40)),
}


@pytest.mark.parametrize("name", GARBAGE)
def test_a_server_that_is_not_a_dask_scheduler_is_one_line(tmp_path, cli, name):
    server = _Server(GARBAGE[name])
    try:
        path = experiment_file(tmp_path / "e.toml", SEARCH_ONLY)
        start = time.monotonic()
        code, _, err = cli("run", str(path), "--out", str(tmp_path / "out"), "--cluster", server.address,
                           "--quiet")
    finally:
        server.close()
    assert code == 2 and time.monotonic() - start < 30, err
    assert err.startswith(f"error: {server.address} does not answer like a Dask scheduler") or \
        err.startswith(f"error: cannot reach the Dask scheduler at {server.address}"), err
    assert err.count("\n") == 1


def test_a_silent_server_is_a_connect_timeout(monkeypatch):
    server = _Server(None)
    monkeypatch.setattr(cluster_checks, "PROBE_SECONDS", 0.5)
    try:
        with pytest.raises(UserError, match=r"cannot reach the Dask scheduler at .*: no answer within 0.5 s"):
            with open_client(ClusterSettings(kind=server.address), "unused"):
                pass
    finally:
        server.close()


def test_a_real_scheduler_passes_the_probe(dask_client):
    cluster_checks.probe_scheduler(dask_client.scheduler.address)


def test_cores_without_processes_start_one_process_per_core(tmp_path, capsys):
    path = experiment_file(tmp_path / "e.toml", SLURM)
    main(["run", str(path), "--job-script", "--cores", "4"])
    worker = capsys.readouterr().out.strip().splitlines()[-1]
    assert "--nworkers 4" in worker and "--nthreads 1" in worker
    main(["run", str(path), "--job-script", "--cores", "4", "--processes", "2"])
    worker = capsys.readouterr().out.strip().splitlines()[-1]
    assert "--nworkers 2" in worker and "--nthreads 2" in worker


def test_the_interface_flag_and_loopback_only_servers(tmp_path, capsys):
    path = experiment_file(tmp_path / "e.toml", SLURM)
    main(["run", str(path), "--job-script", "--interface", "lo"])
    worker = capsys.readouterr().out.strip().splitlines()[-1]
    assert " tcp://127.0.0.1:" in worker and "--interface lo" in worker
    assert "--dashboard-address 127.0.0.1:0" in worker and "--no-dashboard" in worker


@pytest.mark.slow
def test_a_relative_out_reaches_workers_that_start_in_another_folder(tmp_path, monkeypatch, dask_client):
    """PBS starts a job in $HOME, SLURM where --chdir says: the paths a run gets are absolute."""
    exp = load_experiment(experiment_file(tmp_path / "e.toml", SEARCH_ONLY))
    monkeypatch.chdir(tmp_path)
    before = dask_client.run(os.getcwd)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dask_client.run(os.chdir, str(elsewhere))
    try:
        result = run_campaign(exp, "campaign", client=dask_client, show_progress=False)
    finally:
        for worker, folder in before.items():
            dask_client.run(os.chdir, folder, workers=[worker])
    assert result.ok and result.ran == 2
    assert result.out == tmp_path / "campaign" and result.out.is_absolute()
    assert sorted(result.table()["run"]) == sorted(p.name for p in (tmp_path / "campaign" / "runs").iterdir())
    assert list(elsewhere.iterdir()) == []
