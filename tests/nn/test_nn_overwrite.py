"""Files the network commands write beside a user's: a file already there is replaced only with
--force (a model's NAME.json also when it is metadata cgphw wrote)."""
import json

import pytest

from cgphw.cli import main
from cgphw.task import load_task

TASK_COMMANDS = [["task", "make", "--selector", "core-ring"], ["task", "example"]]


def fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize("command", TASK_COMMANDS)
def test_a_task_over_an_existing_file_needs_force(capsys, tmp_path, command):
    mine = tmp_path / "t.npz"
    mine.write_text("my own file")
    assert fails(capsys, *command, "--out", mine) == \
        f"error: {mine} exists: pass --force to replace it, or choose another path"
    assert mine.read_text() == "my own file" and [p.name for p in tmp_path.iterdir()] == ["t.npz"]
    main([*command, "--out", str(mine), "--force"])
    assert load_task(mine).n_outputs == 16


def test_a_models_json_beside_it_is_not_replaced_without_force(capsys, tmp_path):
    mine = tmp_path / "m.json"
    mine.write_text('{"my": "notes"}')
    message = f"error: {mine} exists and is not a model metadata file cgphw wrote: pass --force to replace it"
    train = ["model", "train", "--epochs", "0", "--qat-epochs", "0", "--limit", "8", "--out", tmp_path / "m.pt"]
    for argv in (["model", "import", tmp_path / "absent.pth", "--out", tmp_path / "m.pt"], train):
        assert fails(capsys, *argv).startswith(message)
    assert mine.read_text() == '{"my": "notes"}' and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    main([str(a) for a in [*train, "--force"]])
    assert json.loads(mine.read_text())["format"] == "cgphw-model-meta/1"
    (tmp_path / "m.pt").unlink()  # the metadata cgphw wrote for a model is replaced without --force
    main([str(a) for a in train])
    assert (tmp_path / "m.pt").is_file()
