"""LeNet-5 as in the original study, with the stubs and fuse groups its int8 form needs."""
from __future__ import annotations

import torch
from torch import nn

from cgphw.nn import quant

MEAN, STD = 0.5, 0.5  # inputs are normalised (x - 0.5) / 0.5
INPUT_SHAPE = (1, 28, 28)


class LeNet5(nn.Module):
    """conv 1->6 k5, ReLU, pool 2; conv 6->16 k5, ReLU, pool 2; FC 256->120->84->10."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = quant.QuantStub()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(256, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)
        self.dequant = quant.DeQuantStub()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.quant((images - MEAN) / STD)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.dequant(self.fc3(x))

    @staticmethod
    def fuse_groups() -> list[list[str]]:
        return [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"], ["fc2", "relu4"]]
