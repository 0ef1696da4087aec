"""Every .npz cgphw reads is checked from its .npy headers (dtype kind, values, bytes) before
any data is read: a small file that would expand to gigabytes is one error line."""
from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from cgphw.cli import main
from cgphw.errors import UserError
from cgphw.npz import read_npz
from cgphw.task import example_task, load_task
from cgphw.layer.stimulus import load_stimulus


def npz_of_headers(path, arrays: dict[str, tuple[str, tuple]]):
    """An .npz whose arrays claim these dtypes and shapes: the headers alone, no data (what a
    decompression bomb's reader sees first)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (descr, shape) in arrays.items():
            with archive.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
    return path


@pytest.mark.parametrize("array, descr, shape, message", [
    # 2,200 values of a 1 MB void dtype: 2.2 GB once read, a few hundred bytes on disk
    ("inputs", "|V1000000", (2200,), "holds inputs of dtype |V1000000; it must hold numeric values"),
    ("weights", "|O", (1, 16), "holds weights of dtype |O; it must hold numeric values"),
    ("meta", "<U100000000", (), "holds meta of 400,000,000 bytes (<U100000000 x 1); at most 268,435,456 bytes"),
])
def test_a_task_file_is_refused_from_its_headers(tmp_path, capsys, array, descr, shape, message):
    path = npz_of_headers(tmp_path / "bomb.npz", {"inputs": ("|i1", (1, 9)), "targets": ("|i1", (1, 16)),
                                                  array: (descr, shape)})
    with pytest.raises(UserError, match="^" + re.escape(f"task file {path} {message}")):
        load_task(path)
    with pytest.raises(SystemExit) as code:
        main(["evolve", str(path), "--rows", "3", "--cols", "3", "--generations", "2", "--quiet",
              "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.startswith(f"error: task file {path} {message}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_layer_stimulus_is_refused_from_its_headers(tmp_path):
    path = npz_of_headers(tmp_path / "stim.npz", {"meta": ("<U10", ()), "words": ("|V1000000", (5000,)),
                                                  "expected": ("|u1", (1, 1))})
    refused = re.escape(f"layer stimulus file {path} holds words of dtype |V1000000")
    with pytest.raises(UserError, match="^" + refused):
        load_stimulus(path)


def test_read_npz_reads_only_the_arrays_asked_for_and_checks_every_one(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, conv1=np.ones((2, 3), np.int8), other=np.zeros(3, np.float32))
    assert list(read_npz(path, {"conv1": "i", "absent": "i"}, "weights")) == ["conv1"]
    refused = re.escape(f"layer weights file {path} holds other of dtype <f4; it must hold signed")
    with pytest.raises(UserError, match="^" + refused):
        read_npz(path, "iu", "layer weights file")
    with pytest.raises(UserError, match="holds conv1 of shape 2 x 3; at most 5 values per array"):
        read_npz(path, {"conv1": "i"}, "weights", max_values=5)
    (tmp_path / "not.npz").write_bytes(b"PK no zip")
    with pytest.raises(UserError, match="^weights .*not.npz is not a readable .npz archive"):
        read_npz(tmp_path / "not.npz", "i", "weights")
    example_task().save(tmp_path / "t.npz")  # a task cgphw wrote reads back
    assert load_task(tmp_path / "t.npz").n_outputs == 16
