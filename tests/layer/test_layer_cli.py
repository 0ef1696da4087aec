"""`cgphw verify-layer` on the committed conv1 example: real images against torch, faults
caught (exit 1), bad input refused (exit 2); `cgphw export --layer` and the sim/ flow."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from layer_fixtures import EXAMPLE, REPO

from cgphw.verification.backends import missing_reason

NO_ICARUS = missing_reason("icarus")
NO_VERILATOR = missing_reason("verilator")


def halve_a_multiplier(verilog) -> None:
    """An edit that changes results: the first requantisation multiplier halved."""
    text = verilog.read_text()
    verilog.write_text(re.sub(r"32'd(\d+)", lambda m: f"32'd{int(m.group(1)) // 2}", text, count=1))


def test_committed_example_matches_torch_on_real_images(cli):
    code, out, _ = cli("verify-layer", str(EXAMPLE), "--images", "3", "--sim", "amaranth", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"], doc
    assert doc["activations"] == 3 * 6 * 24 * 24 and doc["mismatches"] == 0 and doc["reference_mismatches"] == 0
    assert doc["predictions_equal"] == 3 and doc["top1_simulated"] == doc["top1_software"]
    assert doc["problems"] == []  # the committed Verilog is what cgphw builds today
    assert doc["cycles_per_image"] < 600  # 576 positions, one per cycle, and the weight load


@pytest.mark.parametrize("fault", ["requant-shift", "weight-bit", "acc-reset"])
def test_injected_faults_fail_with_the_first_mismatch(cli, fault):
    code, out, _ = cli("verify-layer", str(EXAMPLE), "--images", "2", "--sim", "amaranth",
                         "--inject-fault", fault)
    assert code == 1
    assert out.startswith("FAIL") and f"fault injected on purpose: {fault}" in out
    assert "first mismatch: image 0, channel" in out and "expected" in out and "got" in out


@pytest.mark.simulator
@pytest.mark.skipif(NO_ICARUS is not None, reason=str(NO_ICARUS))
def test_exported_engine_in_icarus_and_an_edit_is_caught(cli, example_copy):
    code, out, _ = cli("verify-layer", str(example_copy), "--images", "2", "--sim", "icarus", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["subject"] == "exported Verilog lenet5_conv1_core_ring_conv1.v"
    code, out, _ = cli("verify-layer", str(example_copy), "--images", "1", "--sim", "icarus",
                         "--inject-fault", "acc-reset")
    assert code == 1, out
    halve_a_multiplier(example_copy / "lenet5_conv1_core_ring_conv1.v")
    code, _, err = cli("verify-layer", str(example_copy), "--images", "1", "--sim", "icarus")
    assert code == 1 and "sha256" in err and "edited or replaced" in err


@pytest.mark.slow  # one Verilator build (~35 s of CPU, most of it Verilator's runtime library)
@pytest.mark.simulator
@pytest.mark.skipif(NO_VERILATOR is not None, reason=str(NO_VERILATOR))
def test_exported_engine_in_verilator(cli, tmp_path):
    """The engine's Verilog built by Verilator (--output-split 0: one C++ file) and run by cocotb."""
    code, out, _ = cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "verilator", "--keep",
                         str(tmp_path / "work"), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] and doc["simulator"] == "verilator", doc
    assert doc["activations"] == 6 * 24 * 24 and doc["mismatches"] == 0 and doc["predictions_equal"] == 1
    assert doc["cycles"] >= doc["engine"]["cycles_per_image"] and doc["problems"] == []
    assert (tmp_path / "work" / "sim_build_verilator").is_dir()  # --keep holds the build


