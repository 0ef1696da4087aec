"""Issue 9, verify: it simulates only the files the export wrote, as they were written."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sim_fixtures import corrupt, export_run, manifest_of

from cgphw.errors import MismatchError


@pytest.mark.parametrize("role", ["verilog", "rtlil"])
def test_manifest_pointing_outside_is_refused(rtl_comb, tmp_path, cli, role):
    """A manifest whose files.verilog was an absolute path to another, good copy made verify
    pass while the directory's own file was corrupted."""
    good = tmp_path / "good"
    shutil.copytree(rtl_comb, good)
    corrupt(rtl_comb, rehashed=False)
    path = manifest_of(rtl_comb)
    doc = json.loads(path.read_text())
    name = doc["files"][role]
    doc["files"][role] = str(good / name)
    doc["sha256"][str(good / name)] = doc["sha256"].pop(name)
    path.write_text(json.dumps(doc))
    code, _, err = cli("verify", rtl_comb, "--sim", "amaranth", "--vectors", 5)
    assert code == 2 and f"files.{role} must be a plain file name inside" in err and "Traceback" not in err


def test_edited_verilog_or_genome_is_a_mismatch(rtl_comb, cli):
    corrupt(rtl_comb, rehashed=False)
    code, _, err = cli("verify", rtl_comb, "--sim", "amaranth", "--vectors", 5)
    assert code == 1 and "is not the file `cgphw export` wrote" in err and len(err.strip().splitlines()) == 1


def test_genome_swapped_in_the_manifest_is_a_mismatch(rtl_comb, cli):
    path = manifest_of(rtl_comb)
    doc = json.loads(path.read_text())
    doc["genome"]["outputs"][0], doc["genome"]["outputs"][1] = doc["genome"]["outputs"][1], doc["genome"]["outputs"][0]
    path.write_text(json.dumps(doc))
    code, _, err = cli("verify", rtl_comb, "--sim", "amaranth", "--vectors", 5)
    assert code == 1 and "does not match its recorded hash" in err


def test_run_with_a_swapped_task_is_a_mismatch(run_dir, tmp_path, cli):
    from cgphw.task import Task, example_task

    t = example_task()
    Task(t.inputs, np.roll(t.targets, 1, axis=1)).save(run_dir / "task.npz")  # same shape, other weights
    code, _, err = cli("verify", run_dir, "--sim", "amaranth", "--vectors", 5)
    assert code == 1 and "not the task the run started with" in err
    with pytest.raises(MismatchError):
        export_run(run_dir, tmp_path / "o")
