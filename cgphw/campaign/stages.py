"""The campaign's one door to the other stages (network, search, export, synthesis,
verification, insertion). Everything else in ``cgphw/campaign`` sees only the plain values
these functions return, so a change in another stage's API is a change here only.
The stages are called through the package's API (``cgphw.evolve``, ``cgphw.verify``, ...), as
a user's script would; only what the API does not offer comes from the defining modules.

A search runs on the experiment's ``search.workers`` threads (default 1): Dask runs one
campaign run per worker process already, and the local cluster gives each process that many
cores (runner.py), so threads never compete for the same cores (and the result never
depends on the thread count).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import cgphw
from cgphw.campaign.schema import search_settings
from cgphw.errors import UserError
from cgphw.files import read_json, sha256_file, write_json_atomic
from cgphw.task import Task, load_task  # noqa: F401  (re-exported for the flow)


# --- network -----------------------------------------------------------------------------
def model_file(path: str) -> Path:
    """The model file a setting names: "lenet5" (or its package name) is the shipped LeNet-5,
    "mobilenetv2" the shipped TFLite MobileNetV2."""
    from cgphw.nn.model import DEFAULT_MODEL, SHIPPED_NAMES
    from cgphw.nn.shipped import shipped_file
    from cgphw.nn.tflite_network import SHIPPED_FILE, SHIPPED_NAME

    if path == SHIPPED_NAME:
        return shipped_file(SHIPPED_FILE)
    return DEFAULT_MODEL if path in SHIPPED_NAMES else Path(path)


@functools.lru_cache(maxsize=2)
def load_model(path: str, sha256: str | None = None):
    """The int8 network, torch or TFLite (cached per process; ``sha256`` keys the cache to the
    file's content)."""
    from cgphw.nn.tflite_network import load_any

    return load_any(model_file(path))


def network_task(model, selector: str, layer: str | None = None, filters: list[int] | None = None) -> Task:
    from cgphw.nn.selectors import make_task

    return make_task(model, selector, layer=layer, filters=filters)


def conv_layers(model) -> list[str]:
    from cgphw.nn.layers import list_layers

    return [info.name for info in list_layers(model) if info.kind != "linear"]


def check_data(source: str, split: str, model=None) -> None:
    """Fail early (before any run starts) when the images cannot be read."""
    from cgphw.nn.tflite_network import network_images

    if len(network_images(model, source, split)) == 0:
        raise UserError(f"data {source} holds no images in its {split} split")


def insert(evolve_dir: Path, model_path: str, sha256: str | None, source: str, split: str,
           limit: int | None, before: dict | None = None) -> dict:
    """Accuracy of the int8 network before and after the run's circuit outputs replace its
    task's targets (cgphw.insert), as plain data. ``before``: the unchanged network's
    accuracy on these images (``baseline``), then not measured again."""
    from cgphw.nn.accuracy import Accuracy

    done = cgphw.insert(evolve_dir, model=load_model(model_path, sha256), data=source, split=split, limit=limit,
                        before=None if before is None else Accuracy(**before))
    return {"before": done.before.as_dict(), "after": done.after.as_dict(), "codes_changed": done.codes_changed}


BASELINE_FORMAT = "cgphw-campaign-baseline/1"
_ACCURACY_TYPES = {"top1": float, "top5": float, "loss": float, "images": int, "source": str}


def baseline(folder: Path, model_path: str, sha256: str | None, source: str, split: str, limit: int | None) -> dict:
    """The unchanged network's accuracy on the campaign's images, measured once per model
    and images (their content's hash, so that edited data is measured again) and kept in
    ``folder`` (the campaign's baselines/); a lock makes a second run that needs it at the
    same time wait for the first one's measurement."""
    import fcntl
    import hashlib
    import json

    from cgphw.nn.accuracy import measure
    from cgphw.nn.tflite_network import network_images

    images = network_images(load_model(model_path, sha256), source, split).head(limit)
    key = {"model_sha256": sha256, "data": source, "split": split, "limit": limit, "data_sha256": data_digest(images)}
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    with open(folder / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        found = _read_baseline(path, key)
        if found is not None:
            return found
        accuracy = measure(load_model(model_path, sha256), images).as_dict()
        write_json_atomic(path, {"format": BASELINE_FORMAT, **key, "accuracy": accuracy})
        return accuracy


def data_digest(images) -> str:
    """SHA-256 of a split's labels and pixels; for an image folder (decoded lazily) of its
    files' names, sizes and modification times instead, which costs no decoding."""
    import hashlib

    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(images.labels).tobytes())
    pixels = images.images
    if isinstance(pixels, np.ndarray):
        h.update(np.ascontiguousarray(pixels).tobytes())
    else:
        for f in pixels.files:
            st = Path(f).stat()
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_baseline(path: Path, key: dict) -> dict | None:
    """The stored accuracy if the file is a baseline of exactly this model and these images."""
    if not path.is_file():
        return None
    try:
        doc = read_json(path)
    except UserError:
        return None  # damaged (e.g. edited): measured again and replaced
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT \
            or any(doc.get(k) != v for k, v in key.items()):
        return None
    found = doc.get("accuracy")
    if not isinstance(found, dict) or set(found) != set(_ACCURACY_TYPES) \
            or any(type(found[k]) is not t for k, t in _ACCURACY_TYPES.items()):
        return None
    return found


def can_insert(task: Task) -> bool:
    """Only tasks that record where their targets live in the network can be put back."""
    return "targets_at" in task.meta


# --- search ------------------------------------------------------------------------------
def search_state(evolve_dir: Path) -> dict | None:
    """None: no search there yet (or one killed before it wrote its first checkpoint, which
    starts again). Else {"config", "finished", "generation", "result"} of the run ``load_run``
    checked ("result": as ``search_result`` gives it, read once for a finished search)."""
    from cgphw.cgp.rundir import CHECKPOINT, CONFIG

    if not (evolve_dir / CONFIG).is_file() or not (evolve_dir / CHECKPOINT).is_file():
        return None
    run = cgphw.load_run(evolve_dir)
    return {"config": run.config, "finished": run.finished, "generation": run.checkpoint.generation,
            "result": _result(run)}


def search_settings_match(config, search: dict, task: Task) -> bool:
    """Does a run's RunConfig hold the campaign run's search settings?"""
    settings, limits, seed = search_settings(search)
    return config.settings == settings.resolved(task.n_inputs) and config.limits == limits and config.seed == seed


def check_search(task: Task, search: dict) -> None:
    """UserError now, before any run starts, for settings the search would refuse later."""
    from cgphw.cgp.genome import grid_for

    s = search_settings(search)[0]
    outputs = len(set(task.targets.ravel().tolist())) if s.value_bank else task.n_outputs
    grid_for(task.n_inputs, outputs, s.rows, s.cols, s.levels_back, s.function_set)


def evolve(task: Task, search: dict, evolve_dir: Path, checkpoint_every: float | None = None,
           workers: int = 1) -> None:
    settings, limits, seed = search_settings(search, checkpoint_every)
    cgphw.evolve(task, settings, limits, seed=seed, out=evolve_dir, force=True, workers=workers)


def compile_search() -> float | None:
    """Compile the search loop in this process, or load it from numba's cache (a search of
    one generation on a one-weight task); the seconds spent compiling, None when it was
    ready. Every later search in this process, or any process sharing the cache, starts at
    once."""
    import time

    import numpy as np

    from cgphw.cgp.jit import kernels_ready

    if kernels_ready():
        return None
    t0 = time.monotonic()
    cgphw.evolve(Task(np.zeros((1, 1), np.int8), np.ones((1, 1), np.int8)), cgphw.SearchSettings(1, 1),
                 cgphw.Limits(generations=1), workers=1)
    return time.monotonic() - t0


def resume(evolve_dir: Path, workers: int = 1) -> None:
    cgphw.resume(evolve_dir, workers=workers)


def search_result(evolve_dir: Path) -> dict:
    """The finished search (``load_run``): metrics, genome hash, stop reason, value-bank size."""
    return _result(cgphw.load_run(evolve_dir))


def _result(run) -> dict:
    grid = run.genome.grid
    return {"metrics": run.metrics.to_json(), "genome_hash": run.genome.digest(), "start": run.config.start,
            "stop_reason": run.checkpoint.stop_reason, "n_values": (run.value_bank or {}).get("n_values"),
            "n_inputs": grid.n_inputs, "n_outputs": grid.n_outputs}


def circuit_graph(evolve_dir: Path) -> dict:
    """The best circuit's active part as plain data for drawing: inputs, nodes
    (index, column, row, gate name, operand pins) and output pins."""
    from cgphw import gates as G

    genome = cgphw.load_run(evolve_dir).genome
    grid, n_in = genome.grid, genome.grid.n_inputs
    nodes = []
    for k in genome.active_nodes():
        in0, in1, gid = (int(v) for v in genome.nodes[k])
        gate = G.gate(gid)
        nodes.append({"pin": n_in + int(k), "col": int(k) // grid.rows, "row": int(k) % grid.rows,
                      "gate": gate.name, "operands": [in0, in1][: gate.arity]})
    return {"inputs": n_in, "rows": grid.rows, "cols": grid.cols, "nodes": nodes,
            "outputs": [int(p) for p in genome.outputs]}


def stats_file(evolve_dir: Path) -> Path:
    from cgphw.cgp.rundir import STATS

    return evolve_dir / STATS


# --- hardware ----------------------------------------------------------------------------
def export(evolve_dir: Path, rtl_root: Path, name: str, pipeline: int, force: bool) -> Path:
    return cgphw.export(evolve_dir, out_dir=rtl_root, name=name, pipeline=pipeline or None, force=force).directory


def export_state(rtl_dir: Path) -> dict | None:
    """The export's facts the flow checks, from ``load_manifest`` (None when there is no
    export there, or one that does not hold up: it is then exported again)."""
    if not rtl_dir.is_dir():
        return None
    try:
        m = cgphw.load_manifest(rtl_dir)
    except UserError:  # MismatchError too: a damaged export is replaced
        return None
    return {"genome_hash": m.genome_hash, "pipeline": m.pipeline or 0, "name": m.name, "latency": m.latency}


def synth(rtl_dir: Path, prove: bool, evaluations: int) -> dict:
    return cgphw.synth(rtl_dir, prove=prove, evaluations=evaluations).to_json()


def synth_state(rtl_dir: Path, name: str) -> dict | None:
    """The synthesis report already written beside the export (NAME.synth.json), if any."""
    from cgphw.hw.synth_report import REPORT_FORMAT

    path = rtl_dir / f"{name}.synth.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    return doc if isinstance(doc, dict) and doc.get("format") == REPORT_FORMAT else None


def verify(rtl_dir: Path, simulator: str, vectors: int, seed: int) -> dict:
    return cgphw.verify(rtl_dir, sim=None if simulator == "auto" else simulator, n_random=vectors,
                        seed=seed).to_json()


# --- files -------------------------------------------------------------------------------
def file_digest(path: str | os.PathLike) -> str:
    return sha256_file(path)


def import_torchvision(source: Path, target: Path, calibration: str | None, images: int) -> None:
    """A torchvision MobileNetV2 state dict (float, or int8 QNNPACK) as a cgphw model file."""
    from cgphw.nn.import_mobilenet import import_mobilenet_v2

    import_mobilenet_v2(source, target, calibration, images)
