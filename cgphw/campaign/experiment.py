"""Experiment files: one TOML file describes a campaign (model, data, tasks, search, the
hardware stages, the cluster), with sweeps written as lists and named profiles.

``load_experiment(path_or_name, profile, overrides)`` reads, merges the profile and the
``--set`` overrides, and validates every key (errors name the file and the key);
``runspec.expand`` turns the result into the campaign's runs. A shipped experiment is named
by its file stem (``single-filter``); see ``shipped()``.
"""
from __future__ import annotations

import copy
import math
import os
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, overload

from cgphw.campaign.schema import MAX_DEPTH, MAX_RUNS, NEEDS, TABLES, TOP_KEYS, Key
from cgphw.cgp.settings import SettingError
from cgphw.errors import UserError

PATH_KEYS = {("model", "path"), ("model", "torchvision"), ("model", "calibration"), ("data", "source")}
SPECIAL_PATHS = {"lenet5", "mnist5k", "mobilenetv2", "photos"}  # shipped networks and images
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def experiments_dir() -> Path:
    return Path(str(resources.files("cgphw") / "data" / "experiments"))


def shipped() -> dict[str, Path]:
    """Name -> file of every experiment shipped with cgphw."""
    return {p.stem: p for p in sorted(experiments_dir().glob("*.toml"))}


def find_experiment(ref: str | os.PathLike) -> Path:
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    known = shipped()
    name = str(ref).removesuffix(".toml")
    if name in known:
        return known[name]
    raise UserError(f"experiment {ref} is neither a file nor a shipped experiment "
                    f"({', '.join(known) or 'none shipped'})")


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    profile: str
    doc: dict  # validated, defaults filled; doc["task"] is a list of task tables
    profiles: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return self.doc["description"]

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.doc["stages"])

    def table(self, name: str) -> dict:
        return self.doc[name]

    @property
    def threads_per_run(self) -> int:
        """The most search threads (``search.workers``) any of its runs uses."""
        own = [t.get("search", {}).get("workers") or 1 for t in self.doc["task"]]
        return max([self.doc["search"]["workers"], *own])


def load_experiment(ref: str | os.PathLike, profile: str = "full", *, overrides: list[str] | tuple = ()) -> Experiment:
    """Read, merge ``profile`` and ``overrides`` ("table.key=value", TOML values), validate."""
    path = find_experiment(ref)
    where = str(path)
    try:
        raw = _toml(path.read_text(), f"experiment {where}")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read experiment {where} ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"experiment {where} is not valid TOML ({exc})") from None
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict) or any(not isinstance(v, dict) for v in profiles.values()):
        raise UserError(f"{where}: profiles must be tables ([profiles.quick], [profiles.full])")
    if profile not in profiles and profile != "full":
        raise UserError(f"{where} has no profile {profile!r} (it has: {', '.join(['full', *profiles]) })")
    base_dir = path.parent
    raw = _resolve_paths(raw, base_dir)
    for name, part in profiles.items():
        _check_doc(_resolve_paths(part, base_dir), f"{where}: profiles.{name}", partial=True)
    doc = _merge(raw, _resolve_paths(profiles.get(profile, {}), base_dir))
    for text in overrides:
        doc = _merge(doc, _override(text, where))
    doc = _check_doc(doc, where, partial=False)
    check_run_count(doc, where)
    return Experiment(doc["name"], path, profile, doc, tuple(sorted({"full", *profiles})))


def _toml(text: str, source: str) -> dict:
    """tomllib.loads, refusing nesting deeper than MAX_DEPTH (deeper still would exhaust the
    parser's stack)."""
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        doc = None
    if doc is None or _depth(doc) > MAX_DEPTH:
        raise UserError(f"{source} nests tables or lists deeper than {MAX_DEPTH} levels")
    return doc


