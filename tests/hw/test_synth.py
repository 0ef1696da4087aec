"""`cgphw synth RTLDIR`: reports, the CGP estimate, the ROM baseline, zero-input circuits,
formal equivalence (passing on correct netlists, failing on a broken one), bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cgphw.cgp.genome import Genome, grid_for
from cgphw.costs import load_costs
from cgphw.hw.cells import load_cells
from cgphw.hw.export import export
from cgphw.hw.synth_report import cgp_estimate, synth_rtl_dir
from cgphw.task import Task


def chain_genome(n_in: int, nodes: list, outputs: list) -> Genome:
    """One node per column, each may read everything before it; pin n_in + k is node k."""
    grid = grid_for(n_in, len(outputs), 1, len(nodes), len(nodes) + 1, "seed27")
    return Genome(grid, np.array([g for node in nodes for g in node] + list(outputs), np.int32))


# in0, in1; n0 = add(in0, in1); n1 = mul(n0, in0); n2 = shr1(n1); n3 = const_1; n4 = add(n3, n3)
# (folds to 2); n5 = sub(n2, n4); outputs: n0, n5, n2 (a shift: wires), in1 (pass-through), n4.
MIXED = chain_genome(2, [[0, 1, 1], [2, 0, 3], [3, 0, 7], [0, 0, 22], [5, 5, 1], [4, 6, 2]], [2, 7, 4, 1, 6])


def make_run(tmp_path, genome: Genome, items: int = 3):
    from cgphw.cgp.search import record_run

    x = np.random.default_rng(0).integers(-128, 128, (items, genome.grid.n_inputs)).astype(np.int8)
    record_run(genome, Task(x, genome.evaluate(x)), out=tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def comb_synth(tmp_path_factory):
    """An exported combinational circuit with a ROM baseline, synthesised and proved once."""
    tmp = tmp_path_factory.mktemp("comb")
    target = export(make_run(tmp, MIXED), out_dir=tmp / "rtl", name="mixed").directory
    return target, synth_rtl_dir(target, load_cells(), load_costs(), prove=True)


@pytest.fixture
def comb_dir(comb_synth):
    return comb_synth[0]


@pytest.mark.yosys
def test_combinational_report_with_proof(comb_synth):
    comb_dir, doc = comb_synth
    assert doc["ok"] and set(doc["proof"]) == {"circuit_rtlil", "circuit_verilog", "baseline_rtlil", "baseline_verilog"}
    assert all(p["equivalent"] for p in doc["proof"].values())
    assert [p["rtl"] for p in doc["proof"].values()] == ["mixed.il", "mixed.v", "mixed_rom.il", "mixed_rom.v"]
    c = doc["circuit"]
    assert c["simulation"]["matches_genome"] and c["simulation"]["vectors"] == 4097
    assert c["n_cells"] > 100 and c["transistors"] > 0 and c["area"] > 0 and c["depth"] > 0 and c["energy_pj"] > 0
    assert c["flip_flops"] == 0 and c["energy_pj_per_weight"] == pytest.approx(c["energy_pj"] / 5, abs=1e-8)
    b = doc["baseline"]
    assert b["simulation"]["matches_values"] and b["words"] == 3 * 5 and b["energy_pj_per_weight"] > 0
    assert doc["comparison"]["baseline_area"] == b["area"]
    on_disk = json.loads((comb_dir / "mixed.synth.json").read_text())
    assert on_disk == json.loads(json.dumps(doc))
    assert "\\$_XOR_" in (comb_dir / "mixed.synth.v").read_text()


def test_cgp_estimate_sums_active_gates_once():
    costs = load_costs()
    e = {gid: costs.gates[gid].energy_pj for gid in (1, 2, 3, 7, 22)}
    est = cgp_estimate(MIXED, costs)
    assert est["active_nodes"] == 6 and est["gates"] == 5  # the search's count leaves out the constant
    assert est["constant_folded_gates"] == 2 and est["duplicate_gates"] == 0
    assert est["energy_pj"] == pytest.approx(2 * e[1] + e[2] + e[3] + e[7] + e[22], abs=1e-9)
    assert est["energy_pj_after_folding_and_sharing"] == pytest.approx(e[1] + e[2] + e[3] + e[7], abs=1e-9)


@pytest.mark.yosys
def test_estimate_agrees_with_synthesis_within_tolerance(comb_synth):
    est = comb_synth[1]["estimate"]
    assert est["agree"] and est["tolerance"][0] <= est["ratio"] <= est["tolerance"][1]
    assert "constant folding" in est["explanation"]


@pytest.mark.yosys
@pytest.mark.slow
def test_pipelined_circuit_proves_over_its_latency(tmp_path):
    result = export(make_run(tmp_path, MIXED), out_dir=tmp_path / "rtl", name="mixedp", pipeline=1)
    doc = synth_rtl_dir(result.directory, load_cells(), load_costs(), prove=True)
    latency = result.manifest.latency
    assert latency >= 2 and doc["circuit"]["flip_flops"] > 0
    assert doc["ok"] and len(doc["proof"]) == 4 and all(p["equivalent"] for p in doc["proof"].values())
    assert f"-seq {latency + 2}" in doc["proof"]["circuit_verilog"]["method"]
    assert doc["circuit"]["simulation"]["matches_genome"]


@pytest.mark.yosys
def test_broken_netlist_fails_the_proof(comb_dir, tmp_path, cli):
    broken = tmp_path / "mixed"
    shutil.copytree(comb_dir, broken)
    netlist = broken / "mixed.synth.v"
    text = netlist.read_text()
    assert "\\$_XOR_ " in text
    netlist.write_text(text.replace("\\$_XOR_ ", "\\$_XNOR_ ", 1))  # one inverted cell
    code, out, err = cli("synth", str(broken), "--prove", "--netlist", str(netlist))
    assert code == 1 and "proof FAILED for the circuit (mixed.il) and circuit (mixed.v)" in err
    assert "Traceback" not in err
    report = json.loads((broken / "mixed.synth.json").read_text())
    for key in ("circuit_rtlil", "circuit_verilog"):
        assert report["proof"][key]["equivalent"] is False and "gold_weights" in report["proof"][key]["detail"]
    code, out, err = cli("synth", str(comb_dir), "--prove", "--netlist", str(comb_dir / "mixed.synth.v"))
    assert code == 0 and "EQUIVALENT" in out, err


@pytest.mark.yosys
def test_zero_input_circuit_folds_away(tmp_path, cli):
    # n0 = const_1, n1 = const_127, n2 = add(n0, n1), n3 = mul(n2, n2), n4 = neg(n3)
    genome = chain_genome(0, [[0, 0, 22], [0, 0, 26], [0, 1, 1], [2, 2, 3], [3, 0, 4]], [2, 4, 1])
    source = tmp_path / "g.json"
    genome.save(source)
    target = export(source, out_dir=tmp_path / "rtl", name="consts").directory
    code, out, err = cli("synth", str(target), "--prove", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["circuit"]["n_cells"] == 0 and doc["circuit"]["energy_pj"] == 0.0
    z = doc["zero_input"]
    assert z["gates_surviving_synthesis"] == 0 and "hard-wired" in z["statement"]
    assert doc["estimate"]["constant_folded_gates"] == doc["estimate"]["active_nodes"] == 5
    assert doc["estimate"]["gates"] == 3
    assert doc["estimate"]["energy_pj"] > 0 and doc["baseline"]["words"] == 3
    assert doc["proof"]["circuit_rtlil"]["equivalent"] and doc["proof"]["circuit_verilog"]["equivalent"]


def _rehash(rtl: Path, manifest: dict, name: str) -> None:
    import hashlib

    manifest["sha256"][name] = hashlib.sha256((rtl / name).read_bytes()).hexdigest()


MISMATCHES = {"edited_rtlil", "edited_verilog", "genome_swapped", "rom_edited"}  # exit 1: caught, not malformed


@pytest.mark.yosys
@pytest.mark.parametrize("case", ["missing", "empty", "no_file", "bad_genome", "bad_rtl", "bad_costs",
                                  "bad_latency", "other_genome", "file_not_str", "baseline_file_not_str",
                                  "latency_past_evaluations", "costs_memory_list", "negative_seed",
                                  "huge_evaluations", "binary_netlist", "baseline_words_str",
                                  "baseline_values_not_int8", "baseline_latency_str", "costs_sram_str",
                                  "absolute_verilog", "dotdot_rtlil", "link_outside", "old_format", "deep_json",
                                  "sha256_missing", *sorted(MISMATCHES)])
def test_malformed_or_tampered_rtldir_is_refused(comb_dir, tmp_path, cli, case):
    """Malformed: one `error:` line, exit 2. Tampered (a file or the genome no longer what
    the export recorded): exit 1. Nothing is written either way."""
    rtl = tmp_path / "mixed"
    args = ["synth", str(rtl)]
    elsewhere = tmp_path / "elsewhere"  # good files outside the directory
    if case == "missing":
        rtl = tmp_path / "nowhere"
        args = ["synth", str(rtl)]
    elif case == "empty":
        rtl.mkdir()
    else:
        shutil.copytree(comb_dir, rtl)
        shutil.copytree(comb_dir, elsewhere)
        (rtl / "mixed.synth.json").unlink(missing_ok=True)
        manifest = json.loads((rtl / "mixed.json").read_text())
        if case == "no_file":
            (rtl / "mixed.il").unlink()
        elif case == "bad_genome":
            manifest["genome"]["nodes"][0][2] = 999
        elif case == "bad_rtl":  # recorded as if export had written it: Yosys refuses it
            (rtl / "mixed.il").write_text("this is not rtlil\n")
            _rehash(rtl, manifest, "mixed.il")
        elif case == "edited_rtlil":
            (rtl / "mixed.il").write_text((rtl / "mixed.il").read_text() + "\n")
        elif case == "edited_verilog":  # synth reads the .il; the .v is checked all the same
            (rtl / "mixed.v").write_text((rtl / "mixed.v").read_text().replace("assign", "assign /* x */", 1))
        elif case == "rom_edited":
            (rtl / "mixed_rom.v").write_text((rtl / "mixed_rom.v").read_text() + "// x\n")
        elif case == "bad_latency":
            manifest["latency"] = "soon"
        elif case == "other_genome":  # a valid genome (hash updated) with more inputs than the ports say
            manifest["genome"] = chain_genome(3, [[0, 1, 1]], [3, 2]).to_json()
            manifest["genome_hash"] = chain_genome(3, [[0, 1, 1]], [3, 2]).digest()
        elif case == "genome_swapped":
            manifest["genome"] = chain_genome(3, [[0, 1, 1]], [3, 2]).to_json()
        elif case == "absolute_verilog":  # a good file elsewhere, hash and all
            manifest["files"]["verilog"] = str(elsewhere / "mixed.v")
            manifest["sha256"][str(elsewhere / "mixed.v")] = manifest["sha256"].pop("mixed.v")
        elif case == "dotdot_rtlil":
            manifest["files"]["rtlil"] = "../elsewhere/mixed.il"
            manifest["sha256"]["../elsewhere/mixed.il"] = manifest["sha256"].pop("mixed.il")
        elif case == "link_outside":
            (rtl / "mixed.il").unlink()
            (rtl / "mixed.il").symlink_to(elsewhere / "mixed.il")
        elif case == "old_format":
            manifest["format"] = "cgphw-rtl/1"
        elif case == "sha256_missing":
            del manifest["sha256"]["mixed_rom.il"]
        elif case == "bad_costs":
            (tmp_path / "costs.json").write_text("{}")
            args += ["--costs", str(tmp_path / "costs.json")]
        elif case == "file_not_str":
            manifest["files"]["rtlil"] = 5
        elif case == "baseline_file_not_str":
            manifest["baseline"]["rtlil"] = 7
        elif case == "latency_past_evaluations":
            manifest["latency"] = 10**6
        elif case == "baseline_words_str":
            manifest["baseline"]["words"] = "x"
        elif case == "baseline_values_not_int8":
            manifest["baseline"]["values"] = [300]
        elif case == "baseline_latency_str":
            manifest["baseline"]["latency"] = "x"
        elif case in ("costs_memory_list", "costs_sram_str"):
            doc = json.loads(Path(load_costs().path).read_text())
            if case == "costs_memory_list":
                doc["memory"] = [1]
            else:
                doc["memory"]["sram_read_pj_per_byte"] = "x"
            (tmp_path / "costs.json").write_text(json.dumps(doc))
            args += ["--costs", str(tmp_path / "costs.json")]
        elif case == "negative_seed":
            args += ["--seed", "-1"]
        elif case == "huge_evaluations":
            args += ["--evaluations", str(10**11)]
        elif case == "binary_netlist":
            (tmp_path / "net.v").write_bytes(b"\xff\xfe\x00")
            args += ["--netlist", str(tmp_path / "net.v")]
        text = json.dumps(manifest)
        if case == "deep_json":
            text = text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
        (rtl / "mixed.json").write_text(text)
    code, _, err = cli(*args)
    last = err.strip().splitlines()[-1]  # earlier lines: progress
    assert code == (1 if case in MISMATCHES else 2) and last.startswith("error: ") and "Traceback" not in err, err
    assert not (rtl / "mixed.synth.json").exists()


@pytest.mark.yosys
def test_prove_checks_the_verilog_too(comb_dir, tmp_path, cli):
    """`synth --prove` never read the .v: a Verilog that differs from the RTLIL (here with its
    hash recorded, as a careful tamperer would) passed. Now the .v is proven on its own."""
    rtl = tmp_path / "mixed"
    shutil.copytree(comb_dir, rtl)
    verilog = rtl / "mixed.v"
    text = verilog.read_text()
    assert "$signed(n2) - $signed(8'h02)" in text
    verilog.write_text(text.replace("$signed(n2) - $signed(8'h02)", "$signed(n2) + $signed(8'h02)"))
    manifest = json.loads((rtl / "mixed.json").read_text())
    _rehash(rtl, manifest, "mixed.v")
    (rtl / "mixed.json").write_text(json.dumps(manifest))
    code, out, err = cli("synth", str(rtl), "--prove")
    assert code == 1 and "proof FAILED for the circuit (mixed.v)" in err and "mixed.il" not in err.splitlines()[-1]
    assert "proof (circuit netlist = mixed.il): EQUIVALENT" in out
    assert "proof (circuit netlist = mixed.v): FAILED" in out


@pytest.mark.yosys
def test_address_circuit_is_compared_with_its_rom(tmp_path, cli):
    from cgphw.nn.selectors import address_inputs

    # a computed ROM of 6 words, weight = (address << 3) - 2: n0 = shl3(in0), n1 = const_1, n2 = sub(n0, n1),
    # n3 = dec(n2)
    genome = chain_genome(1, [[0, 0, 19], [0, 0, 22], [1, 2, 2], [3, 3, 14]], [4])
    x = address_inputs(6)
    task = Task(x, genome.evaluate(x), meta={"address": {"layer": "conv1", "words": 6}})
    from cgphw.cgp.search import record_run
    record_run(genome, task, out=tmp_path / "run")
    target = export(tmp_path / "run", out_dir=tmp_path / "rtl", name="addr").directory
    code, out, err = cli("synth", str(target), "--json")
    assert code == 0, err
    doc = json.loads(out)
    c, b, cmp_ = doc["circuit"], doc["baseline"], doc["comparison"]
    assert b["words"] == 6 and c["simulation"]["matches_genome"] and "addresses below 6" in doc["activity"]["method"]
    assert cmp_["inputs"] == "address" and cmp_["stored_weights_read_per_evaluation"] == 0
    assert cmp_["circuit_pj_per_weight_incl_stored_reads"] == c["energy_pj_per_weight"]
    for figure, circuit, rom in (("cells", c["n_cells"], b["n_cells"]), ("area", c["area"], b["area"]),
                                 ("energy_pj_per_weight", c["energy_pj_per_weight"], b["energy_pj_per_weight"])):
        assert cmp_["smaller"][figure] == ("circuit" if circuit < rom else "ROM baseline" if rom < circuit else "equal")
    code, out, err = cli("synth", str(target))
    assert code == 0, err
    assert "smaller: an address circuit (a computed ROM) vs its ROM: " in out
    assert "inputs are addresses (no stored weights read)" in out
