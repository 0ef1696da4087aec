"""MobileNetV2 (inverted residuals, width multiplier) in a form that quantizes to int8.

Module names follow torchvision's float model (``features.0.0``, ``features.1.conv.0.0``,
..., ``classifier.1``) so that a torchvision state dict loads as is. As in torchvision's
quantizable variant, ReLU6 becomes ReLU (eager mode fuses conv+bn+ReLU, not ReLU6) and the
residual add goes through an int8-capable FloatFunctional.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cgphw.errors import UserError
from cgphw.nn import quant

# (expansion t, channels c, repeats n, first stride s) of the standard network.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8, never dropping more than 10 % (as the reference does)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = int(round(cin * expansion))
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expansion == 1 else [conv_bn_relu(cin, hidden, kernel=1)]
        layers += [conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        if self.use_residual:  # an unused add would leave an observer that never sees data
            self.skip_add = quant.FloatFunctional()

    def forward(self, x):
        return self.skip_add.add(x, self.conv(x)) if self.use_residual else self.conv(x)

    def fuse_groups(self, prefix: str) -> list[list[str]]:
        n = len(self.conv)
        groups = [[f"{prefix}.conv.{i}.0", f"{prefix}.conv.{i}.1", f"{prefix}.conv.{i}.2"] for i in range(n - 2)]
        return groups + [[f"{prefix}.conv.{n - 2}", f"{prefix}.conv.{n - 1}"]]


class MobileNetV2(nn.Module):
    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 input_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        if not 0 < width <= 4:  # NaN fails too; wider nets do not fit in memory
            raise UserError(f"MobileNetV2 width multiplier must be positive and at most 4, got {width}")
        self.in_channels, self.input_size = in_channels, input_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        channels = divisible(32 * width)
        self.last_channel = divisible(1280 * max(1.0, width))
        features: list[nn.Module] = [conv_bn_relu(in_channels, channels, stride=2)]
        for t, c, n, s in BLOCKS:
            out = divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        features.append(conv_bn_relu(channels, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        self.quant = quant.QuantStub()
        self.dequant = quant.DeQuantStub()
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Fit the input (e.g. 1x28x28 MNIST) to the network: replicate channels, zero-pad borders.
        if images.shape[1] == 1 and self.in_channels > 1:
            images = images.expand(-1, self.in_channels, -1, -1)
        pad = self.input_size - images.shape[-1]
        if pad > 0:
            images = F.pad(images, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        x = self.quant((images - self.mean) / self.std)
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.dequant(self.classifier(x))

    def fuse_groups(self) -> list[list[str]]:
        last = len(self.features) - 1
        groups = [[f"features.{i}.0", f"features.{i}.1", f"features.{i}.2"] for i in (0, last)]
        for i in range(1, last):
            groups += self.features[i].fuse_groups(f"features.{i}")  # type: ignore[operator]  # InvertedResidual
        return groups


def load_float_state(model: MobileNetV2, state: dict) -> None:
    """Load a torchvision-format float state dict, refusing missing/unknown keys or wrong shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unknown = sorted(set(state) - set(own))
    if missing or unknown:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unknown[:3]}"
        raise UserError(f"the float state dict does not fit MobileNetV2 (width/classes?): {detail}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[key].shape):
            raise UserError(f"the float state dict entry {key} has shape "
                            f"{tuple(getattr(value, 'shape', ()))}, the model expects {tuple(own[key].shape)}")
    model.load_state_dict(state)
