"""`cgphw synth`: synthesis report of an exported circuit against its ROM baseline."""
from __future__ import annotations

import json
import sys

import click

from cgphw.errors import UserError
from cgphw.hw.synth import ACTIVITY_EVALUATIONS, MAX_EVALUATIONS


def register(group) -> None:
    group.add_command(synth_cmd)


@click.command("synth")
@click.argument("rtldir", metavar="RTLDIR", type=click.Path(path_type=str))
@click.option("--prove", is_flag=True,
              help="Prove with Yosys (miter + SAT) that the mapped netlist equals the emitted RTL: both the "
                   "RTLIL (NAME.il) and the Verilog (NAME.v), and the same for the ROM baseline.")
@click.option("--netlist", "netlist_path", type=click.Path(dir_okay=False), default=None,
              help="Report on (and prove) this gate-level Verilog netlist instead of synthesising.")
@click.option("--cells", "cells_path", type=click.Path(dir_okay=False), default=None,
              help="Cell energy table [default: Nangate 45 nm, as calibration].")
@click.option("--costs", "costs_path", type=click.Path(dir_okay=False), default=None,
              help="Gate cost table for the CGP estimate [default: cgphw/data/gate_costs.json].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the activity stimulus.")
@click.option("--evaluations", default=ACTIVITY_EVALUATIONS, show_default=True, type=int,
              help="Random evaluations simulated for the activity.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def synth_cmd(rtldir, prove, netlist_path, cells_path, costs_path, seed, evaluations, as_json):
    """Synthesise RTLDIR (what `cgphw export` wrote) to the calibrated cell set and report
    cells, transistors, area, longest path and energy per evaluation, the CGP search's own
    estimate, and the ROM baseline side by side. Writes RTLDIR/NAME.synth.json and the
    mapped netlist RTLDIR/NAME.synth.v. Exits 1 when the netlist disagrees with the
    genome in simulation, a --prove fails, or a file differs from the manifest's record."""
    from cgphw.hw.synth_report import synth

    if not 16 <= evaluations <= MAX_EVALUATIONS:
        raise UserError(f"--evaluations must be from 16 to {MAX_EVALUATIONS:,}, got {evaluations}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    report = synth(rtldir, prove=prove, netlist=netlist_path, cells=cells_path, costs=costs_path, seed=seed,
                   evaluations=evaluations, progress=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report.doc, indent=1) if as_json else format_report(report.doc))
    if not report.ok:
        click.echo("error: " + failure_sentence(report.doc), err=True)
        sys.exit(1)


def failure_sentence(doc: dict) -> str:
    problems = []
    if not doc["circuit"]["simulation"]["matches_genome"]:
        problems.append("the mapped netlist does not compute the genome's weights in simulation")
    if doc["baseline"] is not None and not doc["baseline"]["simulation"]["matches_values"]:
        problems.append("the mapped ROM baseline does not return its stored weights in simulation")
    failed = [f"{k.split('_')[0]} ({p['rtl']})" for k, p in (doc["proof"] or {}).items() if not p["equivalent"]]
    if failed:
        problems.append(f"the equivalence proof FAILED for the {' and '.join(failed)}: SAT found inputs on "
                        "which the netlist differs from the RTL (proof.*.detail in the report)")
    return "; ".join(problems)


def smaller_sentence(cmp_: dict) -> str:
    """Which of circuit and ROM is smaller, figure by figure, said plainly."""
    what = "an address circuit (a computed ROM)" if cmp_.get("inputs") == "address" else "the circuit"
    by: dict[str, list[str]] = {}
    for figure, label in (("cells", "cells"), ("area", "area"), ("energy_pj_per_weight", "energy per weight")):
        by.setdefault(cmp_["smaller"][figure], []).append(label)
    parts = [f"they are equal in {', '.join(labels)}" if who == "equal"
             else f"the {who} is smaller in {', '.join(labels)}"
             for who, labels in by.items()]
    return f"smaller: {what} vs its ROM: " + "; ".join(parts)


def format_report(doc: dict) -> str:
    c, e, cmp_ = doc["circuit"], doc["estimate"], doc["comparison"]
    lines = [f"{doc['name']}: {c['n_cells']} cells ({c['flip_flops']} flip-flops), {c['transistors']} transistors, "
             f"area {c['area']:.2f} um2, longest path {c['depth']} cells / {c['delay_ns']:.3f} ns",
             f"  energy {c['energy_pj']:.4f} pJ per evaluation, {c['energy_pj_per_weight']:.5f} pJ per generated "
             f"weight (activity {c['activity']:.3f}); simulation vs genome: "
             f"{'exact' if c['simulation']['matches_genome'] else 'MISMATCH'} on {c['simulation']['vectors']} vectors",
             f"  CGP estimate {e['energy_pj']:.4f} pJ for {e['gates']} gates ({e['active_nodes']} active nodes); "
             "synthesised logic "
             f"{e['synthesised_logic_pj']:.4f} pJ; ratio {e['ratio'] if e['ratio'] is not None else 'n/a'} "
             f"(agree within {e['tolerance']}: {'yes' if e['agree'] else 'no'})",
             f"  why: {e['explanation']}"]
    if "zero_input" in doc:
        lines.append(f"  zero inputs: {doc['zero_input']['statement']}")
    b = doc["baseline"]
    if b is None:
        lines.append("  baseline: none in the manifest (no known weights to put in a ROM)")
    else:
        lines.append(f"  {'':22}{'circuit':>12}{'ROM baseline':>14}")
        lines.append(f"  {'area um2':22}{c['area']:>12.2f}{b['area']:>14.2f}")
        lines.append(f"  {'pJ per weight (logic)':22}{c['energy_pj_per_weight']:>12.5f}"
                     f"{b['energy_pj_per_weight']:>14.5f}")
        lines.append(f"  {'cells':22}{c['n_cells']:>12}{b['n_cells']:>14}")
        lines.append("  " + smaller_sentence(cmp_))
    if cmp_.get("inputs") == "address":
        lines.append(f"  inputs are addresses (no stored weights read): circuit "
                     f"{cmp_['circuit_pj_per_weight_incl_stored_reads']:.4f} pJ per weight vs SRAM read "
                     f"{cmp_['sram_pj_per_weight']:.4f} pJ per weight")
    else:
        lines.append(f"  with stored-weight reads from SRAM ({cmp_['sram_read_pj_per_byte']} pJ/byte): circuit "
                     f"{cmp_['circuit_pj_per_weight_incl_stored_reads']:.4f} pJ per weight vs SRAM read "
                     f"{cmp_['sram_pj_per_weight']:.4f} pJ per weight")
    for what, p in (doc["proof"] or {}).items():
        lines.append(f"  proof ({what.split('_')[0]} netlist = {p['rtl']}): "
                     f"{'EQUIVALENT' if p['equivalent'] else 'FAILED'} — {p['method']}")
    return "\n".join(lines)
