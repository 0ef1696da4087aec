"""Random int8 layers (plain values) for checking the engine against torch, and where the
committed conv1 example lies (a module of its own: two conftest.py cannot both be imported)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cgphw.quantlayer import QuantLayer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "rtl_out" / "lenet5_conv1_core_ring"


def random_layer(seed: int, kind: str = "conv", c_in: int = 2, c_out: int = 4, size: int = 8, kernel: int = 3,
                 stride: int = 1, padding: int = 0, relu: bool = True, out_zp: int = 0,
                 images: int | None = None) -> tuple[QuantLayer, np.ndarray]:
    """A layer with random weights, scales, bias and input zero point, an output scale that
    spreads its results over the codes, and random input codes (3 images for a conv, 24 for a linear layer)."""
    rng = np.random.default_rng(seed)
    shape = (c_out, c_in, kernel, kernel) if kind == "conv" else (c_out, c_in)
    weights = rng.integers(-128, 128, shape).astype(np.int8)
    scales = rng.uniform(0.002, 0.01, c_out)
    bias = rng.normal(0.0, 0.3, c_out).astype(np.float32).astype(np.float64)
    in_scale, in_zp = float(rng.uniform(0.01, 0.03)), int(rng.integers(0, 200))
    in_shape = (c_in, size, size) if kind == "conv" else (c_in,)
    n = images or (3 if kind == "conv" else 24)
    x = rng.integers(0, 256, (n, *in_shape)).astype(np.uint8)
    probe = QuantLayer("probe", kind, weights, scales, bias, in_scale, in_zp, 1.0, 0, relu, in_shape,
                       (stride, stride), (padding, padding))
    real = probe.accumulators(x) * in_scale * scales[None, :, None] + bias[None, :, None]
    out_scale = float(np.ptp(real) / 180)  # results spread over ~180 codes: rounding matters everywhere
    layer = QuantLayer("random", kind, weights, scales, bias, in_scale, in_zp, out_scale, out_zp, relu, in_shape,
                       (stride, stride), (padding, padding))
    return layer, x
