"""cgphw.insert: the documented Python function behind `cgphw insert`, and its typed result."""
import dataclasses

import numpy as np
import pytest

import cgphw
from cgphw.cgp.genome import Genome, Grid
from cgphw.nn.layers import extract
from cgphw.nn.model import load_model
from cgphw.nn.selectors import make_task


@pytest.fixture(scope="module")
def lenet():
    return load_model()


def _run_dir(path, lenet, increment: bool, threshold: float = 0.0):
    """A run whose circuit copies conv1 (or adds 1 to every weight): task layer:conv1->conv1.
    The copy meets threshold 0; the increment misses it (127 + 1 wraps) but meets t = 100."""
    task = make_task(lenet, "layer:conv1->conv1")
    n = task.n_inputs
    grid = Grid(n, n, rows=n, cols=1, levels_back=2, function_ids=(13,))  # 13 = inc
    genes = sum(([i, i, 13] for i in range(n)), []) + ([n + i for i in range(n)] if increment else list(range(n)))
    cgphw.record_run(Genome(grid, np.array(genes)), task, out=path, threshold=threshold)
    return path


def test_insert_a_run_returns_a_frozen_typed_result(tmp_path, lenet):
    result = cgphw.insert(_run_dir(tmp_path / "inc", lenet, True, threshold=100.0), model=lenet, limit=200)
    assert isinstance(result, cgphw.Insertion)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.origin = "x"
    (change,) = result.layers
    assert (change.layer, change.weights) == ("conv1", 150)
    assert change.changed == 150  # x + 1 differs from x for every int8 code (127 wraps to -128)
    assert result.codes_changed == {"conv1": 150} and result.threshold_reached is True and result.notes == ()
    assert result.before.images == result.after.images == 200
    assert result.delta_top1 == result.after.top1 - result.before.top1
    doc = result.to_json()
    assert doc["codes_changed"] == {"conv1": 150} and doc["delta_loss"] == result.delta_loss


def test_insert_own_weights_from_a_mapping_changes_nothing(lenet):
    result = cgphw.insert({"conv1": extract(lenet, "conv1")}, model=lenet, limit=100)
    assert result.source == "weights given in Python" and result.threshold_reached is None
    assert result.codes_changed == {"conv1": 0}
    assert result.before == result.after and result.delta_loss == 0


def test_insert_notes_a_run_that_missed_its_threshold(tmp_path, lenet):
    result = cgphw.insert(_run_dir(tmp_path / "inc", lenet, True), model=lenet, limit=50)
    assert result.threshold_reached is False and result.codes_changed == {"conv1": 150}
    assert len(result.notes) == 1 and "never reached its error threshold" in result.notes[0]


def test_insert_reports_progress_for_both_measurements(lenet):
    seen = []
    cgphw.insert({"conv1": extract(lenet, "conv1")}, model=lenet, limit=600,
                 progress=lambda event: seen.append((event.what, event.done, event.total)))
    for what in ("accuracy before", "accuracy after"):
        counts = [(d, t) for w, d, t in seen if w == what]
        assert counts[0] == (0, 600) and counts[-1] == (600, 600)


def test_insert_refuses_bad_weights_with_a_user_error(tmp_path, lenet):
    with pytest.raises(cgphw.UserError, match="must be int8"):
        cgphw.insert({"conv1": extract(lenet, "conv1").astype(np.float32)}, model=lenet, limit=10)
    with pytest.raises(cgphw.UserError, match="neither a run directory nor"):
        cgphw.insert(tmp_path / "nothing", model=lenet, limit=10)


def test_insert_takes_the_before_accuracy_measured_once(tmp_path, lenet):
    run = _run_dir(tmp_path / "inc", lenet, True, threshold=100.0)
    first = cgphw.insert(run, model=lenet, limit=200)
    seen = []
    again = cgphw.insert(run, model=lenet, limit=200, before=first.before,
                         progress=lambda event: seen.append(event.what))
    assert again.before is first.before and again.after == first.after
    assert "accuracy after" in seen and "accuracy before" not in seen  # not measured again
    with pytest.raises(cgphw.UserError, match="measured on 200 images of mnist5k:test.*not on the 100 images"):
        cgphw.insert(run, model=lenet, limit=100, before=first.before)
