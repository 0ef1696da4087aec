import numpy as np
import pytest

from cgphw.errors import UserError
from cgphw.nn.layers import extract, with_codes
from cgphw.nn.selectors import core_and_ring, make_task, place, target_locations
from cgphw.task import example_task, load_task

THESIS_KERNEL = np.array([[26, -61, -64, -60, 22], [-25, -42, -36, 64, 102], [-5, 19, 67, 127, 32],
                          [32, 60, 54, 16, -62], [-9, -12, -32, -96, -76]], np.int8)
CORE = [-42, -36, 64, 19, 67, 127, 60, 54, 16]
RING = [26, -61, -64, -60, 22, -25, 102, -5, 32, 32, -62, -9, -12, -32, -96, -76]


@pytest.fixture(scope="module")
def thesis_lenet(lenet):
    """The shipped model with conv1 filter 0 set to the study's test kernel."""
    codes = extract(lenet, "conv1").copy()
    codes[0, 0] = THESIS_KERNEL
    return with_codes(lenet, {"conv1": codes})


def test_core_and_ring_of_the_thesis_kernel():
    core, ring = core_and_ring(THESIS_KERNEL)
    assert core.tolist() == CORE and ring.tolist() == RING
    ex = example_task()
    assert ex.inputs[0].tolist() == CORE and ex.targets[0].tolist() == RING


def test_core_ring_one_item_per_kernel(thesis_lenet):
    task = make_task(thesis_lenet, "core-ring")
    assert task.inputs.shape == (6, 9) and task.targets.shape == (6, 16)
    assert task.inputs[0].tolist() == CORE and task.targets[0].tolist() == RING
    where = target_locations(task.meta)
    assert where[0][:5] == [("conv1", i) for i in range(5)] and where[0][5] == ("conv1", 5)
    assert where[1][0] == ("conv1", 25)  # filter 1 starts 25 weights later
    conv2 = make_task(thesis_lenet, "core-ring:conv2", filters=[3, 15])
    assert conv2.inputs.shape == (12, 9)
    assert conv2.targets[0].tolist() == core_and_ring(extract(thesis_lenet, "conv2")[3, 0])[1].tolist()


def test_core_ring_concat_and_reverse(thesis_lenet):
    task = make_task(thesis_lenet, "core-ring:concat")
    assert task.inputs.shape == (1, 54) and task.targets.shape == (1, 96)
    assert task.inputs[0, :9].tolist() == CORE and task.targets[0, :16].tolist() == RING
    rev = make_task(thesis_lenet, "ring-core", filters=[0])
    assert rev.inputs[0].tolist() == RING and rev.targets[0].tolist() == CORE


def test_layer_const_and_first_n(lenet):
    task = make_task(lenet, "layer:conv1->conv2")
    assert task.inputs.shape == (1, 150) and task.targets.shape == (1, 2400)
    assert np.array_equal(task.targets[0], extract(lenet, "conv2").ravel())
    const = make_task(lenet, "const:conv1,conv2")
    assert const.inputs.shape == (1, 0) and const.targets.shape == (1, 2550)
    assert const.meta["targets_at"] == [[["conv1", 0, 150], ["conv2", 0, 2400]]]
    first = make_task(lenet, "first-n:96:fc1")
    assert np.array_equal(first.inputs[0], extract(lenet, "fc1").ravel()[:96])
    assert first.targets.shape == (1, 30720)


def test_every_selector_places_outputs_back_and_saves(lenet, tmp_path):
    selectors = ["core-ring", "core-ring:concat", "ring-core:conv2", "layer:conv1->conv2",
                 "const:conv1,conv2", "first-n:10:fc3", "rows:4:conv1"]
    for selector in selectors:
        task = make_task(lenet, selector)
        placed = place(lenet, task, task.targets)
        for name, codes in placed.items():
            assert np.array_equal(codes, extract(lenet, name)), (selector, name)
        bumped = place(lenet, task, (task.targets.astype(np.int16) + 1).astype(np.int8))  # wraps like CGP
        for (name, index), value in zip(target_locations(task.meta)[0], task.targets[0], strict=True):
            assert bumped[name].ravel()[index] == np.int8((int(value) + 1 + 128) % 256 - 128)
        loaded = load_task(task.save(tmp_path / "t.npz"))
        assert loaded.meta == task.meta and np.array_equal(loaded.targets, task.targets)


