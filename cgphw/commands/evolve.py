"""`cgphw evolve` (run or resume a CGP search) and `cgphw show` (a run's circuit)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from cgphw.errors import UserError
from cgphw.files import read_json

# What defines a run (fixed at its start): --resume refuses them rather than ignore them.
RUN_SETTINGS = ("task_file", "rows", "cols", "levels_back", "lam", "mutation_max", "threshold", "value_bank",
                "function_set", "seed", "patience", "out", "costs", "checkpoint_every", "force", "mutation",
                "adaptive", "start", "objective", "pareto_size", "rotate_every")


def progress_printer():
    """Progress on stderr: start-up, then one line per tick (generation, error, energy, speed)."""
    last = {}

    def show(info: dict) -> None:
        event = info.get("event")
        if event == "compiling":
            click.echo("compiling… (numba kernels: the first run only, then cached; not counted in the time "
                       "budget)", err=True)
            return
        if event == "ready":
            click.echo(f"ready after {info['startup_seconds']:.1f} s of start-up; searching", err=True)
            if info.get("constants_only"):
                click.echo("no inputs: the energy below is the search's per-gate model that ranks circuits; in "
                           "hardware this circuit folds to constants (0 cells)", err=True)
            return
        dg = info["generations"] - last.get("generations", 0)
        dt = info["seconds"] - last.get("seconds", 0.0)
        last.update(generations=info["generations"], seconds=info["seconds"])
        rate = dg / dt if dt > 0 else 0.0
        click.echo(f"gen {info['generations']:>11,}  phase {info['phase']}  error {info['error_se']:<10g} "
                   f"energy {info['energy_pj']:.4f} pJ  gates {info['gates']:>5}"
                   f" (active nodes {info.get('active_nodes', '?')})"
                   f"  {rate:,.0f} gen/s"
                   f"  workers {info.get('workers', 1)}"
                   + (f"  front {info['front']}" if info.get("front") is not None else ""), err=True)

    return show


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


def register(group) -> None:
    @group.command("evolve")
    @click.argument("task_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--rows", type=int, help="Grid rows.")
    @click.option("--cols", type=int, help="Grid columns.")
    @click.option("--levels-back", type=int, help="Columns a node may read back (default: cols).")
    @click.option("--lambda", "lam", type=int, default=4, show_default=True, help="Offspring per generation.")
    @click.option("--mutation-max", type=float, default=0.15, show_default=True,
                  help="k = ceil(F * genes) for --mutation uniform/active: each offspring changes 1..k genes "
                       "(active genes); the ceiling of the rate with --adaptive.")
    @click.option("--mutation", type=click.Choice(["single", "active", "uniform"]), default="single",
                  show_default=True, help="single: genes until one active gene changed (Goldman & Punch); "
                  "active: until 1..k active genes changed; uniform: 1..k genes (k from --mutation-max).")
    @click.option("--adaptive/--fixed-rate", default=False, show_default=True,
                  help="Adapt the mutation rate by the 1/5th success rule (up to --mutation-max).")
    @click.option("--start", type=click.Choice(["auto", "random", "constructive"]), default="auto",
                  show_default=True, help="First parent: random, or constructive (every wanted value built from "
                  "the constants); auto: constructive for --value-bank and no-input tasks, else random.")
    @click.option("--threshold", type=float, default=0.0, show_default=True,
                  help="Per-weight RMS error t allowed (SE <= t^2 N).")
    @click.option("--objective", type=click.Choice(["lexicographic", "pareto"]), default="lexicographic",
                  show_default=True, help="lexicographic: error to the threshold, then energy, error, delay, "
                  "gates; pareto: search for the Pareto front itself (a child must be no worse in all four, the "
                  "parent moves along the archive every --rotate-every generations).")
    @click.option("--pareto-size", type=int, default=64, show_default=True,
                  help="Capacity of the Pareto archive of (error, energy, delay, gates) written to pareto.json "
                       "(16..1000; 0: none). When full, the most crowded point goes (README).")
    @click.option("--rotate-every", type=int, default=1000, show_default=True,
                  help="--objective pareto: generations between parent moves along the front.")
    @click.option("--value-bank", is_flag=True, help="Evolve the distinct values only, then wire each weight.")
    @click.option("--function-set", default="seed27", show_default=True,
                  help="Set name or comma-separated gate ids/names.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--generations", type=int, help="Stop after N generations (default 1,000,000 if no other limit).")
    @click.option("--time-budget", type=float, help="Stop after SEC seconds of search.")
    @click.option("--patience", type=int, help="Stop after N generations without improvement.")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                  help="Run directory (default runs/<task>-s<seed>).")
    @click.option("--costs", type=click.Path(dir_okay=False, path_type=Path),
                  help="Gate cost table (default: packaged).")
    @click.option("--checkpoint-every", type=float, default=30.0, show_default=True,
                  help="Seconds between checkpoints.")
    @click.option("--force", is_flag=True, help="Replace an existing run in --out.")
    @click.option("--workers", default="auto", show_default=True,
                  help="Threads evaluating offspring: N, or auto (all CPUs when that is faster). "
                       "Never changes the result.")
    @click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
                  help="Continue the run in RUNDIR from its checkpoint.")
    @click.option("--quiet", is_flag=True, help="No progress on stderr.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def evolve_cmd(task_file, rows, cols, levels_back, lam, mutation_max, mutation, adaptive, start, threshold,
                   objective, pareto_size, rotate_every, value_bank, function_set, seed, generations, time_budget,
                   patience, out, costs, checkpoint_every, force, workers, resume_dir, quiet, as_json):
        """Evolve a circuit for TASK_FILE (.npz with int8 inputs/targets), or --resume a run."""
        from cgphw.cgp.search import Interrupted, evolve, resume

        prog = None if quiet else progress_printer()
        try:
            if resume_dir is not None:
                ctx = click.get_current_context()
                given = [p.opts[0] if isinstance(p, click.Option) else p.human_readable_name for p in ctx.command.params
                         if p.name in RUN_SETTINGS and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
                if given:  # the run's settings live in its config.json; changing them would not be a resume
                    raise UserError(f"--resume continues a run as it was configured, so it takes only "
                                    f"--generations, --time-budget and --workers, not {', '.join(given)}")
                result = resume(resume_dir, generations=generations, time_budget=time_budget, progress=prog,
                                workers=workers)
            else:
                if task_file is None:
                    raise UserError("give a task file (cgphw evolve TASK.npz --rows R --cols C) or --resume RUNDIR")
                if rows is None or cols is None:
                    raise UserError("--rows and --cols are required to evolve a new circuit")
                if not checkpoint_every > 0:  # NaN too: it would never checkpoint
                    raise UserError("--checkpoint-every must be a positive number of seconds")
                out = out if out is not None else Path("runs") / f"{task_file.stem}-s{seed}"
                result = evolve(task_file, rows, cols, levels_back, lam, mutation_max, threshold, value_bank,
                                function_set, seed, generations, time_budget, patience, out, costs, prog,
                                checkpoint_every, force, workers, mutation, adaptive, start, objective, pareto_size,
                                rotate_every)
        except Interrupted as exc:
            click.echo(str(exc), err=True)
            sys.exit(130)
        if as_json:
            click.echo(json.dumps({"run_dir": str(result.run_dir), "stop_reason": result.stop_reason,
                                   "metrics": result.metrics.to_json(), "genome": result.genome.to_json()},
                                  allow_nan=False))
        else:
            click.echo("\n".join(summary_lines(result.metrics, result.genome, result.value_bank,
                                               f"run {result.run_dir}  (stopped: {result.stop_reason})")))

    @group.command("show")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--costs", type=click.Path(dir_okay=False, path_type=Path), help="Cost table for a bare genome.")
    @click.option("--json", "as_json", is_flag=True, help="Print metrics and expressions as JSON.")
    def show_cmd(path, costs, as_json):
        """Show a run (RUNDIR, checked as a whole) or a genome file: metrics and the circuit.
        Exit 1 when the run's files contradict each other or a re-evaluation of its genome."""
        genome, metrics, value_bank, header, front = shown(path, costs)
        if as_json:
            click.echo(json.dumps({"metrics": metrics.to_json(), "expressions": genome.expressions(),
                                   "genome_hash": genome.digest(),
                                   "pareto": [{"point": p.index, "metrics": p.metrics.to_json(), "found": p.found,
                                               "genome_hash": p.genome.digest()} for p in front]},
                                  allow_nan=False))
        else:
            click.echo("\n".join(summary_lines(metrics, genome, value_bank, header) + front_lines(front)))


