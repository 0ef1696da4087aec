"""The Pareto front of a run as its directory holds it: ``pareto.json`` (``FrontRecord``,
format cgphw-pareto/1) and ``pareto.csv``, written by the run writer from the search's
archive (archive.py), read and checked by ``read_front`` (for ``load_run``).

pareto.json: run_id; generation (the checkpoint's when written); size (the archive's
capacity); objective; offered / entered (offspring offered to the archive, circuits that
entered it); points, sorted by error, then energy, delay, gates: each a genome (the one that
computes the task: a value-bank run's expanded genome), its hash, its Metrics (circuit and
task figures; ``active_nodes`` counts every active node, constants included, as the study
counted gates) and ``found``, the generation in which the search first evaluated it.

Checked on every read (``load_run``): format, run id, size and objective against config.json;
every genome's hash and grid; no point dominates or equals another in (error, energy, delay,
gates). On first use of ``Run.pareto``: every point's metrics against a re-evaluation of its
genome on the run's task (``check_figures``; about 0.1 s per point of a 500x30 genome).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from cgphw import records
from cgphw.cgp.genome import Genome, Grid
from cgphw.cgp.metrics import Metrics, check_reproduced, circuit_metrics
from cgphw.costs import CostTable
from cgphw.errors import MismatchError, UserError
from cgphw.files import read_json
from cgphw.task import Task

FRONT_FORMAT = "cgphw-pareto/1"
PARETO, PARETO_CSV = "pareto.json", "pareto.csv"
CSV_FIELDS = ("point", "error_se", "rms_error", "threshold_reached", "energy_pj", "area", "delay_ns", "gates",
              "active_nodes", "found", "genome_hash")
FIGURES = ("error_se", "energy_pj", "delay_ns", "gates")  # what the front trades


@dataclass(frozen=True)
class FrontPointRecord:
    genome: dict
    genome_hash: str
    metrics: Metrics
    found: int


@dataclass(frozen=True)
class FrontRecord:
    run_id: str
    generation: int
    size: int
    objective: str
    offered: int
    entered: int
    points: tuple[FrontPointRecord, ...]

    def to_json(self) -> dict:
        return {"format": FRONT_FORMAT, **records.to_json(self)}

    @classmethod
    def from_json(cls, doc, source: str = PARETO) -> "FrontRecord":
        found = doc.get("format") if isinstance(doc, dict) else None
        if found != FRONT_FORMAT:
            raise UserError(f"{source} has format {found!r}, expected {FRONT_FORMAT!r}: it is not a cgphw "
                            "Pareto front of this version")
        return records.from_json(cls, {k: v for k, v in doc.items() if k != "format"}, source)


@dataclass(frozen=True, eq=False)
class FrontPoint:
    """One circuit of the front, checked: ``metrics`` equal a re-evaluation of ``genome``."""
    index: int  # its place in pareto.json (export --point K)
    genome: Genome
    metrics: Metrics
    found: int


def dominates_or_equals(a: Metrics, b: Metrics) -> bool:
    return all(getattr(a, f) <= getattr(b, f) for f in FIGURES)


def sort_key(m: Metrics):
    return tuple(getattr(m, f) for f in FIGURES)


def read_front(directory: Path, run_id: str, size: int, objective: str, grid: Grid, task: Task,
               threshold: float) -> tuple[FrontPoint, ...]:
    """pareto.json of a run directory, checked (module text) but for the re-evaluation of its
    points (``check_figures``: seconds on a layer-sized front, so ``Run.pareto`` does it on
    first use); UserError when it is missing or malformed, MismatchError when it contradicts the run."""
    path = directory / PARETO
    if not path.is_file():
        raise UserError(f"{directory} has no {PARETO} although the run keeps a Pareto archive: the run stopped "
                        f"before it started; start it again with --force")
    doc = FrontRecord.from_json(read_json(path), str(path))
    if doc.run_id != run_id:
        raise MismatchError(f"{path} belongs to another run (run id {doc.run_id!r}, expected {run_id!r}): files "
                            "of two runs were mixed")
    if doc.size != size or doc.objective != objective:
        raise MismatchError(f"{path} claims an archive of {doc.size} for objective {doc.objective!r}, but the "
                            f"run keeps {size} for {objective!r}")
    if not 1 <= len(doc.points) <= size:
        raise UserError(f"{path} is malformed: it must hold 1 to {size} points, found {len(doc.points)}")
    if not 0 <= doc.generation < 2**63 or not 0 <= doc.entered <= doc.offered < 2**63:
        raise UserError(f"{path} is malformed: generation, offered and entered are counts (entered <= offered)")
    if doc.entered < len(doc.points):
        raise MismatchError(f"{path} holds {len(doc.points)} points but counts only {doc.entered} circuits that "
                            "entered the archive")
    points = []
    for k, p in enumerate(doc.points):
        where = f"point {k} of {path}"
        genome = Genome.from_json(p.genome, source=f"the genome of {where}")
        if genome.digest() != p.genome_hash:
            raise MismatchError(f"the genome of {where} does not match its recorded hash: it was changed")
        if genome.grid != grid:
            raise MismatchError(f"the genome of {where} is not of the run's grid")
        if p.metrics.threshold != threshold:
            raise MismatchError(f"{where} claims threshold {p.metrics.threshold!r} but the run's is {threshold!r}")
        if p.metrics.n_targets != task.n_targets:
            raise MismatchError(f"{where} counts {p.metrics.n_targets} targets, the task {task.n_targets}")
        if not 0 <= p.found <= doc.generation:
            raise UserError(f"{where} is malformed: found must be a generation from 0 to {doc.generation}, "
                            f"got {p.found}")
        if points and sort_key(p.metrics) <= sort_key(points[-1].metrics):
            # pareto.csv and `export --point K` count the points in this order
            raise MismatchError(f"{where} is out of order: points are sorted by (error, energy, delay, gates), as "
                                f"{PARETO_CSV} lists them")
        points.append(FrontPoint(k, genome, p.metrics, p.found))
    for a in points:
        for b in points:
            if a is not b and dominates_or_equals(a.metrics, b.metrics):
                raise MismatchError(f"point {a.index} of {path} dominates or equals point {b.index} in (error, "
                                    "energy, delay, gates): a front holds only non-dominated circuits")
    return tuple(points)


def check_figures(points, task: Task, costs: CostTable, threshold: float, source: str) -> None:
    """MismatchError unless every point's metrics equal a re-evaluation of its genome."""
    for p in points:
        fresh = circuit_metrics(p.genome, costs, task, threshold, p.metrics.n_targets)
        check_reproduced(p.metrics, fresh, f"point {p.index} of {source}")


