"""`cgphw export`: RTL directory, manifest, ROM baseline, atomic overwrite, errors."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
from test_emit import chain_genome, simulate_comb, yosys_ports

from cgphw import gates as G
from cgphw.cgp.genome import Genome
from cgphw.hw.emit import build_component
from cgphw.hw.export import verilog_name
from cgphw.task import example_task


def ring_genome() -> Genome:
    """Hand-built circuit that makes the thesis ring exactly from its core: ring[j] =
    core[j % 9] + delta_j, each delta an OR of power-of-two constants (shared)."""
    task = example_task()
    core, ring = task.inputs[0].astype(int), task.targets[0].astype(int)
    nodes: list = []

    def node(in0, in1, gid):
        nodes.append([in0, in1, gid])
        return 9 + len(nodes) - 1

    one = node(0, 0, 22)
    power = {0: one, **{k: node(one, one, gid) for k, gid in zip(range(1, 6), (12, 18, 19, 20, 21), strict=True)}}
    power[6] = node(power[5], power[5], 12)
    power[7] = node(0, 0, 25)
    made: dict = {}

    def const(value):
        u = value & 0xFF
        if u not in made:
            bits = [power[k] for k in range(8) if u >> k & 1]
            pin = bits[0] if bits else node(0, 0, 24)
            for b in bits[1:]:
                pin = node(pin, b, 9)
            made[u] = pin
        return made[u]

    outputs = [node(j % 9, const(int(t) - int(core[j % 9])), 1) for j, t in enumerate(ring)]
    return chain_genome(9, nodes, outputs)


def make_run(tmp_path, genome: Genome, reached=True, task=None, name="run1"):
    """A real run directory (cgphw.cgp.search.record_run) whose best is ``genome``; with
    ``reached=False`` its task's first target is off by one, so threshold 0 is missed."""
    from cgphw.cgp.search import record_run
    from cgphw.task import Task

    task = task or example_task()
    if not reached:
        targets = task.targets.copy()
        targets[0, 0] = np.int8(int(targets[0, 0]) ^ 1)
        task = Task(task.inputs, targets, task.weights, task.mask, task.meta)
    run = tmp_path / name
    record_run(genome, task, out=run)
    return run


def test_ring_genome_is_exact():
    task = example_task()
    np.testing.assert_array_equal(ring_genome().evaluate(task.inputs), task.targets)


