"""A tiny int8 TFLite CNN written with cgphw's flatbuffer writer: CONV_2D -> AVERAGE_POOL_2D
-> RESHAPE -> FULLY_CONNECTED -> SOFTMAX, per-channel int8 weights, int32 biases (the
operators the shipped MobileNetV2 lacks)."""
import numpy as np

from cgphw.nn.tflite_model import Operator
from cgphw.nn.tflite_writer import TensorDef, write_tflite


def tiny_network(pool_padding="SAME", pool_kind="AVERAGE_POOL_2D", pool_out_scale=0.04, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    in_scale, conv_scale = 0.05, 0.04
    conv_w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    conv_ws = rng.uniform(0.002, 0.01, 4)
    pooled = 5 if pool_padding == "SAME" else 4  # 9x9, 3x3 window, stride 2
    fc_in = pooled * pooled * 4
    fc_w = rng.integers(-127, 128, (10, fc_in)).astype(np.int8)
    fc_ws = rng.uniform(0.001, 0.005, 10)
    tensors = [
        TensorDef("input", (1, 9, 9, 3), "int8", (in_scale,), (-3,)),
        TensorDef("conv/weights", conv_w.shape, "int8", tuple(conv_ws), (0,) * 4, 0, conv_w),
        TensorDef("conv/bias", (4,), "int32", tuple(in_scale * conv_ws), (0,) * 4, 0,
                  rng.integers(-2000, 2000, 4).astype(np.int32)),
        TensorDef("conv", (1, 9, 9, 4), "int8", (conv_scale,), (-128,)),
        TensorDef("pool", (1, pooled, pooled, 4), "int8", (pool_out_scale,), (-128,)),
        TensorDef("reshape/shape", (2,), "int32", data=np.array([1, fc_in], np.int32)),
        TensorDef("flat", (1, fc_in), "int8", (pool_out_scale,), (-128,)),
        TensorDef("fc/weights", fc_w.shape, "int8", tuple(fc_ws), (0,) * 10, 0, fc_w),
        TensorDef("fc/bias", (10,), "int32", tuple(pool_out_scale * fc_ws), (0,) * 10, 0,
                  rng.integers(-3000, 3000, 10).astype(np.int32)),
        TensorDef("logits", (1, 10), "int8", (0.1,), (5,)),
        TensorDef("probabilities", (1, 10), "int8", (1 / 256,), (-128,)),
    ]
    pool_options = {"padding": pool_padding, "stride": (2, 2), "filter": (3, 3), "activation": 0}
    operators = [
        Operator(0, "CONV_2D", (0, 1, 2), (3,), {"padding": "SAME", "stride": (1, 1), "dilation": (1, 1),
                                                 "activation": 1}),
        Operator(1, pool_kind, (3,), (4,), pool_options),
        Operator(2, "RESHAPE", (4, 5), (6,), {"new_shape": (1, fc_in)}),
        Operator(3, "FULLY_CONNECTED", (6, 7, 8), (9,), {"activation": 0}),
        Operator(4, "SOFTMAX", (9,), (10,), {"beta": 1.0}),
    ]
    return write_tflite(tensors, operators, [0], [10])
