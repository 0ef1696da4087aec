"""`cgphw bench`: speed of the compiled CGP loop on three fixed, seeded workloads."""
from __future__ import annotations

import json

import click

from cgphw.errors import UserError


def register(group) -> None:
    @group.command("bench")
    @click.option("--seconds", type=float, default=3.0, show_default=True, help="Timed seconds per workload.")
    @click.option("--only", multiple=True, type=click.Choice(["5x5", "500x30", "256x31-bank"]),
                  help="Run only these workloads.")
    @click.option("--workers", type=int, help="Threads for the parallel column (default: all available CPUs).")
    @click.option("--search", is_flag=True, help="Compare search operators instead: error/energy/gates reached on "
                  "the shipped LeNet-5's layer tasks with fixed seeds and generation budgets (a few minutes).")
    @click.option("--budget-scale", type=float, default=1.0, show_default=True,
                  help="--search: multiply every generation budget by this.")
    @click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
    def bench_cmd(seconds, only, workers, search, budget_scale, as_json):
        """Offspring evaluations per second on the thesis-shaped workloads, one thread and all
        threads side by side (vs the original C++); or, with --search, search operators compared."""
        from cgphw.bench.speed import run_bench
        from cgphw.cgp.parallel import resolve_workers

        if search:
            return _search_bench(budget_scale, workers, as_json)
        if not 0 < seconds <= 3600:  # NaN and inf too: a bench must end
            raise UserError(f"--seconds must be positive and at most 3600, got {seconds}")
        team = resolve_workers(workers if workers is not None else "auto")[0]
        click.echo("compiling and timing (numba's first compile takes a while) ...", err=True)
        report = run_bench(seconds, set(only) or None, team)
        if as_json:
            click.echo(json.dumps(report, indent=1))
            return
        m = report["machine"]
        click.echo(f"machine: {m['cpu']}, {m['available_cpus']} CPUs available, load average {m['load_average']} "
                   f"-> {report['load_after']}")
        n = max((r["workers"] for r in report["results"]), default=1)
        click.echo(f"{'workload':<12} {'lambda':>6} {'offspring/s':>12} {f'{n} workers':>12} {'speed-up':>8} "
                   f"{'CPU use':>7} {'CPU/offspring':>13} {'target':>9} {'C++ 2 cores':>11} {'active':>7} "
                   f"{'ns/node eval':>12} {'archive':>8} {'(CPU)':>6} {'front':>5}")
        for r in report["results"]:
            click.echo(f"{r['workload']:<12} {r['lambda']:>6} {r['offspring_per_s_1']:>12,.0f} "
                       f"{r['offspring_per_s']:>12,.0f} {r['speedup']:>7.2f}x {r['cpu_use']:>7.2f} "
                       f"{r['cpu_seconds'] / max(r['cpu_seconds_1'], 1e-9):>12.2f}x "
                       f"{r['target']:>9,} {r['original_cpp_2cores']:>11,} "
                       f"{r['active_nodes']:>7,.0f} {r['ns_per_node_eval']:>12.1f} "
                       f"{100 * r['archive_cost']:>+7.1f}% {100 * r['archive_cpu_cost']:>+5.1f}% "
                       f"{r['archive_points']:>5}")
        click.echo("CPU use: CPUs the threads got on average (a busy machine gives less than the workers); "
                   "CPU/offspring: the threads' CPU time over one thread's for the same work; archive: the "
                   "time one thread takes more with the Pareto archive (wall, CPU), front: its points.")


def _search_bench(scale, workers, as_json):
    from cgphw.bench.operators import run_search_bench
    from cgphw.nn.model import load_model
    from cgphw.nn.selectors import make_task

    if not (0 < scale <= 100):
        raise UserError(f"--budget-scale must be positive and at most 100, got {scale}")
    model = load_model()
    tasks = {"bank": make_task(model, "const:conv1,conv2"), "bypass": make_task(model, "layer:conv1->conv2")}

    def say(case, op, r):
        click.echo(f"  {case.name}: {op.name}, seed {r['seed']}: RMS {r['rms_error']:.3f}, "
                   f"{r['gates']} gates, {r['wall_s']:.1f} s", err=True)

    click.echo("search operators on the shipped LeNet-5 (fixed seeds and generation budgets) ...", err=True)
    report = run_search_bench(tasks, scale=scale, workers=workers or "auto", progress=say)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    m = report["machine"]
    click.echo(f"machine: {m['cpu']}, {m['available_cpus']} CPUs available, load average {m['load_average']} "
               f"-> {report['load_after']}; seeds {report['seeds']}, medians")
    click.echo(f"{'case':<24} {'operator':<36} {'generations':>11} {'reached':>7} {'RMS error':>9} "
               f"{'energy pJ':>9} {'gates':>6} {'nodes':>6} {'wall s':>7} {'CPU s':>7}")
    for r in report["results"]:
        click.echo(f"{r['case']:<24} {r['operator']:<36} {r['generations']:>11,} "
                   f"{r['reached']:>3}/{len(r['seeds']):<3} {r['rms_error']:>9.3f} {r['energy_pj']:>9.3f} "
                   f"{r['gates']:>6.0f} {r['active_nodes']:>6.0f} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f}")
