"""The search's Pareto archive seen from Python, between chunks of generations: its part of
the checkpoint (``archive_state`` / ``restore_archive``), the front the run directory shows
(``FrontWriter``), and where --objective pareto takes its next parent (``Rotation``).

In the checkpoint each member is stored as the genes in which it differs from the
checkpoint's parent (positions ``at`` and values ``genes``, Genome encoding), with its hash,
the generation it was found and its entry number; members in order of entry, which is the
archive's own order (its rules break ties by it), so a resume continues the same archive.
"""
from __future__ import annotations


import numpy as np

from cgphw.cgp.engine import Engine
from cgphw.cgp.front import FrontPointRecord, FrontRecord, sort_key
from cgphw.cgp.genome import Genome, genes_digest
from cgphw.cgp.metrics import Metrics, search_metrics
from cgphw.errors import MismatchError, UserError


def archive_state(engine: Engine, parent: Genome) -> dict:
    """The archive as the checkpoint stores it (see the module text)."""
    grid, problem = parent.grid, engine.problem
    members = []
    for G, found, entry in engine.members():
        genes = problem.to_genome_genes(G)
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

    def point(self, G: np.ndarray, found: int, entry: int) -> FrontPointRecord:
        if entry not in self.done:
            self.done[entry] = FrontPointRecord(*self.circuit(G), found)
        return self.done[entry]

    def circuit(self, G: np.ndarray) -> tuple[dict, str, Metrics]:
        """(genome JSON, hash, Metrics) of internal genes (a value bank's: expanded)."""
        engine = self.engine
        compact = engine.problem.to_genome(G)
        genome = self.bank.expand(compact) if self.bank else compact
        m, active = engine.member_figures(G)
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
