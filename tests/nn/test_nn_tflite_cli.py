"""The TFLite network from the command line: import, layers, eval, and every kind of bad
input (a damaged or unsupported model, a bad image folder) as one error line, exit 2."""
import json
import shutil

import numpy as np
import pytest

from cgphw.nn.shipped import shipped_file
from cgphw.nn.tflite_network import SHIPPED_FILE

pytest.importorskip("ai_edge_litert.interpreter")
SHIPPED = shipped_file(SHIPPED_FILE)
PHOTO = shipped_file("mobilenetv2/images/hot_dog.jpg")


def run(cli, *argv):
    code, out, err = cli(*argv)
    assert code == 0, err
    return out


def fails(cli, *argv) -> str:
    code, _, text = cli(*argv)
    err = [line for line in text.strip().splitlines() if not line.startswith("INFO:")]  # LiteRT's own start-up note
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_import_describes_the_shipped_network(cli):
    doc = json.loads(run(cli, "model", "import", SHIPPED, "--json"))
    assert doc["operators"] == {"CONV_2D": 36, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "QUANTIZE": 2, "MEAN": 1,
                                "RESHAPE": 1, "SOFTMAX": 1}
    assert (doc["layers"], doc["weights"], doc["biases"], doc["classes"]) == (53, 3_471_040, 18_057, 1001)
    assert doc["sha256"] == "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c"


def test_layers_lists_53_weight_layers(cli):
    rows = json.loads(run(cli, "model", "layers", "--model", "mobilenetv2", "--json"))
    assert len(rows) == 53 and rows[0]["name"] == "conv0" and rows[1]["kind"] == "depthwise-conv"
    assert rows[-1]["name"] == "conv52" and rows[-1]["shape"] == [1001, 1, 1, 1280]
    assert max(r["weights"] for r in rows[:-1]) == 409_600


def test_eval_on_the_photos_and_on_a_folder_named_by_class(cli, tmp_path):
    doc = json.loads(run(cli, "model", "eval", "--model", "mobilenetv2", "--json"))
    assert doc["images"] == 7 and doc["top1"] == 1.0 and doc["model"].endswith(SHIPPED_FILE)
    for name, photo in (("hotdog", "hot_dog.jpg"), ("Egyptian cat", "cat.bmp")):
        (tmp_path / name).mkdir()
        shutil.copy(shipped_file(f"mobilenetv2/images/{photo}"), tmp_path / name / photo)
    doc = json.loads(run(cli, "model", "eval", "--model", "mobilenetv2", "--data", tmp_path, "--json"))
    assert doc["images"] == 2 and doc["top1"] == 1.0


def _field(table, slot: int) -> int:
    """The byte position of a scalar field of a flatbuffer table (slot: its index in the schema)."""
    offset = table._tab.Offset(4 + 2 * slot)
    assert offset, "the field is not stored"
    return table._tab.Pos + offset


def _model(content):
    import tflite

    return tflite.Model.GetRootAsModel(content, 0)


def _patched(tmp_path, edit) -> str:
    content = bytearray(SHIPPED.read_bytes())
    edit(content, _model(bytes(content)))
    path = tmp_path / "bad.tflite"
    path.write_bytes(bytes(content))
    return str(path)


def _float_activation(content, root):
    tensor = root.Subgraphs(0).Tensors(110)
    content[_field(tensor, 1)] = 0  # TensorType FLOAT32


def _uint8_weights(content, root):
    content[_field(root.Subgraphs(0).Tensors(3), 1)] = 3  # the first conv's weights as UINT8


def _asymmetric_weights(content, root):
    q = root.Subgraphs(0).Tensors(3).Quantization()
    at = q._tab.Vector(q._tab.Offset(10))  # zero_point: int64 per channel
    content[at:at + 8] = np.int64(5).tobytes()


def _unsupported_operator(content, root):
    code = root.OperatorCodes(1)  # CONV_2D
    content[_field(code, 0)] = 17  # MAX_POOL_2D (deprecated_builtin_code, int8)
    content[_field(code, 3):_field(code, 3) + 4] = np.int32(17).tobytes()  # builtin_code


def _index_out_of_range(content, root):
    op = root.Subgraphs(0).Operators(1)
    at = op._tab.Vector(op._tab.Offset(6))  # inputs
    content[at:at + 4] = np.int32(9999).tobytes()


