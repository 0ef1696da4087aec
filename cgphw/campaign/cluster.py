"""Where a campaign's runs execute: Dask distributed on this machine (``local``, the
default: one single-threaded worker process per core), on PBS or SLURM nodes through
dask-jobqueue (each job starts worker processes that connect back), or on a Dask
scheduler someone already started (its address). Every run is one Dask task.

Settings come from the experiment's [cluster] table, then from command-line flags; every
value is checked as it comes in (see cluster_checks.py): the batch settings are copied into a
shell script that runs on the cluster's nodes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cgphw.campaign.cluster_checks import BATCH_KINDS, check_log_dir, check_values, probe_scheduler
from cgphw.errors import UserError

# seconds with no worker connected before a campaign stops (resumable), by cluster kind;
# a batch job may wait in its queue a while before its workers connect
DEFAULT_WORKER_WAIT = {"local": 120.0, "pbs": 1800.0, "slurm": 1800.0, "address": 600.0}
# how a command-line flag names each setting (errors name the flag the value came from)
FLAGS = {"kind": "--cluster", "job_extra": "--job-extra", "worker_wait": "--worker-wait"}
SUBMIT = {"pbs": ("qsub", "qdel"), "slurm": ("sbatch", "scancel")}


@dataclass(frozen=True)
class ClusterSettings:
    kind: str = "local"  # local | pbs | slurm | a scheduler address
    workers: int | None = None  # local: processes (default: all cores); pbs/slurm: jobs (default 1)
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    memory: str | None = None  # per job, e.g. "8GB"
    cores: int = 1  # per job
    processes: int | None = None  # worker processes per job (default: cores, one run per core)
    interface: str | None = None  # network interface of the scheduler and the workers (pbs/slurm)
    job_extra: tuple[str, ...] = field(default_factory=tuple)  # more #PBS / #SBATCH directives
    worker_wait: float | None = None  # seconds with no worker before stopping (None: by kind, 0: forever)

    def __post_init__(self):
        check_values({f.name: getattr(self, f.name) for f in fields(self)}, lambda key: f"cluster.{key}")

    @classmethod
    def from_table(cls, table: dict, where: str | os.PathLike | None = None) -> "ClusterSettings":
        """Settings from an experiment's [cluster] table; errors name ``where`` (the file) and the key."""
        values = {k: v for k, v in table.items() if v is not None}
        if "job_extra" in values and isinstance(values["job_extra"], (list, tuple)):
            values["job_extra"] = tuple(values["job_extra"])
        check_values(values, lambda key: f"{where}: cluster.{key}" if where else f"cluster.{key}")
        return cls(**values)

    def merged(self, **flags) -> "ClusterSettings":
        """These settings with every flag that was given (not None) replacing its value."""
        given: dict[str, Any] = {k: (tuple(v) if k == "job_extra" else v) for k, v in flags.items()
                                 if v not in (None, ())}
        check_values(given, lambda key: FLAGS.get(key, "--" + key.replace("_", "-")))
        return replace(self, **given)

    @property
    def is_address(self) -> bool:
        return self.kind not in ("local", *BATCH_KINDS)

    @property
    def wait_seconds(self) -> float | None:
        """Seconds without any worker after which the campaign stops; None: wait forever."""
        wait = self.worker_wait
        if wait is None:
            wait = DEFAULT_WORKER_WAIT["address" if self.is_address else self.kind]
        return wait or None


def check(settings: ClusterSettings) -> None:
    if settings.kind in BATCH_KINDS:
        missing = [k for k in ("walltime", "memory") if getattr(settings, k) is None]
        if missing:
            raise UserError(f"--cluster {settings.kind} needs {' and '.join('--' + k for k in missing)} "
                            f"(or cluster.{missing[0]} in the experiment file)")
        if settings.kind == "pbs" and settings.walltime and "-" in settings.walltime:
            raise UserError(f"--walltime {settings.walltime!r}: PBS takes [[HH:]MM:]SS, e.g. 48:00:00, not D-HH:MM:SS")
        _jobqueue()
    if settings.interface is not None:
        _check_interface(settings.interface)


def _check_interface(name: str) -> None:
    import psutil

    known = sorted(psutil.net_if_addrs())
    if name not in known:
        raise UserError(f"--interface {name!r}: this machine has no such network interface (it has: "
                        f"{', '.join(known)})")


