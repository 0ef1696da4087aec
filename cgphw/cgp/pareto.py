"""The Pareto archive seen from Python (the compiled archive itself is pareto_kernels.py).

The front of a run as its directory holds it: ``pareto.json`` (``FrontRecord``, format
cgphw-pareto/1) and ``pareto.csv``, written by the run writer from the search's archive, read
and checked by ``read_front`` (for ``load_run``). Between chunks of generations: the archive's
part of the checkpoint (``archive_state`` / ``restore_archive``), the front the run directory
shows (``FrontWriter``), and where --objective pareto takes its next parent (``Rotation``).

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

In the checkpoint each archive member is stored as the genes in which it differs from the
checkpoint's parent (positions ``at`` and values ``genes``, Genome encoding), with its hash,
the generation it was found and its entry number; members in order of entry, which is the
archive's own order (its rules break ties by it), so a resume continues the same archive.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cgphw import records
from cgphw.cgp.genome import Genome, Grid, genes_digest
from cgphw.cgp.metrics import Metrics, check_reproduced, circuit_metrics, search_metrics
from cgphw.costs import CostTable
from cgphw.errors import MismatchError, UserError
from cgphw.files import read_json
from cgphw.task import Task

if TYPE_CHECKING:  # (the engine imports the compiled loop; the front's readers need none of it)
    from cgphw.cgp.engine import Engine

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
    points: list[FrontPoint] = []
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
    assert m.error_se is not None and m.n_targets is not None  # (a front point's task figures are always there)
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


def archive_state(engine: Engine, parent: Genome) -> dict:
    """The archive as the checkpoint stores it (see the module text)."""
    grid, problem = parent.grid, engine.problem
    members = []
    for internal, found, entry in engine.members():
        genes = problem.to_genome_genes(internal)
        at = np.flatnonzero(genes != parent.genes)
        members.append({"found": found, "entry": entry, "hash": genes_digest(grid, genes),
                        "at": at.tolist(), "genes": genes[at].tolist()})
    return {**engine.archive_counters(), "members": members}


def restore_archive(engine: Engine, state, parent: Genome, source: str) -> None:
    """Put the checkpoint's archive back into ``engine``; UserError when malformed,
    MismatchError when a member's genes do not match its hash."""
    if not isinstance(state, dict) or not isinstance(state.get("members"), list):
        raise UserError(f"{source} is malformed: the state of a run with a Pareto archive holds archive.members")
    members = []
    for i, m in enumerate(state["members"]):
        try:
            at, values = np.asarray(m["at"], np.int64), np.asarray(m["genes"], np.int64)
            found, entry, digest = int(m["found"]), int(m["entry"]), str(m["hash"])
            outside = at.size and (at.min() < 0 or at.max() >= parent.genes.size)
            if at.shape != values.shape or at.ndim != 1 or outside or not 0 <= found <= engine.generation \
                    or entry < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            raise UserError(f"{source} is malformed: archive member {i} needs at, genes, found (a generation from 0 to "
                            f"{engine.generation}), entry (>= 0), hash") from None
        genes = parent.genes.copy()
        genes[at] = values
        if genes_digest(parent.grid, genes) != digest:
            raise MismatchError(f"archive member {i} of {source} does not match its recorded hash: it was changed")
        genome = Genome(parent.grid, genes)  # checks every gene against the grid
        members.append((engine.problem.to_internal(genome), found, entry))
    try:
        offered, entered = int(state.get("offered", 0)), int(state.get("entered", 0))
        if not 0 <= entered <= offered:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{source} is malformed: archive.offered and archive.entered are counts, "
                        "entered <= offered") from None
    engine.set_members(members, offered, entered)


class FrontWriter:
    """The front (FrontRecord) of an engine's archive, for pareto.json. A member's genome and
    figures are worked out once, when first written (by its entry number)."""

    def __init__(self, engine: Engine, bank, threshold: float):
        self.engine, self.bank, self.threshold = engine, bank, threshold
        self.done: dict[int, FrontPointRecord] = {}

    def point(self, internal: np.ndarray, found: int, entry: int) -> FrontPointRecord:
        if entry not in self.done:
            self.done[entry] = FrontPointRecord(*self.circuit(internal), found)
        return self.done[entry]

    def circuit(self, internal: np.ndarray) -> tuple[dict, str, Metrics]:
        """(genome JSON, hash, Metrics) of internal genes (a value bank's: expanded)."""
        engine = self.engine
        compact = engine.problem.to_genome(internal)
        genome = self.bank.expand(compact) if self.bank else compact
        m, active = engine.member_figures(internal)
        metrics = search_metrics(m, active, engine.problem.n_targets, self.threshold, genome.grid.n_inputs == 0)
        return genome.to_json(), genome.digest(), metrics

    def record(self, run_id: str, objective: str) -> FrontRecord:
        members = self.engine.members()
        points = sorted((self.point(*m) for m in members), key=lambda p: sort_key(p.metrics))
        live = {entry for _, _, entry in members}
        self.done = {k: v for k, v in self.done.items() if k in live}
        c = self.engine.archive_counters()
        return FrontRecord(run_id, self.engine.generation, self.engine.pareto_size, objective, c["offered"],
                           c["entered"], tuple(points))


class Rotation:
    """--objective pareto: every ``every`` generations, once members within the threshold exist,
    the parent becomes the next of them in order of (error, energy, delay, gates) after the
    one taken last (after the last, the first again): the search walks along the front."""

    def __init__(self, every: int, cursor=None):
        self.every = int(every)
        self.cursor = None if cursor is None else tuple(cursor)

    def boundary(self, generation: int) -> int:
        """The next generation at which the parent may change."""
        return (generation // self.every + 1) * self.every

    def turn(self, engine: Engine) -> bool:
        """At a boundary: take the next parent (True), or keep it when no member is within the threshold."""
        if engine.generation % self.every != 0:
            return False
        thr = engine.problem.thr
        keys = [(k, i) for i, k in enumerate(engine.member_keys()) if k[0] <= thr]
        if not keys:
            return False
        keys.sort()
        later = [ki for ki in keys if self.cursor is None or ki[0] > self.cursor]
        key, i = (later or keys)[0]
        engine.rebase(engine.member_genes(i))
        self.cursor = key
        return True

    def state(self):
        return None if self.cursor is None else list(self.cursor)


def restore_cursor(state, source: str):
    cursor = state.get("cursor") if isinstance(state, dict) else None
    if cursor is None:
        return None
    if not (isinstance(cursor, list) and len(cursor) == 4 and all(isinstance(x, (int, float)) and
                                                                  not isinstance(x, bool) for x in cursor)):
        raise UserError(f"{source} is malformed: cursor must be [error, energy, delay, gates]")
    return (int(cursor[0]), int(cursor[1]), float(cursor[2]), int(cursor[3]))
