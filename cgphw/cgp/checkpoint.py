"""The run directory: config.json, task.npz, costs.json, stats.csv, checkpoint.json and
best.json. Every JSON file is written atomically (temp file + rename)."""
from __future__ import annotations

import csv
from pathlib import Path

from cgphw.errors import UserError
from cgphw.files import atomic_file, read_json, write_json_atomic

CONFIG_FORMAT = "cgphw-run-config/1"
CHECKPOINT_FORMAT = "cgphw-checkpoint/1"
RUN_FORMAT = "cgphw-run/1"
STATS_FIELDS = ("generation", "time", "error", "energy", "delay", "gates", "event")
RUN_FILES = ("config.json", "task.npz", "costs.json", "stats.csv", "checkpoint.json", "best.json")


def prepare_run_dir(out, force: bool = False) -> Path:
    """Create the run directory; an existing run is only replaced when ``force`` is set."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if (out / "config.json").exists() and not force:
        raise UserError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    return out


def copy_costs(run_dir: Path, costs_path) -> Path:
    dst = run_dir / "costs.json"
    with atomic_file(dst, "wb") as fh:
        fh.write(Path(costs_path).read_bytes())
    return dst


def read_run_file(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent} has no {path.name}: it is not a cgphw run directory{what}")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return doc


def read_config(run_dir: Path) -> dict:
    doc = read_run_file(Path(run_dir) / "config.json", "")
    if doc.get("format") != CONFIG_FORMAT:
        raise UserError(f"{run_dir}/config.json has format {doc.get('format')!r}, expected {CONFIG_FORMAT!r}")
    for key, kinds in _CONFIG_FIELDS.items():
        value = doc.get(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise UserError(f"{run_dir}/config.json has a malformed or missing {key!r}: {value!r}")
    return doc


_NUMBER = (int, float)
_CONFIG_FIELDS = {"rows": (int,), "cols": (int,), "levels_back": (int,), "lambda": (int,), "seed": (int,),
                  "mutation_max": _NUMBER, "threshold": _NUMBER, "checkpoint_every": _NUMBER,
                  "value_bank": (bool,), "function_set": (list,), "costs": (dict,),
                  "generations": (int, type(None)), "time_budget": (*_NUMBER, type(None)),
                  "patience": (int, type(None))}


def write_checkpoint(run_dir: Path, snapshot: dict, seconds: float, finished: str | None) -> None:
    write_json_atomic(Path(run_dir) / "checkpoint.json",
                      {"format": CHECKPOINT_FORMAT, **snapshot, "seconds": seconds, "stop_reason": finished})


def read_checkpoint(run_dir: Path) -> dict:
    doc = read_run_file(Path(run_dir) / "checkpoint.json", " that can be resumed (no checkpoint)")
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{run_dir}/checkpoint.json has format {doc.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    for key in ("genome", "rng", "generation", "stall", "offspring", "evaluated", "seconds"):
        if key not in doc:
            raise UserError(f"{run_dir}/checkpoint.json lacks {key!r}")
    if isinstance(doc["seconds"], bool) or not isinstance(doc["seconds"], (int, float)):
        raise UserError(f"{run_dir}/checkpoint.json holds a malformed state (seconds {doc['seconds']!r})")
    return doc


def write_best(run_dir: Path, genome_json: dict, metrics: dict, value_bank: dict | None, costs: dict) -> None:
    write_json_atomic(Path(run_dir) / "best.json", {"format": RUN_FORMAT, "genome": genome_json,
                                                    "metrics": metrics, "value_bank": value_bank, "costs": costs})


class StatsLog:
    """stats.csv: one row per improvement and one per progress tick. On resume, rows past
    the checkpoint's generation are dropped so the log matches the run that continues."""

    def __init__(self, run_dir: Path, keep_upto: int | None = None):
        self.path = Path(run_dir) / "stats.csv"
        rows = []
        if keep_upto is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("generation", "").isdigit()
                        and int(r["generation"]) <= keep_upto]
        with atomic_file(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, STATS_FIELDS)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in STATS_FIELDS} for r in rows)
        self.fh = self.path.open("a", newline="")
        self.writer = csv.writer(self.fh)

    def add(self, generation: int, seconds: float, m: dict, event: str) -> None:
        self.writer.writerow([generation, f"{seconds:.3f}", repr(float(m["error_se"])), repr(float(m["energy_pj"])),
                              repr(float(m["delay_ns"])), int(m["gates"]), event])

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
