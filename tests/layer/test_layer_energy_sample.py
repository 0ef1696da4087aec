"""`layer-energy --channels K`: the engine measured on the layer's first K output channels.
The sample must be those channels of the same layer and engine (same lanes, taps, reuse and
input), so that per-weight and per-channel counts scale by channels / K exactly; K = all
channels is the whole layer itself; a K that is not whole lane groups is refused."""
from __future__ import annotations

import numpy as np
import pytest

from cgphw.hw.accel.datapath import cycles_per_image
from cgphw.hw.accel.plan import EngineConfig
from cgphw.hw.accel.source import source_latency
from cgphw.layer.energy import _bytes_read, _first_channels, _sample_size
from cgphw.nn.reference import torch_layer_output

LANES = 2  # LeNet-5 conv1: 6 output channels in 3 lane groups


@pytest.fixture(scope="module")
def conv1(example_run):
    from cgphw.layer.setup import layer_images, load_circuit, network_for, prepare

    net = network_for(load_circuit(example_run))
    _, images = layer_images(net, "mnist5k", "test", 3)
    return prepare(example_run, "conv1", images, net, EngineConfig(lanes=LANES, taps=5, reuse=48), "sram")


def test_all_channels_is_the_whole_layer(conv1):
    assert _sample_size(conv1, None) == 6 and _first_channels(conv1, 6) is conv1


def test_a_sample_is_the_first_channels_of_the_same_engine(conv1):
    part = _first_channels(conv1, 4)
    q, g = part.layer, part.geometry
    assert (g.channels, g.lanes, g.taps, g.reuse, g.positions) == (4, LANES, 5, 48, conv1.geometry.positions)
    np.testing.assert_array_equal(q.kernel_matrix, conv1.layer.kernel_matrix[:4])
    np.testing.assert_array_equal(part.outputs, conv1.outputs[:, :4])
    np.testing.assert_array_equal(torch_layer_output(q, part.inputs), conv1.outputs[:, :4])  # the same input
    words = part.plan.rom_words(q.kernel_matrix, g)  # the sampled plan fills the buffer with those weights
    np.testing.assert_array_equal(part.plan.assemble(words, g), q.kernel_matrix)
    assert part.plan.group_steps == conv1.plan.group_steps[:2] and part.plan.writes == conv1.plan.writes[:2]


def test_per_weight_and_per_channel_counts_scale_exactly(conv1):
    """MACs, loads, SRAM bytes and cycles of 2 lane groups are 2/3 of the layer's 3: what the
    --channels scaling rests on (the energies scale by the same ratio; their switching is data)."""
    part = _first_channels(conv1, 2)
    full, g = conv1.geometry, part.geometry
    assert g.macs_per_image * 3 == full.macs_per_image and g.loads_per_image * 3 == full.loads_per_image
    for kind in ("sram", "circuit-sram"):
        assert _bytes_read(part, kind) * 3 == _bytes_read(conv1, kind) > 0
    latency = source_latency(conv1.source)
    assert cycles_per_image(g, part.plan, latency) * 3 == cycles_per_image(full, conv1.plan, latency)


@pytest.mark.parametrize("k", ["0", "3", "8", "-2"])
def test_a_bad_sample_size_is_refused(cli, example_run, k):
    code, out, err = cli("layer-energy", example_run, "--layer", "conv1", "--images", "1", "--lanes", "2",
                         "--channels", k)
    assert code == 2 and out == "" and err.count("error:") == 1 and "Traceback" not in err, err
    assert "--channels must be a multiple of the engine's 2 lanes in 1..6" in err


def test_a_sampled_report_says_so_and_a_whole_one_is_unchanged():
    from cgphw.layer.energy import EnergyRow, LayerEnergy

    row = EnergyRow("sram", 48, 36, 900, 1000.0, 0.0, 90.0, 72, 0, 0.0)
    whole = LayerEnergy("c", "conv1", 3, 86400, 150, 150, 1.25, (row,), checked_activations=8)
    part = LayerEnergy("c", "conv1", 3, 86400, 150, 150, 1.25, (row,), checked_activations=8, sample=(2, 6))
    assert whole.to_json()["sample"] is None and not any("measured on" in line for line in whole.lines())
    assert part.to_json()["sample"] == {"channels": 2, "of": 6, "scale": 3.0}
    assert "measured on output channels 0..1 of 6: energies and cycles per image scaled by 6/2 = 3" in part.lines()[1]
