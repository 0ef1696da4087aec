"""`cgphw verify --write-stimulus` replaces only a stimulus file cgphw wrote, never a user's."""
from __future__ import annotations

import json

import pytest



@pytest.mark.parametrize("mine", ['{"my": "stimulus"}', "plain notes", "[1, 2]"])
def test_write_stimulus_over_a_users_file_is_refused(rtl_comb, tmp_path, cli, mine):
    out = tmp_path / "stim.json"
    out.write_text(mine)
    code, _, err = cli("verify", rtl_comb, "--write-stimulus", out, "--vectors", "5")
    assert code == 2 and err == (f"error: {out} exists and is not a stimulus file cgphw wrote: move it away, "
                                 "or choose another path\n")
    assert out.read_text() == mine


def test_write_stimulus_replaces_its_own_file(rtl_comb, tmp_path, cli):
    out = tmp_path / "stim.json"
    assert cli("verify", rtl_comb, "--write-stimulus", out, "--vectors", "5")[0] == 0
    assert cli("verify", rtl_comb, "--write-stimulus", out, "--vectors", "7")[0] == 0
    assert json.loads(out.read_text())["format"] == "cgphw-stimulus/1"
    code, _, err = cli("verify", rtl_comb, "--write-stimulus", tmp_path, "--vectors", "5")
    assert code == 2 and "is a directory" in err and err.count("\n") == 1  # click's own check
