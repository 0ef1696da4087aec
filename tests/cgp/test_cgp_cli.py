"""CLI of the CGP stage: evolve, show, bench, demo; bad input -> one line, exit 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cgphw.task import example_task

CLI = [sys.executable, "-c", "from cgphw.cli import main; main()"]


def cgphw(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_user_error(res, fragment):
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], res.stderr
    assert len(lines) == 1


@pytest.mark.slow
def test_bad_inputs_exit_2_with_one_line(tmp_path):
    example_task().save(tmp_path / "ok.npz")
    np.savez(tmp_path / "float.npz", inputs=np.zeros((1, 3)), targets=np.zeros((1, 2), np.int8))
    np.savez(tmp_path / "shape.npz", inputs=np.zeros(3, np.int8), targets=np.zeros((1, 2), np.int8))
    np.savez(tmp_path / "noin.npz", inputs=np.zeros((1, 0), np.int8), targets=np.zeros((1, 2), np.int8))
    (tmp_path / "junk.npz").write_text("not a zip")
    out = tmp_path / "r"
    assert_user_error(cgphw("evolve", tmp_path / "missing.npz", "--rows", 2, "--cols", 2), "does not exist")
    assert_user_error(cgphw("evolve", tmp_path / "float.npz", "--rows", 2, "--cols", 2, "--out", out), "int8")
    assert_user_error(cgphw("evolve", tmp_path / "shape.npz", "--rows", 2, "--cols", 2, "--out", out), "2-D")
    assert_user_error(cgphw("evolve", tmp_path / "junk.npz", "--rows", 2, "--cols", 2, "--out", out), "npz")
    assert_user_error(cgphw("evolve", tmp_path / "ok.npz", "--rows", 0, "--cols", 2, "--out", out), "rows")
    assert_user_error(cgphw("evolve", tmp_path / "noin.npz", "--rows", 2, "--cols", 2, "--function-set", "add",
                            "--out", out), "constant")
    assert_user_error(cgphw("evolve", tmp_path / "ok.npz", "--rows", 2, "--cols", 2, "--lambda", 0, "--out", out),
                      "lambda")
    assert_user_error(cgphw("evolve", tmp_path / "ok.npz", "--rows", 2, "--cols", 2, "--costs",
                            tmp_path / "nocosts.json", "--out", out), "cost table")
    assert_user_error(cgphw("evolve", tmp_path / "ok.npz", "--cols", 2, "--out", out), "--rows")
    assert_user_error(cgphw("evolve", "--resume", tmp_path), "config.json")
    assert_user_error(cgphw("show", tmp_path / "missing"), "neither")
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    assert_user_error(cgphw("show", tmp_path / "bad.json"), "not a valid cgphw genome")
    res = cgphw("evolve", tmp_path / "ok.npz", "--rows", "x", "--cols", 2)  # click's own usage error
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_evolve_show_and_resume_cli(tmp_path):
    example_task().save(tmp_path / "ex.npz")
    res = cgphw("evolve", tmp_path / "ex.npz", "--rows", 5, "--cols", 5, "--generations", 3000, "--json",
                "--out", tmp_path / "run", "--quiet")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["metrics"]["generations"] == 3000 and doc["stop_reason"] == "generations"
    again = cgphw("evolve", tmp_path / "ex.npz", "--rows", 5, "--cols", 5, "--out", tmp_path / "run")
    assert_user_error(again, "already holds a run")
    for changed in (["--seed", 3], ["--lambda", 8, "--threshold", 1], [tmp_path / "ex.npz"]):  # not silently ignored
        res = cgphw("evolve", "--resume", tmp_path / "run", *changed, "--generations", 4000)
        assert_user_error(res, "takes only --generations, --time-budget and --workers")
    res = cgphw("evolve", "--resume", tmp_path / "run", "--generations", 4000, "--json", "--quiet")
    assert res.returncode == 0 and json.loads(res.stdout)["metrics"]["generations"] == 4000
    res = cgphw("show", tmp_path / "run", "--json")
    shown = json.loads(res.stdout)
    assert shown["metrics"]["generations"] == 4000 and shown["expressions"][-1].startswith("out15 = ")
    res = cgphw("show", tmp_path / "run")
    assert "circuit:" in res.stdout and "energy" in res.stdout


@pytest.mark.slow
def test_demo_and_bench(tmp_path):
    res = cgphw("demo", "--out", tmp_path / "demo", "--generations", 20000, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["metrics"]["generations"] == 20000 and (tmp_path / "demo" / "best.json").is_file()
    res = cgphw("bench", "--seconds", 0.2, "--only", "5x5", "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)["results"][0]
    assert row["workload"] == "5x5" and row["offspring_per_s"] > 0 and row["lambda"] == 4


# --- adversarial input, in process (fast): one `error:` line, exit 2, nothing written -------
def _fails_in_process(cli, *argv) -> str:
    code, _, err = cli(*argv)
    err = err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


def _bad_costs(tmp_path, case):
    from cgphw.costs import default_costs_path

    doc = json.loads(default_costs_path().read_text())
    if case == "memory-list":
        doc["memory"] = [1, 2]
    else:
        doc["gates"]["1"]["energy_pj"] = {"nan": float("nan"), "negative": -1.0, "huge": 1e300}[case]
    path = tmp_path / f"costs-{case}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("case, fragment", [
    ("memory-list", "memory must be a JSON object"), ("nan", "NaN is not a number"), ("negative", "from 0 to"),
    ("huge", "from 0 to")])
def test_evolve_refuses_a_malformed_cost_table(cli, tmp_path, case, fragment):
    example_task().save(tmp_path / "ok.npz")
    err = _fails_in_process(cli, "evolve", tmp_path / "ok.npz", "--rows", 2, "--cols", 2, "--quiet",
                            "--costs", _bad_costs(tmp_path, case), "--out", tmp_path / "r")
    assert fragment in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("case, fragment", [
    ("meta-list", "not a JSON object"), ("complex-weights", "real numbers"),
    ("all-masked", "no target that counts"), ("zero-weights", "no target that counts")])
def test_evolve_refuses_a_malformed_task(cli, tmp_path, case, fragment):
    arrays = {"inputs": np.zeros((1, 2), np.int8), "targets": np.ones((1, 3), np.int8)}
    if case == "meta-list":
        arrays["meta"] = np.array("[1, 2]")
    elif case == "all-masked":
        arrays["mask"] = np.zeros((1, 3), bool)
    elif case == "zero-weights":
        arrays["weights"] = np.zeros((1, 3))
    else:
        arrays["weights"] = np.ones((1, 3), complex)
    np.savez(tmp_path / "t.npz", **arrays)
    err = _fails_in_process(cli, "evolve", tmp_path / "t.npz", "--rows", 2, "--cols", 2, "--quiet",
                            "--out", tmp_path / "r")
    assert fragment in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--rows", 100000, "--cols", 100000], "at most 1,000,000"),
    (["--rows", 2, "--cols", 2, "--checkpoint-every", "nan"], "--checkpoint-every"),
    (["--rows", 2, "--cols", 2, "--out", "{file}/sub"], "Not a directory"),
    (["--rows", 2, "--cols", 2, "--lambda", 10**9], "lambda must be from 1 to"),
    (["--rows", 2, "--cols", 2, "--patience", 10**23], "patience must be from 1 to"),
    (["--rows", 2, "--cols", 2, "--generations", 10**23], "generations must be from 1 to")])
def test_evolve_refuses_impossible_grids_flags_and_out(cli, tmp_path, args, fragment):
    example_task().save(tmp_path / "ok.npz")
    (tmp_path / "afile").write_text("")
    args = [str(a).replace("{file}", str(tmp_path / "afile")) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r")]
    err = _fails_in_process(cli, "evolve", tmp_path / "ok.npz", "--quiet", "--generations", 10, *args)
    assert fragment in err and not (tmp_path / "r").exists()


def _genome_doc():
    from cgphw.cgp.genome import grid_for, random_genome

    return random_genome(grid_for(2, 3, 2, 2), np.random.default_rng(0)).to_json()


@pytest.mark.parametrize("edit, fragment", [
    (lambda g: g.update(outputs=[10**30] * 3), "whole numbers"),
    (lambda g: g.update(outputs=[1.5] * 3), "whole numbers"),
    (lambda g: g.update(rows=2.5), "rows must be a whole number"),
    (lambda g: g.update(rows="2"), "rows must be a whole number"),
    (lambda g: g.update(rows=True), "rows must be a whole number"),
    (lambda g: g.update(rows=10**12), "at most 1,000,000")])
def test_show_refuses_malformed_genome_numbers(cli, tmp_path, edit, fragment):
    doc = _genome_doc()
    edit(doc)
    (tmp_path / "g.json").write_text(json.dumps(doc))
    assert fragment in _fails_in_process(cli, "show", tmp_path / "g.json")


@pytest.mark.parametrize("field, value, code, fragment", [
    ("metrics", None, 2, "is malformed: expected a JSON object"), ("metrics", [1], 2, "expected a JSON object"),
    ("metrics", {}, 2, "it lacks 'energy_pj'"), ("energy_pj", "x", 2, "energy_pj must be a finite number"),
    ("energy_pj", float("nan"), 2, "NaN is not a number"), ("value_bank", [1], 2, "value_bank must be a JSON object"),
    ("value_bank", {"x": 1}, 1, "holds a value bank but the run does not use one")])
def test_show_refuses_malformed_best_json(capsys, cli, tmp_path, field, value, code, fragment):
    from cgphw.cgp.search import evolve
    from cgphw.cgp.settings import Limits, SearchSettings
    from cgphw.cli import main

    run = tmp_path / "run"
    evolve(example_task(), SearchSettings(rows=2, cols=2), Limits(generations=5), out=run)
    doc = json.loads((run / "best.json").read_text())
    (doc["metrics"] if field == "energy_pj" else doc)[field] = value
    (run / "best.json").write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exc:
        main(["show", str(run / "best.json")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == code and err.startswith("error: ") and fragment in err and "\n" not in err, err


@pytest.mark.parametrize("file, key, value", [
    ("config.json", "rows", "x"), ("config.json", "lambda", None), ("config.json", "costs", [1]),
    ("config.json", "value_bank", None), ("config.json", "threshold", "x"), ("checkpoint.json", "seconds", "x")])
def test_resume_refuses_malformed_run_files(cli, tmp_path, file, key, value):
    from cgphw.cgp.search import evolve
    from cgphw.cgp.settings import Limits, SearchSettings

    run = tmp_path / "run"
    evolve(example_task(), SearchSettings(rows=2, cols=2), Limits(generations=5), out=run)
    doc = json.loads((run / file).read_text())
    if value is None:
        doc.pop(key)
    else:
        doc[key] = value
    (run / file).write_text(json.dumps(doc))
    assert "is malformed" in _fails_in_process(cli, "evolve", "--resume", run, "--quiet")


@pytest.mark.parametrize("seconds", ["inf", "nan", "0"])
def test_bench_refuses_endless_or_empty_timing(cli, seconds):
    assert "--seconds" in _fails_in_process(cli, "bench", "--seconds", seconds)


@pytest.mark.parametrize("argv, fragment", [
    (["evolve", "ok.npz", "--rows", "x", "--cols", 2], "'--rows'"), (["nosuchcommand"], "No such command"),
    (["evolve", ".", "--rows", 2, "--cols", 2], "is a directory"), (["show"], "Missing argument")])
def test_click_usage_errors_are_one_error_line(cli, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    example_task().save(tmp_path / "ok.npz")
    assert fragment in _fails_in_process(cli, *argv)


def test_unwritable_path_is_one_error_line(cli, tmp_path):
    """An OSError on a path the user named (here: --out below a file) is exit 2, not a traceback."""
    example_task().save(tmp_path / "ok.npz")
    (tmp_path / "afile").write_text("")
    err = _fails_in_process(cli, "evolve", tmp_path / "ok.npz", "--rows", 2, "--cols", 2, "--quiet",
                            "--out", tmp_path / "afile" / "run")
    assert "cannot use" in err and "Not a directory" in err


@pytest.mark.parametrize("key, value, code, start", [
    ("generation", -3, 2, "state.generation must be a whole number from 0 to"),
    ("stall", -1, 2, "state.stall must be a whole number from 0 to"),
    ("rng", 2**64, 2, "state.rng must be a whole number from 0 to 18446744073709551615"),
    ("evaluated", 1.5, 2, "state.evaluated must be a whole number"),
    ("generation", 2, 1, "records generation 5 but its state is at generation 2")])
def test_resume_range_checks_the_state_counters(capsys, cli, tmp_path, key, value, code, start):
    """A negative or foreign counter in the checkpoint's state would resume into another genome."""
    from cgphw import Limits, SearchSettings, evolve
    from cgphw.cli import main

    run = tmp_path / "run"
    evolve(example_task(), SearchSettings(rows=2, cols=2), Limits(generations=5), out=run)
    doc = json.loads((run / "checkpoint.json").read_text())
    assert doc["generation"] == doc["state"]["generation"] == 5
    doc["state"][key] = value
    (run / "checkpoint.json").write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exc:
        main(["evolve", "--resume", str(run), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == code and "\n" not in err, err
    assert err.startswith(f"error: {run / 'checkpoint.json'} ") and start in err, err