def test_export_run_dir_writes_rtl_manifest_and_baseline(tmp_path, cli):
    genome = ring_genome()
    run = make_run(tmp_path, genome, name="lenet5-ring")
    out = tmp_path / "rtl"
    code, stdout, err = cli("export", run, "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    name = "lenet5_ring"
    target = out / name
    assert summary["name"] == name and sorted(os.listdir(target)) == sorted(
        [f"{name}.v", f"{name}.il", f"{name}.json", f"{name}_rom.v", f"{name}_rom.il", ".cgphw", ".cgphw.lock"])
    assert [p for p in os.listdir(out) if p.startswith(".")] == []  # no staging left behind
    m = json.loads((target / f"{name}.json").read_text())
    assert m["format"] == "cgphw-rtl/2" and m["top"] == name and m["latency"] == 0 and m["pipeline"] is None
    assert m["clock"] is None and m["reset"] is None
    assert Genome.from_json(m["genome"]) == genome and m["genome_hash"] == genome.digest()
    assert m["ports"] == [{"name": "stored", "direction": "input", "width": 72, "elements": 9, "signed": True},
                          {"name": "weights", "direction": "output", "width": 128, "elements": 16, "signed": True}]
    task = example_task()
    assert m["task"]["inputs"] == task.inputs.tolist() and m["task"]["targets"] == task.targets.tolist()
    assert m["inputs_map"][0] == {"element": 0, "bits": [7, 0], "weight": "kernel [1][1]", "values": [-42]}
    assert [e["weight"] for e in m["outputs_map"][5:8]] == ["kernel [1][0]", "kernel [1][4]", "kernel [2][0]"]
    assert [e["values"] for e in m["outputs_map"]] == [e["targets"] for e in m["outputs_map"]]
    assert m["files"] == {"verilog": f"{name}.v", "rtlil": f"{name}.il", "manifest": f"{name}.json"}
    assert m["sha256"] == {f: hashlib.sha256((target / f).read_bytes()).hexdigest()
                           for f in (f"{name}.v", f"{name}.il", f"{name}_rom.v", f"{name}_rom.il")}
    b = m["baseline"]
    assert b["top"] == f"{name}_rom" and b["verilog"] == f"{name}_rom.v" and b["latency"] == 0
    assert b["values"] == task.targets.ravel().tolist() and b["words"] == 16
    assert b["ports"] == [{"name": "addr", "direction": "input", "width": 4, "elements": 1, "signed": False},
                          {"name": "data", "direction": "output", "width": 8, "elements": 1, "signed": True}]
    assert m["source"]["metrics"]["threshold_reached"] is True
    # the written files are what Yosys reads, with the ports the manifest states
    text = (target / f"{name}.v").read_text()
    assert yosys_ports(tmp_path, text, name, "verilog") == {p["name"]: (p["direction"], p["width"]) for p in m["ports"]}
    rom_text = (target / f"{name}_rom.il").read_text()
    assert yosys_ports(tmp_path, rom_text, b["top"], "rtlil") == {"addr": ("input", 4), "data": ("output", 8)}
    # and the circuit the manifest describes computes the task's targets
    circuit = Genome.from_json(m["genome"])
    got = simulate_comb(build_component(circuit), np.array(m["task"]["inputs"], np.int8))
    assert got.tolist() == m["task"]["targets"]


def test_export_is_deterministic_and_overwrites(tmp_path, cli):
    run = make_run(tmp_path, ring_genome())
    out = tmp_path / "rtl"
    assert cli("export", run, "--out", out, "--name", "ring")[0] == 0
    first = {f: (out / "ring" / f).read_bytes() for f in os.listdir(out / "ring")}
    assert cli("export", run, "--out", out, "--name", "ring")[0] == 0
    again = {f: (out / "ring" / f).read_bytes() for f in os.listdir(out / "ring")}
    assert again == first  # same bytes
    code, stdout, _ = cli("export", run, "--out", out, "--name", "ring", "--pipeline", "2", "--json")
    assert code == 0
    m = json.loads((out / "ring" / "ring.json").read_text())
    assert m["pipeline"] == 2 and m["latency"] == json.loads(stdout)["latency"] >= 1
    assert m["clock"] == "clk" and m["reset"] == "rst" and m["baseline"]["latency"] == 1
    assert [p["name"] for p in m["ports"]] == ["clk", "rst", "stored", "weights", "valid_in", "valid_out"]
    assert sorted(os.listdir(out)) == ["ring"]


def test_export_bare_genome_and_zero_input(tmp_path, cli):
    genome = ring_genome()
    path = tmp_path / "my ring-v2.json"
    genome.save(path)
    code, _, err = cli("export", path, "--out", tmp_path / "o")
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "my_ring_v2" / "my_ring_v2.json").read_text())
    assert m["task"] is None and m["baseline"] is None and "unknown" in m["baseline_note"]
    assert m["inputs_map"][3]["weight"] == "stored weight 3" and m["outputs_map"][0]["driver"].startswith("n")
    # no inputs: the baseline ROM holds the circuit's own outputs
    const_genome = chain_genome(0, [[0, 0, 26], [0, 0, 22], [0, 1, 2]], [0, 2, 1, 2], "seed27")
    const_path = tmp_path / "7consts.json"
    const_genome.save(const_path)
    assert cli("export", const_path, "--out", tmp_path / "o")[0] == 0
    m = json.loads((tmp_path / "o" / "c_7consts" / "c_7consts.json").read_text())
    assert m["baseline"]["values"] == [127, 126, 1, 126] and m["inputs_map"] == []
    assert m["gates"] == 1 and m["constants"] == 2  # the search's count: no constants, no wires
    assert [e["driver"] for e in m["outputs_map"]] == ["constant const_127", "n2", "constant const_1", "n2"]
    assert [p["name"] for p in m["ports"]] == ["weights"]


