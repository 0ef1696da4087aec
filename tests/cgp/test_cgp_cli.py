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