@pytest.mark.parametrize("args, message", [
    (["--layer", "conv9"], "no int8 layer named 'conv9'"),
    (["--layer", "conv2"], "computes no weight of layer conv2"),
    (["--lanes", "4"], "--lanes must divide the layer's 6 output channels"),
    (["--taps", "7"], "--taps must divide the layer's 25 weights per channel"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    code, _, err = cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "amaranth", *args)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_circuit_without_network_locations_is_refused(cli):
    code, _, err = cli("verify-layer", str(REPO / "rtl_out" / "lenet5_core_ring"), "--sim", "amaranth")
    assert code == 2 and "does not record where its weights live" in err


def test_export_layer_then_verify_and_run_the_testbench(cli, example_run, tmp_path):
    code, out, _ = cli("export", str(example_run), "--layer", "conv1", "--out", str(tmp_path / "rtl"),
                         "--stimulus-images", "2", "--json")
    doc = json.loads(out)
    rtl = tmp_path / "rtl" / "conv1_ring"
    assert code == 0 and doc["engine"] == "conv1_ring_conv1"
    for name in ("conv1_ring.v", "conv1_ring_conv1.v", "conv1_ring_conv1.il", "conv1_ring_conv1.json",
                 "conv1_ring_conv1_stim.npz", "conv1_ring_conv1_tb.py"):
        assert (rtl / name).is_file(), name
    manifest = json.loads((rtl / "conv1_ring_conv1.json").read_text())
    assert manifest["format"] == "cgphw-layer/1" and manifest["geometry"]["lanes"] == 6
    assert manifest["model"]["path"] == "cgphw:models/lenet5_mnist5k.pt"
    # the same circuit as the committed example: the same engine, byte for byte
    assert (rtl / "conv1_ring_conv1_stim.npz").read_bytes() != b""
    committed = (EXAMPLE / "lenet5_conv1_core_ring_conv1.v").read_text()
    assert (rtl / "conv1_ring_conv1.v").read_text().replace("conv1_ring", "lenet5_conv1_core_ring") == committed
    code, out, _ = cli("verify-layer", str(rtl), "--images", "2", "--sim", "amaranth")
    assert code == 0, out


@pytest.mark.simulator
@pytest.mark.skipif(NO_ICARUS is not None or shutil.which("make") is None,
                    reason=str(NO_ICARUS or "make is not installed"))
def test_sim_makefile_runs_the_exported_testbench(example_copy, tmp_path):
    sim_dir = tmp_path / "sim"
    shutil.copytree(REPO / "sim", sim_dir, ignore=shutil.ignore_patterns("sim_build", "*.xml", "*.json"))
    env = dict(os.environ, PATH=str(sys.executable.rsplit("/", 1)[0]) + os.pathsep + os.environ["PATH"])
    env.pop("PYTEST_CURRENT_TEST", None)
    top = "lenet5_conv1_core_ring_conv1"

    def make():
        return subprocess.run(["make", "-C", str(sim_dir), f"NAME={top}", f"RTL={example_copy}", "TEST=test_layer",
                               f"CGPHW_STIMULUS={example_copy / (top + '_stim.npz')}"], env=env,
                              capture_output=True, text=True, timeout=300)

    good = make()
    assert good.returncode == 0 and "FAIL=0" in good.stdout, good.stdout[-2000:] + good.stderr[-2000:]
    halve_a_multiplier(example_copy / f"{top}.v")
    bad = make()
    assert bad.returncode != 0 and "FAIL=1" in bad.stdout


@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.skipif(NO_ICARUS is not None, reason=str(NO_ICARUS))
def test_done_when_100_images_in_amaranth_and_icarus(cli):
    """The issue's acceptance run: the committed example on 100 real images, both simulators."""
    for sim in ("amaranth", "icarus"):
        code, out, _ = cli("verify-layer", str(EXAMPLE), "--images", "100", "--sim", sim, "--json")
        doc = json.loads(out)
        assert code == 0 and doc["passed"] and doc["activations"] == 345_600, doc
        assert doc["predictions_equal"] == 100


def test_write_stimulus_for_your_own_flow(cli, tmp_path):
    out_file = tmp_path / "stim.npz"
    code, out, _ = cli("verify-layer", str(EXAMPLE), "--images", "2", "--write-stimulus", str(out_file))
    assert code == 0 and "wrote" in out
    from cgphw.layer.stimulus import load_stimulus

    stim = load_stimulus(out_file)
    assert stim.words.shape == (2 * 576, 25) and stim.expected.shape == (2 * 576, 6)
    assert stim.top == "lenet5_conv1_core_ring_conv1" and stim.memory is None
    assert np.array_equal(stim.expected, load_stimulus(EXAMPLE / (stim.top + "_stim.npz")).expected[: 2 * 576])


def test_a_circuit_fed_item_by_item_serves_every_kernel(cli, tmp_path):
    """core-ring with one item per kernel (9 -> 16, six items): the engine loads the six
    kernels step by step through one shared circuit, pipelined; torch gets the same weights."""
    from cgphw.cgp.genome import grid_for, random_genome
    from cgphw.cgp.search import record_run
    from cgphw.nn.model import load_model
    from cgphw.nn.selectors import make_task

    task = make_task(load_model(), "core-ring")
    assert task.inputs.shape == (6, 9)
    genome = random_genome(grid_for(9, 16, 4, 4), np.random.default_rng(3))
    run = tmp_path / "per_kernel"
    record_run(genome, task, out=run, threshold=127.0)
    code, out, _ = cli("export", str(run), "--layer", "conv1", "--pipeline", "1", "--out",
                         str(tmp_path / "rtl"), "--stimulus-images", "1", "--json")
    assert code == 0, out
    code, out, _ = cli("verify-layer", str(tmp_path / "rtl" / "per_kernel"), "--images", "2", "--sim",
                         "amaranth", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"], doc
    manifest = json.loads((tmp_path / "rtl" / "per_kernel" / "per_kernel_conv1.json").read_text())
    assert manifest["source"]["steps"] == 6 and manifest["source"]["pipeline"] == 1


def test_a_users_files_are_never_overwritten(cli, tmp_path):
    """--write-stimulus over a file cgphw did not write, --keep into a folder of the user's:
    refused in one line (exit 2), nothing touched; a --keep folder cgphw made is reused."""
    mine = tmp_path / "stim.npz"
    mine.write_text("mine")
    code, _, err = cli("verify-layer", str(EXAMPLE), "--images", "1", "--write-stimulus", str(mine))
    assert code == 2 and "not a layer stimulus file cgphw wrote" in err and mine.read_text() == "mine"
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "sim_build_icarus").mkdir()  # a simulator's build folder is removed before each build
    code, _, err = cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "amaranth", "--keep",
                         str(keep))
    assert code == 2 and err.startswith("error: --keep") and err.count("\n") == 1
    assert [p.name for p in keep.iterdir()] == ["sim_build_icarus"]
    code, _, _ = cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "amaranth", "--keep",
                       str(tmp_path / "kept"))
    assert code == 0  # a new folder, then the same one again (cgphw's marker is in it)
    assert cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "amaranth", "--keep",
                 str(tmp_path / "kept"))[0] == 0


