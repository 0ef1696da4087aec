"""`cgphw evolve` (run or resume a CGP search) and `cgphw show` (a run's circuit)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from cgphw.cgp.metrics import summary_lines
from cgphw.cgp.settings import SEED, SEED_KNOB, Limits, SearchSettings, check_seed, knobs, settings_of
from cgphw.errors import UserError
from cgphw.files import read_json


def progress_printer():
    """Progress on stderr: start-up, then one line per tick (generation, error, energy, speed)."""
    last: dict = {}

    def show(event) -> None:
        info = event.fields
        if event.what == "compiling":
            click.echo("compiling… (numba kernels: the first run only, then cached; not counted in the time "
                       "budget)", err=True)
            return
        if event.what == "ready":
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


def settings_options(cls, skip=()):
    """click options for every setting of ``cls`` (SearchSettings, Limits): flag, type,
    default and help all come from the class, so a new setting is a new option."""
    from dataclasses import MISSING

    def add(command):
        for s in reversed([s for s in knobs(cls) if s.attr not in skip]):
            k = s.knob
            kind = click.Choice(list(k.choices)) if k.choices else {"int": int, "float": float, "str": str}.get(k.kind)
            default = None if s.default is MISSING else s.default
            extra = dict(is_flag=True) if k.kind == "bool" and "/" not in k.flag else dict(type=kind)
            command = click.option(k.flag or option_name(s.name), s.attr, default=default, help=k.help,
                                   show_default=default is not None and default is not False, **extra)(command)
        return command

    return add


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# What defines a run (fixed at its start): --resume refuses them rather than ignore them.
RUN_SETTINGS = (*(s.attr for s in knobs(SearchSettings)), "patience", "task_file", "seed", "out", "costs", "force")


def register(group) -> None:
    @group.command("evolve")
    @click.argument("task_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @settings_options(SearchSettings, skip=("checkpoint_every",))
    @click.option("--seed", type=int, default=SEED, show_default=True, help=SEED_KNOB.help)
    @settings_options(Limits)
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                  help="Run directory (default runs/<task>-s<seed>).")
    @click.option("--costs", type=click.Path(dir_okay=False, path_type=Path),
                  help="Gate cost table (default: packaged).")
    @settings_options(SearchSettings, skip=tuple(s.attr for s in knobs(SearchSettings) if s.attr != "checkpoint_every"))
    @click.option("--force", is_flag=True, help="Replace an existing run in --out.")
    @click.option("--workers", default="auto", show_default=True,
                  help="Threads evaluating offspring: N, or auto (all CPUs when that is faster). "
                       "Never changes the result.")
    @click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
                  help="Continue the run in RUNDIR from its checkpoint.")
    @click.option("--quiet", is_flag=True, help="No progress on stderr.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def evolve_cmd(task_file, seed, out, costs, force, workers, resume_dir, quiet, as_json, **values):
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
                more = {"generations": values["generations"], "time_budget": values["time_budget"]}
                if any(v is not None for v in more.values()):
                    settings_of(Limits, more, key=option_name)  # checked here to name the options
                result = resume(resume_dir, **more, progress=prog, workers=workers)
            else:
                if task_file is None:
                    raise UserError("give a task file (cgphw evolve TASK.npz --rows R --cols C) or --resume RUNDIR")
                if values["rows"] is None or values["cols"] is None:
                    raise UserError("--rows and --cols are required to evolve a new circuit")
                settings, limits = cli_settings(values)
                seed = settings_of(check_seed, {"seed": seed}, key=option_name)
                out = out if out is not None else Path("runs") / f"{task_file.stem}-s{seed}"
                result = evolve(task_file, settings, limits, seed=seed, out=out, costs=costs, progress=prog,
                                force=force, workers=workers)
        except Interrupted as exc:
            click.echo(str(exc), err=True)
            sys.exit(130)
        if as_json:
            click.echo(json.dumps(result.to_json(), allow_nan=False))
        else:
            click.echo("\n".join(result.lines()))

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


def cli_settings(values: dict) -> tuple[SearchSettings, Limits]:
    """The SearchSettings and Limits of `cgphw evolve`'s options (``values``: by field name);
    an error names the option."""
    def pick(cls):
        return settings_of(cls, {s.attr: values[s.attr] for s in knobs(cls)}, key=option_name)

    return pick(SearchSettings), pick(Limits)


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
