"""``run_campaign``: every run of an experiment on a Dask cluster, then the results table.

The campaign folder (``--out``) holds campaign.json (what was run: the experiment, its
profile and overrides, the runs), experiment.toml (a copy of the file), runs/RUN/ (one
folder per run, see flow.py), baselines/ (the unchanged network's accuracy, measured once),
results.parquet and results.csv. Running a campaign again
submits only the runs that are not finished (``flow.finished_row``: a record.json its run's
checked files give again): a finished campaign does no stage work. One ``cgphw run`` at a
time writes a campaign folder (``dirs.DirLock`` on .cgphw.lock).
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cgphw.campaign import stages
from cgphw.campaign.cluster import ClusterSettings, open_client
from cgphw.campaign.experiment import Experiment, environment_path, load_experiment
from cgphw.campaign.runspec import RunSpec, expand
from cgphw.campaign.flow import execute_run, finished_row, read_log, read_record
from cgphw.campaign.models import prepare_model
from cgphw.campaign.progress import Display, Status, latest_search
from cgphw.campaign.results import (FORMAT, default_group_by, format_summary, load_results, read_campaign,
                                    summarize, write_results)
from cgphw.campaign.tasks import build_task, needs_model
from cgphw.dirs import LOCK, DirLock
from cgphw.errors import UserError
from cgphw.files import write_json_atomic

POLL_SECONDS = 0.5
FETCH_SECONDS = 30.0  # the most a finished run's row may take to come from its worker
WORKERS_EVERY = 2.0  # seconds between asking the scheduler how many workers it has


@dataclass(frozen=True)
class CampaignResult:
    """What ``run_campaign`` did (cgphw.results.Result): ``ok`` when no run failed."""
    out: Path
    experiment: str
    profile: str
    runs: int  # in the campaign
    ran: int  # finished in this call
    reused: int  # already finished before this call
    failed: dict  # run id -> error message
    results: Path  # results.parquet (results.csv beside it)
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self):
        return load_results(self.out)

    def to_json(self) -> dict:
        """What `cgphw run --json` prints (less the report, written afterwards)."""
        return {"out": str(self.out), "runs": self.runs, "ran": self.ran, "reused": self.reused,
                "failed": self.failed, "results": str(self.results), "seconds": round(self.seconds, 1)}

    def lines(self) -> list[str]:
        """The results grouped (as ``summarize``), the counts and where the table is."""
        frame = load_results(self.out) if self.ran + self.reused else None
        lines = []
        if frame is not None and len(frame):
            group_by = default_group_by(frame)
            lines = format_summary(summarize(frame, group_by), group_by).split("\n")
        return lines + ["", f"{self.runs} runs: {self.ran} ran now, {self.reused} were already finished, "
                            f"{len(self.failed)} failed ({self.seconds:.0f} s)",
                        f"results: {self.results} (and results.csv)"]


def default_out(exp: Experiment) -> Path:
    return Path("campaigns") / f"{exp.name}-{exp.profile}"


def run_campaign(experiment: str | Path | Experiment, out: str | Path | None = None, *, profile: str = "full",
                 overrides: list[str] | tuple = (), cluster: ClusterSettings | None = None, client=None,
                 show_progress: bool = True) -> CampaignResult:
    """Run (or finish) every run of ``experiment``. ``client`` (a distributed.Client) takes
    the place of ``cluster``; without either the experiment's [cluster] table decides."""
    t0 = time.monotonic()
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, profile,
                                                                                overrides=overrides)
    # absolute before anything reaches a worker: a batch job may start in another folder
    out = Path(os.path.abspath(out if out is not None else default_out(exp)))
    lock = _claim_out(out, exp)
    display = Display(show_progress)
    try:
        about = {"format": FORMAT, "experiment": exp.name, "file": str(exp.path), "profile": exp.profile,
                 "overrides": list(overrides), "description": exp.description, "study": exp.doc["study"],
                 "stages": list(exp.stages)}
        if not (out / "campaign.json").is_file():  # the folder is the campaign's from now on
            write_json_atomic(out / "campaign.json", {**about, "runs": [], "specs": {}})
        _copy_experiment(out, exp)
        specs = _plan(exp, out, display)
        write_json_atomic(out / "campaign.json", {**about, "runs": [s.run_id for s in specs],
                                                  "specs": {s.run_id: s.to_json() for s in specs}})
        rows = {s.run_id: row for s in specs
                if (row := finished_row(s, out / "runs" / s.run_id, out / "baselines")) is not None}
        pending = [s for s in specs if s.run_id not in rows]
        status = Status(total=len(specs), done=len(specs) - len(pending))
        display.note(f"campaign {exp.name} ({exp.profile}): {len(specs)} runs, {status.done} already finished, "
                     f"folder {out}")
        failed: dict[str, str] = {}
        if pending:
            settings = cluster or ClusterSettings.from_table(exp.table("cluster"), exp.path)
            if client is not None:
                failed = _execute(client, pending, out, status, display, settings, rows)
            else:
                with open_client(settings, out, max(s.workers for s in pending)) as own:
                    failed = _execute(own, pending, out, status, display, settings, rows)
        results = write_results(out, [rows[s.run_id] for s in specs if s.run_id in rows])
    finally:
        display.close()
        lock.release()
    return CampaignResult(out, exp.name, exp.profile, len(specs), len(pending) - len(failed),
                          len(specs) - len(pending), failed, results, time.monotonic() - t0)


