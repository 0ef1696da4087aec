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
    manifest NAME.json and the ROM baseline NAME_rom.v; replaces an earlier export atomically."""
    from cgphw.hw.export import export

    target, manifest = export(source, out_dir=out_dir, name=name, pipeline=pipeline, force=force)
    files = sorted(p.name for p in target.iterdir())
    if as_json:
        click.echo(json.dumps({"dir": str(target), "name": manifest["name"], "latency": manifest["latency"],
                               "pipeline": manifest["pipeline"], "gates": manifest["gates"],
                               "depth": manifest["depth"], "genome_hash": manifest["genome_hash"],
                               "ports": manifest["ports"], "files": files}, indent=1))
        return
    form = (f"pipelined every {pipeline} levels, latency {manifest['latency']}" if pipeline
            else "combinational")
    click.echo(f"{target}: {manifest['gates']} gates, depth {manifest['depth']}, {form}")
    for f in files:
        click.echo(f"  {target / f}")
    if manifest["baseline"] is None:
        click.echo(f"  (no ROM baseline: {manifest['baseline_note']})")


def register(group) -> None:
    group.add_command(export_cmd)
