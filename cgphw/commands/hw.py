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
@click.option("--layer", default=None,
              help="Also write the int8 layer engine for this network layer, fed by the circuit: "
                   "NAME_LAYER.v/.il/.json, a stimulus of real images and a cocotb test module.")
@click.option("--stimulus-images", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="With --layer: real images in the exported stimulus.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="With --layer: the int8 model [default: the shipped LeNet-5].")
@click.option("--point", type=int, default=None, metavar="K",
              help="Export point K of the run's Pareto front (`cgphw show RUNDIR` lists it) instead of its best.")
@click.option("--max-error", type=float, default=None, metavar="T",
              help="Export the front's cheapest point (lowest energy) with per-weight RMS error <= T.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export_cmd(source, pipeline, name, out_dir, force, layer, stimulus_images, model_path, point, max_error,
               as_json):
    """Emit a run's best circuit (or a genome file) as Verilog and RTLIL in OUT/NAME/, with a
    manifest NAME.json and the ROM baseline NAME_rom.v. OUT/NAME must be new, empty or an
    earlier export: its files are replaced, files cgphw did not write there are kept.
    The run is checked first (exit 1 if its files contradict each other).

    With --layer, the layer engine fed by the circuit goes beside it (see `cgphw verify-layer`)."""
    if layer is not None:
        if point is not None or max_error is not None:
            from cgphw.errors import UserError

            raise UserError("--layer exports the run's best circuit: it takes no --point or --max-error")
        _export_layer(source, pipeline, name, out_dir, force, layer, stimulus_images, model_path, as_json)
        return
    from cgphw.hw.export import export

    result = export(source, out_dir=out_dir, name=name, pipeline=pipeline, force=force, point=point,
                    max_error=max_error)
    click.echo(json.dumps(result.to_json(), indent=1) if as_json else "\n".join(result.lines()))


def _export_layer(source, pipeline, name, out_dir, force, layer, images, model_path, as_json) -> None:
    from cgphw.layer.export import export_layer

    result = export_layer(source, layer, out_dir=out_dir, name=name, pipeline=pipeline, force=force, images=images,
                          model=model_path)
    click.echo(json.dumps(result.to_json(), indent=1) if as_json else "\n".join(result.lines()))


def register(group) -> None:
    group.add_command(export_cmd)
