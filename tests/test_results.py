"""One result shape: every result a stage returns is a frozen value with ``ok``, ``to_json()``
(a JSON object) and ``lines()`` (the summary a command prints), cgphw.results.Result."""
import dataclasses
import json
from pathlib import Path

import pytest

import cgphw
from cgphw.results import Result

RTL = Path(__file__).resolve().parents[1] / "rtl_out"
RESULTS = ("RunResult", "ExportResult", "SynthReport", "Verdict", "Insertion", "LayerVerdict", "LayerEnergy",
           "LayerExport", "CampaignResult")


@pytest.mark.parametrize("name", RESULTS)
def test_every_exported_result_class_is_frozen_and_has_the_three_members(name):
    cls = getattr(cgphw, name)
    assert name in cgphw.__all__ and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    ok = isinstance(cls.__dict__.get("ok"), property) or "ok" in {f.name for f in dataclasses.fields(cls)}
    assert ok and callable(cls.to_json) and callable(cls.lines)


def _check(result, *fragments):
    """A real instance: a Result whose JSON is an object that survives a round trip and whose
    lines are strings saying ``fragments``; frozen."""
    assert isinstance(result, Result) and isinstance(result.ok, bool)
    doc = result.to_json()
    assert isinstance(doc, dict) and json.loads(json.dumps(doc, allow_nan=False)) == json.loads(json.dumps(doc))
    lines = result.lines()
    assert lines and all(isinstance(line, str) for line in lines)
    text = "\n".join(lines)
    assert all(fragment in text for fragment in fragments), text
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(result, dataclasses.fields(result)[0].name, None)
    return doc


def test_a_run_result(tmp_path):
    run = cgphw.evolve(cgphw.example_task(), cgphw.SearchSettings(3, 3), cgphw.Limits(2), seed=2, out=tmp_path / "r")
    doc = _check(run, f"run {tmp_path / 'r'}", "circuit:")
    assert run.ok is bool(run.metrics.threshold_reached) and doc["stop_reason"] == "generations"


def test_export_synth_and_layer_export_results_of_the_committed_exports():
    from cgphw.hw.accel.layer_manifest import load_layer_manifest
    from cgphw.hw.export import ExportResult
    from cgphw.hw.synth_report import SynthReport
    from cgphw.layer.export import LayerExport

    manifest = cgphw.load_manifest(RTL / "lenet5_core_ring")
    exported = ExportResult(manifest.directory, manifest, ("lenet5_core_ring.v",))
    assert _check(exported, "lenet5_core_ring.v", "combinational")["name"] == "lenet5_core_ring"
    doc = json.loads((RTL / "lenet5_core_ring" / "lenet5_core_ring.synth.json").read_text())  # Yosys made it
    report = SynthReport(manifest.directory, doc["name"], doc["ok"], doc["proof"] or {}, doc,
                         manifest.directory / "lenet5_core_ring.synth.json", None)
    # the committed report predates the "smaller" comparison: its lines are tests/hw/test_synth.py's (Yosys)
    assert report.ok and isinstance(report, Result) and report.to_json() == doc
    layer = RTL / "lenet5_conv1_core_ring"
    engine = load_layer_manifest(layer / "lenet5_conv1_core_ring_conv1.json")
    both = LayerExport(layer, cgphw.load_manifest(layer), engine, ("lenet5_conv1_core_ring_conv1.v",))
    assert _check(both, "layer engine", "cycles per image")["layer"] == "conv1"


def test_verdicts_are_judged_whole():
    from cgphw.layer.energy import EnergyRow

    passed = cgphw.Verdict("top", "amaranth", "Amaranth", 0, vectors=3, cycles=3, checks=3)
    failed = cgphw.Verdict("top", "amaranth", "Amaranth", 0, vectors=3, cycles=3, checks=3, problems=("late",))
    assert passed.ok and not failed.ok and not cgphw.Verdict("top", "icarus", "v", 1).ok  # nothing compared
    assert _check(failed, "FAIL top on amaranth", "problem: late")["passed"] is False
    layer = cgphw.LayerVerdict("c", "conv1", "amaranth", "engine", "circuit", "fbgemm", 2, activations=8,
                               predictions_equal=2, first_mismatch=None)
    assert layer.ok and _check(layer, "PASS c conv1 on amaranth")["passed"] is True
    row = EnergyRow("sram", 1, 4, 100, 50.0, 0.0, 5.0, 4, 0, 0.0)
    energy = cgphw.LayerEnergy("c", "conv1", 2, 1000, 150, 150, 1.25, (row,), checked_activations=8)
    doc = _check(energy, "gate-level outputs equal the int8 network on all 8")
    assert energy.ok and doc["rows"][0]["source"] == "sram"


def test_insertion_and_campaign_results(tmp_path):
    from cgphw.insertion import LayerChange

    acc = cgphw.Accuracy(0.98, 1.0, 0.05, 100, "mnist5k test")
    done = cgphw.Insertion("runs/r", "the best circuit of runs/r", None, (LayerChange("conv1", 150, 16),), acc,
                           cgphw.Accuracy(0.97, 1.0, 0.06, 100, "mnist5k test"), True)
    assert _check(done, "inserted the best circuit of runs/r into conv1")["delta_top1"] == pytest.approx(-0.01)
    campaign = cgphw.CampaignResult(tmp_path, "single-filter", "quick", 2, 0, 0, {"r1": "boom"},
                                    tmp_path / "results.parquet", 3.0)
    assert not campaign.ok and _check(campaign, "2 runs: 0 ran now", "1 failed")["failed"] == {"r1": "boom"}


# --- each verb takes the previous stage's result or a path ----------------------------------------
@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """A run of a LeNet-5 task (a few generations: insert needs to know where the weights go) and
    its export, made from the result objects alone."""
    root = tmp_path_factory.mktemp("flow")
    task = cgphw.make_task("lenet5", "core-ring", filters=[0])
    run = cgphw.evolve(task, cgphw.SearchSettings(3, 3), cgphw.Limits(2), seed=2, out=root / "run")
    return root, run, cgphw.export(run, out_dir=root / "rtl", force=True)


def test_export_verify_and_insert_take_the_result_objects(flow):
    root, run, exported = flow
    assert exported.directory == root / "rtl" / "run" and exported.manifest.genome_hash == run.genome.digest()
    again = cgphw.export(cgphw.load_run(run.run_dir), out_dir=root / "rtl", name="loaded", force=True)  # a Run
    assert again.manifest.genome_hash == run.genome.digest()
    verdict = cgphw.verify(exported, sim="amaranth", n_random=8)
    assert verdict.ok and verdict.design == exported.manifest.top
    from_run = cgphw.verify(run, sim="amaranth", n_random=8)  # a run is exported first, as its path is
    assert from_run.ok and from_run.vectors == verdict.vectors
    by_object, by_path = cgphw.insert(run, limit=20), cgphw.insert(run.run_dir, limit=20)
    assert by_object.to_json() == by_path.to_json() and by_object.source == str(run.run_dir)


def test_a_search_kept_in_memory_has_no_folder_to_hand_on():
    run = cgphw.evolve(cgphw.example_task(), cgphw.SearchSettings(3, 3), cgphw.Limits(2), seed=2)
    with pytest.raises(cgphw.UserError, match="not written to a run directory"):
        cgphw.export(run)


@pytest.mark.yosys
def test_synth_takes_the_export(flow):
    _, _, exported = flow
    report = cgphw.synth(exported)
    assert report.ok and report.directory == exported.directory
