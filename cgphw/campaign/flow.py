"""One campaign run from start to end: task -> evolve -> export -> synth -> verify -> insert.

``execute_run`` is what a Dask worker executes. Each stage first checks whether its output
already exists and belongs to this run (same genome, same settings); then it is skipped.
So a run killed anywhere continues where it stopped — the search from its last checkpoint —
and a finished run (``record.json``) does no work at all. Every stage writes whole files
(temporary name, then rename); ``log.jsonl`` keeps what happened, attempt by attempt.

Run folder: spec.json, task.npz, evolve/ (the search's run directory), rtl/NAME/ (export and
synthesis report), verify.json, insert.json, record.json (the results row), log.jsonl. It
lies in the campaign folder's runs/; the campaign folder's baselines/ keeps the unchanged
network's accuracy, measured by the first run that inserts and read by the others
(``stages.baseline``).

record.json alone is never trusted (its digest is only the spec's): ``finished_row`` derives
the row again from the run's files, each read by its checking loader (``load_run`` evaluates
best.json again, ``load_manifest`` checks the export), and counts the run as finished only
when no stage would have work and the row equals the record. Otherwise the run's stages run
again: an edited row is replaced by the true one, a changed best.json is exported and
verified again, and files that contradict each other fail the run (MismatchError, exit 1).
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

from cgphw.campaign import stages
from cgphw.campaign.runspec import RunSpec
from cgphw.campaign.tasks import build_task, needs_model
from cgphw.errors import UserError
from cgphw.files import read_json, write_json_atomic

SPEC_FORMAT = "cgphw-campaign-run/1"
RECORD_FORMAT = "cgphw-campaign-record/1"
VERIFY_FORMAT = "cgphw-campaign-verify/1"
INSERT_FORMAT = "cgphw-campaign-insert/1"


class RunLog:
    """log.jsonl: one JSON line per event (stage start/done/skip/resume, errors)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "log.jsonl"
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def event(self, stage: str, event: str, **info) -> None:
        line = json.dumps({"time": round(time.time(), 3), "stage": stage, "event": event, "worker": self.worker,
                           **info})
        with self.path.open("a") as fh:
            fh.write(line + "\n")


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed worker
    return events