def _claim_out(out: Path, exp: Experiment) -> DirLock:
    """The campaign folder is new, or a campaign of the same experiment (nothing else is
    touched); returns its lock, held: a second ``cgphw run`` on it is refused."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if (out / "campaign.json").is_file():
        doc = read_campaign(out)
        if doc.get("experiment") != exp.name:
            raise UserError(f"{out} holds the campaign of experiment {doc.get('experiment')!r}, not {exp.name!r}; "
                            "choose another --out")
    elif out.exists() and any(p.name != LOCK for p in out.iterdir()):
        raise UserError(f"{out} exists and is not a campaign folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return DirLock(out).acquire()


def _copy_experiment(out: Path, exp: Experiment) -> None:
    copy = out / "experiment.toml"
    if not copy.exists() or copy.read_bytes() != exp.path.read_bytes():
        tmp = out / ".experiment.toml.tmp"
        shutil.copyfile(exp.path, tmp)
        tmp.replace(copy)


def _plan(exp: Experiment, out: Path, display: Display) -> list[RunSpec]:
    """The runs, with model and data resolved and every task built once here, so that a bad
    selector or layer fails before anything is submitted."""
    model = prepare_model(exp.table("model"), out, display.note)
    data = dict(exp.table("data"))
    data["source"] = environment_path(data["source"], "data.source")
    needs_data = "insert" in exp.stages
    loaded = None

    def network():
        nonlocal loaded
        if loaded is None:
            loaded = stages.load_model(model["path"], model["sha256"])
        return loaded

    if needs_data:
        stages.check_data(data["source"], data["split"], network())

    specs = expand(exp, model, data, lambda: stages.conv_layers(network()))
    tasks, checked = {}, set()
    for spec in specs:
        key = repr(sorted(spec.task.items()))
        if key not in tasks:
            tasks[key] = build_task(spec.task, network() if needs_model(spec.task) else None)
        settings = (key, repr(sorted(spec.search.items())))
        if settings not in checked:
            checked.add(settings)
            try:
                stages.check_search(tasks[key], spec.search)
            except UserError as exc:
                raise UserError(f"{exp.path}: run {spec.run_id}: {exc}") from None
    return specs


def _execute(client, pending: list[RunSpec], out: Path, status: Status, display: Display,
             settings: ClusterSettings, rows: dict[str, dict]) -> dict[str, str]:
    """Run ``pending`` on the cluster; each finished run's row goes into ``rows``; returns the
    failed runs' errors."""
    from distributed import as_completed

    workers = WorkerWatch(client, settings)
    _compile_once(client, display, workers)
    remaining = {}
    for spec in pending:
        future = client.submit(execute_run, spec.to_json(), str(out / "runs" / spec.run_id), str(out / "baselines"),
                               key=f"cgphw-{spec.run_id}", pure=False)
        remaining[future.key] = (future, spec)
    finished = as_completed([f for f, _ in remaining.values()], with_results=False)
    since = time.time()
    failed: dict[str, str] = {}
    while remaining:
        batch = finished.next_batch(block=False)
        for future in batch:
            _, spec = remaining.pop(future.key)
            row, error = _outcome(future, out / "runs" / spec.run_id, spec.digest)
            if row is not None:
                rows[spec.run_id] = row
                status.done += 1
                status.finished_now.append(float(row.get("wall_seconds") or 0.0))
                _best(status, row)
                display.note(_run_line(row))
            else:
                failed[spec.run_id] = error
                status.failed += 1
                display.note(f"FAILED {spec.run_id}: {failed[spec.run_id]}")
            future.release()  # the row is on disk (record.json): the cluster need not keep it
        status.workers = workers.count()
        if remaining:
            workers.stop_if_gone(status, out)
        _watch(status, [spec for _, spec in remaining.values()], out, since, status.workers)
        display.show(status)
        if remaining and not batch:
            time.sleep(POLL_SECONDS)
    return failed


