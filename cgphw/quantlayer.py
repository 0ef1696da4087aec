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

A depthwise conv (``groups`` = C_in = C_out, weights [C, 1, kh, kw]) sums each output channel
over its own input channel only. Padding may differ before and after (``pad_end``: bottom and
right), as TensorFlow's SAME pads (stride 2 on an even size: nothing top/left, one bottom/right).

``quantisation="tflite"``: a layer of a TFLite int8 model. Its int8 activation codes are held
here as code + 128 (zero points too), the same real values on the same 0..255 wires; the bias
is TFLite's int32 (``int_bias``, in units of input_scale * weight_scale) and ``y`` is TFLite's
integer requantisation (``cgphw.tflite_requant``), clamped to ``clamp`` (the fused activation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgphw.errors import UserError

KINDS = ("conv", "linear")
QUANTISATIONS = ("torch", "tflite")


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
    padding: tuple[int, int] = (0, 0)  # top, left
    groups: int = 1  # 1, or C_in = C_out (depthwise)
    pad_end: tuple[int, int] | None = None  # bottom, right (None: as padding)
    quantisation: str = "torch"  # whose requantisation the layer's outputs follow
    int_bias: np.ndarray | None = None  # int64 [C_out]: TFLite's int32 bias
    clamp: tuple[int, int] | None = None  # output codes (None: output_low..255)

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
            groups = self.groups
            if not (isinstance(groups, int) and groups >= 1 and self.input_shape[0] % groups == 0
                    and c_out % groups == 0):
                raise UserError(f"layer {self.name}: {groups} groups do not divide its {self.input_shape[0]} input "
                                f"and {c_out} output channels")
            if self.input_shape[0] != w.shape[1] * groups:
                raise UserError(f"layer {self.name}: {self.input_shape[0]} input channels but weights for "
                                f"{w.shape[1]} x {groups} groups")
            if (min(self.stride) < 1 or min(self.padding) < 0 or min(self.padding_after) < 0
                    or min(self.output_hw) < 1):
                raise UserError(f"layer {self.name}: stride {self.stride} / padding {self.padding} leave no output")
        elif self.input_shape[0] != w.shape[1]:
            raise UserError(f"layer {self.name}: {self.input_shape[0]} inputs but weights for {w.shape[1]}")
        elif self.groups != 1:
            raise UserError(f"layer {self.name}: a linear layer has one group, not {self.groups}")
        self._check_quantisation()

    def _check_quantisation(self) -> None:
        if self.quantisation not in QUANTISATIONS:
            raise UserError(f"layer {self.name}: quantisation must be one of {', '.join(QUANTISATIONS)}, "
                            f"got {self.quantisation!r}")
        if self.quantisation == "tflite":
            b = self.int_bias
            if (not isinstance(b, np.ndarray) or b.shape != (self.out_channels,)
                    or not np.issubdtype(b.dtype, np.integer)
                    or b.min(initial=0) < -(1 << 31) or b.max(initial=0) >= 1 << 31):
                raise UserError(f"layer {self.name}: a TFLite layer needs its int32 bias, {self.out_channels} values")
        if self.clamp is not None and not 0 <= self.clamp[0] <= self.clamp[1] <= 255:
            raise UserError(f"layer {self.name}: the output clamp {self.clamp} is not a range of codes 0..255")

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
        (top, left), (bottom, right) = self.padding, self.padding_after
        return ((h + top + bottom - kh) // self.stride[0] + 1, (w + left + right - kw) // self.stride[1] + 1)

    @property
    def padding_after(self) -> tuple[int, int]:
        """Bottom and right padding."""
        return self.padding if self.pad_end is None else self.pad_end

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.input_shape[0] == self.out_channels

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
        """The smallest output code: the clamp's, else the zero point with a fused ReLU, else 0."""
        if self.clamp is not None:
            return int(self.clamp[0])
        return int(self.output_zero_point) if self.relu else 0

    @property
    def output_high(self) -> int:
        return 255 if self.clamp is None else int(self.clamp[1])

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "weights_shape": list(self.weights.shape),
                "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
                "stride": list(self.stride), "padding": list(self.padding), "relu": self.relu,
                "groups": self.groups, "padding_after": list(self.padding_after), "quantisation": self.quantisation,
                "output_range": [self.output_low, self.output_high],
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
        """uint8 [n, positions, C_in * kh * kw]: each output position's receptive field, in the
        weights' (C_in, kh, kw) order (group g's K values at g*K..); positions row-major. Padding
        reads the input zero point."""
        x = self.check_inputs(x)
        if self.kind == "linear":
            return x[:, None, :]
        (ph, pw), (eh, ew), (sh, sw) = self.padding, self.padding_after, self.stride
        kh, kw = self.weights.shape[2:]
        if ph or pw or eh or ew:
            x = np.pad(x, ((0, 0), (0, 0), (ph, eh), (pw, ew)), constant_values=self.input_zero_point)
        oh, ow = self.output_hw
        view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # n, C, H', W', kh, kw
        view = view[:, :, : (oh - 1) * sh + 1: sh, : (ow - 1) * sw + 1: sw]
        return np.ascontiguousarray(view.transpose(0, 2, 3, 1, 4, 5)).reshape(x.shape[0], oh * ow, -1)

    def accumulators(self, x: np.ndarray) -> np.ndarray:
        """int64 [n, C_out, positions]: the exact integer sums before requantisation."""
        win = self.windows(x).astype(np.int64) - int(self.input_zero_point)
        n, positions, _ = win.shape
        g = self.groups  # each group of output channels sees its own slice of the window
        win = win.reshape(n, positions, g, self.fan_in)
        kernel = self.kernel_matrix.astype(np.int64).reshape(g, self.out_channels // g, self.fan_in)
        return np.einsum("npgk,gck->ngcp", win, kernel).reshape(n, self.out_channels, positions)

    def tile(self, x: np.ndarray, rows: range, cols: range,
             channels: range | None = None) -> tuple["QuantLayer", np.ndarray]:
        """A layer whose outputs on the returned inputs are this layer's outputs on ``x`` at
        output rows ``rows``, columns ``cols`` and output channels ``channels`` (all by
        default): the inputs under those windows, the padding written out as zero-point codes."""
        from dataclasses import replace

        x = self.check_inputs(x)
        oh, ow = self.output_hw
        channels = range(self.out_channels) if channels is None else channels
        if self.kind != "conv" or not (0 <= rows.start < rows.stop <= oh and 0 <= cols.start < cols.stop <= ow
                                       and 0 <= channels.start < channels.stop <= self.out_channels
                                       and rows.step == cols.step == channels.step == 1):
            raise UserError(f"layer {self.name}: a tile needs contiguous rows, columns and channels of its "
                            f"{self.out_channels} x {oh} x {ow} outputs")
        (ph, pw), (eh, ew), (sh, sw) = self.padding, self.padding_after, self.stride
        kh, kw = self.weights.shape[2:]
        xp = np.pad(x, ((0, 0), (0, 0), (ph, eh), (pw, ew)), constant_values=self.input_zero_point)
        xp = xp[:, :, rows.start * sh: (rows.stop - 1) * sh + kh, cols.start * sw: (cols.stop - 1) * sw + kw]
        picked = np.arange(channels.start, channels.stop)
        bias = None if self.int_bias is None else self.int_bias[picked]
        if self.depthwise:
            xp = xp[:, picked]
        groups = len(picked) if self.depthwise else self.groups
        part = replace(self, weights=np.ascontiguousarray(self.weights[picked]),
                       weight_scales=self.weight_scales[picked],
                       bias=self.bias[picked], int_bias=bias, input_shape=tuple(int(d) for d in xp.shape[1:]),
                       padding=(0, 0), pad_end=None, groups=groups)
        return part, np.ascontiguousarray(xp)

    def with_weights(self, weights: np.ndarray) -> "QuantLayer":
        """The same layer with other int8 codes (same shape)."""
        from dataclasses import replace

        weights = np.asarray(weights)
        if weights.shape != self.weights.shape or weights.dtype != np.int8:
            raise UserError(f"layer {self.name} needs int8 weights of shape {list(self.weights.shape)}")
        return replace(self, weights=weights)
