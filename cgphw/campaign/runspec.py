"""The runs of an experiment: ``RunSpec`` (everything that decides one run's result) and
``expand`` (the product of the experiment's sweeps, tasks first, in file order)."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field

from cgphw.campaign.experiment import Experiment, check_run_count, is_sweep
from cgphw.campaign.schema import IDENTITY_SINCE, NOT_IDENTITY, STAGES, TABLES, search_settings
from cgphw.errors import UserError

# The order sweeps expand in (the first search keys in the order campaigns have always used;
# settings added since follow in the schema's order).
_SEARCH_FIRST = ("grid", "levels_back", "lambda", "mutation", "mutation_max", "adaptive", "start", "function_set",
                 "value_bank", "threshold", "seed", "generations", "time_budget", "patience")
SWEEP_ORDER = {"task": ("selector", "layer", "filters"),
               "search": _SEARCH_FIRST + tuple(k for k, spec in TABLES["search"].items()
                                               if spec.sweep and k not in _SEARCH_FIRST),
               "export": ("pipeline",)}
_GRID = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_grid(text: str, where: str = "search.grid") -> tuple[int, int]:
    match = _GRID.match(text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise UserError(f"{where} must be rows x columns with whole numbers >= 1, e.g. \"5x5\", got {text!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides one run's results (plus where to find model and data)."""
    experiment: str
    task: dict
    search: dict
    export: dict
    synth: dict
    verify: dict
    model: dict  # {"path": ..., "sha256": ...}
    data: dict
    stages: tuple[str, ...]
    extra: dict = field(default_factory=dict)  # not part of the identity (checkpoint interval)

    def identity(self) -> dict:
        search = {k: v for k, v in self.search.items() if IDENTITY_SINCE["search"].get(k, ...) != v}
        return {"experiment": self.experiment, "task": self.task, "search": search, "export": self.export,
                "synth": self.synth, "verify": self.verify, "model": self.model.get("sha256"),
                "data": self.data, "stages": list(self.stages)}

    @property
    def digest(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def task_label(self) -> str:
        t = self.task
        if t.get("label"):
            return label_text(t)
        text = t["selector"] + (f":{t['layer']}" if t.get("layer") else "")
        if t.get("filters") is not None:
            text += " f" + ",".join(map(str, t["filters"]))
        return text + (" zero" if t.get("zero_targets") else "")

    @property
    def workers(self) -> int:
        """Search threads for this run (not part of its identity: the result is the same)."""
        return int(self.extra.get("workers", 1))

    @property
    def grid(self) -> str:
        return f"{self.search['rows']}x{self.search['cols']}"

    @property
    def run_id(self) -> str:
        s = self.search
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", self.task_label).strip("-")[:48]
        return f"{slug}_{self.grid}_t{s['threshold']:g}_s{s['seed']}_{self.digest[:8]}"

    def to_json(self) -> dict:
        return {**self.identity(), "search": self.search, "model": self.model, "extra": self.extra,
                "digest": self.digest, "run_id": self.run_id, "task_label": self.task_label}

    @classmethod
    def from_json(cls, doc: dict) -> "RunSpec":
        search = {**IDENTITY_SINCE["search"], **doc["search"]}  # a spec written before these settings
        return cls(doc["experiment"], doc["task"], search, doc["export"], doc["synth"], doc["verify"],
                   doc["model"], doc["data"], tuple(doc["stages"]), doc.get("extra", {}))


def label_text(task: dict) -> str:
    """A task's label with {layer}, {filters} and {selector} filled in."""
    fields = {"layer": task.get("layer") or "", "selector": task["selector"],
              "filters": ",".join(map(str, task.get("filters") or []))}
    try:
        return task["label"].format(**fields)
    except (KeyError, IndexError, ValueError):
        raise UserError(f"task.label {task['label']!r} may use only {{layer}}, {{filters}} and {{selector}}") from None


def expand(exp: Experiment, model: dict, data: dict, layers_of=None) -> list[RunSpec]:
    """Every run of the experiment: the product of its sweeps, tasks first, in file order.
    ``layers_of()`` lists the model's conv layers (for ``layer = "all"``)."""
    doc, runs, seen = exp.doc, [], set()
    checked: set = set()  # the distinct settings checked so far (_run_spec)
    every_layer = None
    if any(t.get("layer") in ("all", ["all"]) for t in doc["task"]):
        if layers_of is None:
            raise UserError(f"{exp.path}: task.layer = \"all\" needs a model to list its layers")
        every_layer = list(layers_of())
    check_run_count(doc, str(exp.path), None if every_layer is None else len(every_layer))  # before expanding
    for task in doc["task"]:
        task = dict(task)
        search = {**doc["search"], **task.pop("search", {})}
        fixed = {"search": {k: v for k, v in search.items() if k not in SWEEP_ORDER["search"]},
                 "export": {k: v for k, v in doc["export"].items() if k not in SWEEP_ORDER["export"]}}
        if task.get("layer") in ("all", ["all"]):
            task["layer"] = every_layer
        choices = [_choices(task, "task", k) for k in SWEEP_ORDER["task"]]
        choices += [_choices(search, "search", k) for k in SWEEP_ORDER["search"]]
        choices += [_choices(doc["export"], "export", k) for k in SWEEP_ORDER["export"]]
        for combo in itertools.product(*choices):
            parts = {"task": {k: v for k, v in task.items() if k not in SWEEP_ORDER["task"]},
                     "search": dict(fixed["search"]), "export": dict(fixed["export"])}
            for (table, key), value in combo:
                parts[table][key] = value
            spec = _run_spec(exp, parts, model, data, checked)
            label_text(spec.task) if spec.task.get("label") else None  # a bad label fails before anything runs
            digest = spec.digest
            if digest not in seen:  # the same run listed twice runs once
                seen.add(digest)
                runs.append(spec)
    return runs


def _choices(table: dict, name: str, key: str) -> list:
    value = table.get(key)
    spec = TABLES[name][key]
    values = value if isinstance(value, list) and is_sweep(value, spec) else [value]
    return [((name, key), v) for v in values]


def _run_spec(exp: Experiment, parts: dict, model: dict, data: dict, checked: set) -> RunSpec:
    search = parts["search"]
    rows, cols = parse_grid(search.pop("grid"), f"{exp.path}: search.grid")
    search["rows"], search["cols"] = rows, cols
    search["levels_back"] = search["levels_back"] or cols
    for key in ("generations", "time_budget", "patience"):
        if search[key] is None:
            search.pop(key)
    if not any(k in search for k in ("generations", "time_budget", "patience")):
        raise UserError(f"{exp.path}: a run needs a stopping rule: search.generations, search.time_budget "
                        "or search.patience")
    extra = {k: search.pop(k) for t, k in NOT_IDENTITY if t == "search" and k in search}
    # every check, before any run starts, once per distinct settings (the seeds were checked at load)
    settings = json.dumps([{k: v for k, v in search.items() if k != "seed"}, extra.get("checkpoint_every")],
                          sort_keys=True)
    if settings not in checked:
        search_settings(search, extra.get("checkpoint_every"), f"{exp.path}: ")
        checked.add(settings)
    task = {k: v for k, v in parts["task"].items() if v is not None and v is not False}
    return RunSpec(exp.name, task, search, parts["export"], dict(exp.doc["synth"]), dict(exp.doc["verify"]),
                   model, data, tuple(s for s in STAGES if s in exp.stages), extra)