def _depth(value) -> int:
    """How deep tables and lists nest in ``value`` (without recursion: any depth is measured)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((c, level + 1) for c in children)
    return deepest


def check_run_count(doc: dict, where: str, layers: int | None = None) -> int:
    """The number of runs the sweeps of a checked ``doc`` expand to (at most: the same run
    listed twice runs once), counted before anything is expanded; UserError above MAX_RUNS,
    naming the sweeps. ``layers``: what ``layer = "all"`` stands for (unknown: 1)."""
    total = 0
    for i, task in enumerate(doc["task"]):
        tables = {"task": task, "search": {**doc["search"], **task.get("search", {})}, "export": doc["export"]}
        sweeps = [(f"{name}.{key}", len(table[key])) for name, table in tables.items()
                  for key, spec in TABLES[name].items() if spec.sweep and is_sweep(table.get(key), spec)]
        if layers is not None and task.get("layer") in ("all", ["all"]):
            sweeps.append(("task.layer", layers))
        total += math.prod(n for _, n in sweeps)
        if total > MAX_RUNS:
            name = "task" if len(doc["task"]) == 1 else f"task[{i}]"
            raise UserError(f"{where}: the sweeps expand to more than {MAX_RUNS:,} runs ({name}: "
                            + " x ".join(f"{key} {n:,}" for key, n in sweeps) + "); split the experiment")
    return total


# --- validation ---------------------------------------------------------------------------
def _check_doc(doc: dict, where: str, partial: bool) -> dict:
    out = {}
    unknown = sorted(set(doc) - set(TOP_KEYS) - set(TABLES))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join([*TOP_KEYS, *TABLES])})")
    for key, spec in TOP_KEYS.items():
        if key in doc:
            out[key] = check_value(doc[key], spec, key, where)
        elif not partial:
            if spec.default is None:
                raise UserError(f"{where}: the key {key!r} is required")
            out[key] = spec.default
    if not partial and not _NAME.match(out["name"]):
        raise UserError(f"{where}: name must be letters, digits, '-', '_' or '.', got {out['name']!r}")
    if not partial:
        _check_stages(out["stages"], where)
    for table, keys in TABLES.items():
        value = doc.get(table, {} if table != "task" else None)
        if table == "task":
            if value is None:
                if partial:
                    continue
                raise UserError(f"{where}: the [task] table is required (selector = ...)")
            tables = value if isinstance(value, list) else [value]
            if not tables or any(not isinstance(t, dict) for t in tables):
                raise UserError(f"{where}: task must be a table [task] or an array of tables [[task]]")
            out["task"] = []
            for i, t in enumerate(tables):
                name = "task" if len(tables) == 1 else f"task[{i}]"
                own = t.get("search", {})  # [task.search]: search settings of this task only
                if not isinstance(own, dict):
                    raise UserError(f"{where}: {name}.search must be a table [task.search]")
                checked = _check_table({k: v for k, v in t.items() if k != "search"}, keys, name, where, partial)
                if own:
                    checked["search"] = _check_table(own, TABLES["search"], f"{name}.search", where, True)
                if not partial and checked.get("selector") is None:
                    raise UserError(f"{where}: {name}.selector is required")
                out["task"].append(checked)
            continue
        if not isinstance(value, dict):
            raise UserError(f"{where}: {table} must be a table [{table}]")
        if value or not partial:
            out[table] = _check_table(value, keys, table, where, partial)
    if not partial:
        for i, t in enumerate(out["task"]):
            if t.get("search", {}).get("grid", out["search"]["grid"]) is None:
                raise UserError(f"{where}: search.grid is required (e.g. grid = \"5x5\")"
                                + (f"; task[{i}] has none" if len(out["task"]) > 1 else ""))
    return out


def _check_stages(stages: list[str], where: str) -> None:
    """Every run searches, and a stage runs only after the one it needs: a list that leaves
    one out would have the flow run a stage it does not name, or skip one it does."""
    if "evolve" not in stages:
        raise UserError(f"{where}: stages must list 'evolve': every run searches first (stages = {stages!r})")
    for stage in stages:
        need = NEEDS.get(stage)
        if need is not None and need not in stages:
            raise UserError(f"{where}: stages lists {stage!r}, which needs {need!r}: add it (stages = {stages!r})")


def _check_table(table: dict, keys: dict[str, Key], name: str, where: str, partial: bool) -> dict:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise UserError(f"{where}: unknown key {name}.{unknown[0]} (known: {', '.join(keys)})")
    out = {}
    for key, spec in keys.items():
        if key in table:
            out[key] = check_value(table[key], spec, f"{name}.{key}", where)
        elif not partial:
            out[key] = spec.default
    return out


def check_value(value, spec: Key, key: str, where: str):
    """The value (or, for a sweep key, the list of values) checked against ``spec``."""
    if spec.sweep and is_sweep(value, spec):
        if not value:
            raise UserError(f"{where}: {key} is an empty list: a sweep needs at least one value")
        return [_check_one(v, spec, key, where) for v in value]
    return _check_one(value, spec, key, where)


def is_sweep(value, spec: Key) -> bool:
    if not isinstance(value, list):
        return False
    return spec.kind != "ints" or any(isinstance(v, list) for v in value)


def _check_one(value, spec: Key, key: str, where: str):
    kind = spec.kind
    if spec.knob is not None:  # a search setting: checked, and worded, as the CLI checks it
        try:
            return spec.knob.check(value, key)
        except SettingError as exc:
            raise exc.named(key, f"{where}: ") from None

    def bad(expected: str):
        raise UserError(f"{where}: {key} must be {expected}, got {value!r}")

    if kind == "str":
        if not isinstance(value, str):
            bad("a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            bad("true or false")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            bad("a whole number")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            bad("a number")
        value = float(value)
    elif kind == "ints":
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            bad("a list of whole numbers" + (" (a list of such lists is a sweep)" if spec.sweep else ""))
        if spec.low is not None and any(v < spec.low for v in value):
            bad(f"a list of whole numbers >= {spec.low:g}")
        return list(value)
    elif kind == "strs":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) for v in value):
            bad("a list of strings")
        if spec.choices and any(v not in spec.choices for v in value):
            bad(f"a list drawn from {', '.join(spec.choices)}")
        return list(value)
    if spec.choices and value not in spec.choices:
        bad(f"one of {', '.join(map(str, spec.choices))}")
    if spec.low is not None and kind in ("int", "float") and value < spec.low:
        bad(f"at least {spec.low:g}")
    if spec.high is not None and kind in ("int", "float") and value > spec.high:
        bad(f"at most {spec.high:,}")
    return value


# --- merging, overrides, paths ------------------------------------------------------------
def _merge(base: dict, part: dict) -> dict:
    """Tables merge key by key (a task table applies to every [[task]]); anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in part.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = _merge(old, value)
        elif key == "task" and isinstance(value, dict) and isinstance(old, list):
            out[key] = [_merge(t, value) if isinstance(t, dict) else t for t in old]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _override(text: str, where: str) -> dict:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise UserError(f"--set {text!r} must look like table.key=value (e.g. search.seed=[1,2,3])")
    try:
        value = _toml(f"v = {raw.strip()}", f"--set {key}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word or path: take it as a string
    parts = key.split(".")
    if len(parts) > 2:
        raise UserError(f"--set {key}: name a top-level key or table.key")
    if len(parts) == 2:
        table, name = parts
        if table not in TABLES:
            raise UserError(f"--set {key}: {table!r} is not a table of an experiment ({', '.join(TABLES)})")
        if (table, name) in PATH_KEYS:
            value = _resolve_path(value, Path.cwd())
        return {table: {name: value}}
    return {key: value}


def _resolve_paths(doc: dict, base: Path) -> dict:
    doc = copy.deepcopy(doc)
    for table, key in PATH_KEYS:
        if isinstance(doc.get(table), dict) and key in doc[table]:
            doc[table][key] = _resolve_path(doc[table][key], base)
    return doc


def _resolve_path(value, base: Path):
    if not isinstance(value, str) or value in SPECIAL_PATHS or value.startswith(("$", "cgphw:")):
        return value  # $NAME: an environment variable, read when the campaign starts; cgphw: package data
    return str((base / Path(value).expanduser()).resolve())


@overload
def environment_path(value: str, key: str, required: Literal[True] = True) -> str: ...
@overload
def environment_path(value: str, key: str, required: bool) -> str | None: ...


def environment_path(value: str, key: str, required: bool = True) -> str | None:
    """A path setting: "$NAME" reads the environment variable NAME (None if it is unset and
    not ``required``); "${NAME:-DEFAULT}" gives DEFAULT (as it is) when NAME is unset."""
    if not value.startswith("$"):
        return value
    name, default = value[1:], None
    if value.startswith("${") and value.endswith("}") and ":-" in value:
        name, default = value[2:-1].split(":-", 1)
    found = os.environ.get(name)
    if not found and default is not None:
        return default
    if not found and not required:
        return None
    if not found:
        raise UserError(f"{key} is taken from the environment variable {name}, which is not set: "
                        f"export {name}=PATH or pass --set {key}=PATH (see docs/tflite.md)")
    return str(Path(found).expanduser().resolve())
