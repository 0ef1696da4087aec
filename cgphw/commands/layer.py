"""`cgphw verify-layer`: real images through the layer engine fed by an evolved circuit,
compared with the int8 network; `cgphw layer-energy`: the engine's energy per image with
each weight source."""
from __future__ import annotations

import json
import sys

import click

from cgphw.progress import echo_steps
from cgphw.verification.backends import SIMULATORS

FAULTS = ("requant-shift", "weight-bit", "acc-reset")
SOURCES = ("circuit", "circuit-sram", "rom", "sram")


def engine_options(f):
    """--lanes / --taps / --reuse / --mult-bits: the engine's parameters."""
    f = click.option("--mult-bits", type=click.IntRange(8, 48), default=None,
                     help="Width of the requantisation multiplier [default: 32].")(f)
    f = click.option("--reuse", type=click.IntRange(min=1), default=None,
                     help="Output positions per weight load [default: all positions of an image].")(f)
    f = click.option("--taps", type=click.IntRange(min=1), default=None,
                     help="MACs per lane per cycle; divides the weights per channel [default: all of them].")(f)
    f = click.option("--lanes", type=click.IntRange(min=1), default=None,
                     help="Output channels computed in parallel; divides the channel count [default: all].")(f)
    return f


def engine_config(lanes, taps, reuse, mult_bits):
    """The engine's parameters; None when none was given (an export's own then apply)."""
    from cgphw.hw.accel.plan import EngineConfig

    if lanes is None and taps is None and reuse is None and mult_bits is None:
        return None
    return EngineConfig(lanes, taps, reuse, 32 if mult_bits is None else mult_bits)


def data_options(f):
    f = click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test",
                     show_default=True, help="Which images.")(f)
    f = click.option("--data", default=None,
                     help="Images: mnist5k (built in) or a directory with the MNIST IDX files for LeNet-5; an "
                          "image folder (DIR/<class>/<image>) for MobileNetV2 [default: mnist5k, or the shipped "
                          "photos].")(f)
    f = click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                     help="The int8 network: a .pt model, mobilenetv2 or a .tflite file [default: the shipped "
                          "MobileNetV2 for a circuit made from it, else the shipped LeNet-5].")(f)
    return f


@click.command("verify-layer")
@click.argument("path", metavar="RUNDIR|RTLDIR", type=click.Path(exists=True))
@click.option("--layer", default="conv1", show_default=True,
              help="The network layer the engine computes (as `cgphw model layers` names them).")
@click.option("--images", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Real images run through the engine (the first N of the split).")
@click.option("--sim", type=click.Choice(SIMULATORS), default=None,
              help="Simulator [default: icarus when installed, else amaranth].")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="Weight source: the circuit (stored weights in a ROM or an external memory), or every "
                   "weight in a ROM or an external memory [default: circuit, or an RTL directory's export].")
@engine_options
@data_options
@click.option("--inject-fault", "fault", type=click.Choice(FAULTS), default=None,
              help="Self-test of the checker: build the engine with this fault; the command must then fail.")
@click.option("--all-accumulators", is_flag=True,
              help="Also compare the requantisation with torch's on every accumulator value the layer can "
                   "produce (a measurement of float32 rounding; it does not decide the exit code).")
@click.option("--keep", "workdir", type=click.Path(file_okay=False), default=None,
              help="Keep the Verilog, stimulus, build and logs in this directory (new, empty, or kept before).")
