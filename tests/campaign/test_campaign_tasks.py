"""The tasks only experiments make: values:IN->OUT, the two-layer shared circuit (mux and
select), and zero targets."""
import numpy as np
import pytest

from cgphw.campaign.tasks import build_task
from cgphw.errors import UserError
from cgphw.nn.layers import extract
from cgphw.nn.model import load_model
from cgphw.nn.selectors import core_and_ring, place


@pytest.fixture(scope="module")
def lenet():
    return load_model()


def test_values_task_is_one_item_of_the_values():
    task = build_task({"selector": "values:0..63->-128..127"}, None)
    assert task.inputs.tolist() == [list(range(64))] and task.targets.tolist() == [list(range(-128, 128))]
    assert build_task({"selector": "values:->1,2"}, None).n_inputs == 0
    for bad in ("values:0..300->1", "values:1,x->2", "values:1..3"):
        with pytest.raises(UserError):
            build_task({"selector": bad}, None)


def test_shared_mux_task_counts_each_layer_s_own_block_and_puts_it_back(lenet):
    task = build_task({"selector": "shared-core-ring:conv1,conv2:mux"}, lenet)
    conv1, conv2 = extract(lenet, "conv1"), extract(lenet, "conv2")
    assert (task.n_items, task.n_inputs, task.n_outputs) == (6 + 96, 9, 32)
    assert task.meta["multiplexers"] == 16 and task.n_targets == 102 * 16
    core, ring = core_and_ring(conv2[0, 1])  # the second kernel of conv2 is item 6 + 1
    assert task.inputs[7].tolist() == core.tolist() and task.targets[7, 16:].tolist() == ring.tolist()
    assert task.mask[7].tolist() == [False] * 16 + [True] * 16 and task.mask[0].tolist() == [True] * 16 + [False] * 16
    # the layer's own block goes back where it came from; the other block is ignored
    out = task.targets.copy()
    out[~task.mask] = 99
    codes = place(lenet, task, out)
    assert np.array_equal(codes["conv1"], conv1) and np.array_equal(codes["conv2"], conv2)


def test_shared_select_task_has_the_layer_index_as_an_input(lenet):
    task = build_task({"selector": "shared-core-ring:conv1,conv2:select"}, lenet)
    assert (task.n_items, task.n_inputs, task.n_outputs) == (102, 10, 16) and task.mask is None
    assert set(task.inputs[:6, 0]) == {0} and set(task.inputs[6:, 0]) == {1}
    assert task.meta["multiplexers"] == 0
    with pytest.raises(UserError, match="two or more layers"):
        build_task({"selector": "shared-core-ring:conv1"}, lenet)


def test_zero_targets(lenet):
    task = build_task({"selector": "core-ring:conv1", "zero_targets": True}, lenet)
    assert task.targets.shape == (6, 16) and not task.targets.any() and task.meta["zero_targets"]