@pytest.mark.parametrize("edit, message", [
    (_float_activation, r"is not an int8 network: operator 1 \(CONV_2D\) reads or writes a float model"),
    (_uint8_weights, r"operator 1 \(CONV_2D\) has uint8 weights"),
    (_asymmetric_weights, r"are asymmetric \(a zero point other than 0\)"),
    (_unsupported_operator, r"operator 1 is MAX_POOL_2D, which cgphw does not support"),
    (_index_out_of_range, r"operator 1 \(CONV_2D\) names tensor 9999, out of range 0..176"),
])
def test_a_bad_model_is_one_error_line(cli, tmp_path, edit, message):
    import re

    path = _patched(tmp_path, edit)
    for argv in (("model", "import", path), ("model", "eval", "--model", path)):
        assert re.search(message, fails(cli, *argv)), message


def test_truncated_or_hostile_flatbuffers_are_refused(cli, tmp_path):
    content = SHIPPED.read_bytes()
    cases = {"truncated": content[:len(content) // 2], "header only": content[:64],
             "random": b"\x10\0\0\0TFL3" + np.random.default_rng(0).bytes(4000),
             "huge offsets": b"\xf0\xff\xff\x7fTFL3" + b"\xff" * 200, "empty": b"", "text": b"not a model at all"}
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.tflite"
        path.write_bytes(data)
        err = fails(cli, "model", "import", path)
        assert "damaged" in err or "not a TFLite flatbuffer" in err or "out of range" in err, (name, err)
    assert "does not exist" in fails(cli, "model", "import", tmp_path / "missing.tflite")


def test_bad_image_folders_are_one_error_line(cli, tmp_path):
    unknown = tmp_path / "unknown"
    (unknown / "not a class").mkdir(parents=True)
    shutil.copy(PHOTO, unknown / "not a class" / "x.jpg")
    assert "neither WordNet ids nor ImageNet class names: 'not a class'" in \
        fails(cli, "model", "eval", "--model", "mobilenetv2", "--data", unknown)
    empty = tmp_path / "empty"
    (empty / "hotdog").mkdir(parents=True)
    assert "holds no images" in fails(cli, "model", "eval", "--model", "mobilenetv2", "--data", empty)
    corrupt = tmp_path / "corrupt"
    (corrupt / "hotdog").mkdir(parents=True)
    (corrupt / "hotdog" / "broken.jpg").write_bytes(PHOTO.read_bytes()[:3000])
    assert "cannot read the image" in fails(cli, "model", "eval", "--model", "mobilenetv2", "--data", corrupt)
    wnids = tmp_path / "wnids"
    (wnids / "n01440764").mkdir(parents=True)
    shutil.copy(PHOTO, wnids / "n01440764" / "x.jpg")
    assert "only with all 1000" in fails(cli, "model", "eval", "--model", "mobilenetv2", "--data", wnids)


def test_speed_times_the_parts_side_by_side(cli):
    doc = json.loads(run(cli, "model", "speed", "--repeat", "2", "--json"))
    assert doc["images"] == 14 and doc["repeat"] == 2
    for key in ("end_to_end_per_cpu_s", "decode_per_cpu_s", "litert_invoke_per_cpu_s", "end_to_end_per_wall_s"):
        assert doc[key] > 0
    # end to end does both parts' work: it cannot be faster than either alone (10 % timing noise allowed)
    assert doc["end_to_end_per_cpu_s"] < 1.1 * min(doc["decode_per_cpu_s"], doc["litert_invoke_per_cpu_s"])
    assert doc["insert_layer"] == "conv51" and doc["insert_identical"] is True
    assert doc["insert_whole_per_cpu_s"] > 0 and doc["insert_cut_per_cpu_s"] > 0
    assert "no int8 layer named 'conv99'" in fails(cli, "model", "speed", "--layer", "conv99")
    assert fails(cli, "model", "speed", "--model", "missing.pt") == "error: model file missing.pt does not exist"
    from cgphw.nn.model import DEFAULT_MODEL

    assert "times TFLite networks" in fails(cli, "model", "speed", "--model", DEFAULT_MODEL)


@pytest.mark.slow
def test_damaged_structure_is_refused_or_read_whole():
    """Bytes changed anywhere outside the weights: the reader refuses with a UserError or reads
    a model whose every operator the reference can compute (never another exception)."""
    from cgphw.errors import UserError
    from cgphw.nn.tflite_model import read_tflite

    content = SHIPPED.read_bytes()
    model = read_tflite(content)
    data = sorted((t.data_offset, t.data_offset + t.data_size) for t in model.tensors if t.data_offset is not None)
    structure = np.ones(len(content), bool)
    for start, end in data:
        structure[start:end] = False
    places = np.flatnonzero(structure)
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(100):
        damaged = bytearray(content)
        for at in rng.choice(places, 3):
            damaged[at] = rng.integers(256)
        try:
            read_tflite(bytes(damaged))
        except UserError:
            refused += 1
    assert 0 < refused < 100