def front_csv(points) -> str:
    """pareto.csv: one row per point (metrics of FrontPoint-like objects), in file order."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for k, p in enumerate(points):
        m = p.metrics
        w.writerow([k, repr(m.error_se), repr(m.rms_error), m.threshold_reached, repr(m.energy_pj), repr(m.area),
                    repr(m.delay_ns), m.gates, m.active_nodes, p.found, p.genome_hash])
    return out.getvalue()


def within(m: Metrics, max_error: float) -> bool:
    """SE <= T^2 * N exactly (T a per-weight RMS error, as --threshold)."""
    return Fraction(m.error_se) <= Fraction(repr(float(max_error))) ** 2 * m.n_targets


def choose_point(points, point: int | None = None, max_error: float | None = None, source: str = "the run"):
    """The point ``point`` (its index), or the cheapest point whose per-weight RMS error is at
    most ``max_error`` (lowest energy, then gates, delay, error)."""
    if point is not None and max_error is not None:
        raise UserError("give --point or --max-error, not both")
    if not points:
        raise UserError(f"{source} keeps no Pareto front (it ran with --pareto-size 0)")
    if point is not None:
        if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point < len(points):
            raise UserError(f"--point must be from 0 to {len(points) - 1} (the front of {source}), got {point!r}")
        return points[point]
    if not (isinstance(max_error, (int, float)) and math.isfinite(max_error) and max_error >= 0):
        raise UserError(f"--max-error must be a per-weight RMS error >= 0, got {max_error!r}")
    fit = [p for p in points if within(p.metrics, max_error)]
    if not fit:
        best = min(p.metrics.rms_error for p in points)
        raise UserError(f"no point of the front of {source} has a per-weight RMS error of at most {max_error:g} "
                        f"(the lowest is {best:.4g})")
    return min(fit, key=lambda p: (p.metrics.energy_pj, p.metrics.gates, p.metrics.delay_ns, p.metrics.error_se))
