import json

import numpy as np
import pytest

from cgphw.cgp.genome import Genome, Grid
from cgphw.cgp.search import record_run
from cgphw.nn.layers import extract
from cgphw.nn.selectors import make_task


def run(cli, *argv):
    code, out, err = cli(*argv)
    assert code == 0, err
    return out


def fails(cli, *argv) -> str:
    code, _, err = cli(*argv)
    err = err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_layers_eval_and_sensitivity(cli):
    layers = json.loads(run(cli, "model", "layers", "--json"))
    assert [r["name"] for r in layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert "conv1" in run(cli, "model", "layers")
    acc = json.loads(run(cli, "model", "eval", "--limit", "100", "--json"))
    assert acc["images"] == 100 and acc["top1"] > 0.9
    sens = json.loads(run(cli, "model", "sensitivity", "--layers", "conv1", "--k", "2,8", "--limit", "50",
                          "--json"))
    assert [(r["layer"], r["k"]) for r in sens["rows"]] == [("conv1", 2), ("conv1", 8)]


def test_task_make_and_insert_weights(cli, tmp_path, lenet):
    out = tmp_path / "t.npz"
    doc = json.loads(run(cli, "task", "make", "--selector", "core-ring:concat", "--out", str(out), "--json"))
    assert doc["inputs"] == 54 and doc["outputs"] == 96 and out.is_file()
    weights = tmp_path / "w.npz"
    conv1 = extract(lenet, "conv1")
    np.savez(weights, conv1=conv1)
    same = json.loads(run(cli, "insert", str(weights), "--limit", "200", "--json"))
    assert same["delta_top1"] == 0 and same["delta_loss"] == 0 and same["codes_changed"] == {"conv1": 0}
    np.savez(weights, conv1=np.zeros_like(conv1))
    zero = json.loads(run(cli, "insert", str(weights), "--limit", "200", "--json"))
    assert zero["after"]["top1"] < 0.5 and zero["codes_changed"]["conv1"] == int((conv1 != 0).sum())
    assert "delta:" in run(cli, "insert", str(weights), "--limit", "50")


def _rundir(tmp_path, lenet, outputs_from_inputs: bool):
    """A run directory whose circuit copies (or increments) conv1: layer:conv1->conv1."""
    task = make_task(lenet, "layer:conv1->conv1")
    n = task.n_inputs
    grid = Grid(n, n, rows=n, cols=1, levels_back=2, function_ids=(13,))  # 13 = inc
    nodes = [[i, i, 13] for i in range(n)]
    outputs = list(range(n)) if outputs_from_inputs else [n + i for i in range(n)]
    genome = Genome(grid, np.array(sum(nodes, []) + outputs))
    run_dir = tmp_path / ("copy" if outputs_from_inputs else "inc")
    record_run(genome, task, out=run_dir)
    return run_dir


def test_insert_run_directory(cli, tmp_path, lenet):
    copy = json.loads(run(cli, "insert", str(_rundir(tmp_path, lenet, True)), "--limit", "200", "--json"))
    assert copy["codes_changed"] == {"conv1": 0} and copy["delta_top1"] == 0
    inc = json.loads(run(cli, "insert", str(_rundir(tmp_path, lenet, False)), "--limit", "200", "--json"))
    assert inc["codes_changed"] == {"conv1": 150} and inc["after"] != inc["before"]


def test_train_tiny_then_eval_it(cli, tmp_path):
    out = tmp_path / "m.pt"
    doc = json.loads(run(cli, "model", "train", "--limit", "64", "--epochs", "1", "--qat-epochs", "1",
                         "--max-steps", "2", "--out", str(out), "--json"))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["accuracy"]["test"] == doc["test"] and meta["train_images"] == 64
    acc = json.loads(run(cli, "model", "eval", "--model", str(out), "--json"))
    assert acc["top1"] == doc["test"]["top1"]
    assert "exists: pass --force" in fails(cli, "model", "train", "--out", str(out))


def test_cli_errors_are_one_sentence_exit_2(cli, tmp_path, lenet):
    assert "no int8 layer named 'conv9'" in fails(cli, "task", "make", "--selector", "core-ring:conv9",
                                                  "--out", str(tmp_path / "t.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, conv1=np.zeros((6, 25), np.int8))
    assert "the layer needs [6, 1, 5, 5]" in fails(cli, "insert", str(bad))
    np.savez(bad, conv1=np.zeros((6, 1, 5, 5), np.float32))
    assert "must be int8" in fails(cli, "insert", str(bad))
    np.savez(bad, conv7=np.zeros((6, 1, 5, 5), np.int8))
    assert "no int8 layer named 'conv7'" in fails(cli, "insert", str(bad))
    assert "neither a run directory nor" in fails(cli, "insert", str(tmp_path / "nothing"))
    (tmp_path / "run").mkdir()
    assert "not a cgphw run directory" in fails(cli, "insert", str(tmp_path / "run"))
    assert "neither 'mnist5k' nor a directory" in fails(cli, "model", "eval", "--data", str(tmp_path / "x"))
    assert "t10k-images-idx3-ubyte" in fails(cli, "model", "eval", "--data", str(tmp_path))
    assert "does not exist" in fails(cli, "model", "eval", "--model", str(tmp_path / "none.pt"))
    assert "--init" in fails(cli, "model", "train", "--init", str(bad), "--out", str(tmp_path / "n.pt"))
    assert "--k must be" in fails(cli, "model", "sensitivity", "--k", "one")


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-1"], "non-negative"), (["--k", ""], "at least one noise amplitude"),
    (["--k", "-2000"], "-255..255"), (["--layers", "+"], "must name a layer")])
def test_sensitivity_refuses_bad_flags(cli, args, fragment):
    argv = ["model", "sensitivity", "--limit", "5", "--layers", "conv1", "--k", "1", *args]
    assert fragment in fails(cli, *argv)


def _edit_targets_at(task, case):
    meta = json.loads(json.dumps(task.meta))
    first = meta["targets_at"][0][0]
    if case == "negative-index":
        meta["targets_at"][0][0] = [first[0], -5, first[2]]
    elif case == "index-past-layer":
        meta["targets_at"][0][0] = [first[0], 10**6, first[2]]
    elif case == "short-run":
        meta["targets_at"][0][0] = [first[0]]
    elif case == "layer-not-str":
        meta["targets_at"][0][0] = [5, first[1], first[2]]
    elif case == "none":
        meta["targets_at"] = None
    elif case == "layers-list":
        meta["layers"] = [1]
    return meta


@pytest.mark.parametrize("case, fragment", [
    ("negative-index", "targets_at is malformed"), ("index-past-layer", "has 150 weights"),
    ("short-run", "targets_at is malformed"), ("layer-not-str", "targets_at is malformed"),
    ("none", "targets_at is malformed"), ("layers-list", "meta.layers is malformed")])
def test_insert_refuses_a_malformed_target_map(cli, tmp_path, lenet, case, fragment):
    from cgphw.cgp.rundir import load_run
    from cgphw.task import Task, load_task

    good = _rundir(tmp_path, lenet, True)
    task = load_task(good / "task.npz")
    run_dir = tmp_path / "bad-map"  # a run made with the malformed map (an edited task.npz is a mismatch)
    record_run(load_run(good).genome, Task(task.inputs, task.targets, meta=_edit_targets_at(task, case)), out=run_dir)
    assert fragment in fails(cli, "insert", str(run_dir), "--limit", "5")


@pytest.mark.parametrize("command", [["task", "make", "--selector", "core-ring"], ["task", "example"]])
def test_task_out_in_a_missing_or_file_directory(cli, tmp_path, command):
    (tmp_path / "afile").write_text("")
    for out in (tmp_path / "nodir" / "t.npz", tmp_path / "afile" / "t.npz"):
        assert f"cannot write the task file {out}" in fails(cli, *command, "--out", str(out))
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.parametrize("width", ["nan", "1e9"])
def test_train_refuses_an_impossible_mobilenet_width(cli, tmp_path, width):
    err = fails(cli, "model", "train", "--arch", "mobilenetv2", "--width", width, "--epochs", "0",
                "--qat-epochs", "0", "--limit", "8", "--out", str(tmp_path / "m.pt"))
    assert "width multiplier" in err and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("field", ["args", "meta"])
def test_model_file_with_non_object_json_field(cli, tmp_path, field):
    import torch

    from cgphw.nn.model import DEFAULT_MODEL

    doc = torch.load(DEFAULT_MODEL, map_location="cpu", weights_only=True)
    doc[field] = "[1]"
    torch.save(doc, tmp_path / "m.pt")
    assert "must be JSON objects" in fails(cli, "model", "layers", "--model", str(tmp_path / "m.pt"))


def test_train_refuses_an_out_below_a_file_before_training(cli, tmp_path):
    (tmp_path / "afile").write_text("")
    err = fails(cli, "model", "train", "--epochs", "0", "--qat-epochs", "0", "--limit", "8",
                "--out", str(tmp_path / "afile" / "sub" / "m.pt"))
    assert "is not a directory" in err and [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.parametrize("selector", ["const:conv1", "layer:conv1->conv1"])
def test_task_make_refuses_an_ignored_layer_option(cli, tmp_path, selector):
    out = tmp_path / "t.npz"
    assert "--layer" in fails(cli, "task", "make", "--selector", selector, "--layer", "conv2", "--out", str(out))
    assert not out.exists()


def test_task_make_refuses_a_repeated_filter(cli, tmp_path):
    out = tmp_path / "t.npz"
    assert "more than once" in fails(cli, "task", "make", "--selector", "core-ring", "--filters", "0,0",
                                     "--out", str(out))
    assert not out.exists()


@pytest.mark.parametrize("key, value", [("conv1.weight", float("nan")), ("fc3.bias", float("inf")),
                                        ("conv2.weight_fake_quant.scale", float("-inf")),
                                        ("fc1.activation_post_process.activation_post_process.min_val",
                                         float("nan"))])
def test_model_file_with_nan_or_inf_values_is_refused_on_load(cli, tmp_path, key, value):
    import torch

    from cgphw.nn.model import DEFAULT_MODEL

    doc = torch.load(DEFAULT_MODEL, map_location="cpu", weights_only=True)
    doc["qat_state"][key].view(-1)[0] = value
    torch.save(doc, tmp_path / "m.pt")
    for command in (["model", "eval", "--limit", "10"], ["task", "make", "--selector", "core-ring",
                                                         "--out", str(tmp_path / "t.npz")]):
        err = fails(cli, *command, "--model", str(tmp_path / "m.pt"))
        assert f"is damaged: {key} holds 1 NaN or infinite value(s)" in err
    assert not (tmp_path / "t.npz").exists()


def test_json_outputs_name_the_shipped_model_portably(cli, tmp_path):
    from cgphw.task import load_task

    assert json.loads(run(cli, "model", "eval", "--limit", "10", "--json"))["model"] == \
        "cgphw:models/lenet5_mnist5k.pt"
    run(cli, "task", "make", "--selector", "core-ring", "--out", str(tmp_path / "t.npz"))
    assert load_task(tmp_path / "t.npz").meta["model"]["path"] == "cgphw:models/lenet5_mnist5k.pt"


def test_selector_naming_a_layer_twice_is_refused(cli, tmp_path):
    err = fails(cli, "task", "make", "--selector", "const:conv1,conv1", "--out", str(tmp_path / "t.npz"))
    assert err.startswith("error: selector 'const:conv1,conv1' names a layer more than once")
    assert not (tmp_path / "t.npz").exists()


@pytest.mark.parametrize("edit, start", [
    (lambda m: m["targets_at"][0].append(["conv2", 0, 1]),  # core-ring's output 16 also on the weight of output 0
     "the task places item 0 output 0 and item 0 output 16 both at conv2.flat[0]"),
    (lambda m: m["targets_at"][0].__setitem__(1, ["conv2", 6, 1]),  # output 6 onto the core's first weight
     "the task places item 0 output 6 at conv2.flat[6], the circuit's stored input 0 of item 0")])
def test_insert_map_naming_a_weight_twice_or_a_stored_input_is_refused(cli, tmp_path, edit, start):
    """An edited insert map (the task's targets_at) must not place two outputs on one weight, nor
    an output over a stored weight the circuit reads: one error line, exit 2, nothing inserted."""
    from cgphw.nn.model import load_model
    from cgphw.task import Task, location_runs

    task = make_task(load_model(), "core-ring:conv2", filters=[0])  # one item per input channel: keep the first
    meta = dict(task.meta, inputs_from=task.meta["inputs_from"][:1],
                targets_at=[[list(run) for run in task.meta["targets_at"][0]]])
    assert meta["targets_at"][0][0][:2] == ["conv2", 0] and location_runs([("conv2", 6)]) == [["conv2", 6, 1]]
    edit(meta)
    n_out = sum(run[2] for run in meta["targets_at"][0])
    targets = np.resize(task.targets[0], n_out)[None, :]
    custom = Task(task.inputs[:1], targets, meta=meta)
    n = custom.n_inputs
    grid = Grid(n, n_out, rows=1, cols=1, levels_back=2, function_ids=(13,))
    record_run(Genome(grid, np.array([0, 0, 13] + [0] * n_out)), custom, out=tmp_path / "run", threshold=200.0)
    err = fails(cli, "insert", str(tmp_path / "run"), "--limit", "10")
    assert err.startswith("error: " + start), err
