"""`cgphw demo`: evolve a circuit for the shipped example task and show it."""
from __future__ import annotations

import json
from pathlib import Path

import click


def register(group) -> None:
    @group.command("demo")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
                  show_default=True, help="Run directory (replaced if it exists).")
    @click.option("--seed", type=int, default=1, show_default=True)
    @click.option("--generations", type=int, default=2_000_000, show_default=True)
    @click.option("--time-budget", type=float, default=45.0, show_default=True, help="Seconds of search at most.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def demo_cmd(out, seed, generations, time_budget, as_json):
        """Evolve the thesis' LeNet-5 kernel (3x3 core -> 16-weight ring) on a 5x5 grid."""
        from cgphw.cgp.search import evolve
        from cgphw.cgp.settings import Limits, SearchSettings, settings_of
        from cgphw.commands.evolve import option_name, progress_printer
        from cgphw.task import example_task

        task = example_task()
        click.echo(f"task: core {task.inputs[0].tolist()} -> ring {task.targets[0].tolist()}", err=True)
        click.echo("evolving on a 5x5 grid, levels-back 5, threshold 0 ...", err=True)
        limits = settings_of(Limits, {"generations": generations, "time_budget": time_budget}, key=option_name)
        result = evolve(task, SearchSettings(rows=5, cols=5, levels_back=5), limits, seed=seed, out=out, force=True,
                        progress=progress_printer())
        out_values = result.genome.evaluate(task.inputs)[0].tolist()
        if as_json:
            click.echo(json.dumps({"run_dir": str(result.run_dir), "stop_reason": result.stop_reason,
                                   "metrics": result.metrics.to_json(), "outputs": out_values,
                                   "expressions": result.genome.expressions()}, allow_nan=False))
            return
        click.echo("\n".join(result.lines()))
        click.echo(f"outputs      {out_values}")
        click.echo(f"targets      {task.targets[0].tolist()}")
