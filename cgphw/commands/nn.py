"""Commands of the network stage: `model train|eval|layers|sensitivity`, `task make`, `insert`."""
from __future__ import annotations

import json
import shlex
import sys

import click

from cgphw.errors import UserError
from cgphw.files import check_replaceable, sha256_file, write_json_atomic
from cgphw.progress import step, terminal_progress

DATA_HELP = ("'mnist5k' (built in, the default) or a directory holding the MNIST IDX files; for a TFLite "
             "network an ImageNet image folder (DIR/<wnid or class name>/<image>; default: the shipped photos)")
MODEL_HELP = ("int8 model file (default: the shipped LeNet-5, cgphw:models/lenet5_mnist5k.pt), 'mobilenetv2' "
              "(the shipped int8 ImageNet MobileNetV2, TFLite) or a .tflite file")


def _emit(doc, as_json: bool, text: str) -> None:
    click.echo(json.dumps(doc, indent=2) if as_json else text)


def _subgroup(group, name: str, help_text: str):
    """The named subgroup, created unless another stage registered it already."""
    existing = group.commands.get(name)
    if existing is not None:
        return existing
    sub = click.Group(name, help=help_text)
    group.add_command(sub)
    return sub


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None


def _split(data: str | None, split: str, limit: int | None, net=None):
    from cgphw.nn.tflite_network import network_images

    return network_images(net, data, split).head(limit)


def _load(model_path, progress=None):
    step(progress, "loading the model")
    from cgphw.nn.tflite_network import load_any

    return load_any(model_path)


def model_train(arch, width, data, seed, epochs, qat_epochs, batch, threads, limit, max_steps, init, out,
                force, as_json):
    from cgphw.nn import data as data_mod
    from cgphw.nn.accuracy import measure
    from cgphw.nn.model import META_FORMAT, check_model_out, save_model
    from cgphw.nn.train import TrainConfig, train

    data = data if data is not None else "mnist5k"
    out = check_model_out(out, force)
    existing = next(p for p in (out.parent.absolute(), *out.parent.absolute().parents) if p.exists())
    if not existing.is_dir():  # found out before training, not after it
        raise UserError(f"cannot write the model file {out}: {existing} is not a directory")
    float_state, args = None, {}
    if arch == "mobilenetv2":
        args = {"width": width, "num_classes": 10, "in_channels": 1, "input_size": 32,
                "mean": [0.5], "std": [0.5]}
        if init is not None:
            float_state = _torchvision_state(init)
            args["num_classes"] = int(float_state["classifier.1.weight"].shape[0])
            args["in_channels"] = int(float_state["features.0.0.weight"].shape[1])
            from cgphw.nn.mobilenet import MobileNetV2, load_float_state

            load_float_state(MobileNetV2(**args), float_state)  # check keys and shapes up front
    elif init is not None:
        raise UserError("--init (a torchvision float state dict) applies only to --arch mobilenetv2")
    train_split = _split(data, "train", limit)
    val_split, test_split = _split(data, "validation", None), _split(data, "test", None)
    cfg = TrainConfig(arch=arch, args=tuple(sorted(args.items())), seed=seed, epochs=epochs,
                      qat_epochs=qat_epochs, batch=batch, threads=threads, max_steps=max_steps)
    with terminal_progress() as progress:
        model, history = train(cfg, train_split, val_split, float_state, progress=progress)
        val = measure(model, val_split, progress, "validation accuracy")
        test = measure(model, test_split, progress, "test accuracy")
    import torch

    model.meta = {
        "format": META_FORMAT, "arch": arch, "args": args, "data": data_mod.describe(data),
        "train_images": len(train_split), "validation_images": len(val_split), "test_images": len(test_split),
        "seed": seed, "config": cfg.as_dict(), "init": str(init) if init else None,
        "command": "cgphw " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None,
        "torch": torch.__version__, "engine": "x86", "history": history,
        "accuracy": {"validation": val.as_dict(), "test": test.as_dict(),
                     "how": f"int8 model (converted, x86 engine), top-1/top-5/mean cross-entropy over all "
                            f"{len(test_split)} images of the {test.source} split, which training and "
                            f"model selection never saw (selection used {val.source})"},
        "reproducible": "bit-identical for the same seed, data, thread count, torch version and CPU "
                        "(deterministic torch algorithms, seeded shuffling and augmentation)",
    }
    save_model(model, out)
    meta = dict(model.meta, model_file=out.name, model_sha256=sha256_file(out))
    write_json_atomic(out.with_suffix(".json"), meta)
    doc = {"model": str(out), "metadata": str(out.with_suffix(".json")), "validation": val.as_dict(),
           "test": test.as_dict(), "seconds": history["seconds"]}
    _emit(doc, as_json, f"saved {out} ({history['seconds']} s)\nvalidation: {val.line()}\ntest:       {test.line()}")


