"""`cgphw model import`: a torchvision MobileNetV2 state dict (float or int8) as a cgphw model."""
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
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="cgphw model file to write (.pt).")
@click.option("--calibration", type=click.Path(file_okay=False), default=None,
              help="Image folder (DIR/<class>/<image>) to calibrate float weights on.")
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration images (the folder's first N, in its fixed mixed order).")
@click.option("--force", is_flag=True, help="Replace an existing model file (and its NAME.json).")
def import_cmd(state_dict, out, calibration, images, force):
    """Import torchvision's ImageNet MobileNetV2: float weights (mobilenet_v2-b0353104.pth),
    quantised here as the study did (QNNPACK, per-tensor int8, calibrated on --calibration
    images), or torchvision's int8 QNNPACK weights (mobilenet_v2_qnnpack_37f702c5.pth) as they are."""
    from cgphw.nn.import_mobilenet import import_mobilenet_v2
    from cgphw.nn.model import check_model_out

    check_model_out(out, force)
    model = import_mobilenet_v2(state_dict, out, calibration, images, progress=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {out}: MobileNetV2 width {model.args['width']}, {model.args['num_classes']} classes, "
               f"{model.meta['quantization']}")
