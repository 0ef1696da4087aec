"""A tiny ImageNet-style image folder and random torchvision-format MobileNetV2 weights
(real ImageNet files are the user's to supply)."""
import numpy as np
import torch
from PIL import Image

from cgphw.nn.mobilenet import MobileNetV2


def make_folder(root, classes=("n01", "n02", "n03"), per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(230, 400)), int(rng.integers(230, 400))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root


def float_state(width=0.35, seed=0):
    torch.manual_seed(seed)
    net = MobileNetV2(width=width)
    with torch.no_grad():  # batch-norm statistics that are not the identity, as a trained net has
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()