def _torchvision_state(path) -> dict:
    from cgphw.nn.import_mobilenet import read_state

    state = read_state(path)  # readable, finite, a MobileNetV2's
    if "classifier.1.weight" not in state:
        raise UserError(f"{path} is not a torchvision MobileNetV2 float state dict")
    return state


def model_eval(model_path, data, split, limit, as_json):
    with terminal_progress() as progress:
        model = _load(model_path, progress)
        step(progress, "loading the images")
        from cgphw.nn.accuracy import measure

        acc = measure(model, _split(data, split, limit, model), progress, "accuracy")
    _emit(dict(acc.as_dict(), model=model.name), as_json, acc.line())


def model_speed(model_path, data, limit, repeat, layer, as_json):
    import numpy as np

    from cgphw.nn.data import Split
    from cgphw.nn.imagefolder import LazyImages
    from cgphw.nn.tflite_eval import speed
    from cgphw.nn.tflite_network import TFLiteNetwork

    model = _load(model_path if model_path is not None else "mobilenetv2")
    if not isinstance(model, TFLiteNetwork):
        raise UserError("model speed times TFLite networks (--model mobilenetv2 or a .tflite file)")
    images = _split(data, "test", limit, model)
    files = tuple(images.images.files) * repeat
    if layer is not None:
        model.model.layer(layer)  # an unknown name: one error line before any timing
    result = speed(model, Split(LazyImages(files), np.tile(images.labels, repeat), images.source),  # type: ignore[arg-type]  # array-like, read on use
                   layer)
    _emit(dict(result.as_dict(), model=model.name, data=images.source, repeat=repeat), as_json, result.line())


def model_layers(model_path, as_json):
    from cgphw.nn.layers import list_layers

    rows = list_layers(_load(model_path))
    lines = [f"{'layer':<24} {'kind':<15} {'shape':<18} {'weights':>8} {'distinct':>8}  scale range"]
    lines += [f"{r.name:<24} {r.kind:<15} {'x'.join(map(str, r.shape)):<18} {r.weights:>8} {r.distinct:>8}  "
              f"{r.scale_min:.3g} .. {r.scale_max:.3g}" for r in rows]
    _emit([r.as_dict() for r in rows], as_json, "\n".join(lines))


def model_sensitivity(model_path, data, split, limit, layers, ks, mode, seed, as_json):
    k_list = _ints(ks, "--k") or []  # (empty: sensitivity says that it needs one)
    names = [n for n in layers.split(",") if n] if layers else None
    with terminal_progress() as progress:
        model = _load(model_path, progress)
        from cgphw.nn.accuracy import measure, sensitivity

        images = _split(data, split, limit, model)
        base = measure(model, images, progress, "unperturbed network")
        rows = sensitivity(model, images, k_list, names, mode, seed, progress=progress)
    text = [f"baseline: {base.line()}", f"{'layer':<24} {'k':>4}  top-1 %   delta"]
    text += [f"{r['layer']:<24} {r['k']:>4}  {100 * r['top1']:6.2f}  {100 * r['delta_top1']:+6.2f}" for r in rows]
    _emit({"baseline": base.as_dict(), "mode": mode, "seed": seed, "rows": rows}, as_json, "\n".join(text))


def task_make(model_path, selector, layer, filters, out, force, as_json):
    from cgphw.task import Task

    check_replaceable(out, force)
    filter_list = _ints(filters, "--filters")
    with terminal_progress() as progress:
        model = _load(model_path, progress)
        step(progress, f"making the task ({selector})")
        from cgphw.nn.selectors import make_task

        task = make_task(model, selector, layer=layer, filters=filter_list)
        task = Task(task.inputs, task.targets, meta=dict(task.meta, model=dict(task.meta["model"],
                                                                             sha256=sha256_file(model.path))))
        path = task.save(out)
    doc = {"task": str(path), "selector": selector, "items": task.n_items, "inputs": task.n_inputs,
           "outputs": task.n_outputs, "layers": task.meta["layers"]}
    _emit(doc, as_json, f"wrote {path}: {task.n_items} item(s), {task.n_inputs} inputs -> "
                        f"{task.n_outputs} outputs ({selector})")


def insert_weights(source, model_path, data, split, limit, as_json):
    with terminal_progress() as progress:
        step(progress, "loading the model")  # importing torch takes seconds on a cold start
        from cgphw.insertion import insert

        result = insert(source, model_path, data=data, split=split, limit=limit, progress=progress)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _emit(result.to_json(), as_json, "\n".join(result.lines()))


