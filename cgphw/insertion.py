"""Insertion: put generated weights back into the int8 network and measure what accuracy
remains. The last stage of the flow: it evaluates a run's best circuit (cgp/) on its task's
inputs and writes the outputs where the task's targets live in the network (nn/).

Only int8 codes change; every layer keeps its scales, zero points and bias.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from cgphw.cgp.genome import Genome
from cgphw.cgp.rundir import load_run
from cgphw.errors import UserError
from cgphw.files import sha256_file
from cgphw.results import stage_path
from cgphw.nn.accuracy import Accuracy, measure
from cgphw.nn.layers import extract
from cgphw.nn.layers import with_codes
from cgphw.nn.model import Int8Model
from cgphw.nn.selectors import place
from cgphw.nn.tflite_network import TFLiteNetwork, load_any, network_images
from cgphw.npz import read_npz
from cgphw.progress import ProgressCallback, step
from cgphw.task import Task

if TYPE_CHECKING:
    from cgphw.cgp.rundir import Run
    from cgphw.cgp.search import RunResult


@dataclass(frozen=True)
class LayerChange:
    layer: str
    weights: int  # int8 codes in the layer
    changed: int  # codes that differ from the model's own


@dataclass(frozen=True)
class Insertion:
    """What ``insert`` did and measured (accuracies are fractions 0..1); cgphw.results.Result:
    ``ok`` is always True, since an insertion measures both accuracies or raises (whether the
    circuit reached its threshold is ``threshold_reached``, the run's claim)."""
    source: str  # the run directory, weights file, or "weights given in Python"
    origin: str  # the same in words, e.g. "the best circuit of runs/ring2"
    model: str | None  # the model file (the shipped one as cgphw:models/...)
    layers: tuple[LayerChange, ...]  # sorted by layer name
    before: Accuracy
    after: Accuracy
    threshold_reached: bool | None = None  # a run's claim; None for plain weights
    notes: tuple[str, ...] = ()  # things the user should know (another model, threshold missed)

    @property
    def delta_top1(self) -> float:
        return self.after.top1 - self.before.top1

    @property
    def delta_top5(self) -> float:
        return self.after.top5 - self.before.top5

    @property
    def delta_loss(self) -> float:
        return self.after.loss - self.before.loss

    @property
    def codes_changed(self) -> dict[str, int]:
        return {c.layer: c.changed for c in self.layers}

    @property
    def ok(self) -> bool:
        return True

    def to_json(self) -> dict:
        """What `cgphw insert --json` prints."""
        return {"source": self.source, "origin": self.origin, "model": self.model,
                "layers": [c.layer for c in self.layers], "codes_changed": self.codes_changed,
                "layer_weights": {c.layer: c.weights for c in self.layers},
                "threshold_reached": self.threshold_reached, "notes": list(self.notes),
                "before": self.before.as_dict(), "after": self.after.as_dict(),
                "delta_top1": self.delta_top1, "delta_top5": self.delta_top5, "delta_loss": self.delta_loss}

    def lines(self) -> list[str]:
        return [f"inserted {self.origin} into {', '.join(c.layer for c in self.layers)} "
                f"({sum(self.codes_changed.values())} codes differ)",
                f"before: {self.before.line()}", f"after:  {self.after.line()}",
                f"delta:  top-1 {100 * self.delta_top1:+.2f} points, loss {self.delta_loss:+.4f}"]


def insert(source: str | os.PathLike | RunResult | Run | Mapping[str, np.ndarray],
           model: str | os.PathLike | Int8Model | TFLiteNetwork | None = None, *,
           data: str | os.PathLike | None = None, split: str = "test", limit: int | None = None,
           progress: ProgressCallback | None = None, before: Accuracy | None = None) -> Insertion:
    """Put generated weights into the int8 network and measure accuracy before and after.

    ``source``: a run directory (or the RunResult / Run standing for one: its best circuit is
    evaluated on its task's inputs and the outputs replace the task's targets where they live
    in the network), an ``.npz`` file of
    layer name -> int8 array, or such a mapping. ``model``: a model file or an ``Int8Model``
    (default: the shipped LeNet-5), or a TFLite network ('mobilenetv2', a .tflite file, a
    ``TFLiteNetwork``), which LiteRT runs with the new weights written into its flatbuffer.
    ``data``, ``split``, ``limit``: the images, as for ``cgphw model eval`` (default: mnist5k,
    for a TFLite network its shipped photos). Bad input raises ``UserError``.

    ``before``: the unchanged network's accuracy on these images, measured earlier (e.g. the
    ``before`` of an earlier call with the same model, data, split and limit); it is then not
    measured again, which saves half the work when many circuits go into one network. It must
    name the same images (source and count), else ``UserError``; that it came from the same
    model is the caller's word.
    """
    given = stage_path(source)
    step(progress, "loading the model")
    net = load_any(model)
    notes: list[str] = []
    threshold_reached = None
    if isinstance(given, Mapping):
        described, origin = "weights given in Python", "weights given in Python"
        replacements = {name: np.asarray(codes) for name, codes in given.items()}
    else:
        path = Path(given)
        described = str(path)
        if path.is_dir():
            step(progress, "evaluating the run's circuit")
            replacements, threshold_reached, notes = _run_replacements(path, net)
            origin = f"the best circuit of {path}"
        else:
            replacements, origin = _weights_file(path), f"weights from {path}"
    changed = with_codes(net, replacements)  # checks names, shapes and dtypes
    images = network_images(net, data, split).head(limit)
    if before is None:
        before = measure(net, images, progress, "accuracy before")
    elif not isinstance(before, Accuracy):
        raise UserError(f"before must be an Accuracy (the before of an earlier insert), got {type(before).__name__}")
    elif (before.source, before.images) != (images.source, len(images)):
        raise UserError(f"the accuracy given as before was measured on {before.images} images of {before.source}, "
                        f"not on the {len(images)} images of {images.source}")
    after = measure(changed, images, progress, "accuracy after")
    layers = tuple(LayerChange(name, int(np.asarray(codes).size), int((extract(net, name) != codes).sum()))
                   for name, codes in sorted(replacements.items()))
    return Insertion(described, origin, net.name, layers, before, after, threshold_reached, tuple(notes))


def _read_run(run_dir: Path) -> tuple[Genome, Task, bool]:
    """(best genome, task, whether it reached its threshold) of a run directory, read and
    checked whole by load_run (tampered or mixed-up files: MismatchError)."""
    run = load_run(run_dir)
    return run.genome, run.task, run.threshold_reached


def _run_replacements(run_dir: Path, net: Int8Model | TFLiteNetwork
                      ) -> tuple[dict[str, np.ndarray], bool | None, list[str]]:
    genome, task, reached = _read_run(run_dir)
    notes = []
    made_from = task.meta.get("model")
    made_from = made_from.get("sha256") if isinstance(made_from, dict) else None
    if made_from and net.path and made_from != sha256_file(net.path):
        notes.append(f"the task of {run_dir} was made from another model file than {net.name}")
    if reached is False:
        notes.append(f"the run in {run_dir} never reached its error threshold; its best circuit was inserted anyway")
    return place(net, task, genome.evaluate(task.inputs)), reached, notes


def _weights_file(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path} is neither a run directory nor a weights .npz file")
    weights = read_npz(path, "iuf", "layer weights file")  # insert_codes says which dtype a layer needs
    if not weights:
        raise UserError(f"{path} holds no layer weights")
    return weights
