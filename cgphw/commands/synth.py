"""`cgphw synth`: synthesis report of an exported circuit against its ROM baseline."""
from __future__ import annotations

import json
import sys

import click

from cgphw.errors import UserError
from cgphw.progress import echo_steps
from cgphw.hw.synth import ACTIVITY_EVALUATIONS, MAX_EVALUATIONS


def register(group) -> None:
    group.add_command(synth_cmd)


@click.command("synth")
@click.argument("rtldir", metavar="RTLDIR", type=click.Path(path_type=str))
@click.option("--prove", is_flag=True,
              help="Prove with Yosys (miter + SAT) that the mapped netlist equals the emitted RTL: both the "
                   "RTLIL (NAME.il) and the Verilog (NAME.v), and the same for the ROM baseline.")
@click.option("--netlist", "netlist_path", type=click.Path(dir_okay=False), default=None,
              help="Report on (and prove) this gate-level Verilog netlist instead of synthesising.")
@click.option("--cells", "cells_path", type=click.Path(dir_okay=False), default=None,
              help="Cell energy table [default: Nangate 45 nm, as calibration].")
@click.option("--costs", "costs_path", type=click.Path(dir_okay=False), default=None,
              help="Gate cost table for the CGP estimate [default: cgphw/data/gate_costs.json].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the activity stimulus.")
@click.option("--evaluations", default=ACTIVITY_EVALUATIONS, show_default=True, type=int,
              help="Random evaluations simulated for the activity.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def synth_cmd(rtldir, prove, netlist_path, cells_path, costs_path, seed, evaluations, as_json):
    """Synthesise RTLDIR (what `cgphw export` wrote) to the calibrated cell set and report
    cells, transistors, area, longest path and energy per evaluation, the CGP search's own
    estimate, and the ROM baseline side by side. Writes RTLDIR/NAME.synth.json and the
    mapped netlist RTLDIR/NAME.synth.v. Exits 1 when the netlist disagrees with the
    genome in simulation, a --prove fails, or a file differs from the manifest's record."""
    from cgphw.hw.synth_report import synth

    if not 16 <= evaluations <= MAX_EVALUATIONS:
        raise UserError(f"--evaluations must be from 16 to {MAX_EVALUATIONS:,}, got {evaluations}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    report = synth(rtldir, prove=prove, netlist=netlist_path, cells=cells_path, costs=costs_path, seed=seed,
                   evaluations=evaluations, progress=echo_steps(lambda m: click.echo(m, err=True)))
    click.echo(json.dumps(report.to_json(), indent=1) if as_json else "\n".join(report.lines()))
    if not report.ok:
        click.echo("error: " + report.failure(), err=True)
        sys.exit(1)
