"""verify(): simulate an exported circuit (or a run, exported on the fly) against the
software model and judge it; the Verdict is what ``cgphw verify`` prints."""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cgphw.cgp.problem import weighted_se
from cgphw.errors import SimulatorError, UserError
from cgphw.progress import ProgressCallback, step
from cgphw.results import stage_path
from cgphw.verification import cocotb_run
from cgphw.verification.backends import default_simulator, get_backend
from cgphw.verification.design import Design, load_design, resolve_manifest
from cgphw.verification.scoreboard import describe_mismatch
from cgphw.verification.stimulus import Stimulus, build_stimulus

if TYPE_CHECKING:
    from cgphw.cgp.rundir import Run
    from cgphw.cgp.search import RunResult
    from cgphw.hw.export import ExportResult
    from cgphw.hw.manifest import Manifest

DEFAULT_RANDOM_VECTORS = 1000
MAX_VECTORS = 1_000_000  # random vectors per verification (the CLI and a campaign)


@dataclass(frozen=True)
class Verdict:
    """The judge's finding, whole when made (cgphw.results.Result): ``ok`` when every output
    compared equal, at least one was compared, and nothing else failed (``problems``)."""
    design: str
    simulator: str
    subject: str  # what was simulated
    latency: int
    vectors: int = 0  # distinct input vectors whose outputs were compared
    cycles: int = 0
    checks: int = 0  # output comparisons (one per cycle with a result due)
    mismatches: int = 0
    first_mismatch: dict | None = None
    task: dict | None = None
    problems: tuple[str, ...] = ()  # anything else that fails the verdict
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.checks > 0 and not self.problems

    def lines(self) -> list[str]:
        head = (f"{'PASS' if self.ok else 'FAIL'} {self.design} on {self.simulator} ({self.subject}, "
                f"latency {self.latency}): {self.vectors} vectors, {self.cycles} cycles, "
                f"{self.mismatches} mismatches")
        if self.task:
            t = self.task
            head += (f"; task: {t['equal']}/{t['weights']} simulated weights equal targets, SE {_num(t['error_se'])}"
                     + (f" (reported {_num(t['reported_error_se'])})" if t["reported_error_se"] is not None else ""))
        lines = [head]
        if self.first_mismatch:
            lines.append("first mismatch: " + describe_mismatch(self.first_mismatch))
        return lines + [f"problem: {p}" for p in self.problems]

    def to_json(self) -> dict:
        return {"passed": self.ok, "design": self.design, "simulator": self.simulator,
                "subject": self.subject, "latency": self.latency, "vectors": self.vectors,
                "cycles": self.cycles, "checks": self.checks, "mismatches": self.mismatches,
                "first_mismatch": self.first_mismatch, "task": self.task, "problems": list(self.problems),
                "seconds": round(self.seconds, 3)}


def _num(x: float) -> str:
    return f"{x:g}"


def task_claim(design: Design, observed: list | None) -> tuple[dict | None, list[str]]:
    """What the simulated hardware produced on the task's real inputs (``observed``, one
    row per task item, None where unreadable) against the targets and against what the
    search reported."""
    task = design.task
    if task is None:
        return None, []
    if observed is None or len(observed) != task.n_items or any(row is None for row in observed):
        return None, ["the simulation did not show readable outputs for every task item"]
    produced = np.array(observed, np.int64)
    diff = produced - task.targets.astype(np.int64)
    weights = task.error_weights()
    counted = weights > 0
    se = weighted_se(produced, task.targets, weights)
    metrics = design.metrics
    reported = None if metrics is None else metrics.error_se
    claim = {"items": int(len(produced)), "weights": int(counted.sum()), "equal": int(((diff == 0) & counted).sum()),
             "error_se": se, "reported_error_se": None if reported is None else float(reported)}
    problems = []
    if reported is not None and not math.isclose(se, float(reported), rel_tol=1e-9, abs_tol=1e-9):
        problems.append(f"on the task's inputs the simulated circuit's squared error is {_num(se)}, "
                        f"but the search reported {_num(float(reported))}")
    if metrics is not None and metrics.threshold_reached is True and metrics.threshold is not None:
        n = int(metrics.n_targets or counted.sum())
        limit = metrics.threshold ** 2 * n
        if se > limit * (1 + 1e-9) + 1e-9:
            problems.append(f"the search reported its threshold {metrics.threshold} reached, but the squared error "
                            f"{_num(se)} exceeds threshold^2 * {n} = {_num(limit)}")
    return claim, problems


def design_stimulus(design: Design, n_random: int, seed: int) -> Stimulus:
    return build_stimulus(design.genome, design.top, design.ports, design.latency,
                          design.task.inputs if design.task is not None else None, n_random, seed)


def run_design(design: Design, sim: str, stimulus: Stimulus, workdir: Path,
               progress: ProgressCallback | None = None) -> Verdict:
    """Simulate ``design`` with ``stimulus`` on ``sim`` and judge it: a Verdict (task claim included)."""
    start = time.perf_counter()
    simulated = get_backend(sim).simulate_circuit(design, stimulus, workdir, progress)
    summary = simulated.summary
    if not summary.get("complete", False):
        raise SimulatorError(f"the {sim} simulation stopped after {summary.get('cycles', 0)} of "
                             f"{len(stimulus.cycles)} cycles: no verdict on the design")
    claim, problems = task_claim(design, summary.get("task_outputs"))
    return Verdict(design.top, sim, simulated.subject, design.latency, vectors=summary.get("vectors", 0),
                   cycles=summary.get("cycles", 0), checks=summary.get("checks", 0),
                   mismatches=summary.get("mismatches", 0), first_mismatch=summary.get("first_mismatch"),
                   task=claim, problems=(*simulated.problems, *problems), seconds=time.perf_counter() - start)


def verify(path: str | os.PathLike | RunResult | Run | ExportResult | Manifest, *, sim: str | None = None,
           n_random: int = DEFAULT_RANDOM_VECTORS, seed: int = 0,
           pipeline: int | None = None, workdir: str | Path | None = None,
           progress: ProgressCallback | None = None) -> Verdict:
    """Verify an RTL directory (or manifest), or a run / genome exported first with
    ``pipeline``; or the RunResult / Run / ExportResult / Manifest that stands for one of them.
    ``workdir`` keeps the build, logs and stimulus (a temp dir otherwise)."""
    sim = sim or default_simulator()
    get_backend(sim).environment()  # a missing simulator fails before any work
    path = Path(stage_path(path))
    if not path.exists():
        raise UserError(f"{path} does not exist")
    with tempfile.TemporaryDirectory(prefix="cgphw-verify-") as tmp:
        work = cocotb_run.keep_directory(workdir) if workdir is not None else Path(tmp)
        step(progress, "preparing the design")  # a run is exported first
        design = load_design(resolve_manifest(path, work, pipeline))
        step(progress, "building the stimulus")
        return run_design(design, sim, design_stimulus(design, n_random, seed), work, progress)
