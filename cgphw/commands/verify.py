"""`cgphw verify`: simulate an exported circuit against the software model, cycle by cycle;
`cgphw verify-gates`: every gate's hardware against its int8 semantics on all input pairs."""
from __future__ import annotations

import json
import sys

import click

from cgphw.progress import terminal_progress
from cgphw.verification.backends import SIMULATORS
from cgphw.verification.verdict import DEFAULT_RANDOM_VECTORS, MAX_VECTORS


def _emit(doc: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(doc, indent=1))
    else:
        for line in lines:
            click.echo(line)


@click.command("verify")
@click.argument("path", type=click.Path(exists=True))
@click.option("--sim", type=click.Choice(SIMULATORS), default=None,
              help="Simulator [default: icarus when installed, else amaranth]. amaranth simulates the "
                   "component rebuilt from the manifest genome; icarus and verilator the exported Verilog.")
@click.option("--vectors", "n_random", type=click.IntRange(0, MAX_VECTORS), default=DEFAULT_RANDOM_VECTORS,
              show_default=True,
              help="Random input vectors, on top of the task's inputs and the corner cases.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random vectors and bubbles.")
@click.option("--pipeline", type=click.IntRange(min=1), default=None,
              help="For a run or genome: verify its pipelined form (a register bank every K logic levels).")
@click.option("--keep", "workdir", type=click.Path(file_okay=False), default=None,
              help="Keep the build, logs and stimulus file in this directory.")
@click.option("--write-stimulus", "stimulus_out", type=click.Path(dir_okay=False), default=None,
              help="Only write the stimulus file (vectors, cycles, expected outputs) for your own "
                   "cocotb flow, and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_command(path, sim, n_random, seed, pipeline, workdir, stimulus_out, as_json):
    """Verify PATH (an RTL directory from `cgphw export`, its NAME.json, or a run directory,
    exported first) in simulation against cgphw's evaluator, bit for bit and cycle by cycle.

    Exit 0: pass; 1: a mismatch (or a broken claim about the task); 2: bad input."""
    from cgphw.verification import verdict as V

    if stimulus_out:
        _write_stimulus(path, n_random, seed, pipeline, stimulus_out, as_json)
        return
    with terminal_progress() as progress:
        result = V.verify(path, sim=sim, n_random=n_random, seed=seed, pipeline=pipeline, workdir=workdir,
                          progress=progress)
    _emit(result.to_json(), as_json, result.lines())
    sys.exit(0 if result.ok else 1)


def _write_stimulus(path, n_random, seed, pipeline, out, as_json) -> None:
    import tempfile
    from pathlib import Path

    from cgphw.files import accepted_by, check_replaceable
    from cgphw.verification.design import load_design, resolve_manifest
    from cgphw.verification.stimulus import load_stimulus
    from cgphw.verification.verdict import design_stimulus

    check_replaceable(out, None, accepted_by(load_stimulus), "stimulus file")  # replaces only its own
    with tempfile.TemporaryDirectory(prefix="cgphw-stim-") as tmp:
        design = load_design(resolve_manifest(Path(path), Path(tmp), pipeline))
        stim = design_stimulus(design, n_random, seed)
        stim.save(out)
    doc = {"stimulus": str(out), "top": stim.top, "vectors": int(len(stim.vectors)), "cycles": int(len(stim.cycles)),
           "latency": stim.latency}
    _emit(doc, as_json, [f"wrote {out}: {doc['vectors']} vectors over {doc['cycles']} cycles for {stim.top} "
                         f"(latency {stim.latency}); run tb_circuit with CGPHW_STIMULUS={out}"])


@click.command("verify-gates")
@click.option("--sim", type=click.Choice(SIMULATORS), default="amaranth", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_gates_command(sim, as_json):
    """Check every gate of the registry, as hardware, against its int8 semantics on all
    65,536 input pairs. Exit 0: all equal; 1: a gate differs; 2: bad input."""
    from cgphw.verification.backends import get_backend

    with terminal_progress() as progress:
        result = get_backend(sim).check_gates(progress=progress)
    doc = result.to_json()
    line = (f"{'PASS' if result.passed else 'FAIL'} {doc['gates']} gates on {sim}: {doc['pairs_per_gate']} pairs "
            f"each, {sum(result.wrong.values())} wrong results ({doc['seconds']} s)")
    _emit(doc, as_json, [line] + [f"first wrong {d['gate']}: a={d['a']} b={d['b']} expected {d['expected']} "
                                  f"got {d['got']}" for d in doc["first_wrong"].values()])
    sys.exit(0 if result.passed else 1)


def register(group) -> None:
    group.add_command(verify_command)
    group.add_command(verify_gates_command)