def test_value_bank_run_outputs_map(tmp_path, cli):
    # two items, outputs wired to shared value nodes; ROM holds items x outputs
    from cgphw.task import Task

    genome = chain_genome(1, [[0, 0, 13], [1, 0, G.WIRE_ID], [0, 0, 4]], [1, 2, 3, 1])
    inputs = np.array([[5], [-3]], np.int8)
    task = Task(inputs, genome.evaluate(inputs), meta={"input_names": ["w0"], "output_names": list("abcd")})
    run = make_run(tmp_path, genome, task=task)
    assert cli("export", run / "best.json", "--out", tmp_path / "o")[0] == 0
    m = json.loads((tmp_path / "o" / "run1" / "run1.json").read_text())
    assert [e["driver"] for e in m["outputs_map"]] == ["n0", "n0", "n2", "n0"]
    assert [e["weight"] for e in m["outputs_map"]] == list("abcd") and m["inputs_map"][0]["weight"] == "w0"
    assert m["baseline"]["values"] == task.targets.ravel().tolist() and m["baseline"]["words"] == 8


def _nothing_written(out):
    return not out.exists() or os.listdir(out) == []


def test_threshold_not_reached_needs_force(tmp_path, cli):
    run = make_run(tmp_path, ring_genome(), reached=False)
    out = tmp_path / "o"
    code, _, err = cli("export", run, "--out", out)
    assert code == 2 and "never reached its error threshold" in err and "--force" in err
    assert "Traceback" not in err and _nothing_written(out)
    assert cli("export", run, "--out", out, "--force")[0] == 0
    assert (out / "run1" / "run1.v").is_file()


def test_failed_export_keeps_the_previous_one(tmp_path, cli):
    good = make_run(tmp_path, ring_genome(), name="good")
    out = tmp_path / "o"
    assert cli("export", good, "--out", out, "--name", "x")[0] == 0
    before = {f: (out / "x" / f).read_bytes() for f in os.listdir(out / "x")}
    bad = make_run(tmp_path, ring_genome(), reached=False, name="bad")
    assert cli("export", bad, "--out", out, "--name", "x")[0] == 2
    assert {f: (out / "x" / f).read_bytes() for f in os.listdir(out / "x")} == before
    assert sorted(os.listdir(out)) == ["x"]


def _corrupt(tmp_path, what):
    run = make_run(tmp_path, ring_genome())
    best = json.loads((run / "best.json").read_text())
    if what == "not-json":
        (run / "best.json").write_text("{ not json")
    elif what == "no-best":
        (run / "best.json").unlink()
    elif what == "format":
        best["format"] = "something/else"
        (run / "best.json").write_text(json.dumps(best))
    elif what == "format-99":
        best["format"] = "cgphw-run/99"
        (run / "best.json").write_text(json.dumps(best))
    elif what == "genome":
        best["genome"]["nodes"][0] = [999, 0, 1]
        (run / "best.json").write_text(json.dumps(best))
    elif what == "metrics":
        del best["metrics"]["threshold_reached"]
        (run / "best.json").write_text(json.dumps(best))
    elif what == "no-task":
        (run / "task.npz").unlink()
    elif what == "bad-task":
        (run / "task.npz").write_bytes(b"not a zip")
    elif what == "task-shape":
        from cgphw.task import Task

        Task(np.zeros((1, 9), np.int8), np.zeros((1, 3), np.int8)).save(run / "task.npz")
    elif what == "huge-gene":
        best["genome"]["outputs"][0] = 10**30
        (run / "best.json").write_text(json.dumps(best))
    elif what == "float-rows":
        best["genome"]["rows"] = 2.5
        (run / "best.json").write_text(json.dumps(best))
    return run


@pytest.mark.parametrize("what, code, message", [
    ("not-json", 2, "not readable JSON"), ("no-best", 2, "has no best.json"), ("format", 2, "not a cgphw run file"),
    ("format-99", 2, "another version of cgphw"), ("genome", 2, "not a valid cgphw genome"),
    ("metrics", 1, "threshold_reached"), ("no-task", 2, "lacks task.npz"),
    ("bad-task", 1, "not the task the run started with"), ("task-shape", 1, "not the task the run started with"),
    ("huge-gene", 2, "whole numbers"), ("float-rows", 2, "whole number"),
])
def test_malformed_run_dir_is_refused_and_writes_nothing(tmp_path, cli, what, code, message):
    run = _corrupt(tmp_path, what)
    out = tmp_path / "o"
    got, _, err = cli("export", run, "--out", out)
    assert got == code and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _nothing_written(out)


