"""Reference metrics of a genome in plain Python (no numba): what the compiled kernels
must reproduce exactly. Costs use the kernels' integer units (problem.COST_SCALE) so that
the numbers agree bit for bit; the error uses Genome.evaluate, the software model.
"""
from __future__ import annotations

from cgphw import gates as G
from cgphw.cgp.genome import Genome
from cgphw.cgp.problem import COST_SCALE, weighted_se
from cgphw.costs import CostTable
from cgphw.task import Task


def circuit_metrics(genome: Genome, costs: CostTable, task: Task | None = None) -> dict:
    """energy_pj / area / delay_ns / gates over the active nodes (each counted once);
    with a task also error_se (weighted squared error, don't-cares excluded)."""
    grid = genome.grid
    energy = area = 0
    gates = 0
    depth = {p: 0.0 for p in range(grid.n_inputs)}
    for k in genome.active_nodes():
        in0, in1, gid = (int(x) for x in genome.nodes[k])
        c = costs.gates[gid]
        energy += round(c.energy_pj * COST_SCALE)
        area += round(c.area * COST_SCALE)
        gates += G.gate(gid).is_logic
        arity = G.gate(gid).arity
        d = max([depth[p] for p in (in0, in1)[:arity]], default=0.0)
        depth[grid.n_inputs + k] = d + c.delay_ns
    out = {"energy_pj": energy / COST_SCALE, "area": area / COST_SCALE,
           "delay_ns": max((depth[int(p)] for p in genome.outputs), default=0.0), "gates": gates,
           "active_nodes": int(genome.active_nodes().size)}
    if task is not None:
        out["error_se"] = weighted_se(genome.evaluate(task.inputs), task.targets, task.error_weights())
    return out