def read_spec(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "spec.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    return doc if isinstance(doc, dict) and doc.get("format") == SPEC_FORMAT else None


def read_record(run_dir: Path, digest: str) -> dict | None:
    """The finished run's results row, if record.json exists and belongs to this run."""
    path = Path(run_dir) / "record.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT or doc.get("digest") != digest:
        return None
    return doc["row"]


class _WouldRun(Exception):
    """A stage has work to do: the run is not finished (raised only while checking)."""


class CheckLog(RunLog):
    """The log of a check: writes nothing, and any stage that would do work stops the check."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "log.jsonl"

    def event(self, stage: str, event: str, **info) -> None:
        if event == "start":
            raise _WouldRun(stage)


def finished_row(spec: RunSpec, run_dir: Path, baselines: Path) -> dict | None:
    """The row of a finished run, derived again from its checked files; None when the run
    must run (again): no record.json, a stage with work left, files a loader refuses, or a
    record that is not the row its files give."""
    record = read_record(run_dir, spec.digest)
    if record is None:
        return None
    try:
        row = _stages(spec, run_dir, CheckLog(run_dir), baselines)
    except (_WouldRun, UserError):  # MismatchError too: the run then fails with it, in its own log
        return None
    return row if json.loads(json.dumps(row)) == record else None


def claim_run_dir(run_dir: Path, spec: RunSpec) -> None:
    """Make the run folder ours: spec.json names the run; a folder holding another run, or
    files cgphw did not write, is refused (nothing of a user's is ever overwritten)."""
    doc = read_spec(run_dir)
    if doc is not None:
        if doc.get("digest") != spec.digest:
            raise UserError(f"{run_dir} holds another run (spec.json differs); remove it or choose another --out")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} exists and is not a cgphw campaign run; remove it or choose another --out")
    write_json_atomic(run_dir / "spec.json", {"format": SPEC_FORMAT, **spec.to_json()})


def execute_run(spec_doc: dict, run_dir: str | Path, baselines: str | Path | None = None) -> dict:
    """Run (or finish) one campaign run; returns its results row. ``baselines``: the folder
    where the campaign's runs share the unchanged network's accuracy (default: the run's own
    baselines/, measured for this run alone)."""
    spec, folder = RunSpec.from_json(spec_doc), Path(run_dir)
    shared = Path(baselines) if baselines is not None else folder / "baselines"
    claim_run_dir(folder, spec)
    log = RunLog(folder)
    log.event("run", "start")
    try:
        row = _stages(spec, folder, log, shared)
    except Exception as exc:
        log.event("run", "error", message=f"{type(exc).__name__}: {exc}")
        raise
    write_json_atomic(folder / "record.json", {"format": RECORD_FORMAT, "digest": spec.digest, "row": row})
    log.event("run", "done")
    return row


def _timed(log: RunLog, stage: str, work, *args, **info):
    log.event(stage, "start", **info)
    t0 = time.monotonic()
    out = work(*args)
    log.event(stage, "done", seconds=round(time.monotonic() - t0, 3))
    return out


def _stages(spec: RunSpec, run_dir: Path, log: RunLog, baselines: Path) -> dict:
    task = _task(spec, run_dir, log)
    evolve_dir = run_dir / "evolve"
    search = _evolve(spec, task, evolve_dir, log) or stages.search_result(evolve_dir)
    name = circuit_name(spec)
    rtl_dir = run_dir / "rtl" / name
    reached = bool(search["metrics"]["threshold_reached"])
    hardware = reached or spec.export["unreached"] == "export"
    exported = synth = verdict = insertion = None
    if "export" in spec.stages and hardware:
        state = stages.export_state(rtl_dir)
        if state and state["genome_hash"] == search["genome_hash"] and state["pipeline"] == spec.export["pipeline"]:
            log.event("export", "skip")
        else:
            _timed(log, "export", stages.export, evolve_dir, run_dir / "rtl", name, spec.export["pipeline"],
                   not reached)
            state = stages.export_state(rtl_dir)
        exported = state
    if exported and "synth" in spec.stages:
        synth = stages.synth_state(rtl_dir, name)
        prove, evaluations = spec.synth["prove"], spec.synth["evaluations"]
        if synth and synth.get("genome_hash") == search["genome_hash"] and (synth["proof"] is not None) == prove \
                and synth["activity"]["evaluations"] == evaluations:
            log.event("synth", "skip")
        else:
            synth = _timed(log, "synth", stages.synth, rtl_dir, prove, evaluations)
    if exported and "verify" in spec.stages:
        verdict = _verify(spec, run_dir, rtl_dir, search["genome_hash"], log)
    if "insert" in spec.stages and stages.can_insert(task):
        insertion = _insert(spec, run_dir, evolve_dir, search["genome_hash"], log, baselines)
    return make_row(spec, run_dir, task, search, exported, synth, verdict, insertion, rtl_dir)


def circuit_name(spec: RunSpec) -> str:
    """A Verilog module name for the run's circuit."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", spec.run_id)
    return name if name[0].isalpha() else "c_" + name


def _task(spec: RunSpec, run_dir: Path, log: RunLog):
    path = run_dir / "task.npz"
    if path.is_file():
        task = stages.load_task(path)
        if task.meta.get("campaign_run") == spec.digest:
            log.event("task", "skip")
            return task
    log.event("task", "start")
    model = stages.load_model(spec.model["path"], spec.model.get("sha256")) if needs_model(spec.task) else None
    if model is not None and spec.model.get("sha256"):
        found = stages.file_digest(stages.model_file(spec.model["path"]))
        if found != spec.model["sha256"]:
            raise UserError(f"the model file {spec.model['path']} changed since the campaign started "
                            f"(sha256 {found[:12]}..., expected {spec.model['sha256'][:12]}...)")
    task = build_task(spec.task, model)
    task = stages.Task(task.inputs, task.targets, task.weights, task.mask, dict(task.meta, campaign_run=spec.digest))
    task.save(path)
    log.event("task", "done", items=task.n_items, inputs=task.n_inputs, outputs=task.n_outputs)
    return task


def _evolve(spec: RunSpec, task, evolve_dir: Path, log: RunLog) -> dict | None:
    """Run or finish the search; the finished search's result when it was already there."""
    state = stages.search_state(evolve_dir)
    if state is not None and not stages.search_settings_match(state["config"], spec.search, task):
        raise UserError(f"{evolve_dir} holds a search with other settings than this run's spec.json")
    if state is not None and state["finished"]:
        log.event("evolve", "skip")
        return state["result"]
    if state is not None and state["generation"] is not None:
        _timed(log, "evolve", stages.resume, evolve_dir, spec.workers, resumed_from=state["generation"])
    else:  # new, or killed before its first checkpoint: start (again) from the seed
        every = spec.extra.get("checkpoint_every")  # None: the default (SearchSettings)
        _timed(log, "evolve", stages.evolve, task, spec.search, evolve_dir, every, spec.workers)
    return None


def _verify(spec: RunSpec, run_dir: Path, rtl_dir: Path, genome_hash: str, log: RunLog):
    path = run_dir / "verify.json"
    v = spec.verify
    key = {"genome_hash": genome_hash, "simulator": v["simulator"], "vectors": v["vectors"], "seed": v["seed"]}
    if path.is_file():
        doc = read_json(path)
        if (isinstance(doc, dict) and doc.get("format") == VERIFY_FORMAT
                and all(doc.get(k) == x for k, x in key.items())):
            log.event("verify", "skip")
            return doc["verdict"]
    verdict = _timed(log, "verify", stages.verify, rtl_dir, v["simulator"], v["vectors"], v["seed"])
    write_json_atomic(path, {"format": VERIFY_FORMAT, **key, "verdict": verdict})
    return verdict


def _insert(spec: RunSpec, run_dir: Path, evolve_dir: Path, genome_hash: str, log: RunLog, baselines: Path):
    path = run_dir / "insert.json"
    d = spec.data
    key = {"genome_hash": genome_hash, "model_sha256": spec.model.get("sha256"), "data": d["source"],
           "split": d["split"], "limit": d.get("limit")}
    if path.is_file():
        doc = read_json(path)
        if (isinstance(doc, dict) and doc.get("format") == INSERT_FORMAT
                and all(doc.get(k) == x for k, x in key.items())):
            log.event("insert", "skip")
            return doc
    def measure():
        before = stages.baseline(baselines, spec.model["path"], spec.model.get("sha256"), d["source"], d["split"],
                                 d.get("limit"))
        return stages.insert(evolve_dir, spec.model["path"], spec.model.get("sha256"), d["source"], d["split"],
                             d.get("limit"), before)

    result = _timed(log, "insert", measure)
    doc = {"format": INSERT_FORMAT, **key, **result}
    write_json_atomic(path, doc)
    return doc


def _stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds each stage took in the attempt that produced its output (from log.jsonl)."""
    out: dict[str, float] = {}
    for e in read_log(run_dir):
        if e.get("event") == "done" and "seconds" in e:
            out[e["stage"]] = float(e["seconds"])
    return out


def make_row(spec: RunSpec, run_dir: Path, task, search: dict, exported, synth, verdict, insertion,
             rtl_dir: Path) -> dict:
    """The run's row of the campaign's results table (see results.COLUMNS)."""
    m, s, t = search["metrics"], spec.search, spec.task
    logged = _stage_seconds(run_dir)
    hw_seconds = sum(logged.get(k, 0.0) for k in ("export", "synth", "verify", "insert"))
    row = {"experiment": spec.experiment, "run": spec.run_id, "task": spec.task_label, "selector": t["selector"],
           "layer": _layers(task), "filters": ",".join(map(str, t["filters"])) if t.get("filters") else None,
           "threshold": s["threshold"], "seed": s["seed"], "grid": spec.grid, "rows": s["rows"], "cols": s["cols"],
           "levels_back": s["levels_back"], "lambda": s["lambda"], "mutation": s["mutation"],
           "mutation_max": s["mutation_max"], "adaptive": s["adaptive"], "start": search["start"],
           "function_set": s["function_set"], "value_bank": s["value_bank"], "pipeline": spec.export["pipeline"],
           "items": task.n_items, "inputs": task.n_inputs, "outputs": task.n_outputs, "n_targets": m.get("n_targets"),
           "n_values": search["n_values"], "multiplexers": task.meta.get("multiplexers"),
           "reached": bool(m["threshold_reached"]), "error": m["error_se"], "rms_error": m.get("rms_error"),
           "energy": m["energy_pj"], "area": m["area"], "delay": m["delay_ns"], "gates": m["gates"],
           "generations": m.get("generations"), "evaluations": m.get("evaluations"),
           "stop_reason": search["stop_reason"],
           "search_seconds": m.get("seconds"), "wall_seconds": round(float(m.get("seconds") or 0.0) + hw_seconds, 3),
           "genome_hash": search["genome_hash"]}
    row.update(_synth_columns(synth))
    row.update({"verified": None if verdict is None else ("pass" if verdict["passed"] else "fail"),
                "verify_simulator": None if verdict is None else verdict["simulator"],
                "verify_vectors": None if verdict is None else verdict["vectors"]})
    before = insertion["before"] if insertion else {}
    after = insertion["after"] if insertion else {}
    row.update({"top1_before": before.get("top1"), "top1_after": after.get("top1"),
                "delta_top1": (after["top1"] - before["top1"]) if insertion else None,
                "top5_before": before.get("top5"), "top5_after": after.get("top5"),
                "loss_before": before.get("loss"), "loss_after": after.get("loss"),
                "accuracy_images": after.get("images"), "accuracy_data": after.get("source")})
    # paths relative to the campaign folder, which may be moved or copied whole
    here = Path("runs") / run_dir.name
    row.update({"run_dir": str(here), "evolve_dir": str(here / "evolve"),
                "rtl_dir": str(here / "rtl" / rtl_dir.name) if exported else None})
    return row


def _layers(task) -> str | None:
    where = task.meta.get("layers")
    return ",".join(where) if isinstance(where, dict) and where else None


def _synth_columns(doc: dict | None) -> dict:
    if doc is None:
        return {k: None for k in ("synth_cells", "synth_area", "synth_energy", "synth_pj_per_weight", "synth_delay",
                                  "rom_cells", "rom_area", "rom_pj_per_weight", "sram_pj_per_weight",
                                  "circuit_pj_per_weight_with_reads", "estimate_ratio", "synth_ok", "proof")}
    c, b, cmp_ = doc["circuit"], doc.get("baseline") or {}, doc["comparison"]
    proof = doc.get("proof")
    return {"synth_cells": c["n_cells"], "synth_area": c["area"], "synth_energy": c["energy_pj"],
            "synth_pj_per_weight": c["energy_pj_per_weight"], "synth_delay": c["delay_ns"],
            "rom_cells": b.get("n_cells"), "rom_area": b.get("area"),
            "rom_pj_per_weight": b.get("energy_pj_per_weight"),
            "sram_pj_per_weight": cmp_.get("sram_pj_per_weight"),
            "circuit_pj_per_weight_with_reads": cmp_.get("circuit_pj_per_weight_incl_stored_reads"),
            "estimate_ratio": doc["estimate"].get("ratio"), "synth_ok": bool(doc["ok"]),
            "proof": None if proof is None else ("equivalent" if all(p["equivalent"] for p in proof.values())
                                                 else "failed")}