@pytest.mark.parametrize("args, message", [
    (["missing-dir"], "neither a run directory nor a genome file"),
    (["GENOME", "--name", "module"], "not a usable Verilog identifier"),
    (["GENOME", "--name", "a-b"], "not a usable Verilog identifier"),
    (["GENOME", "--pipeline", "0"], "--pipeline must be"),
    (["GARBAGE"], "not a valid cgphw genome"),
])
def test_bad_arguments_are_exit_2(tmp_path, cli, args, message):
    ring_genome().save(tmp_path / "g.json")
    (tmp_path / "garbage.json").write_text(json.dumps({"format": "cgphw-genome/1", "rows": 1}))
    subst = {"GENOME": tmp_path / "g.json", "GARBAGE": tmp_path / "garbage.json",
             "missing-dir": tmp_path / "missing-dir"}
    out = tmp_path / "o"
    code, _, err = cli("export", *[subst.get(a, a) for a in args], "--out", out)
    assert code == 2 and message in err, err
    assert _nothing_written(out)


def test_out_path_that_is_a_file(tmp_path, cli):
    ring_genome().save(tmp_path / "g.json")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "g").write_text("a file")
    code, _, err = cli("export", tmp_path / "g.json", "--out", tmp_path / "o")
    assert code == 2 and "not a directory" in err
    assert (tmp_path / "o" / "g").read_text() == "a file"


def test_verilog_names():
    assert verilog_name("lenet5-core ring") == "lenet5_core_ring"
    assert verilog_name("3x") == "c_3x" and verilog_name("wire") == "wire_c" and verilog_name("--") == "circuit"


def test_maps_follow_the_task_meta_of_cgphw_task(tmp_path, cli):
    # the meta `cgphw task make core-ring:conv1` writes: runs [layer, first flat index, count]
    from cgphw.task import Task

    core_flat = [r * 5 + c for r in range(1, 4) for c in range(1, 4)]
    ring_flat = [c for c in range(5)] + [r * 5 + c for r in (1, 2, 3) for c in (0, 4)] + [20 + c for c in range(5)]

    def runs(base, flats):
        return [["conv1", base + f, 1] for f in flats]

    genome = ring_genome()
    inputs = np.array([example_task().inputs[0], np.arange(9)], np.int8)
    meta = {"selector": "core-ring:conv1", "layers": {"conv1": [6, 1, 5, 5]},
            "inputs_from": [runs(0, core_flat), runs(25, core_flat)],
            "targets_at": [runs(0, ring_flat), runs(25, ring_flat)]}
    run = make_run(tmp_path, genome, task=Task(inputs, genome.evaluate(inputs), meta=meta))
    assert cli("export", run, "--out", tmp_path / "o")[0] == 0
    m = json.loads((tmp_path / "o" / "run1" / "run1.json").read_text())
    assert m["inputs_map"][1]["weight"] == "kernel [1][2]"
    assert m["inputs_map"][1]["at"] == ["conv1[0,0,1,2]", "conv1[1,0,1,2]"]
    assert m["outputs_map"][15]["at"] == ["conv1[0,0,4,4]", "conv1[1,0,4,4]"]
    assert m["outputs_map"][15]["weight"] == "kernel [4][4]"
    assert m["baseline"]["words"] == 32


def test_committed_example_is_current(tmp_path, cli):
    """rtl_out/lenet5_core_ring (regenerated by the documented command) must match what this
    emitter writes for its genome, and its genome must make the thesis ring exactly."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "rtl_out" / "lenet5_core_ring"
    m = json.loads((example / "lenet5_core_ring.json").read_text())
    genome = Genome.from_json(m["genome"])
    task = example_task()
    np.testing.assert_array_equal(genome.evaluate(task.inputs), task.targets)
    assert m["task"]["inputs"] == task.inputs.tolist() and m["genome_hash"] == genome.digest()
    run = make_run(tmp_path, genome, name="lenet5_core_ring")
    assert cli("export", run, "--out", tmp_path / "o")[0] == 0
    fresh = tmp_path / "o" / "lenet5_core_ring"
    for f in ("lenet5_core_ring.v", "lenet5_core_ring.il", "lenet5_core_ring_rom.v", "lenet5_core_ring_rom.il"):
        assert (fresh / f).read_text() == (example / f).read_text(), f
    again = json.loads((fresh / "lenet5_core_ring.json").read_text())
    for key in ("ports", "latency", "inputs_map", "outputs_map", "baseline", "expressions", "gates", "depth"):
        assert again[key] == m[key], key
