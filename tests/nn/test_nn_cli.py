import json

import numpy as np
import pytest

from cgphw.cgp.genome import Genome, Grid, write_json_atomic
from cgphw.cli import main
from cgphw.nn.layers import extract
from cgphw.nn.tasks import make_task


def run(capsys, *argv):
    main(list(argv))
    return capsys.readouterr().out


def fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_layers_eval_and_sensitivity(capsys):
    layers = json.loads(run(capsys, "model", "layers", "--json"))
    assert [r["name"] for r in layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert "conv1" in run(capsys, "model", "layers")
    acc = json.loads(run(capsys, "model", "eval", "--limit", "100", "--json"))
    assert acc["images"] == 100 and acc["top1"] > 0.9
    sens = json.loads(run(capsys, "model", "sensitivity", "--layers", "conv1", "--k", "2,8", "--limit", "50",
                          "--json"))
    assert [(r["layer"], r["k"]) for r in sens["rows"]] == [("conv1", 2), ("conv1", 8)]


def test_task_make_and_insert_weights(capsys, tmp_path, lenet):
    out = tmp_path / "t.npz"
    doc = json.loads(run(capsys, "task", "make", "--selector", "core-ring:concat", "--out", str(out), "--json"))
    assert doc["inputs"] == 54 and doc["outputs"] == 96 and out.is_file()
    weights = tmp_path / "w.npz"
    conv1 = extract(lenet, "conv1")
    np.savez(weights, conv1=conv1)
    same = json.loads(run(capsys, "insert", str(weights), "--limit", "200", "--json"))
    assert same["delta_top1"] == 0 and same["delta_loss"] == 0 and same["codes_changed"] == {"conv1": 0}
    np.savez(weights, conv1=np.zeros_like(conv1))
    zero = json.loads(run(capsys, "insert", str(weights), "--limit", "200", "--json"))
    assert zero["after"]["top1"] < 0.5 and zero["codes_changed"]["conv1"] == int((conv1 != 0).sum())
    assert "delta:" in run(capsys, "insert", str(weights), "--limit", "50")


def _rundir(tmp_path, lenet, outputs_from_inputs: bool):
    """A run directory whose circuit copies (or increments) conv1: layer:conv1->conv1."""
    task = make_task(lenet, "layer:conv1->conv1")
    n = task.n_inputs
    grid = Grid(n, n, rows=n, cols=1, levels_back=2, function_ids=(13,))  # 13 = inc
    nodes = [[i, i, 13] for i in range(n)]
    outputs = list(range(n)) if outputs_from_inputs else [n + i for i in range(n)]
    genome = Genome(grid, np.array(sum(nodes, []) + outputs))
    run_dir = tmp_path / ("copy" if outputs_from_inputs else "inc")
    run_dir.mkdir()
    task.save(run_dir / "task.npz")
    write_json_atomic(run_dir / "best.json", {"format": "cgphw-run/1", "genome": genome.to_json()})
    return run_dir


def test_insert_run_directory(capsys, tmp_path, lenet):
    copy = json.loads(run(capsys, "insert", str(_rundir(tmp_path, lenet, True)), "--limit", "200", "--json"))
    assert copy["codes_changed"] == {"conv1": 0} and copy["delta_top1"] == 0
    inc = json.loads(run(capsys, "insert", str(_rundir(tmp_path, lenet, False)), "--limit", "200", "--json"))
    assert inc["codes_changed"] == {"conv1": 150} and inc["after"] != inc["before"]


def test_train_tiny_then_eval_it(capsys, tmp_path):
    out = tmp_path / "m.pt"
    doc = json.loads(run(capsys, "model", "train", "--limit", "64", "--epochs", "1", "--qat-epochs", "1",
                         "--max-steps", "2", "--out", str(out), "--json"))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["accuracy"]["test"] == doc["test"] and meta["train_images"] == 64
    acc = json.loads(run(capsys, "model", "eval", "--model", str(out), "--json"))
    assert acc["top1"] == doc["test"]["top1"]
    assert "exists: pass --force" in fails(capsys, "model", "train", "--out", str(out))


def test_cli_errors_are_one_sentence_exit_2(capsys, tmp_path, lenet):
    assert "no int8 layer named 'conv9'" in fails(capsys, "task", "make", "--selector", "core-ring:conv9",
                                                  "--out", str(tmp_path / "t.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, conv1=np.zeros((6, 25), np.int8))
    assert "the layer needs [6, 1, 5, 5]" in fails(capsys, "insert", str(bad))
    np.savez(bad, conv1=np.zeros((6, 1, 5, 5), np.float32))
    assert "must be int8" in fails(capsys, "insert", str(bad))
    np.savez(bad, conv7=np.zeros((6, 1, 5, 5), np.int8))
    assert "no int8 layer named 'conv7'" in fails(capsys, "insert", str(bad))
    assert "neither a run directory nor" in fails(capsys, "insert", str(tmp_path / "nothing"))
    (tmp_path / "run").mkdir()
    assert "has no best.json" in fails(capsys, "insert", str(tmp_path / "run"))
    assert "neither 'mnist5k' nor a directory" in fails(capsys, "model", "eval", "--data", str(tmp_path / "x"))
    assert "t10k-images-idx3-ubyte" in fails(capsys, "model", "eval", "--data", str(tmp_path))
    assert "does not exist" in fails(capsys, "model", "eval", "--model", str(tmp_path / "none.pt"))
    assert "--init" in fails(capsys, "model", "train", "--init", str(bad), "--out", str(tmp_path / "n.pt"))
    assert "--k must be" in fails(capsys, "model", "sensitivity", "--k", "one")