@click.option("--write-stimulus", "stimulus_out", type=click.Path(dir_okay=False), default=None,
              help="Only write the stimulus file (input words, expected results) for your own cocotb flow.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_layer_command(path, layer, images, sim, source, lanes, taps, reuse, mult_bits, model_path, data, split,
                         fault, all_accumulators, workdir, stimulus_out, as_json):
    """Run N real images through the int8 layer engine whose weights come from the circuit in
    PATH (a run directory, or an RTL directory from `cgphw export`), cycle by cycle, and compare
    every output activation with the int8 network in torch (the circuit's weights inserted as
    `cgphw insert` does). Then finish the network from the simulated activations: its
    predictions must equal torch's.

    Exit 0: every activation and prediction equal; 1: a mismatch (the first is printed:
    image, channel, position, expected, got); 2: bad input."""
    config = engine_config(lanes, taps, reuse, mult_bits)
    if stimulus_out:
        from cgphw.layer.verify import write_layer_stimulus

        doc = write_layer_stimulus(path, stimulus_out, layer, images, model_path, data, split, config, source)
        _emit(doc, as_json, [f"wrote {stimulus_out}: {doc['words']} input words, {doc['results']} results for "
                             f"{doc['top']} ({doc['images']} images); run cgphw.layer.testbench with "
                             f"CGPHW_STIMULUS={stimulus_out}"])
        return
    from cgphw.layer.verify import verify_layer

    verdict = verify_layer(path, layer, images=images, sim=sim, model=model_path, data=data, split=split,
                           config=config, source=source, fault=fault, workdir=workdir,
                           all_accumulators=all_accumulators)
    _emit(verdict.to_json(), as_json, verdict.lines())
    sys.exit(0 if verdict.ok else 1)


def _emit(doc: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(doc, indent=1))
    else:
        for line in lines:
            click.echo(line)


@click.command("layer-energy")
@click.argument("path", metavar="RUNDIR|RTLDIR", type=click.Path(exists=True))
@click.option("--layer", default="conv1", show_default=True,
              help="The network layer the engine computes (as `cgphw model layers` names them).")
@click.option("--images", type=click.IntRange(1, 64), default=64, show_default=True,
              help="Real images simulated at gate level (one per lane).")
@click.option("--reuse", "reuses", type=click.IntRange(min=1), multiple=True,
              help="Output positions per weight load; repeat for several [default: all positions of an image, "
                   "and 1].")
@click.option("--lanes", type=click.IntRange(min=1), default=None,
              help="Output channels computed in parallel [default: all].")
@click.option("--taps", type=click.IntRange(min=1), default=None, help="MACs per lane per cycle [default: all].")
@click.option("--mult-bits", type=click.IntRange(8, 48), default=None,
              help="Width of the requantisation multiplier [default: 32].")
@click.option("--channels", type=int, default=None,
              help="Measure on the layer's first K output channels (a multiple of the lanes) and scale the "
                   "energies and cycles per image by channels/K [default: all channels].")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def layer_energy_command(path, layer, images, reuses, lanes, taps, mult_bits, channels, model_path, data, split,
                         as_json):
    """Energy per image of the layer engine fed by the circuit in PATH, by a ROM, or by an
    SRAM: synthesised with Yosys to the calibrated cell set and simulated at gate level on
    real images (a minute or more: each datapath is a synthesis of ~100k cells).

    The datapath (weight buffer, MACs, requantisation) is the same netlist for every
    source; each source is synthesised alone and driven with the datapath's requests; SRAM
    reads cost gate_costs.json's memory.sram_read_pj_per_byte. A last row synthesises the
    engine together with its ROM (constant weights folded into the multipliers).

    --channels K simulates whole lane groups of the same engine on the same images and scales
    by channels/K (each output channel costs the same MACs, each source's work is per weight;
    a smaller ROM is cheaper per read, so the ROM-fed rows are lower bounds); SRAM bytes are
    counted on the whole layer."""
    from cgphw.layer.energy import layer_energy

    config = engine_config(lanes, taps, None, mult_bits)
    chosen = tuple(reuses) if reuses else (None, 1)
    report = layer_energy(path, layer, images=images, model=model_path, data=data, split=split, config=config,
                          reuses=chosen, channels=channels,
                          progress=None if as_json else echo_steps(lambda m: click.echo(m, err=True)))
    _emit(report.to_json(), as_json, report.lines())


def register(group) -> None:
    group.add_command(verify_layer_command)
    group.add_command(layer_energy_command)