def _jobqueue():
    interrupt = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError:
        raise UserError("PBS and SLURM clusters need dask-jobqueue: pip install 'cgphw[cluster]'") from None
    finally:  # its runner module sets SIGINT to sys.exit() on import: Ctrl-C must still save and say so
        signal.signal(signal.SIGINT, interrupt)
    return dask_jobqueue


def _batch_cluster(settings: ClusterSettings, log_dir: Path | None, threads_per_run: int = 1):
    jq = _jobqueue()
    cls = jq.PBSCluster if settings.kind == "pbs" else jq.SLURMCluster
    processes = settings.processes or max(1, settings.cores // threads_per_run)
    if settings.cores % processes:
        raise UserError(f"cores ({settings.cores}) must be a multiple of processes ({processes})")
    if log_dir is not None:
        check_log_dir(log_dir)
    kwargs = {"cores": settings.cores, "processes": processes, "memory": settings.memory,
              "walltime": settings.walltime, "queue": settings.queue, "account": settings.account,
              "interface": settings.interface, "job_extra_directives": list(settings.job_extra),
              "job_name": "cgphw", "log_directory": str(log_dir) if log_dir else None,
              # the HTTP servers (dashboards) on loopback only, not on every address of the node
              "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
              "worker_extra_args": ["--dashboard-address", "127.0.0.1:0", "--no-dashboard"],
              # one run per worker thread: the search and torch use one thread each
              "job_script_prologue": ["export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1"]}
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
    except ValueError as exc:  # dask-jobqueue's and distributed's own refusals (e.g. an interface without an address)
        raise UserError(f"cannot start the {settings.kind} cluster's scheduler: {exc}") from None


def job_script(settings: ClusterSettings, log_dir: Path | None = None, threads_per_run: int = 1) -> str:
    """The PBS or SLURM script one job of the campaign submits (nothing is submitted)."""
    check(settings)
    if settings.kind not in BATCH_KINDS:
        raise UserError(f"only pbs and slurm clusters have job scripts, not {settings.kind!r}")
    with _batch_cluster(settings, log_dir, threads_per_run) as cluster:
        return cluster.job_script()


def local_workers(settings: ClusterSettings, threads_per_run: int = 1) -> int:
    """Worker processes of a local cluster: as set, else one per ``threads_per_run`` cores
    (each runs one campaign run at a time, whose search uses that many threads)."""
    return settings.workers or max(1, (os.cpu_count() or 1) // threads_per_run)


def batch_commands(kind: str) -> None:
    """The batch system's submit and cancel commands are on PATH (dask-jobqueue would print a
    traceback from a thread and wait forever for workers)."""
    missing = [c for c in SUBMIT[kind] if shutil.which(c) is None]
    if missing:
        raise UserError(f"--cluster {kind} needs the {kind.upper()} commands {' and '.join(SUBMIT[kind])}, "
                        f"but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH "
                        "(run on the cluster's login node, or use --job-script to see the job script)")


@contextlib.contextmanager
def open_client(settings: ClusterSettings, out_dir: Path, threads_per_run: int = 1):
    """A distributed.Client on the cluster the settings describe; closed (and, for
    clusters it started, shut down) on exit. ``threads_per_run``: the search threads of
    the busiest run (``search.workers``), which sizes the worker processes started here.
    ``out_dir`` must be absolute: a job may start in another folder ($HOME under PBS)."""
    check(settings)
    out_dir = Path(os.path.abspath(out_dir))
    from distributed import Client, LocalCluster

    if settings.kind == "local":
        # the scheduler's HTTP server on a free local port: the default (8787) warns when taken
        cluster = LocalCluster(n_workers=local_workers(settings, threads_per_run), threads_per_worker=1,
                               processes=True, dashboard_address="127.0.0.1:0",
                               local_directory=str(out_dir / "dask"), silence_logs=logging.ERROR)
    elif settings.kind in BATCH_KINDS:
        batch_commands(settings.kind)
        cluster = _batch_cluster(settings, out_dir / "dask-logs", threads_per_run)
        jobs = settings.workers or 1
        # adapt, not scale: a job lost to its wall time or a scancel/qdel is submitted again
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    else:
        probe_scheduler(settings.kind)
        try:
            client = Client(settings.kind, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {settings.kind} ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
