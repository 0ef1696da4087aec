"""ImageNet MobileNetV2 as users have it: image folders read with Pillow at 224 px, and
torchvision state dicts (float, quantised here per tensor on QNNPACK; or int8 as they are)."""
import numpy as np
import pytest
import torch
from PIL import Image

from cgphw.cli import main
from cgphw.errors import UserError
from cgphw.nn.data import load_split
from cgphw.nn.import_mobilenet import import_mobilenet_v2
from cgphw.nn.layers import list_layers
from cgphw.nn.model import load_model, per_tensor_skeleton

from imagenet_fixtures import float_state, make_folder


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """A tiny ImageNet-style folder and random torchvision-format weights, float and int8."""
    root = tmp_path_factory.mktemp("imagenet")
    folder = make_folder(root / "val")
    state = float_state()
    torch.save(state, root / "mobilenet_v2_float.pth")
    model = import_mobilenet_v2(root / "mobilenet_v2_float.pth", root / "imported.pt", str(folder), images=4)
    int8 = model.module.state_dict()
    int8["features.2.skip_add.scale"] = torch.tensor(1.0)  # torchvision's non-residual blocks carry these
    int8["features.2.skip_add.zero_point"] = torch.tensor(0)
    torch.save(int8, root / "mobilenet_v2_qnnpack.pth")
    return root, folder, model


def test_an_image_folder_is_read_at_224_with_classes_in_sorted_order(tmp_path):
    (tmp_path / "b_class").mkdir()
    (tmp_path / "a_class").mkdir()
    Image.new("RGB", (300, 260), (255, 0, 51)).save(tmp_path / "b_class" / "x.png")
    Image.new("L", (260, 520), 102).save(tmp_path / "a_class" / "y.bmp")
    split = load_split(tmp_path, "test")
    images = np.asarray(split.images)
    assert images.shape == (2, 3, 224, 224) and images.dtype == np.float32
    by_label = {int(label): images[i] for i, label in enumerate(split.labels)}
    assert np.allclose(by_label[1][:, 100, 100], [1.0, 0.0, 0.2])  # b_class is class 1
    assert np.allclose(by_label[0], 0.4)  # grey becomes three equal channels
    assert len(split.head(1)) == 1 and isinstance(split.head(1).images, type(split.images))
    with pytest.raises(UserError, match="not training"):
        load_split(tmp_path, "train")
    (tmp_path / "a_class" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read the image"):
        np.asarray(load_split(tmp_path, "test").images)


def test_float_weights_are_quantised_per_tensor_on_qnnpack(imagenet):
    root, folder, model = imagenet
    loaded = load_model(root / "imported.pt")
    assert loaded.engine == "qnnpack" and loaded.args["width"] == 0.35 and loaded.args["input_size"] == 224
    layers = list_layers(loaded)
    convs = [layer for layer in layers if layer.kind != "linear"]
    assert len(convs) == 52 and convs[0].name == "features.0.0" and convs[-1].name == "features.18.0"
    assert all(layer.scale_min == layer.scale_max for layer in layers)  # one scale per tensor
    images = torch.from_numpy(np.asarray(load_split(folder, "test").images))
    assert torch.equal(loaded(images), model(images))  # the file holds exactly the network made
    again = import_mobilenet_v2(root / "mobilenet_v2_float.pth", root / "again.pt", str(folder), images=4)
    assert torch.equal(again(images), model(images))  # calibration is deterministic


def test_torchvision_int8_weights_load_code_for_code(imagenet, capsys):
    root, folder, model = imagenet
    main(["model", "import", str(root / "mobilenet_v2_qnnpack.pth"), "--out", str(root / "int8.pt")])
    assert "loaded as is" in capsys.readouterr().out
    loaded = load_model(root / "int8.pt")
    images = torch.from_numpy(np.asarray(load_split(folder, "test").images))
    assert torch.equal(loaded(images), model(images))
    main(["model", "eval", "--model", str(root / "int8.pt"), "--data", str(folder), "--json"])
    assert '"images": 6' in capsys.readouterr().out


def test_bad_state_dicts_are_refused(imagenet, tmp_path):
    root, folder, _ = imagenet
    with pytest.raises(UserError, match="needs calibration images|which need calibration images"):
        import_mobilenet_v2(root / "mobilenet_v2_float.pth", tmp_path / "m.pt", None)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not a torchvision MobileNetV2 state dict"):
        import_mobilenet_v2(tmp_path / "other.pth", tmp_path / "m.pt", str(folder))
    broken = dict(torch.load(root / "mobilenet_v2_qnnpack.pth", weights_only=True))
    broken.pop("features.3.conv.0.0.weight")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="missing"):
        import_mobilenet_v2(tmp_path / "broken.pth", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    skeleton = per_tensor_skeleton("mobilenetv2", {"width": 0.35})
    convs = [m for m in skeleton.modules() if isinstance(m, torch.ao.nn.quantized.Conv2d)]
    assert len(convs) == 52 and all(c.weight().dtype == torch.qint8 for c in convs)
    assert (convs[0].out_channels, convs[-1].out_channels) == (16, 1280)  # 32 x 0.35 rounds up to 16; 1280 kept
