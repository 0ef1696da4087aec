"""`cgphw run` (a campaign of runs from an experiment file), `cgphw results` (its table,
summarised) and `cgphw report` (its HTML page)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cgphw.errors import UserError

# the figures `cgphw results` can show (results.FIGURES; listed here to keep start-up light)
FIGURE_NAMES = ("error", "energy", "gates", "synth_cells", "synth_pj_per_weight", "top1_after", "delta_top1",
                "wall_seconds")
CLUSTER_HELP = ("local (default: this machine, one worker per core), pbs, slurm (dask-jobqueue), "
                "or the address of a running Dask scheduler (tcp://host:8786)")


def register(group) -> None:
    group.add_command(run_cmd)
    group.add_command(results_cmd)
    group.add_command(report_cmd)


@click.command("run")
@click.argument("experiment", required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Campaign folder [default: campaigns/NAME-PROFILE]; run again to continue it.")
@click.option("--profile", default="full", show_default=True,
              help="quick (a minute or two), full (the study), or another the file names "
                   "(study: the study's thresholds in about 10 minutes on 2 cores, where given).")
@click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Change a setting of the experiment (TOML value; a list is a sweep), e.g. search.seed=[1,2,3].")
@click.option("--cluster", default=None, help=CLUSTER_HELP)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="local: worker processes [default: all cores, or cores / search.workers]; "
                   "pbs/slurm: jobs [default: 1].")
@click.option("--queue", default=None, help="pbs/slurm: queue (partition).")
@click.option("--account", default=None, help="pbs/slurm: account (project) to charge.")
@click.option("--walltime", default=None, help="pbs/slurm: wall time per job, e.g. 04:00:00.")
@click.option("--memory", default=None, help="pbs/slurm: memory per job, e.g. 16GB.")
@click.option("--cores", type=click.IntRange(min=1), default=None, help="pbs/slurm: cores per job.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="pbs/slurm: worker processes per job [default: one per core].")
@click.option("--interface", default=None,
              help="pbs/slurm: network interface the scheduler and the workers use, e.g. ib0 (lo: one machine).")
@click.option("--job-extra", multiple=True,
              help="pbs/slurm: one more #PBS/#SBATCH option, e.g. --qos=high (repeatable).")
@click.option("--worker-wait", type=click.FloatRange(min=0, max=1e7), default=None,
              help="Stop (resumable) after this many seconds with no worker connected "
                   "[default: 120 local, 600 address, 1800 pbs/slurm; 0: wait forever].")
@click.option("--job-script", is_flag=True, help="pbs/slurm: print the job script a job would submit, and exit.")
@click.option("--no-report", is_flag=True, help="Do not write report.html at the end.")
@click.option("--list", "list_shipped", is_flag=True, help="List the experiments shipped with cgphw, and exit.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def run_cmd(experiment, out, profile, overrides, cluster, workers, queue, account, walltime, memory, cores,
            processes, interface, job_extra, worker_wait, job_script, no_report, list_shipped, quiet, as_json):
    """Run every run of EXPERIMENT (a shipped name such as single-filter, or a .toml file)
    through task -> evolve -> export -> synth -> verify -> insert, on Dask. A stage whose
    output exists and is valid is skipped: run the same command again to continue a
    stopped campaign; a finished one does no work. Exit 1 when a run failed."""
    from cgphw.campaign.cluster import ClusterSettings, job_script as render
    from cgphw.campaign.experiment import load_experiment, shipped

    if list_shipped:
        _list(shipped())
        return
    if experiment is None:
        raise UserError("name an experiment (see `cgphw run --list`) or give an experiment file")
    exp = load_experiment(experiment, profile, overrides=list(overrides))
    settings = ClusterSettings.from_table(exp.table("cluster"), exp.path).merged(
        kind=cluster, workers=workers, queue=queue, account=account, walltime=walltime, memory=memory,
        cores=cores, processes=processes, interface=interface, job_extra=job_extra, worker_wait=worker_wait)
    if job_script:
        click.echo(render(settings, threads_per_run=exp.threads_per_run))
        return
    from cgphw.campaign.report import write_report
    from cgphw.campaign.runner import run_campaign

    result = run_campaign(exp, out, cluster=settings, show_progress=not quiet and not as_json,
                          overrides=list(overrides))
    report = None if no_report or result.ran + result.reused == 0 else write_report(result.out)
    if as_json:
        doc = result.to_json()
        seconds = doc.pop("seconds")
        click.echo(json.dumps({**doc, "report": str(report) if report else None, "seconds": seconds}))
    else:
        click.echo("\n".join(result.lines()))
        if report:
            click.echo(f"report:  {report}")
    if result.failed:
        first = next(iter(result.failed.items()))
        click.echo(f"error: {len(result.failed)} run(s) failed, e.g. {first[0]}: {first[1]} "
                   f"(see its log.jsonl; run the command again to retry)", err=True)
        sys.exit(1)


def _list(found: dict) -> None:
    from cgphw.campaign.experiment import load_experiment

    for name in found:
        exp = load_experiment(name, "full")
        click.echo(f"{name:<18} {exp.description}  [profiles: {', '.join(exp.profiles)}]")


@click.command("results")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--group-by", default=None,
              help="Comma-separated columns to group by [default: the settings that differ between runs].")
@click.option("--figures", default=None,
              help="Comma-separated figures to show, of: " + ", ".join(FIGURE_NAMES) + " [default: all].")
@click.option("--runs", "per_run", is_flag=True, help="Print every run's row instead of the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (or rows) as JSON.")
def results_cmd(folder, group_by, figures, per_run, as_json):
    """Summarise a campaign's results (FOLDER from `cgphw run`): per setting, runs that
    reached their threshold and were verified, and min–max (median) of error, energy,
    gates, cells, accuracy and wall time (per run)."""
    from cgphw.campaign.results import default_group_by, format_summary, load_results, summarize

    frame = load_results(folder)
    if per_run:
        columns = ["run", "task", "grid", "threshold", "seed", "reached", "error", "energy", "gates", "synth_cells",
                   "verified", "top1_after", "wall_seconds"]
        shown = frame[[c for c in columns if c in frame]]
        click.echo(shown.to_json(orient="records") if as_json else shown.to_string(index=False))
        return
    keys = [k.strip() for k in group_by.split(",") if k.strip()] if group_by else default_group_by(frame)
    shown = [f.strip() for f in figures.split(",") if f.strip()] if figures else None
    summary = summarize(frame, keys, figures=shown)
    click.echo(summary.to_json(orient="records") if as_json else format_summary(summary, keys))


@click.command("report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write [default: FOLDER/report.html].")
@click.option("--force", is_flag=True, help="Replace a file at --out that is not a report cgphw wrote.")
def report_cmd(folder, out, force):
    """Write one self-contained HTML page on a campaign: convergence, the error–energy front,
    accuracy and energy per layer, sensitivity, the best circuit as a gate graph, and
    synthesis against a ROM and an SRAM read."""
    from cgphw.campaign.report import write_report

    click.echo(f"wrote {write_report(folder, out=out, force=force)}")
