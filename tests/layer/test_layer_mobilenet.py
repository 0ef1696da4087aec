"""`cgphw verify-layer` / `layer-energy` on a MobileNetV2 layer (TFLite) fed by an evolved
circuit: the layer read from the flatbuffer with the circuit's weights inserted, its input and
expected output from the int8 reference on the shipped photos (LiteRT's reference kernels on
the patched network give the same tensors), 0 mismatches, a fault caught, bad input refused.

The layer is dw43, the cheapest 7 x 7 layer to simulate (423,360 MACs per image; a 7 x 7 1 x 1
layer such as conv41 has 4.5 million and takes ~50 s in Amaranth's simulator).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from layer_fixtures import EXAMPLE
from litert_fixtures import missing_model

from cgphw.hw.accel.plan import EngineConfig

LAYER, LANES = "dw43", "96"  # 960 channels in 10 groups of 96 lanes, 9 taps each
ARGS = ("--layer", LAYER, "--images", "1", "--sim", "amaranth", "--lanes", LANES)


def test_verify_layer_on_mobilenet_equals_the_int8_network(cli, mobilenet_run):
    code, out, err = cli("verify-layer", mobilenet_run, *ARGS, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"], (doc, err)
    assert doc["network"] == "TFLite" and doc["torch_backend"] == "TFLite reference kernels"
    assert doc["activations"] == 960 * 7 * 7 and doc["mismatches"] == 0 and doc["reference_mismatches"] == 0
    assert doc["torch_rounding"] == 0  # TFLite's requantisation is integer: the engine's reference is it
    assert doc["predictions_equal"] == 1 and doc["engine"]["lanes"] == 96 and doc["engine"]["depthwise"]


def test_verify_layer_on_mobilenet_with_a_fault_fails(cli, mobilenet_run):
    """weight-bit: one bit of the value the buffer's first slot takes; here a circuit output (the
    stored weights, which the fault once hit, reach no slot of this layer)."""
    code, out, _ = cli("verify-layer", mobilenet_run, *ARGS, "--inject-fault", "weight-bit")
    assert code == 1 and out.startswith("FAIL") and "first mismatch: image 0, channel" in out


@pytest.mark.skipif(missing_model() is not None, reason=str(missing_model()))
def test_expected_outputs_are_litert_s_on_the_patched_network(mobilenet_run):
    """The layer's input and output the engine is held to: LiteRT's reference kernels on the
    flatbuffer with the circuit's weights written in compute the same tensors."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from cgphw.layer.setup import prepare
    from cgphw.nn.tflite_layer import codes_of
    from cgphw.nn.tflite_network import load_network, photos

    pixels = photos().images[:1].pixels()
    setup = prepare(mobilenet_run, LAYER, pixels, "mobilenetv2", EngineConfig(lanes=96))
    assert (setup.model.codes(LAYER) != load_network().codes(LAYER)).sum() > 1000  # the circuit's weights
    it = Interpreter(model_content=setup.model.content(logits=False), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], pixels)
    it.invoke()
    op = setup.model.model.layer(LAYER).operator
    np.testing.assert_array_equal(codes_of(it.get_tensor(op.inputs[0])), setup.inputs)
    np.testing.assert_array_equal(codes_of(it.get_tensor(op.outputs[0])), setup.outputs)
    assert len(np.unique(setup.outputs)) > 100


@pytest.mark.parametrize("command, args, message", [
    ("verify-layer", ["--layer", "op10"], "operator 10 (ADD, output"),
    ("layer-energy", ["--layer", "op63"], "operator 63 (MEAN, output"),
    ("verify-layer", ["--layer", "op66"], "operator 66 (SOFTMAX, output"),
    ("verify-layer", ["--layer", "dw46"], "computes no weight of layer dw46"),
    ("verify-layer", ["--layer", LAYER, "--lanes", "7"], "--lanes must divide the layer's 960 output channels"),
    ("layer-energy", ["--layer", LAYER, "--taps", "4"], "--taps must divide the layer's 9 weights per channel"),
    ("layer-energy", ["--layer", LAYER, "--lanes", LANES, "--channels", "100"],
     "--channels must be a multiple of the engine's 96 lanes in 1..960"),
])
def test_bad_input_on_mobilenet(cli, mobilenet_run, command, args, message):
    code, out, err = cli(command, mobilenet_run, "--images", "1", *args)
    assert code == 2 and message in err, err
    assert err.count("error:") == 1 and "Traceback" not in err and out == ""


def test_a_lenet_circuit_is_refused_for_mobilenet(cli):
    code, _, err = cli("verify-layer", EXAMPLE, "--model", "mobilenetv2", "--layer", "conv41", "--images", "1")
    assert code == 2 and "made from" in err and "lenet5" in err and "give that one with --model" in err


def test_every_weight_source_loads_the_inserted_layer(mobilenet_run):
    """What layer-energy compares: each source fills the buffer with the layer's weights in the
    engine's order (prepare refuses a load plan that would not), the circuit's stored weights in
    the external memory for circuit-sram, the whole layer for sram."""
    from cgphw.layer.setup import external_memory, layer_images, load_circuit, network_for, prepare

    net = network_for(load_circuit(mobilenet_run))
    _, pixels = layer_images(net, None, "test", 1)
    for source, kind, memory in (("circuit-sram", "circuit", (960, 3)), ("sram", "port", (960, 12))):
        setup = prepare(mobilenet_run, LAYER, pixels, net, EngineConfig(lanes=96), source)
        assert setup.source.kind == kind and external_memory(setup).shape == memory
        assert setup.layer.depthwise and setup.layer.kernel_matrix.shape == (960, 9)
