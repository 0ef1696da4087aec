"""`cgphw model import`: a torchvision MobileNetV2 state dict (float or int8) as a cgphw model,
or an int8 TFLite network checked and described (the .tflite file is then the model)."""
from __future__ import annotations

import click


def register(group) -> None:
    model = group.commands.get("model")  # the network stage's group (commands/nn.py)
    if model is None:
        model = click.Group("model", help="Train, measure and inspect int8 networks.")
        group.add_command(model)
    model.add_command(import_cmd)


@click.command("import")
@click.argument("state_dict", type=click.Path(dir_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="cgphw model file to write (.pt); not for a .tflite file")
@click.option("--calibration", type=click.Path(file_okay=False), default=None,
              help="Image folder (DIR/<class>/<image>) to calibrate float weights on.")
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration images (the folder's first N, in its fixed mixed order).")
@click.option("--force", is_flag=True, help="Replace an existing model file (and its NAME.json).")
@click.option("--json", "as_json", is_flag=True, help="print JSON (a .tflite file's summary)")
def import_cmd(state_dict, out, calibration, images, force, as_json):
    """Import torchvision's ImageNet MobileNetV2: float weights (mobilenet_v2-b0353104.pth),
    quantised here as the study did (QNNPACK, per-tensor int8, calibrated on --calibration
    images), or torchvision's int8 QNNPACK weights (mobilenet_v2_qnnpack_37f702c5.pth) as they are.
    A .tflite file (an int8 CNN) is read, checked and described; use it as --model FILE.tflite."""
    import json

    from cgphw.errors import UserError

    if state_dict.endswith(".tflite"):
        if out is not None:
            raise UserError("a .tflite file is used as it is (--model FILE.tflite): --out is for state dicts")
        from cgphw.nn.tflite_network import import_tflite

        summary = import_tflite(state_dict)
        click.echo(json.dumps(summary.as_dict(), indent=2) if as_json else "\n".join(summary.lines()))
        return
    if out is None:
        raise UserError("--out (the cgphw model file to write, .pt) is required for a state dict")
    from cgphw.nn.import_mobilenet import import_mobilenet_v2
    from cgphw.nn.model import check_model_out
    from cgphw.progress import echo_steps

    check_model_out(out, force)
    model = import_mobilenet_v2(state_dict, out, calibration, images,
                                progress=echo_steps(lambda m: click.echo(m, err=True)))
    click.echo(f"wrote {out}: MobileNetV2 width {model.args['width']}, {model.args['num_classes']} classes, "
               f"{model.meta['quantization']}")
