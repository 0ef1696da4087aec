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
    @click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
    def bench_cmd(seconds, only, as_json):
        """Offspring evaluations per second on the thesis-shaped workloads (vs the original C++)."""
        from cgphw.cgp.bench import run_bench

        if not 0 < seconds <= 3600:  # NaN and inf too: a bench must end
            raise UserError(f"--seconds must be positive and at most 3600, got {seconds}")
        click.echo("compiling and timing (numba's first compile takes a while) ...", err=True)
        report = run_bench(seconds, set(only) or None)
        if as_json:
            click.echo(json.dumps(report, indent=1))
            return
        m = report["machine"]
        click.echo(f"machine: {m['cpu']}, {m['cpu_count']} CPUs, load {m['load_average']} -> "
                   f"{report['load_after']}; threads {m['threads']}")
        click.echo(f"{'workload':<12} {'lambda':>6} {'gen/s':>10} {'offspring/s':>12} {'target':>9} "
                   f"{'C++ 2 cores':>11} {'offspring/cpu-s':>15} {'active':>7} {'ns/active node':>14} {'ns/node eval':>12}")
        for r in report["results"]:
            click.echo(f"{r['workload']:<12} {r['lambda']:>6} {r['generations_per_s']:>10,.0f} "
                       f"{r['offspring_per_s']:>12,.0f} {r['target']:>9,} {r['original_cpp_2cores']:>11,} "
                       f"{r['offspring_per_cpu_s']:>15,.0f} "
                       f"{r['active_nodes']:>7,.0f} {r['ns_per_active_node']:>14.2f} {r['ns_per_node_eval']:>12.1f}")
