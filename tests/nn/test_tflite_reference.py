"""The numpy int8 reference of a TFLite network against LiteRT's reference kernels: every
tensor of the shipped MobileNetV2 on the shipped photos, bit for bit."""
import numpy as np
import pytest

from cgphw.nn.tflite_network import load_network, photos
from cgphw.nn.tflite_reference import run_reference

litert = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.fixture(scope="module")
def shipped():
    net = load_network()
    split = photos()
    return net, split, split.images.pixels()


def _reference_interpreter(content: bytes):
    it = litert.Interpreter(model_content=content, experimental_preserve_all_tensors=True,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


@pytest.mark.slow
def test_every_tensor_equals_litert_reference_kernels_on_the_shipped_photos(shipped):
    net, split, pixels = shipped
    model = net.model
    ours = run_reference(model, pixels)
    it = _reference_interpreter(model.content)
    compared = 0
    for i, image in enumerate(pixels):
        it.set_tensor(model.inputs[0], image[None])
        it.invoke()
        for op in model.operators:
            index = op.outputs[0]
            theirs = it.get_tensor(index)
            mine = ours[index][i:i + 1].reshape(theirs.shape)
            assert mine.dtype == theirs.dtype, (op.index, op.kind)
            assert np.array_equal(mine, theirs), f"image {i}, operator {op.index} ({op.kind}): " \
                                                 f"{int((mine != theirs).sum())} of {mine.size} values differ"
            compared += mine.size
    assert len(model.operators) == 68 and compared == 7 * 7_050_308


def test_the_photos_top1_classes_are_those_listed(shipped):
    net, split, pixels = shipped
    logits = net.runner()(pixels)  # LiteRT's default path, as the listing was measured
    assert logits.shape == (7, 1001)
    assert (logits[:, 1:].argmax(axis=1) == split.labels).all()
    assert split.labels.tolist() == [285, 19, 319, 88, 934, 692, 667]  # the classes shared/mobilenetv2 lists


@pytest.mark.slow
def test_the_reference_gives_the_photos_classes_too(shipped):
    net, split, pixels = shipped
    ours = run_reference(net.model, pixels)
    logits = ours[net.model.logits].reshape(len(pixels), -1)
    assert (logits[:, 1:].argmax(axis=1) == split.labels).all()


def test_changed_weights_change_the_logits_and_cached_activations_give_the_same_result(shipped):
    net, split, pixels = shipped
    model = net.model
    first = pixels[:1]
    base = run_reference(model, first)
    layer = model.layers[-1]  # the classifier
    codes = net.codes(layer.name)
    codes[:10] = 0
    before = {t for op in model.operators[:layer.operator.index] for t in op.outputs}
    cached = run_reference(model, first, {layer.name: codes}, start={t: base[t] for t in before})
    full = run_reference(model, first, {layer.name: codes})
    assert np.array_equal(cached[model.logits], full[model.logits])
    assert not np.array_equal(full[model.logits], base[model.logits])
