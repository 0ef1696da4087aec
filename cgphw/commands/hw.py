"""Hardware commands: `cgphw export` (genome -> Verilog/RTLIL + manifest)."""
from __future__ import annotations

import json

import click


@click.command("export")
@click.argument("source", metavar="RUNDIR|GENOME.json", type=click.Path(path_type=str))
@click.option("--pipeline", "pipeline", type=int, default=None, metavar="K",
              help="Pipelined form: a register bank every K logic levels (default: combinational).")
@click.option("--name", default=None, help="Module and directory name (default: from the run dir / file name).")
@click.option("--out", "out_dir", default="rtl_out", show_default=True, type=click.Path(path_type=str),
              help="Directory that receives NAME/.")
@click.option("--force", is_flag=True, help="Export a run that never reached its error threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export_cmd(source, pipeline, name, out_dir, force, as_json):
    """Emit a run's best circuit (or a genome file) as Verilog and RTLIL in OUT/NAME/, with a
    manifest NAME.json and the ROM baseline NAME_rom.v. OUT/NAME must be new, empty or an
    earlier export: its files are replaced, files cgphw did not write there are kept.
    The run is checked first (exit 1 if its files contradict each other)."""
    from cgphw.hw.export import export

    result = export(source, out_dir=out_dir, name=name, pipeline=pipeline, force=force)
    target, m = result.directory, result.manifest
    if as_json:
        click.echo(json.dumps({"dir": str(target), "name": m.name, "latency": m.latency, "pipeline": m.pipeline,
                               "gates": m.doc.gates, "depth": m.doc.depth, "genome_hash": m.genome_hash,
                               "ports": [vars(p) for p in m.ports], "files": list(result.files)}, indent=1))
        return
    form = f"pipelined every {pipeline} levels, latency {m.latency}" if pipeline else "combinational"
    click.echo(f"{target}: {m.doc.gates} gates, depth {m.doc.depth}, {form}")
    for f in result.files:
        click.echo(f"  {target / f}")
    if m.baseline is None:
        click.echo(f"  (no ROM baseline: {m.doc.baseline_note})")


def register(group) -> None:
    group.add_command(export_cmd)
