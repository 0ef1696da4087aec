"""A circuit's figures (``Metrics``) and how to compute them in plain Python (no numba):
``circuit_metrics`` is what the compiled kernels must reproduce exactly, and what every
reader of a stored result re-evaluates before believing it (``check_reproduced``).
Costs use the kernels' integer units (problem.COST_SCALE) so that the numbers agree bit
for bit; the error uses Genome.evaluate, the software model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from cgphw import gates as G
from cgphw import records
from cgphw.cgp.genome import Genome
from cgphw.cgp.problem import COST_SCALE, error_scale, quantized_weights, threshold_units
from cgphw.costs import CostTable
from cgphw.errors import MismatchError
from cgphw.task import Task


@dataclass(frozen=True)
class Metrics:
    """What a circuit costs and how well it computes its task. Figures that need a task
    (error, threshold) or a search (counters, seconds) are None when unknown. Stored as a
    JSON object with exactly these keys (``to_json``/``from_json`` check every type); to add
    a figure, add a field with a default here (older files then read as that default)."""
    energy_pj: float  # per evaluation: sum over active gates, each once, from the cost table
    area: float  # in the cost table's area unit
    delay_ns: float  # longest input -> output path
    gates: int  # active logic gates: neither constants nor wires
    active_nodes: int  # every node reachable from the outputs (constants and wires too)
    error_se: float | None = None  # weighted squared error on the task's targets that count
    n_targets: int | None = None  # N of the threshold rule SE <= t^2 * N
    rms_error: float | None = None  # sqrt(SE / N)
    threshold: float | None = None  # per-weight RMS error allowed
    threshold_reached: bool | None = None
    generations: int | None = None  # search counters, where known
    evaluations: int | None = None  # offspring created
    evaluated: int | None = None  # offspring evaluated (the rest changed no active gene)
    node_evals: int | None = None
    seconds: float | None = None  # search time
    startup_seconds: float | None = None  # before the search: loading, compiling kernels, the first parent
    workers: int | None = None  # the most threads the search could use (the result never depends on it)
    # True: the circuit has no inputs, so synthesis folds it to constants (0 cells, no logic
    # energy); energy_pj/area/delay_ns are then only the search's ranking model, not a hardware cost
    constants_only: bool | None = None

    @property
    def hardware_cost_note(self) -> str | None:
        """A plain sentence when energy_pj/area/delay_ns are not what hardware would cost."""
        if not self.constants_only:
            return None
        return (f"the circuit has no inputs, so synthesis folds it to constants (`cgphw synth` finds 0 cells): "
                f"its weights are hard-wired and cost no logic energy; the {self.energy_pj:.4f} pJ is the search's "
                "per-gate model, used only to rank circuits. For a computed ROM (inputs = the weight's address), "
                "make the task with `cgphw task make --selector address:LAYER`")

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{f.name} must be a finite number >= 0, got {v!r}")

    def to_json(self) -> dict:
        return records.to_json(self)

    @classmethod
    def from_json(cls, doc, source: str = "metrics") -> "Metrics":
        return records.from_json(cls, doc, source)

    def __getitem__(self, key: str):
        """Read access by name, as for the dicts this type replaced (``m["energy_pj"]``)."""
        if key not in _NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def replace(self, **changes) -> "Metrics":
        return replace(self, **changes)


_NAMES = frozenset(f.name for f in fields(Metrics))
# What a re-evaluation of the genome determines (the rest is the search's own account).
CIRCUIT_FIGURES = ("energy_pj", "area", "delay_ns", "gates", "active_nodes")
TASK_FIGURES = ("error_se", "n_targets", "rms_error", "threshold_reached")


def circuit_metrics(genome: Genome, costs: CostTable, task: Task | None = None, threshold: float | None = None,
                    n_targets: int | None = None) -> Metrics:
    """The genome's figures over its active nodes (each counted once); with a task also the
    weighted squared error (don't-cares excluded) and, with a threshold, whether
    SE <= t^2 * N holds (N = ``n_targets``, default the task's)."""
    grid = genome.grid
    energy = area = 0
    gates = 0
    depth = {p: 0.0 for p in range(grid.n_inputs)}
    active = genome.active_nodes()
    for k in active:
        in0, in1, gid = (int(x) for x in genome.nodes[k])
        c = costs.gates[gid]
        energy += round(c.energy_pj * COST_SCALE)
        area += round(c.area * COST_SCALE)
        gates += G.gate(gid).is_logic
        arity = G.gate(gid).arity
        d = max([depth[p] for p in (in0, in1)[:arity]], default=0.0)
        depth[grid.n_inputs + k] = d + c.delay_ns
    m = Metrics(energy_pj=energy / COST_SCALE, area=area / COST_SCALE,
                delay_ns=max((depth[int(p)] for p in genome.outputs), default=0.0), gates=gates,
                active_nodes=int(active.size), constants_only=grid.n_inputs == 0)
    return m if task is None else m.replace(**task_figures(genome, task, threshold, n_targets))


def search_metrics(figures: dict, active_nodes: int, n_targets: int, threshold: float, constants_only: bool,
                   **counts) -> Metrics:
    """Metrics of a circuit as the search figured it (``engine.metrics_from``: energy, area,
    delay, gates, error_se, threshold_reached), with its active nodes and the run's counts."""
    se = figures["error_se"]
    return Metrics(energy_pj=figures["energy_pj"], area=figures["area"], delay_ns=figures["delay_ns"],
                   gates=figures["gates"], active_nodes=active_nodes, error_se=se, n_targets=n_targets,
                   rms_error=math.sqrt(se / max(1, n_targets)), threshold=threshold,
                   threshold_reached=figures["threshold_reached"], constants_only=constants_only, **counts)


def task_figures(genome: Genome, task: Task, threshold: float | None = None, n_targets: int | None = None) -> dict:
    """error_se, n_targets, rms_error, threshold, threshold_reached of the genome on the task,
    in the search's own fixed-point error units (problem.weighted_se), so equal means equal."""
    weights = task.error_weights()
    scale = error_scale(weights)
    diff = genome.evaluate(task.inputs).astype("int64") - task.targets.astype("int64")
    units = int((quantized_weights(weights, scale) * diff * diff).sum())
    n = task.n_targets if n_targets is None else int(n_targets)
    se = units / 2.0**scale
    reached = None if threshold is None else units <= threshold_units(threshold, n, scale)
    return {"error_se": se, "n_targets": n, "rms_error": math.sqrt(se / max(1, n)),
            "threshold": None if threshold is None else float(threshold), "threshold_reached": reached}


def logic_counts(genome: Genome) -> dict:
    """gates and active_nodes: the figures of a circuit that need no cost table."""
    active = genome.active_nodes()
    return {"gates": int(sum(G.gate(int(genome.nodes[k][2])).is_logic for k in active)),
            "active_nodes": int(active.size)}


def check_reproduced(stored: Metrics, fresh: Metrics, source: str) -> None:
    """MismatchError unless every figure ``fresh`` (a re-evaluation) knows equals ``stored``'s."""
    for name in CIRCUIT_FIGURES + TASK_FIGURES:
        want, got = getattr(fresh, name), getattr(stored, name)
        if want is None:
            continue
        exact = name == "error_se" or not isinstance(want, float)  # counts, flags and the error: bit for bit
        same = got == want if exact else got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
        if not same:
            raise MismatchError(f"{source} claims {name} {got!r}, but its genome gives {want!r} when evaluated "
                                "again: the genome or its metrics were changed")


def summary_lines(metrics, genome, value_bank=None, header: str = "") -> list[str]:
    """What `show` and `evolve` print: a Metrics' figures, the grid and the circuit."""
    lines = [header] if header else []
    m = metrics
    if m.error_se is not None:
        reached = "reached" if m.threshold_reached else "NOT reached"
        lines.append(f"error (SE)   {m.error_se:g}" + (f"   threshold t={m.threshold:g}: {reached}"
                                                       if m.threshold is not None else ""))
    if m.constants_only:  # the gate model's energy is no hardware cost here: say so, don't print it as one
        lines.append("hardware     none: no inputs, so synthesis folds the circuit to constants (0 cells, no logic "
                     "energy; the weights are hard-wired)")
        lines.append(f"search model {m.energy_pj:.4f} pJ   area {m.area:g}   delay {m.delay_ns:g} ns   (the per-gate "
                     "estimate that ranks circuits, not a hardware cost)")
        lines.append("             for a computed ROM (inputs = a weight's address): cgphw task make --selector "
                     "address:LAYER")
    else:
        lines.append(f"energy       {m.energy_pj:.4f} pJ   area {m.area:g}   delay {m.delay_ns:g} ns")
    lines.append(f"gates        {m.gates} logic gates (cgphw: no constants, no wires)   {m.active_nodes} active nodes "
                 "(the study's count: every active node, constants included)")
    if m.generations is not None:
        lines.append(f"search       {m.generations:,} generations, {m.evaluations or 0:,} offspring, "
                     f"{m.seconds or 0:.1f} s" + (f" (+ {m.startup_seconds:.1f} s start-up)"
                                                  if m.startup_seconds is not None else ""))
    g = genome.grid
    lines.append(f"grid         {g.rows}x{g.cols}, levels-back {g.levels_back}, {g.n_inputs} inputs -> "
                 f"{g.n_outputs} outputs")
    if value_bank:
        lines.append(f"value bank   {value_bank['n_values']} distinct values feed {g.n_outputs} outputs")
    return lines + ["circuit:"] + ["  " + e for e in genome.expressions()]
