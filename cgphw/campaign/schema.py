"""What an experiment file may say: every table, every key, its type, default and whether
a list of values is a sweep. One table of facts, read by the loader and by the docs.

The [search] table is derived from ``SearchSettings`` and ``Limits`` (cgp/settings.py): every
knob the CLI has, with its default and its checks; only ``grid`` ("5x5" for rows and cols),
``seed`` and ``workers`` are spelled here."""
from __future__ import annotations

from dataclasses import MISSING, dataclass
from typing import Any

from cgphw.cgp.settings import (MAX_SEED, SEED, SEED_KNOB, WORKERS_KNOB, Knob, Limits, SearchSettings, check_seed,
                                knobs, settings_of)
from cgphw.hw.synth import ACTIVITY_EVALUATIONS, MAX_EVALUATIONS
from cgphw.verification.verdict import DEFAULT_RANDOM_VECTORS, MAX_VECTORS

FORMAT = "cgphw-experiment/1"
STAGES = ("evolve", "export", "synth", "verify", "insert")
NEEDS = {"synth": "export", "verify": "export"}  # a stage's input, besides the search every run makes
MAX_RUNS = 100_000  # runs one experiment may expand to (its sweeps' product, summed over its tasks)
MAX_DEPTH = 64  # tables and lists an experiment file may nest (it needs 4)
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
    high: float | None = None  # numbers: largest allowed value
    knob: Knob | None = None  # a search setting: checked as SearchSettings checks it


def _search_keys() -> dict[str, Key]:
    keys = {"grid": Key("str", sweep=True, help="grid rows x columns, e.g. '5x5'")}
    for s in knobs(SearchSettings) + knobs(Limits):
        if s.attr not in ("rows", "cols"):
            k = s.knob
            keys[s.name] = Key(k.kind, None if s.default is MISSING else s.default, sweep=s.attr != "checkpoint_every",
                               choices=k.choices, low=k.low, help=k.help, high=k.high, knob=k)
    keys["seed"] = Key("int", SEED, sweep=True, low=0, high=MAX_SEED, help=SEED_KNOB.help, knob=SEED_KNOB)
    # Dask runs one campaign run per worker process already: one thread each unless asked
    keys["workers"] = Key("int", 1, low=1, high=WORKERS_KNOB.high, knob=WORKERS_KNOB,
                          help="search threads per run (the result does not depend on it); a local cluster then "
                               "starts one worker process per that many cores")
    return keys


def search_settings(search: dict, checkpoint_every: float | None = None, where: str = "") \
        -> tuple[SearchSettings, Limits, int]:
    """(SearchSettings, Limits, seed) of one run's search settings (keys as in experiment files:
    "lambda", "rows", "cols"); an error names the key (search.KEY) after ``where``."""
    def key(name):
        return f"search.{name}"

    def pick(cls, extra=None):
        values = {s.attr: search[s.name] for s in knobs(cls) if search.get(s.name) is not None}
        return settings_of(cls, {**values, **(extra or {})}, key, where)

    settings = pick(SearchSettings, {} if checkpoint_every is None else {"checkpoint_every": checkpoint_every})
    return settings, pick(Limits), settings_of(check_seed, {"seed": search["seed"]}, key, where)


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
    "search": _search_keys(),
    "export": {
        "pipeline": Key("int", 0, sweep=True, low=0, help="register bank every K logic levels (0: none)"),
        "unreached": Key("str", "export", choices=("export", "skip"),
                         help="runs that missed their threshold: build their hardware anyway, or stop"),
    },
    "synth": {
        "prove": Key("bool", False, help="formal equivalence of netlist and RTL"),
        "evaluations": Key("int", ACTIVITY_EVALUATIONS, low=16, high=MAX_EVALUATIONS,
                           help="random evaluations for the switching activity"),
    },
    "verify": {
        "simulator": Key("str", "auto", choices=SIMULATORS),
        "vectors": Key("int", DEFAULT_RANDOM_VECTORS, low=0, high=MAX_VECTORS,
                       help="random vectors on top of the task's inputs and corners"),
        "seed": Key("int", 0, low=0, high=MAX_SEED),
    },
    "cluster": {
        "kind": Key("str", "local", help="local, pbs, slurm, or a scheduler address"),
        "workers": Key("int", low=1, help="local: worker processes (default: all cores); pbs/slurm: jobs"),
        "queue": Key("str"), "account": Key("str"), "walltime": Key("str"), "memory": Key("str"),
        "cores": Key("int", 1, low=1),
        "processes": Key("int", low=1, help="worker processes per job (default: one per core)"),
        "interface": Key("str", help="network interface of the scheduler and the workers, e.g. ib0"),
        "job_extra": Key("strs", ()),
        "worker_wait": Key("float", low=0.0, help="seconds with no worker connected before the campaign stops "
                                                  "(resumable; 0: wait forever; default by kind)"),
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
# of the identity at that value, so a campaign started before keeps its finished runs. A fact
# of campaigns already run: it stays when a default changes.
IDENTITY_SINCE = {"search": {"mutation": "single", "adaptive": False, "start": "auto", "objective": "lexicographic",
                             "pareto_size": 64, "rotate_every": 1000}}