def front_lines(front) -> list[str]:
    """`show`'s table of a run's Pareto front (export one with `cgphw export RUNDIR --point K`)."""
    if not front:
        return []
    lines = [f"Pareto front {len(front)} points (error, energy, delay, gates; export one with --point K):",
             f"  {'K':>3} {'SE':>12} {'RMS':>9} {'energy pJ':>10} {'delay ns':>9} {'gates':>6} {'nodes':>6} "
             f"{'found':>11}"]
    for p in front:
        m = p.metrics
        lines.append(f"  {p.index:>3} {m.error_se:>12g} {m.rms_error:>9.4g} {m.energy_pj:>10.4f} {m.delay_ns:>9.4g} "
                     f"{m.gates:>6} {m.active_nodes:>6} {p.found:>11,}" + ("" if m.threshold_reached else "  (over t)"))
    return lines


def shown(path: Path, costs=None):
    """(genome, Metrics, value bank, header, Pareto front) of what `show` shows. A run directory,
    or a run's best.json, is read with load_run (every claim checked); a bare genome is priced
    afresh (and has no front)."""
    from cgphw.cgp.genome import Genome
    from cgphw.cgp.metrics import circuit_metrics
    from cgphw.cgp.rundir import BEST, RUN_FORMAT, load_run
    from cgphw.costs import load_costs

    if path.is_dir():
        run = load_run(path)
        return run.genome, run.metrics, run.value_bank, str(path), run.pareto
    if not path.is_file():
        raise UserError(f"{path} is neither a run directory nor a genome file")
    doc = read_json(path)
    kind = doc.get("format") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind.split("/")[0] == RUN_FORMAT.split("/")[0]:
        if path.name != BEST:
            raise UserError(f"{path} is a run's {BEST}, which is only checked inside its run directory; "
                            "show the run directory")
        run = load_run(path.parent)
        return run.genome, run.metrics, run.value_bank, str(path), run.pareto
    inner = doc["genome"] if isinstance(doc, dict) and "format" not in doc and isinstance(doc.get("genome"), dict) \
        else doc
    genome = Genome.from_json(inner, source=str(path))
    return genome, circuit_metrics(genome, load_costs(costs)), None, str(path), ()
