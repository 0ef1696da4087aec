"""QuantLayer: one int8 conv2d or linear layer as plain values (shared by nn/, which reads it
from a torch model, and hw/, whose layer engine is built from it; no torch, no HDL here).

Arithmetic of the layer (what torch's quantized conv/linear compute, up to the rounding of
the requantisation, see ``cgphw.hw.accel.requant``)::

    acc[c, p]  = sum_k  weights[c, k] * (x[p, k] - input_zero_point)          (exact integer)
    real[c, p] = (acc * input_scale * weight_scales[c] + bias[c]) / output_scale
    y[c, p]    = clamp(round(real) + output_zero_point, lo, 255)   lo = output_zero_point
                                                                   with a fused ReLU, else 0

``x[p, :]`` is the receptive field of output position p (``windows``): for a conv the
C_in x kh x kw input codes under the kernel (padding reads the input zero point, i.e. a real
0), for a linear layer the whole input vector (one position). Weights are symmetric per
output channel (zero point 0); activations are quint8 codes 0..255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgphw.errors import UserError

KINDS = ("conv", "linear")


@dataclass(frozen=True, eq=False)
class QuantLayer:
    name: str
    kind: str  # "conv" or "linear"
    weights: np.ndarray  # int8 [C_out, C_in, kh, kw] (conv) or [out, in] (linear)
    weight_scales: np.ndarray  # float64 [C_out]
    bias: np.ndarray  # float64 [C_out] (the float32 values torch holds, exactly)
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    relu: bool  # ReLU fused into the layer (the output clamps at its zero point)
    input_shape: tuple[int, ...]  # (C_in, H, W) for a conv, (in,) for a linear layer
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"layer {self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        w = self.weights
        if not isinstance(w, np.ndarray) or w.dtype != np.int8 or w.ndim != (4 if self.kind == "conv" else 2):
            raise UserError(f"layer {self.name}: weights must be int8 [C_out, C_in, kh, kw] for a conv or "
                            f"[out, in] for a linear layer, got {getattr(w, 'dtype', '?')} {getattr(w, 'shape', '?')}")
        c_out = w.shape[0]
        for label, arr in (("weight_scales", self.weight_scales), ("bias", self.bias)):
            if np.shape(arr) != (c_out,) or not np.all(np.isfinite(arr)):
                raise UserError(f"layer {self.name}: {label} must hold {c_out} finite numbers")
        if np.any(np.asarray(self.weight_scales) <= 0) or self.input_scale <= 0 or self.output_scale <= 0:
            raise UserError(f"layer {self.name}: scales must be positive")
        for label, zp in (("input", self.input_zero_point), ("output", self.output_zero_point)):
            if not 0 <= int(zp) <= 255:
                raise UserError(f"layer {self.name}: the {label} zero point {zp} is not a quint8 code (0..255)")
        expected = 3 if self.kind == "conv" else 1
        if len(self.input_shape) != expected:
            raise UserError(f"layer {self.name}: input shape {self.input_shape} needs {expected} dimensions")
        if self.kind == "conv":
            if self.input_shape[0] != w.shape[1]:
                raise UserError(f"layer {self.name}: {self.input_shape[0]} input channels but weights for {w.shape[1]}")
            if min(self.stride) < 1 or min(self.padding) < 0 or min(self.output_hw) < 1:
                raise UserError(f"layer {self.name}: stride {self.stride} / padding {self.padding} leave no output")
        elif self.input_shape[0] != w.shape[1]:
            raise UserError(f"layer {self.name}: {self.input_shape[0]} inputs but weights for {w.shape[1]}")

    # --- shape ---------------------------------------------------------------------------
    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def fan_in(self) -> int:
        """K: weights per output channel (= activations per output position)."""
        return int(np.prod(self.weights.shape[1:]))

    @property
    def output_hw(self) -> tuple[int, int]:
        if self.kind == "linear":
            return (1, 1)
        (_, h, w), (kh, kw) = self.input_shape, self.weights.shape[2:]
        return ((h + 2 * self.padding[0] - kh) // self.stride[0] + 1,
                (w + 2 * self.padding[1] - kw) // self.stride[1] + 1)

    @property
    def positions(self) -> int:
        """Output positions per image (1 for a linear layer)."""
        h, w = self.output_hw
        return h * w

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.out_channels, *self.output_hw) if self.kind == "conv" else (self.out_channels,)

    @property
    def kernel_matrix(self) -> np.ndarray:
        """int8 [C_out, K]: each output channel's weights in window order."""
        return self.weights.reshape(self.out_channels, self.fan_in)

    @property
    def output_low(self) -> int:
        """The smallest output code: the zero point with a fused ReLU, else 0."""
        return int(self.output_zero_point) if self.relu else 0

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "weights_shape": list(self.weights.shape),
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "stride": list(self.stride), "padding": list(self.padding), "relu": self.relu,
                "input_scale": self.input_scale, "input_zero_point": int(self.input_zero_point),
                "output_scale": self.output_scale, "output_zero_point": int(self.output_zero_point),
                "weight_scales": [float(s) for s in self.weight_scales], "bias": [float(b) for b in self.bias]}

    # --- data ----------------------------------------------------------------------------
    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """x as uint8 [n, *input_shape]; UserError when it is not."""
        x = np.asarray(x)
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != tuple(self.input_shape):
            raise UserError(f"layer {self.name} takes inputs of shape [n, {', '.join(map(str, self.input_shape))}], "
                            f"got {list(x.shape)}")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer) or x.min(initial=0) < 0 or x.max(initial=0) > 255:
                raise UserError(f"layer {self.name}: inputs must be quint8 codes 0..255")
            x = x.astype(np.uint8)
        return x

    def windows(self, x: np.ndarray) -> np.ndarray:
        """uint8 [n, positions, K]: each output position's receptive field, in the weights'
        (C_in, kh, kw) order; positions row-major. Padding reads the input zero point."""
        x = self.check_inputs(x)
        if self.kind == "linear":
            return x[:, None, :]
        (ph, pw), (sh, sw) = self.padding, self.stride
        kh, kw = self.weights.shape[2:]
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=self.input_zero_point)
        oh, ow = self.output_hw
        view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # n, C, H', W', kh, kw
        view = view[:, :, : (oh - 1) * sh + 1: sh, : (ow - 1) * sw + 1: sw]
        return np.ascontiguousarray(view.transpose(0, 2, 3, 1, 4, 5)).reshape(x.shape[0], oh * ow, self.fan_in)

    def accumulators(self, x: np.ndarray) -> np.ndarray:
        """int64 [n, C_out, positions]: the exact integer sums before requantisation."""
        win = self.windows(x).astype(np.int64) - int(self.input_zero_point)
        return np.einsum("npk,ck->ncp", win, self.kernel_matrix.astype(np.int64))

    def with_weights(self, weights: np.ndarray) -> "QuantLayer":
        """The same layer with other int8 codes (same shape)."""
        from dataclasses import replace

        weights = np.asarray(weights)
        if weights.shape != self.weights.shape or weights.dtype != np.int8:
            raise UserError(f"layer {self.name} needs int8 weights of shape {list(self.weights.shape)}")
        return replace(self, weights=weights)
