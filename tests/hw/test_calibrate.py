"""Calibration: the committed gate-cost table came from synthesis, every operator's mapped
netlist is formally equal to its Amaranth description and simulates bit-exactly, the
model lands on the published anchors, and the cell table can be swapped."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cgphw import gates as G
from cgphw.costs import default_costs_path, load_costs
from cgphw.hw.calibrate import RATIO_BAND, gate_entry, gate_rtlil, price_operator
from cgphw.hw.cells import default_cells_path, load_cells
from cgphw.hw.synth import cost_report, default_stimulus, prove_equivalent, synthesise

SEED27_LOGIC = tuple(range(27))


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(default_costs_path().read_text())


def test_committed_table_states_its_origin(committed):
    assert committed["format"] == "cgphw-gate-costs/1"
    gen = committed["generated"]
    assert gen["tools"]["yosys"].startswith("Yosys ") and gen["tools"]["pyosys"]
    assert gen["cells"]["sha256"] == load_cells().sha256, "table was made with another cell table"
    assert "simulation" in gen["activity"]["method"] and gen["date"]
    assert sorted(int(k) for k in committed["gates"]) == sorted(G.function_set("seed27"))
    assert all(g["synthesised"] is True for g in committed["gates"].values())
    mem = committed["memory"]
    assert mem["sram_read_pj_per_byte"] == 1.25 and mem["dram_read_pj_per_byte"] == 160.0
    assert "Horowitz" in mem["source"]
    load_costs()  # the search's reader accepts it


@pytest.mark.yosys
@pytest.mark.parametrize("gate_id", [1, 3, 13])
def test_committed_entries_recompute_exactly(committed, gate_id):
    seed = int(committed["generated"]["activity"]["seed"].split()[0])
    evaluations = committed["generated"]["activity"]["evaluations"]
    report = price_operator(gate_rtlil(gate_id), load_cells(), seed + gate_id, evaluations)
    assert gate_entry(gate_id, report) == committed["gates"][str(gate_id)]


def test_free_gates_synthesise_to_nothing(committed):
    """Constants, shifts by constants and the wire become wires: zero cells, zero cost."""
    free = [g for g in G.GATES.values() if g.arity == 0 or g.name.startswith(("shl", "shr")) or g.id == G.WIRE_ID]
    assert len(free) == 5 + 10 + 1
    for g in free:
        entry = committed["gates"][str(g.id)]
        assert entry["n_cells"] == 0 and entry["energy_pj"] == 0.0 and entry["area"] == 0.0, g.name
    for name in ("add", "mul", "xor", "not", "rev_min"):
        assert committed["gates"][str(G.GATES_BY_NAME[name].id)]["n_cells"] > 0


@pytest.mark.yosys
@pytest.mark.parametrize("gate_id", SEED27_LOGIC)
def test_operator_netlist_equals_its_amaranth_description(gate_id):
    """Yosys miter + SAT over all 2^16 operand pairs, and the activity simulator's outputs
    equal the gate's numpy semantics bit for bit on the random stimulus."""
    rtl = gate_rtlil(gate_id)
    mapped = synthesise(rtl, "op")
    proof = prove_equivalent(rtl, mapped.verilog, "op")
    assert proof.equivalent, proof.detail
    stimulus = default_stimulus(mapped.netlist, seed=5, evaluations=300)
    sim = cost_report(mapped, load_cells(), stimulus).simulation
    to8 = lambda v: (np.asarray(v) & 0xFF).astype(np.uint8).view(np.int8)  # noqa: E731
    expected = G.gate(gate_id).apply(to8(stimulus["a"]), to8(stimulus["b"]))
    assert np.array_equal(to8(sim.outputs["y"]), expected)


def test_anchor_sanity_of_committed_table(committed):
    s = committed["sanity"]
    lo, hi = RATIO_BAND
    assert lo <= s["mul8x8_over_add8"] <= hi
    assert 0.015 <= s["add8_pj"] <= 0.06
    assert 0.015 <= committed["gates"]["1"]["energy_pj"] <= 0.06  # the add gate itself
    assert s["passed"] and s["node_scaling"]["energy_factor"] == pytest.approx((0.9 / 1.1) ** 2, abs=1e-4)
    # the truncated mul gate sits below the band, as the table says
    assert s["gate_mul_over_add"] < lo