def test_an_export_missing_its_layer_manifest_is_refused(cli, example_copy):
    """Without NAME_LAYER.json the exported Verilog cannot be checked: refused, not a fresh engine passed off for it."""
    (example_copy / "lenet5_conv1_core_ring_conv1.json").unlink()
    code, _, err = cli("verify-layer", str(example_copy), "--images", "1", "--sim", "amaranth")
    assert code == 2 and "holds lenet5_conv1_core_ring_conv1.v but not lenet5_conv1_core_ring_conv1.json" in err
    assert err.count("\n") == 1


def test_failure_of_amaranths_simulator_is_not_a_mismatch(cli, monkeypatch):
    """Exit 1 means the engine is wrong; the simulator failing on its own is exit 2."""
    from amaranth.sim import Simulator

    def broken(self, *args, **kwargs):
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(Simulator, "add_testbench", broken)
    code, out, err = cli("verify-layer", str(EXAMPLE), "--images", "1", "--sim", "amaranth")
    assert code == 2 and out == ""
    assert err.startswith(f"error: Amaranth's simulator failed on {EXAMPLE.name}_conv1 (ValueError: Exceeds the limit")


@pytest.mark.parametrize("edit, start", [
    (lambda d: d.update(layer="conv2"), "records layer 'conv2', but the engine built from its circuit"),
    (lambda d: d["requant"].update(shift=d["requant"]["shift"] + 1), "records requant {"),
    (lambda d: d["geometry"].update(positions=1), "records geometry {")])
def test_layer_manifest_contradicting_the_engine_is_a_mismatch(cli, example_copy, edit, start):
    """The manifest's own claims (it is not hashed) must be the engine's, or verify-layer refuses: exit 1."""
    path = example_copy / f"{example_copy.name}_conv1.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    code, out, err = cli("verify-layer", str(example_copy), "--images", "1", "--sim", "amaranth")
    assert code == 1 and out == "", out
    assert err.startswith(f"error: {path} {start}") and "\n" not in err.strip(), err
