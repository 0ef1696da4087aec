"""`cgphw calibrate`: gate energies, area and delay from synthesis of every operator."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from cgphw.errors import UserError
from cgphw.files import write_json_atomic
from cgphw.progress import terminal_progress

DEFAULT_OUT = "gate_costs.json"  # in the working directory: never into the installed package


def register(group) -> None:
    group.add_command(calibrate_cmd)


@click.command("calibrate")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=DEFAULT_OUT, show_default=True,
              help="Where to write the table (use it with `cgphw evolve --costs FILE`).")
@click.option("--force", is_flag=True, help="Replace an existing table file.")
@click.option("--cells", "cells_path", type=click.Path(dir_okay=False), default=None,
              help="Cell energy table (cgphw-cells/1 JSON) [default: Nangate 45 nm].")
@click.option("--function-set", "fset", default="seed27", show_default=True,
              help="Gates to calibrate: a set name or comma-separated ids/names.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the activity stimulus.")
@click.option("--evaluations", default=4096, show_default=True, type=int,
              help="Random input pairs simulated per operator.")
@click.option("--jobs", default=2, show_default=True, type=int, help="Yosys processes run at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def calibrate_cmd(out_path, force, cells_path, fset, seed, evaluations, jobs, as_json):
    """Synthesise every gate as an 8-bit operator with Yosys and write its costs.

    Energy per evaluation = sum over mapped cells of the cell's energy per output
    transition times its transitions per evaluation, measured by simulating the mapped
    netlist on random input pairs. Prints the table and the checks against the published
    45 nm anchors (multiplier/adder ratio, 8-bit add energy). The search uses the package's
    own table unless given `--costs FILE`."""
    from cgphw.gates import function_set
    from cgphw.hw.calibrate import calibrate
    from cgphw.hw.cells import load_cells
    from cgphw.hw.synth import MAX_EVALUATIONS

    if not 16 <= evaluations <= MAX_EVALUATIONS:
        raise UserError(f"--evaluations must be from 16 to {MAX_EVALUATIONS:,}, got {evaluations}")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out_path)
    if out.exists() and not force:  # found out before the synthesis, not after it
        raise UserError(f"{out} exists: pass --force to replace it, or --out FILE to write elsewhere")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    library = load_cells(cells_path)
    ids = function_set(fset)
    start = time.perf_counter()
    with terminal_progress() as progress:
        doc = calibrate(ids, library, seed=seed, evaluations=evaluations, jobs=jobs, progress=progress)
    try:
        write_json_atomic(out, doc)
    except OSError as exc:
        raise UserError(f"cannot write {out} ({exc.strerror or exc})") from None
    click.echo(f"wrote {out} ({len(ids)} gates, {time.perf_counter() - start:.1f} s); "
               f"use it with `cgphw evolve TASK --costs {out}`", err=True)
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(format_table(doc))
    click.echo(format_sanity(doc["sanity"]))


def format_table(doc: dict) -> str:
    lines = [f"{'id':>4} {'gate':<11} {'cells':>5} {'trans.':>6} {'area um2':>9} {'depth':>5} "
             f"{'delay ns':>8} {'activity':>8} {'energy pJ':>10}"]
    for gid, g in doc["gates"].items():
        lines.append(f"{gid:>4} {g['name']:<11} {g['n_cells']:>5} {g['transistors']:>6} {g['area']:>9.3f} "
                     f"{g['depth']:>5} {g['delay_ns']:>8.4f} {g['activity']:>8.3f} {g['energy_pj']:>10.5f}")
    return "\n".join(lines)


def format_sanity(s: dict) -> str:
    ok = lambda flag: "ok" if flag else "FAIL"  # noqa: E731
    lo, hi = s["ratio_band"]
    lines = [
        f"sanity: mul8x8/add8 energy ratio {s['mul8x8_over_add8']:.2f} in [{lo:.1f}, {hi:.1f}] "
        f"(edges inclusive): {ok(s['ratio_in_band'])}",
        f"sanity: 8-bit add {s['add8_pj']:.4f} pJ at 45 nm / 0.9 V (x{s['node_scaling'].get('energy_factor', 1)} "
        f"from the library's supply) within 2x of {s['add_anchor_pj']} pJ: {ok(s['add_within_2x'])}",
    ]
    if "gate_mul_over_add" in s:
        lines.append(f"note: the mul gate / add gate ratio is {s['gate_mul_over_add']:.2f}: {s['gate_mul_note']}")
    return "\n".join(lines)