def register(group) -> None:
    model = _subgroup(group, "model", "Train, measure and inspect int8 networks.")
    task = _subgroup(group, "task", "Make CGP tasks from network layers.")
    data_opt = click.option("--data", default=None, help=DATA_HELP)
    model_opt = click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None, help=MODEL_HELP)
    json_opt = click.option("--json", "as_json", is_flag=True, help="print JSON")
    force_task_opt = click.option("--force", is_flag=True, help="replace an existing file at --out")
    split_opt = click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test",
                             show_default=True, help="which images (an IDX directory's test split is t10k)")
    limit_opt = click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N images")

    @model.command("train")
    @click.option("--arch", type=click.Choice(["lenet5", "mobilenetv2"]), default="lenet5", show_default=True)
    @click.option("--width", type=float, default=0.5, show_default=True, help="MobileNetV2 width multiplier")
    @data_opt
    @click.option("--seed", type=int, default=1, show_default=True)
    @click.option("--epochs", type=click.IntRange(min=0), default=100, show_default=True, help="float epochs")
    @click.option("--qat-epochs", type=click.IntRange(min=0), default=12, show_default=True)
    @click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
    @click.option("--limit", type=click.IntRange(min=1), default=None, help="train on the first N images only")
    @click.option("--max-steps", type=click.IntRange(min=1), default=None, help="batches per epoch at most")
    @click.option("--init", type=click.Path(dir_okay=False), default=None,
                  help="torchvision-format MobileNetV2 float state dict to start from")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="model file to write (.pt)")
    @click.option("--force", is_flag=True, help="replace an existing model file (and its NAME.json)")
    @json_opt
    def _train(**kw):
        """Train an int8 network (float training, then quantization-aware fine-tuning)."""
        model_train(**kw)

    @model.command("eval")
    @model_opt
    @data_opt
    @split_opt
    @limit_opt
    @json_opt
    def _eval(**kw):
        """Top-1, top-5 and cross-entropy loss of the int8 network."""
        model_eval(**kw)

    @model.command("speed")
    @click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                  help="TFLite network (default: mobilenetv2, the shipped one)")
    @data_opt
    @limit_opt
    @click.option("--repeat", type=click.IntRange(min=1, max=1000), default=30, show_default=True,
                  help="go through the images this many times (7 photos x 30 = 210 images)")
    @click.option("--layer", default=None, help="time an insertion into this layer [default: the second-last "
                                                "weight layer, conv51 of mobilenetv2]")
    @json_opt
    def _speed(**kw):
        """Evaluation speed of a TFLite network, one thread: end to end (decode, resize, crop, LiteRT)
        beside decoding alone and LiteRT's invoke alone, in one run (images per CPU second); then an
        insertion into a layer, the whole network beside the part from that layer on."""
        model_speed(**kw)

    @model.command("layers")
    @model_opt
    @json_opt
    def _layers(**kw):
        """List the int8 layers: shape, weights, distinct codes, scale range."""
        model_layers(**kw)

    @model.command("sensitivity")
    @model_opt
    @data_opt
    @click.option("--split", type=click.Choice(["train", "validation", "test"]), default="validation",
                  show_default=True)
    @limit_opt
    @click.option("--layers", default=None, help="comma-separated layers (default: all); a+b perturbs a and b together")
    @click.option("--k", "ks", default="1,2,4,8", show_default=True, help="noise amplitudes in int8 codes")
    @click.option("--mode", type=click.Choice(["sign", "uniform", "offset"]), default="sign", show_default=True,
                  help="sign: each code +-k at random; uniform: -k..k; offset: every code +k (clipped)")
    @click.option("--seed", type=int, default=0, show_default=True)
    @json_opt
    def _sensitivity(**kw):
        """Accuracy with each layer's int8 codes perturbed by k, per layer and k."""
        model_sensitivity(**kw)

    @task.command("make")
    @model_opt
    @click.option("--selector", required=True,
                  help="core-ring[:LAYER][:concat] | ring-core[:LAYER][:concat] | layer:A->B | "
                       "const:L1[,L2] | first-n:N[:LAYER] | rows:N[:LAYER] (per output channel: its first N weights -> "
                       "all of them) | address:LAYER (a computed ROM: the weight's index bits -> the weight, one "
                       "item per weight)")
    @click.option("--layer", default=None, help="layer for selectors that take one")
    @click.option("--filters", default=None, help="comma-separated filter indices (core-ring, ring-core)")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="task file to write (.npz)")
    @force_task_opt
    @json_opt
    def _task_make(**kw):
        """Write a CGP task file from the model's int8 weights."""
        task_make(**kw)

    @task.command("example")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="task file to write (.npz)")
    @force_task_opt
    def _task_example(out, force):
        """Write the built-in example task: the study's LeNet-5 conv1 filter 0, 3x3 core -> 16-weight ring."""
        from cgphw.task import example_task

        click.echo(f"wrote {example_task().save(check_replaceable(out, force))}")

    @group.command("insert")
    @click.argument("source", type=click.Path())
    @model_opt
    @data_opt
    @split_opt
    @limit_opt
    @json_opt
    def _insert(**kw):
        """Put a run's circuit outputs (RUNDIR) or layer weights (.npz) into the model; accuracy before/after."""
        insert_weights(**kw)
