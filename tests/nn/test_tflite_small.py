"""AVERAGE_POOL_2D and FULLY_CONNECTED (absent from the shipped network) against LiteRT's
reference kernels, on a tiny int8 network written with cgphw's flatbuffer writer; its
import, and an unsupported operator refused in one line."""
import json

import numpy as np
import pytest

from cgphw.nn.tflite_model import read_tflite
from cgphw.nn.tflite_reference import run_reference

from tiny_tflite import tiny_network

litert = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_every_tensor_equals_litert_reference_kernels(padding):
    content = tiny_network(padding)
    model = read_tflite(content)
    assert [op.kind for op in model.operators] == ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                                                   "SOFTMAX"]
    assert model.layers[1].weights.scales.size == 10  # per-channel FC weights
    images = np.random.default_rng(1).integers(-128, 128, (6, 9, 9, 3)).astype(np.int8)
    ours = run_reference(model, images)
    it = litert.Interpreter(model_content=content, experimental_preserve_all_tensors=True,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for i, image in enumerate(images):
        it.set_tensor(model.inputs[0], image[None])
        it.invoke()
        for op in model.operators:
            theirs = it.get_tensor(op.outputs[0])
            mine = ours[op.outputs[0]][i:i + 1].reshape(theirs.shape)
            assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), (i, op.kind)
    assert len(np.unique(ours[model.logits])) > 10  # the outputs vary: a wrong kernel would show


def test_import_of_a_written_network_and_an_unsupported_operator(cli, tmp_path):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tiny_network())
    code, out, err = cli("model", "import", path, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["operators"] == {"CONV_2D": 1, "AVERAGE_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert (doc["layers"], doc["weights"], doc["biases"]) == (2, 4 * 27 + 10 * 100, 14)
    assert (doc["input_shape"], doc["classes"]) == ([1, 9, 9, 3], 10)
    bad = tmp_path / "maxpool.tflite"
    bad.write_bytes(tiny_network(pool_kind="MAX_POOL_2D"))
    code, out, err = cli("model", "import", bad)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and "operator 1 is MAX_POOL_2D, which cgphw does not support" in err
