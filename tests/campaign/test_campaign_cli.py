"""A shortened campaign end to end through the command line, on the test LocalCluster (by
its address): every stage with the real tools, then `cgphw results` and `cgphw report`."""
import json
import re

import pandas as pd
import pytest


from campaign_fixtures import experiment_file

ALL_STAGES = """description = "two LeNet-5 conv1 kernels, shortened"
[task]
label = "kernel {filters}"
selector = "core-ring:conv1"
filters = [[0], [1]]
[search]
grid = "5x5"
threshold = [0]
seed = 1
generations = 60_000
[synth]
prove = true
[verify]
vectors = 50
[data]
limit = 200
"""


def run_cli(cli, *args):
    result = cli(*args)
    assert result.code == 0, result.err
    return result


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, dask_client):
    base = tmp_path_factory.mktemp("campaign")
    path = experiment_file(base / "short.toml", ALL_STAGES, name="short")
    out = base / "out"
    return path, out, dask_client.scheduler.address


def test_a_campaign_runs_every_stage_and_writes_table_and_report(campaign, cli):
    path, out, address = campaign
    printed = run_cli(cli, "run", str(path), "--out", str(out), "--cluster", address, "--quiet")
    assert "2 runs: 2 ran now" in printed.out and "report:" in printed.out
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 2 and set(pd.read_csv(out / "results.csv")["run"]) == set(table["run"])
    for column in ("experiment", "layer", "selector", "threshold", "seed", "grid", "reached", "error", "energy",
                   "area", "delay", "gates", "synth_cells", "synth_area", "synth_energy", "verified",
                   "top1_before", "top1_after", "wall_seconds", "run_dir", "rtl_dir"):
        assert column in table, column
    for _, row in table.iterrows():
        # every stage ran with the real tools and agrees with the search
        synth = json.loads(next((out / "runs" / row["run"] / "rtl").glob("*/*.synth.json")).read_text())
        assert synth["circuit"]["n_cells"] == row["synth_cells"] and row["proof"] == "equivalent"
        verdict = json.loads((out / "runs" / row["run"] / "verify.json").read_text())["verdict"]
        assert row["verified"] == "pass" and verdict["task"]["error_se"] == row["error"]
        assert row["layer"] == "conv1" and row["top1_before"] == pytest.approx(0.985, abs=0.03)
        inserted = json.loads((out / "runs" / row["run"] / "insert.json").read_text())
        assert (sum(inserted["codes_changed"].values()) == 0) == (row["error"] == 0)
        assert inserted["after"]["top1"] == row["top1_after"] and inserted["after"]["images"] == 200
    # the unchanged network was measured once for the campaign, not once per run
    (baseline,) = (out / "baselines").glob("*.json")
    assert set(table["top1_before"]) == {json.loads(baseline.read_text())["accuracy"]["top1"]}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<script" not in html and "http" not in html
    assert all(r in html for r in table["run"])


def test_results_summarise_per_setting(campaign, cli):
    _, out, _ = campaign
    text = run_cli(cli, "results", str(out), "--group-by", "grid,threshold").out
    header, line = text.splitlines()[:2]
    assert header.split()[:4] == ["grid", "threshold", "runs", "reached"]
    assert re.match(r"5x5\s+0\s+2\s+\d/2", line)
    rows = json.loads(run_cli(cli, "results", str(out), "--json").out)
    assert {r["task"] for r in rows} == {"kernel 0", "kernel 1"} and all(r["runs"] == 1 for r in rows)
    code, _, err = cli("results", str(out), "--group-by", "colour")
    assert code == 2 and err.startswith("error: cannot group by 'colour'")
    # --figures: exactly the figures asked for (docs/results.md's side-by-side rows)
    text = run_cli(cli, "results", str(out), "--group-by", "threshold", "--figures",
                   "gates,top1_after,wall_seconds").out
    assert re.split(r"\s{2,}", text.splitlines()[0].strip()) == \
        ["threshold", "runs", "reached", "verified", "gates", "top-1 %", "wall s"]
    assert re.match(r"0\s+2\s+\d/2\s+\d/2\s", text.splitlines()[1])  # counts, not 2.0 (a row of numbers only)
    code, _, err = cli("results", str(out), "--figures", "speed")
    assert code == 2 and err.startswith("error: no figure 'speed'")


def test_the_figure_names_in_the_help_are_the_summary_s():
    from cgphw.campaign.results import FIGURES
    from cgphw.commands.campaign import FIGURE_NAMES

    assert FIGURE_NAMES == tuple(FIGURES)


def test_a_finished_campaign_does_no_work_and_other_folders_are_refused(campaign, cli, tmp_path):
    path, out, address = campaign
    printed = run_cli(cli, "run", str(path), "--out", str(out), "--cluster", address, "--quiet", "--no-report")
    assert "0 ran now, 2 were already finished" in printed.out
    (tmp_path / "mine.txt").write_text("a user's file")
    code, _, err = cli("run", str(path), "--out", str(tmp_path), "--cluster", address)
    assert code == 2 and "is not a campaign folder" in err
    assert (tmp_path / "mine.txt").read_text() == "a user's file"
    code, _, err = cli("results", str(tmp_path))
    assert code == 2 and "not a campaign folder" in err


def test_bad_settings_stop_before_any_run_and_leave_a_usable_folder(tmp_path, cli):
    path = experiment_file(tmp_path / "bad.toml", ALL_STAGES, name="bad")
    out = tmp_path / "out"
    code, _, err = cli("run", str(path), "--out", str(out), "--set", "search.function_set=add,foo")
    assert code == 2 and "unknown function set or gate 'foo'" in err and "bad.toml" in err
    assert not (out / "runs").exists()
    code, _, err = cli("results", str(out))
    assert code == 2 and "no results.parquet yet" in err  # the folder is the campaign's, ready to run again
    code, _, err = cli("run", str(path), "--out", str(out), "--set", "search.grid=1x1000000000")
    assert code == 2 and "nodes" in err


def test_the_report_draws_each_runs_own_checked_pareto_front(campaign, tmp_path):
    import shutil

    from cgphw.campaign import report
    from cgphw.campaign.results import load_results
    from cgphw.cgp.rundir import load_run

    _, out, _ = campaign  # (the campaign the first test ran)
    frame = load_results(out)
    fronts = report._archives(frame, out)
    assert set(fronts) == set(frame["run"])
    for _, row in frame.iterrows():
        stored = json.loads((out / row["evolve_dir"] / "pareto.json").read_text())["points"]
        kept = load_run(out / row["evolve_dir"]).pareto
        assert len(fronts[row["run"]]) == len(stored) == len(kept) >= 1
        assert sorted(fronts[row["run"]]) == sorted((p.metrics.rms_error, p.metrics.energy_pj) for p in kept)
        assert min(fronts[row["run"]])[0] == row["rms_error"]  # the front reaches the winner's error
    assert f"its archive, {len(frame)} run(s)" in (out / "report.html").read_text()
    # a front whose stored figures no longer match its genomes is not drawn
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    first = frame.iloc[0]
    path = copy / first["evolve_dir"] / "pareto.json"
    doc = json.loads(path.read_text())
    doc["points"][0]["metrics"]["energy_pj"] += 1.0
    path.write_text(json.dumps(doc))
    assert set(report._archives(frame, copy)) == set(frame["run"]) - {first["run"]}