def test_cell_table_figures_follow_its_stated_model():
    doc = json.loads(default_cells_path().read_text())
    k = doc["constants"]
    unit_fj = 0.5 * k["vdd_v"] ** 2 * k["c_unit_ff"]
    for ctype, row in doc["cells"].items():
        assert row["energy_fj"] == pytest.approx(unit_fj * (row["c_internal_units"] + k["load_units"]), abs=1e-3), ctype
        assert row["delay_ns"] == pytest.approx(row["delay_tau"] * k["tau_ns"], abs=1e-4), ctype
        assert row["area"] > 0 and "why" in row
    assert doc["cells"]["$_NOT_"]["area"] == 0.532 and doc["cells"]["$_NAND_"]["area"] == 0.798


@pytest.mark.yosys
@pytest.mark.slow
def test_calibrate_command_regenerates_the_committed_table(tmp_path, cli, committed):
    out = tmp_path / "costs.json"
    code, stdout, stderr = cli("calibrate", "--out", str(out))
    assert code == 0, stderr
    assert "ratio" in stdout and stdout.count(": ok") == 2
    doc = json.loads(out.read_text())
    assert doc["gates"] == committed["gates"] and doc["sanity"] == committed["sanity"]


@pytest.mark.yosys
def test_other_cell_table_changes_energies(tmp_path, cli):
    doc = json.loads(default_cells_path().read_text())
    for ctype, row in doc["cells"].items():
        row["energy_fj"] *= 3.0 if ctype == "$_XOR_" else 1.0
    alt = tmp_path / "cells_alt.json"
    alt.write_text(json.dumps(doc))
    results = {}
    for name, cells in (("default", None), ("alt", alt)):
        out = tmp_path / f"{name}.json"
        args = ["calibrate", "--out", str(out), "--function-set", "and,xor", "--evaluations", "512"]
        code, _, stderr = cli(*args + (["--cells", str(cells)] if cells else []))
        assert code == 0, stderr
        results[name] = json.loads(out.read_text())
    d, a = results["default"]["gates"], results["alt"]["gates"]
    assert a["10"]["energy_pj"] == pytest.approx(3 * d["10"]["energy_pj"], rel=1e-6)
    assert a["8"]["energy_pj"] == d["8"]["energy_pj"]
    assert results["alt"]["generated"]["cells"]["file"] == "cells_alt.json"


@pytest.mark.parametrize("content", [None, "not json", '{"format": "other"}', "MISSING_ROW"])
def test_bad_cells_file_exits_2(tmp_path, cli, content):
    path = tmp_path / "cells.json"
    if content == "MISSING_ROW":
        doc = json.loads(default_cells_path().read_text())
        del doc["cells"]["$_MUX_"]
        content = json.dumps(doc)
    if content is not None:
        path.write_text(content)
    out = tmp_path / "never.json"
    code, _, stderr = cli("calibrate", "--cells", str(path), "--out", str(out))
    assert code == 2 and stderr.startswith("error: cell table") and "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize("evaluations", ["0", str(10**11)])
def test_calibrate_refuses_evaluations_out_of_range(tmp_path, cli, evaluations):
    out = tmp_path / "never.json"
    code, _, stderr = cli(*["calibrate", "--function-set", "add", "--evaluations", evaluations,
                               "--out", str(out)])
    assert code == 2 and stderr.startswith("error: --evaluations") and "\n" not in stderr.strip()
    assert not out.exists()


@pytest.mark.yosys
def test_calibrate_writes_to_the_working_folder_and_needs_force_to_overwrite(tmp_path, cli, monkeypatch,
                                                                             committed):
    monkeypatch.chdir(tmp_path)
    packaged = default_costs_path().read_bytes()
    args = ["calibrate", "--function-set", "and", "--evaluations", "64"]
    code, _, stderr = cli(*args)
    assert code == 0, stderr
    assert "--costs gate_costs.json" in stderr and default_costs_path().read_bytes() == packaged
    written = (tmp_path / "gate_costs.json").read_text()
    assert list(json.loads(written)["gates"]) == ["8"]
    (tmp_path / "gate_costs.json").write_text("mine")  # a user's file of that name is never replaced silently
    code, _, stderr = cli(*args)
    assert code == 2 and stderr.strip() == ("error: gate_costs.json exists: pass --force to replace it, "
                                            "or --out FILE to write elsewhere")
    assert (tmp_path / "gate_costs.json").read_text() == "mine"
    code, _, stderr = cli(*args + ["--force"])
    assert code == 0, stderr
    assert json.loads((tmp_path / "gate_costs.json").read_text())["gates"] == json.loads(written)["gates"]
    code, _, stderr = cli(*args + ["--out", "nodir/costs.json"])
    assert code == 2 and "folder nodir does not exist" in stderr and not (tmp_path / "nodir").exists()
