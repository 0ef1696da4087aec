"""What an experiment file may say: every table, every key, its type, default and whether
a list of values is a sweep. One table of facts, read by the loader and by the docs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT = "cgphw-experiment/1"
STAGES = ("evolve", "export", "synth", "verify", "insert")
SIMULATORS = ("auto", "icarus", "verilator", "amaranth")
CLUSTER_KINDS = ("local", "pbs", "slurm")


@dataclass(frozen=True)
class Key:
    kind: str  # str | int | float | bool | ints | strs | range (see experiment.check_value)
    default: Any = None
    sweep: bool = False  # a list of values (a list of lists for "ints") is a sweep
    choices: tuple = ()
    low: float | None = None  # numbers: smallest allowed value
    help: str = ""


TABLES: dict[str, dict[str, Key]] = {
    "model": {
        "path": Key("str", "lenet5",
                    help="cgphw int8 model file, 'lenet5' (the shipped LeNet-5, cgphw:models/...), 'mobilenetv2' "
                         "(the shipped int8 ImageNet MobileNetV2, TFLite) or a .tflite file"),
        "torchvision": Key("str", help="torchvision MobileNetV2 state dict (float or int8 QNNPACK) to import"),
        "calibration": Key("str", help="image folder for calibrating a float torchvision model"),
        "calibration_images": Key("int", 256, low=1, help="images used to calibrate"),
    },
    "data": {
        "source": Key("str", "mnist5k", help="'mnist5k', an MNIST IDX folder, or an ImageNet-style image folder; "
                                             "for a TFLite network 'photos' (its shipped photos)"),
        "split": Key("str", "test", choices=("test", "validation"), help="images measured after insertion"),
        "limit": Key("int", low=1, help="measure on the first N images only"),
    },
    "task": {
        "selector": Key("str", sweep=True, help="a `cgphw task make` selector, shared-core-ring:A,B:mux|select, "
                                                "or values:IN->OUT"),
        "layer": Key("str", sweep=True, help="layer for selectors that take one; 'all' = every conv layer"),
        "filters": Key("ints", sweep=True, low=0, help="filter indices (core-ring, ring-core)"),
        "zero_targets": Key("bool", False, help="targets set to 0 (the study's zero-outer-ring baseline)"),
        "label": Key("str", help="the task's name in tables and run folders; may use {layer}, {filters}, {selector}"),
    },
    "search": {
        "grid": Key("str", sweep=True, help="grid rows x columns, e.g. '5x5'"),
        "levels_back": Key("int", sweep=True, low=1, help="columns a node may read back (default: columns)"),
        "lambda": Key("int", 4, sweep=True, low=1),
        "mutation": Key("str", "single", sweep=True, choices=("single", "active", "uniform"),
                        help="single: one active gene per child; active/uniform: 1..k genes, k from mutation_max"),
        "mutation_max": Key("float", 0.15, sweep=True, low=0.0, help="k = ceil(F * genes) for active/uniform"),
        "adaptive": Key("bool", False, sweep=True, help="k follows the 1/5th success rule (active/uniform only)"),
        "start": Key("str", "auto", sweep=True, choices=("auto", "random", "constructive"),
                     help="first parent; auto: constructive for value-bank and no-input tasks"),
        "function_set": Key("str", "seed27", sweep=True),
        "value_bank": Key("bool", False, sweep=True),
        "threshold": Key("float", 0.0, sweep=True, low=0.0, help="per-weight RMS error t (SE <= t^2 N)"),
        "seed": Key("int", 1, sweep=True, low=0),
        "generations": Key("int", sweep=True, low=1),
        "time_budget": Key("float", sweep=True, low=0.0),
        "patience": Key("int", sweep=True, low=1),
        "checkpoint_every": Key("float", 10.0, low=0.0, help="seconds between checkpoints"),
        "workers": Key("int", 1, low=1, help="search threads per run (the result does not depend on it); a local "
                                             "cluster then starts one worker process per that many cores"),
    },
    "export": {
        "pipeline": Key("int", 0, sweep=True, low=0, help="register bank every K logic levels (0: none)"),
        "unreached": Key("str", "export", choices=("export", "skip"),
                         help="runs that missed their threshold: build their hardware anyway, or stop"),
    },
    "synth": {
        "prove": Key("bool", False, help="formal equivalence of netlist and RTL"),
        "evaluations": Key("int", 4096, low=16, help="random evaluations for the switching activity"),
    },
    "verify": {
        "simulator": Key("str", "auto", choices=SIMULATORS),
        "vectors": Key("int", 1000, low=0, help="random vectors on top of the task's inputs and corners"),
        "seed": Key("int", 0, low=0),
    },
    "cluster": {
        "kind": Key("str", "local", help="local, pbs, slurm, or a scheduler address"),
        "workers": Key("int", low=1, help="local: worker processes (default: all cores); pbs/slurm: jobs"),
        "queue": Key("str"), "account": Key("str"), "walltime": Key("str"), "memory": Key("str"),
        "cores": Key("int", 1, low=1), "processes": Key("int", 1, low=1),
        "interface": Key("str"), "job_extra": Key("strs", ()),
    },
}
TOP_KEYS = {
    "format": Key("str", FORMAT, choices=(FORMAT,)),
    "name": Key("str"),
    "description": Key("str", ""),
    "study": Key("str", "", help="what the study reported for this experiment"),
    "stages": Key("strs", STAGES, choices=STAGES),
}
# Settings that never change a run's result: left out of its identity (hash).
NOT_IDENTITY = {("search", "checkpoint_every"), ("search", "workers")}
# Settings added after campaigns began, at the value every earlier campaign run used: left out
# of the identity at that value, so a campaign started before keeps its finished runs.
IDENTITY_SINCE = {"search": {"mutation": "single", "adaptive": False, "start": "auto"}}
