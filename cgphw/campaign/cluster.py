"""Where a campaign's runs execute: Dask distributed on this machine (``local``, the
default: one single-threaded worker process per core), on PBS or SLURM nodes through
dask-jobqueue (each job starts worker processes that connect back), or on a Dask
scheduler someone already started (its address). Every run is one Dask task.

Settings come from the experiment's [cluster] table, then from command-line flags.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

from cgphw.errors import UserError

BATCH_KINDS = ("pbs", "slurm")


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
    interface: str | None = None
    job_extra: tuple[str, ...] = field(default_factory=tuple)  # more #PBS / #SBATCH directives

    @classmethod
    def from_table(cls, table: dict) -> "ClusterSettings":
        values = {k: v for k, v in table.items() if v is not None}
        if "job_extra" in values:
            values["job_extra"] = tuple(values["job_extra"])
        return cls(**values)

    def merged(self, **flags) -> "ClusterSettings":
        """These settings with every flag that was given (not None) replacing its value."""
        given = {k: (tuple(v) if k == "job_extra" else v) for k, v in flags.items() if v not in (None, ())}
        return replace(self, **given)

    @property
    def is_address(self) -> bool:
        return self.kind not in ("local", *BATCH_KINDS)


def check(settings: ClusterSettings) -> None:
    if settings.kind in BATCH_KINDS:
        missing = [k for k in ("walltime", "memory") if getattr(settings, k) is None]
        if missing:
            raise UserError(f"--cluster {settings.kind} needs {' and '.join('--' + k for k in missing)} "
                            f"(or cluster.{missing[0]} in the experiment file)")
        _jobqueue()
    elif settings.is_address and not settings.kind.strip():
        raise UserError("--cluster needs local, pbs, slurm or a scheduler address such as tcp://host:8786")


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
    kwargs = {"cores": settings.cores, "processes": processes, "memory": settings.memory,
              "walltime": settings.walltime, "queue": settings.queue, "account": settings.account,
              "interface": settings.interface, "job_extra_directives": list(settings.job_extra),
              "job_name": "cgphw", "log_directory": str(log_dir) if log_dir else None,
              # one run per worker thread: the search and torch use one thread each
              "job_script_prologue": ["export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1"]}
    return cls(**{k: v for k, v in kwargs.items() if v is not None})


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


@contextlib.contextmanager
def open_client(settings: ClusterSettings, out_dir: Path, threads_per_run: int = 1):
    """A distributed.Client on the cluster the settings describe; closed (and, for
    clusters it started, shut down) on exit. ``threads_per_run``: the search threads of
    the busiest run (``search.workers``), which sizes the worker processes started here."""
    check(settings)
    from distributed import Client, LocalCluster

    if settings.kind == "local":
        # the scheduler's HTTP server on a free local port: the default (8787) warns when taken
        cluster = LocalCluster(n_workers=local_workers(settings, threads_per_run), threads_per_worker=1,
                               processes=True, dashboard_address="127.0.0.1:0",
                               local_directory=str(out_dir / "dask"), silence_logs=logging.ERROR)
    elif settings.kind in BATCH_KINDS:
        cluster = _batch_cluster(settings, out_dir / "dask-logs", threads_per_run)
        cluster.scale(jobs=settings.workers or 1)
    else:
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