class WorkerWatch:
    """How many workers the scheduler has (asked every few seconds), and since when it has
    had none: a campaign whose every worker job is gone stops after ``settings.wait_seconds``
    with one clear line instead of waiting forever; its finished runs are kept."""

    def __init__(self, client, settings: ClusterSettings):
        self.client = client
        self.settings = settings
        self.wait = settings.wait_seconds
        self.last = -math.inf
        self.workers = 0
        self.seen = time.monotonic()  # the last time a worker was connected (or the start)

    def count(self) -> int:
        now = time.monotonic()
        if now - self.last >= WORKERS_EVERY:
            self.last = now
            self.workers = len(self.client.nthreads())
            if self.workers:
                self.seen = now
        return self.workers

    def idle_seconds(self) -> float:
        return 0.0 if self.workers else time.monotonic() - self.seen

    def stop_if_gone(self, status: Status, out: Path) -> None:
        idle = self.idle_seconds()
        status.idle_seconds = idle if idle >= WORKERS_EVERY else None
        if self.wait is None or idle < self.wait:
            return
        where = (f"all jobs lost or still queued: see {'squeue' if self.settings.kind == 'slurm' else 'qstat'} "
                 f"and {out / 'dask-logs'}" if self.settings.kind in ("pbs", "slurm") else "all workers gone")
        raise UserError(f"no Dask worker connected for {idle:.0f} s ({where}); {status.done} of {status.total} runs "
                        f"are finished and kept: run the same command again to continue (--worker-wait SECONDS "
                        f"waits longer, 0 forever)")


def _compile_once(client, display: Display, workers: WorkerWatch) -> None:
    """Compile the search on one worker before the runs start, so that the other workers
    load it from numba's cache (shared where they share the install) instead of each
    compiling it at once: on a few cores that is most of a short campaign's CPU time."""
    display.note("preparing the search on one worker (numba compiles it once if its cache is cold) ...")
    future = client.submit(stages.compile_search, key="cgphw-compile-search", pure=False)
    try:
        while not future.done():  # no worker may ever come: stop as the runs would
            workers.count()
            if workers.wait is not None and workers.idle_seconds() >= workers.wait:
                future.cancel()  # the runs' loop says so and stops
                return
            time.sleep(POLL_SECONDS)
        seconds = future.result()
    except Exception as exc:  # not fatal: every run compiles for itself then
        display.note(f"could not prepare the search ahead ({type(exc).__name__}: {exc}); each run compiles it")
        return
    if seconds is not None:
        display.note(f"compiled the search in {seconds:.0f} s")


def _outcome(future, run_dir: Path, digest: str) -> tuple[dict | None, str]:
    """(the run's row, "") or (None, why it failed). A future can turn from done to lost when
    its worker goes away before the client fetched it (waiting on it then waits for a new
    worker): the run's record.json on disk says whether it finished."""
    if future.status == "finished":
        with contextlib.suppress(Exception):
            return future.result(timeout=FETCH_SECONDS), ""
    if future.status == "error":
        return None, _error_text(future)
    row = read_record(run_dir, digest)
    if row is not None:
        return row, ""
    return None, "its worker was lost before the run finished (run the command again to continue it)"


def _error_text(future) -> str:
    try:
        exc = future.exception(timeout=FETCH_SECONDS)
    except Exception as err:  # the future itself was lost (e.g. the cluster went away)
        exc = err
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, UserError) else str(exc)


def _best(status: Status, row: dict) -> None:
    status.best_error = min(status.best_error, float(row["error"]))
    if row["reached"]:
        status.best_energy = min(status.best_energy, float(row["energy"]))


def _watch(status: Status, pending, out: Path, since: float, workers: int) -> None:
    """Runs that started in this session (their log says so) and the best error they reached."""
    running = 0
    for spec in pending:
        run_dir = out / "runs" / spec.run_id
        try:
            if (run_dir / "log.jsonl").stat().st_mtime < since:
                continue
        except OSError:
            continue
        events = read_log(run_dir)
        last = events[-1] if events else {}
        if events and not (last.get("stage") == "run" and last.get("event") in ("done", "error")):
            running += 1
            latest = latest_search(run_dir / "evolve")
            if latest is not None:
                status.best_error = min(status.best_error, latest[0])
    status.running = min(running, workers)
    status.seconds_left = _eta(status, list(pending), max(1, workers))


def _eta(status: Status, pending: list[RunSpec], workers: int) -> float | None:
    if status.finished_now:
        per_run = sum(status.finished_now) / len(status.finished_now)
    else:
        budgets = [s.search.get("time_budget") for s in pending]
        known = [b for b in budgets if b is not None]
        if not budgets or len(known) < len(budgets):
            return None
        per_run = sum(known) / len(known)
    return math.ceil(len(pending) / workers) * per_run


def _run_line(row: dict) -> str:
    acc = "" if row.get("delta_top1") is None else f", top-1 {100 * row['delta_top1']:+.2f} points"
    hw = "" if row.get("verified") is None else f", verify {row['verified']}"
    return (f"done {row['run']}: error {row['error']:g} ({'reached' if row['reached'] else 'not reached'}), "
            f"{row['gates']} gates, {row['energy']:.4f} pJ{hw}{acc}")
