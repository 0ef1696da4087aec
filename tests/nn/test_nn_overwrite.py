"""Files the network commands write beside a user's: a file already there is replaced only with
--force (a model's NAME.json also when it is metadata cgphw wrote); a float state dict with NaN
or infinite weights, and a disk that fills, end in one line with nothing written."""
import errno
import json

import pytest
import torch

from cgphw.cli import main
from cgphw.task import load_task

from imagenet_fixtures import float_state, make_folder

TASK_COMMANDS = [["task", "make", "--selector", "core-ring"], ["task", "example"]]


def fails(cli, *argv) -> str:
    code, _, err = cli(*argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize("command", TASK_COMMANDS)
def test_a_task_over_an_existing_file_needs_force(cli, tmp_path, command):
    mine = tmp_path / "t.npz"
    mine.write_text("my own file")
    assert fails(cli, *command, "--out", mine) == \
        f"error: {mine} exists: pass --force to replace it, or choose another path"
    assert mine.read_text() == "my own file" and [p.name for p in tmp_path.iterdir()] == ["t.npz"]
    main([*command, "--out", str(mine), "--force"])
    assert load_task(mine).n_outputs == 16


@pytest.mark.parametrize("command", TASK_COMMANDS)
def test_a_full_disk_while_writing_a_task_is_one_line(cli, tmp_path, monkeypatch, command):
    import cgphw.files

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    real = cgphw.files.os.fdopen
    monkeypatch.setattr(cgphw.files.os, "fdopen", lambda *a, **kw: Full(real(*a, **kw)))
    out = tmp_path / "t.npz"
    assert fails(cli, *command, "--out", out).startswith(
        f"error: cannot write the task file {out} (No space left on device)")
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_a_models_json_beside_it_is_not_replaced_without_force(cli, tmp_path):
    mine = tmp_path / "m.json"
    mine.write_text('{"my": "notes"}')
    message = f"error: {mine} exists and is not a model metadata file cgphw wrote: pass --force to replace it"
    train = ["model", "train", "--epochs", "0", "--qat-epochs", "0", "--limit", "8", "--out", tmp_path / "m.pt"]
    for argv in (["model", "import", tmp_path / "absent.pth", "--out", tmp_path / "m.pt"], train):
        assert fails(cli, *argv).startswith(message)
    assert mine.read_text() == '{"my": "notes"}' and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    main([str(a) for a in [*train, "--force"]])
    assert json.loads(mine.read_text())["format"] == "cgphw-model-meta/1"
    (tmp_path / "m.pt").unlink()  # the metadata cgphw wrote for a model is replaced without --force
    main([str(a) for a in train])
    assert (tmp_path / "m.pt").is_file()


@pytest.mark.parametrize("key, value", [("features.0.0.weight", float("nan")),
                                        ("features.0.1.running_var", float("inf")),
                                        ("classifier.1.bias", float("-inf"))])
def test_a_float_state_dict_with_non_finite_weights_is_refused(cli, tmp_path, key, value):
    folder = make_folder(tmp_path / "val")
    state = float_state()
    state[key].view(-1)[0] = value
    torch.save(state, tmp_path / "bad.pth")
    expected = f"error: state dict {tmp_path / 'bad.pth'} is damaged: {key} holds 1 NaN or infinite value(s)"
    assert fails(cli, "model", "import", tmp_path / "bad.pth", "--out", tmp_path / "m.pt",
                 "--calibration", folder, "--images", "2").startswith(expected)
    assert fails(cli, "model", "train", "--arch", "mobilenetv2", "--init", tmp_path / "bad.pth", "--epochs", "0",
                 "--qat-epochs", "0", "--limit", "8", "--out", tmp_path / "t.pt").startswith(expected)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "t.pt").exists()
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "t.json").exists()


def test_a_full_disk_that_names_no_file_is_still_one_line(cli, tmp_path, monkeypatch):
    import cgphw.task

    def full(self, path):  # a write deep in a library: the error names no file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cgphw.task.Task, "save", full)
    assert fails(cli, "task", "example", "--out", tmp_path / "t.npz") == \
        "error: cannot use the output: No space left on device"