def test_rows_selector_one_item_per_output_channel(lenet):
    from cgphw.nn.networks import load_model

    rows = make_task(lenet, "rows:4:conv1")  # [6, 1, 5, 5]: channel c's weights flat[25c:25c+25]
    codes = extract(lenet, "conv1").reshape(6, 25)
    assert np.array_equal(rows.inputs, codes[:, :4]) and np.array_equal(rows.targets, codes)
    assert rows.meta["targets_at"][5] == [["conv1", 125, 25]]
    tflite = load_model("mobilenetv2")
    dw = make_task(tflite, "rows:3:dw1")  # TFLite depthwise [1, 3, 3, 32]: channels last
    kernels = extract(tflite, "dw1")[0].reshape(9, 32).T
    assert np.array_equal(dw.targets, kernels) and np.array_equal(dw.inputs, kernels[:, :3])
    assert target_locations(dw.meta)[1] == [("dw1", 1 + 32 * k) for k in range(9)]
    with pytest.raises(UserError, match="fewer than rows:26"):
        make_task(lenet, "rows:26:conv1")


def test_mobilenet_first_n_for_every_conv_layer(mobilenet):
    from cgphw.nn.layers import list_layers

    for info in list_layers(mobilenet):
        n = min(96, info.weights)
        task = make_task(mobilenet, f"first-n:{n}:{info.name}")
        assert task.targets.shape == (1, info.weights)
        assert task.meta["targets_at"] == [[[info.name, 0, info.weights]]]


@pytest.mark.parametrize("selector, layer, filters, message", [
    ("bogus", None, None, "unknown selector"),
    ("core-ring:fc1", None, None, "core-ring needs 5x5 kernels"),
    ("core-ring", None, [6], "cannot choose"),
    ("core-ring:conv1", "conv2", None, "--layer says conv2"),
    ("layer:conv1", None, None, "layer:A->B"),
    ("layer:conv1->nope", None, None, "no int8 layer named 'nope'"),
    ("const:", None, None, "needs layers"),
    ("first-n:x", None, None, "first-n:N"),
    ("first-n:999:conv1", None, None, "only 150 weights"),
    ("layer:conv1->conv2", None, [0], "--filters applies only"),
])
def test_selector_errors(lenet, selector, layer, filters, message):
    with pytest.raises(UserError, match=message):
        make_task(lenet, selector, layer=layer, filters=filters)


def test_place_refuses_mismatched_outputs_and_foreign_tasks(lenet):
    task = make_task(lenet, "core-ring")
    with pytest.raises(UserError, match="circuit outputs have shape"):
        place(lenet, task, task.targets[:, :3])
    from cgphw.task import Task

    foreign = Task(task.inputs, task.targets, meta=dict(task.meta, layers={"conv1": [6, 1, 3, 3]}))
    with pytest.raises(UserError, match="made from another network"):
        place(lenet, foreign, task.targets)
    with pytest.raises(UserError, match="does not record where"):
        place(lenet, example_task(), example_task().targets)


def test_address_task_is_a_computed_rom(lenet):
    task = make_task(lenet, "address:conv1")
    flat = extract(lenet, "conv1").ravel()
    assert task.inputs.shape == (150, 1) and task.targets.shape == (150, 1)
    assert task.inputs[:, 0].view(np.uint8).tolist() == list(range(150))  # the index bits, as int8 patterns
    assert task.inputs[128, 0] == -128 and task.targets[:, 0].tolist() == flat.tolist()
    assert task.meta["address"] == {"layer": "conv1", "words": 150}
    assert target_locations(task.meta)[7] == [("conv1", 7)]
    assert np.array_equal(place(lenet, task, task.targets)["conv1"], extract(lenet, "conv1"))
    wide = make_task(lenet, "address", layer="conv2")  # 2,400 weights: two address bytes, lowest first
    assert wide.inputs.shape == (2400, 2) and wide.inputs[[0, 255, 256, 2399]].tolist() == [[0, 0], [-1, 0], [0, 1],
                                                                                           [95, 9]]


@pytest.mark.parametrize("selector, layer, fragment", [
    ("address", None, "needs a layer"), ("address:conv1,conv2", None, "more than one layer"),
    ("address:conv1:conv2", None, "more than one layer"), ("address:conv1", "conv2", "but --layer says"),
    ("address:nope", None, "no int8 layer named 'nope'")])
def test_address_selector_errors(lenet, selector, layer, fragment):
    with pytest.raises(UserError, match=fragment):
        make_task(lenet, selector, layer=layer)
