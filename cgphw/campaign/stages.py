"""The campaign's one door to the other stages (network, search, export, synthesis,
verification, insertion). Everything else in ``cgphw/campaign`` sees only the plain values
these functions return, so a change in another stage's API is a change here only.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from cgphw.errors import UserError
from cgphw.files import read_json, sha256_file
from cgphw.task import Task, load_task  # noqa: F401  (re-exported for the flow)


# --- network -----------------------------------------------------------------------------
def model_file(path: str) -> Path:
    """The model file a setting names: "lenet5" (or its package name) is the shipped LeNet-5."""
    from cgphw.nn.model import DEFAULT_MODEL, SHIPPED_NAME

    return DEFAULT_MODEL if path in ("lenet5", SHIPPED_NAME) else Path(path)


@functools.lru_cache(maxsize=2)
def load_model(path: str, sha256: str | None = None):
    """The int8 model (cached per process; ``sha256`` keys the cache to the file's content)."""
    from cgphw.nn.model import load_model as load

    return load(model_file(path))


def network_task(model, selector: str, layer: str | None = None, filters: list[int] | None = None) -> Task:
    from cgphw.nn.tasks import make_task

    return make_task(model, selector, layer, filters)


def conv_layers(model) -> list[str]:
    from cgphw.nn.layers import list_layers

    return [info.name for info in list_layers(model) if info.kind != "linear"]


def layer_shapes(model) -> dict[str, list[int]]:
    from cgphw.nn.layers import list_layers

    return {info.name: list(info.shape) for info in list_layers(model)}


def check_data(source: str, split: str) -> None:
    """Fail early (before any run starts) when the images cannot be read."""
    from cgphw.nn.data import load_split

    if len(load_split(source, split)) == 0:
        raise UserError(f"data {source} holds no images in its {split} split")


def insert(evolve_dir: Path, model_path: str, sha256: str | None, source: str, split: str,
           limit: int | None) -> dict:
    """Accuracy of the int8 network before and after the run's circuit outputs replace its
    task's targets (cgphw.insert), as plain data."""
    from cgphw.insertion import insert as put

    done = put(evolve_dir, model=load_model(model_path, sha256), data=source, split=split, limit=limit)
    return {"before": done.before.as_dict(), "after": done.after.as_dict(), "codes_changed": done.codes_changed}


def can_insert(task: Task) -> bool:
    """Only tasks that record where their targets live in the network can be put back."""
    return "targets_at" in task.meta


# --- search ------------------------------------------------------------------------------
def search_state(evolve_dir: Path) -> dict | None:
    """None: no search started there. Else {"config", "finished", "generation"}."""
    from cgphw.cgp import checkpoint as ck

    if not (evolve_dir / "config.json").is_file():
        return None
    config = ck.read_config(evolve_dir)
    if not (evolve_dir / "checkpoint.json").is_file():
        return {"config": config, "finished": False, "generation": None}
    state = ck.read_checkpoint(evolve_dir)
    finished = state.get("stop_reason") is not None and (evolve_dir / "best.json").is_file()
    return {"config": config, "finished": finished, "generation": int(state["generation"])}


def search_settings_match(config: dict, search: dict) -> bool:
    from cgphw import gates as G

    want = {"rows": search["rows"], "cols": search["cols"], "levels_back": search["levels_back"],
            "lambda": search["lambda"], "mutation_max": search["mutation_max"], "threshold": search["threshold"],
            "value_bank": search["value_bank"], "seed": search["seed"],
            "generations": search.get("generations"), "time_budget": search.get("time_budget"),
            "patience": search.get("patience"), "function_set": list(G.function_set(search["function_set"]))}
    return all(config.get(k) == v for k, v in want.items())


def evolve(task: Task, search: dict, evolve_dir: Path, checkpoint_every: float) -> None:
    from cgphw.cgp.search import evolve as run

    run(task, rows=search["rows"], cols=search["cols"], levels_back=search["levels_back"], lam=search["lambda"],
        mutation_max=search["mutation_max"], threshold=search["threshold"], value_bank=search["value_bank"],
        function_set=search["function_set"], seed=search["seed"], generations=search.get("generations"),
        time_budget=search.get("time_budget"), patience=search.get("patience"), out=evolve_dir,
        checkpoint_every=checkpoint_every, force=True)


def resume(evolve_dir: Path) -> None:
    from cgphw.cgp.search import resume as run

    run(evolve_dir)


def search_result(evolve_dir: Path) -> dict:
    """The finished search: metrics, genome hash, stop reason, value-bank size."""
    from cgphw.cgp.genome import Genome

    best = read_json(evolve_dir / "best.json")
    state = read_json(evolve_dir / "checkpoint.json")
    genome = Genome.from_json(best["genome"], source=f"{evolve_dir}/best.json")
    bank = best.get("value_bank") or {}
    return {"metrics": best["metrics"], "genome_hash": genome.digest(), "stop_reason": state.get("stop_reason"),
            "n_values": bank.get("n_values"), "n_inputs": genome.grid.n_inputs, "n_outputs": genome.grid.n_outputs}


def circuit_graph(evolve_dir: Path) -> dict:
    """The best circuit's active part as plain data for drawing: inputs, nodes
    (index, column, row, gate name, operand pins) and output pins."""
    from cgphw import gates as G
    from cgphw.cgp.genome import load_genome

    genome = load_genome(evolve_dir / "best.json")
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
    return evolve_dir / "stats.csv"


# --- hardware ----------------------------------------------------------------------------
def export(evolve_dir: Path, rtl_root: Path, name: str, pipeline: int, force: bool) -> Path:
    from cgphw.hw.export import export as run

    directory, _ = run(evolve_dir, out_dir=rtl_root, name=name, pipeline=pipeline or None, force=force)
    return directory


def export_state(rtl_dir: Path) -> dict | None:
    """The export manifest's facts the flow checks (None when there is no manifest)."""
    from cgphw.hw.manifest import find_manifest

    if not rtl_dir.is_dir():
        return None
    path = find_manifest(rtl_dir)
    if path is None:
        return None
    doc = read_json(path)
    return {"genome_hash": doc.get("genome_hash"), "pipeline": doc.get("pipeline") or 0, "name": doc.get("name"),
            "gates": doc.get("gates"), "latency": doc.get("latency"), "manifest": path}


def synth(rtl_dir: Path, prove: bool, evaluations: int) -> dict:
    from cgphw.costs import load_costs
    from cgphw.hw.cells import load_cells
    from cgphw.hw.synth_report import synth_rtl_dir

    return synth_rtl_dir(rtl_dir, load_cells(None), load_costs(None), prove=prove, evaluations=evaluations)


def synth_state(rtl_dir: Path, name: str) -> dict | None:
    from cgphw.hw.synth_report import REPORT_FORMAT

    path = rtl_dir / f"{name}.synth.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    return doc if isinstance(doc, dict) and doc.get("format") == REPORT_FORMAT else None


def verify(rtl_dir: Path, simulator: str, vectors: int, seed: int) -> dict:
    from cgphw.verify.verdict import verify as run

    verdict = run(rtl_dir, sim=None if simulator == "auto" else simulator, n_random=vectors, seed=seed)
    return verdict.to_json()


# --- files -------------------------------------------------------------------------------
def file_digest(path: str | os.PathLike) -> str:
    return sha256_file(path)


def import_torchvision(source: Path, target: Path, calibration: str | None, images: int) -> None:
    """A torchvision MobileNetV2 state dict (float, or int8 QNNPACK) as a cgphw model file."""
    from cgphw.nn.import_mobilenet import import_mobilenet_v2

    import_mobilenet_v2(source, target, calibration, images)
