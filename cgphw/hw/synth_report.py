"""`cgphw synth RTLDIR`: synthesise an exported circuit and its ROM baseline, price both
with the calibrated cell model, compare with the CGP search's own estimate, prove.

RTLDIR is what `cgphw export` writes, read with ``load_manifest`` (hashes, paths, genome
checked). The circuit is synthesised from its RTLIL; ``--prove`` shows the mapped netlist
equal to both the RTLIL and the Verilog (each read by Yosys on its own), so neither file
can differ from the other unnoticed. The report goes to ``NAME.synth.json`` and the mapped
netlist to ``NAME.synth.v``, both written atomically and recorded in the directory's marker.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cgphw import dirs
from cgphw import gates as G
from cgphw.cgp.genome import Genome
from cgphw.costs import CostTable
from cgphw.errors import UserError
from cgphw.files import write_json_atomic, write_text_atomic
from cgphw.hw.cells import CellLibrary
from cgphw.hw.manifest import Manifest, find_manifest, load_manifest
from cgphw.progress import ProgressCallback, step
from cgphw.results import stage_path
from cgphw.hw.synth import ACTIVITY_EVALUATIONS, CostReport, Mapped, cost_report, default_stimulus, \
    prove_equivalent, read_netlist, synthesis_script, synthesise

REPORT_FORMAT = "cgphw-synth/2"
# Synthesised logic energy / CGP estimate counts as agreement inside this band: the estimate
# sums gates priced one by one on uniform random inputs, the netlist shares and folds logic
# across gate boundaries and sees the activity the circuit really has.
AGREEMENT_BAND = (0.5, 1.5)

if TYPE_CHECKING:
    from cgphw.hw.export import ExportResult


@dataclass(frozen=True)
class SynthReport:
    """What ``cgphw synth`` found (cgphw.results.Result). ``ok``: the netlist computes the genome
    (and the ROM its words) in simulation and every proof asked for holds. ``doc`` is NAME.synth.json."""
    directory: Path
    name: str
    ok: bool
    proofs: dict  # "circuit_rtlil" | "circuit_verilog" | "baseline_rtlil" | "baseline_verilog" -> result
    doc: dict
    report: Path  # NAME.synth.json
    netlist: Path | None  # NAME.synth.v (None when a netlist was given)

    def to_json(self) -> dict:
        """NAME.synth.json, as `cgphw synth --json` prints it."""
        return self.doc

    def lines(self) -> list[str]:
        return report_lines(self.doc)

    def failure(self) -> str:
        """Why the report is not ok, in one sentence."""
        return failure_sentence(self.doc)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({exc.__class__.__name__})") from None


# --- the CGP search's own estimate ----------------------------------------------------------
def cgp_estimate(genome: Genome, costs: CostTable) -> dict:
    """Sum of the active gates' table energies, and what synthesis can remove from it."""
    n_in, nodes = genome.grid.n_inputs, genome.nodes
    active = [int(k) for k in genome.active_nodes()]
    ids = sorted({int(nodes[k][2]) for k in active})
    energy = dict(zip(ids, costs.arrays(ids)[0], strict=True)) if ids else {}
    constant, folded, shared = set(), [], []
    seen: dict[tuple, int] = {}
    for k in active:  # ascending order: operands first
        in0, in1, gid = (int(v) for v in nodes[k])
        operands = (in0, in1)[: G.gate(gid).arity]
        pin = n_in + k
        if all(p in constant for p in operands):  # constants, and gates of constants only
            constant.add(pin)
            folded.append(k)
            continue
        key = (gid, operands if gid not in (1, 3, 8, 9, 10) else tuple(sorted(operands)))
        if key in seen:  # the same gate on the same operands: one copy in hardware
            shared.append(k)
        seen.setdefault(key, k)
    total = float(sum(energy[int(nodes[k][2])] for k in active))
    removable = float(sum(energy[int(nodes[k][2])] for k in folded + shared))
    gates = sum(G.gate(int(nodes[k][2])).is_logic for k in active)
    return {"energy_pj": round(total, 9), "active_nodes": len(active), "gates": gates,
            "constant_folded_gates": len(folded), "duplicate_gates": len(shared),
            "energy_pj_after_folding_and_sharing": round(total - removable, 9)}


# --- the report ---------------------------------------------------------------------------
def _elements(values: np.ndarray, count: int) -> np.ndarray:
    """int8 [steps, count] from a port's per-step values (int or bit matrix)."""
    if count == 0:
        return np.zeros((len(values), 0), np.int8)
    if values.ndim == 2:  # bit matrix [steps, 8 * count]
        weights = (1 << np.arange(8)).astype(np.int64)
        return (values.reshape(len(values), count, 8).astype(np.int64) @ weights).astype(np.uint8).view(np.int8)
    shifted = values[:, None] >> (8 * np.arange(count))
    return (shifted & 0xFF).astype(np.uint8).view(np.int8)


def _check_circuit(report: CostReport, stimulus: dict, genome: Genome, latency: int) -> dict:
    """Does the mapped netlist compute what Genome.evaluate does, on the activity stimulus?"""
    n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
    steps = report.simulation.evaluations + 1
    stored = _elements(stimulus["stored"], n_in) if n_in else np.zeros((steps, 0), np.int8)
    produced = _elements(report.simulation.outputs["weights"], n_out)
    expected = genome.evaluate(stored)
    got, want = produced[latency:], expected[: steps - latency]
    if latency and "valid_out" in report.simulation.outputs:
        valid = report.simulation.outputs["valid_out"][latency:]
        got, want = got[valid == 1], want[valid == 1]
    mismatches = int(np.count_nonzero(np.any(got != want, axis=1)))
    return {"vectors": int(len(got)), "mismatching_vectors": mismatches, "matches_genome": mismatches == 0}


def _check_rom(report: CostReport, stimulus: dict, values: list, latency: int) -> dict:
    addr = stimulus["addr"]
    words = np.array(values + [0], np.int64)
    expected = words[np.minimum(addr, len(values))].astype(np.uint8).view(np.int8)
    data = (report.simulation.outputs["data"] & 0xFF).astype(np.uint8).view(np.int8)
    got, want = data[latency:], expected[: len(expected) - latency]
    mismatches = int(np.count_nonzero(got != want))
    return {"vectors": int(len(got)), "mismatching_vectors": mismatches, "matches_values": mismatches == 0}


def synth_rtl_dir(rtldir: str | os.PathLike, library: CellLibrary, costs: CostTable, prove: bool = False,
                  netlist_path: str | os.PathLike | None = None, seed: int = 0,
                  evaluations: int = ACTIVITY_EVALUATIONS, progress: ProgressCallback | None = None) -> dict:
    """The synthesis report of an export directory (also written to NAME.synth.json)."""
    def say(what: str) -> None:
        step(progress, what)

    m = load_manifest(rtldir)
    path, genome, name, top, latency = m.directory, m.genome, m.name, m.top, m.latency
    rtl = _read(m.rtlil)
    if netlist_path is not None:
        netlist_file = Path(netlist_path)
        if not netlist_file.is_file():
            raise UserError(f"netlist {netlist_file} does not exist")
        say(f"reading the netlist {netlist_file}")
        mapped = read_netlist(_read(netlist_file), top)
    else:
        say(f"synthesising {top}")
        mapped = synthesise(rtl, top, "rtlil", label=str(m.rtlil))
    _check_ports(mapped, genome, top)
    if latency > evaluations:  # no output would be compared with the genome
        raise UserError(f"the manifest's latency {latency} leaves nothing to check in {evaluations} evaluations; "
                        "raise --evaluations above the latency")
    words = address_words(m)
    # an address circuit is driven as it is used: the addresses of its weights, like the ROM
    stimulus = default_stimulus(mapped.netlist, seed, evaluations, below=None if words is None else {"stored": words})
    circuit = cost_report(mapped, library, stimulus)
    flops = circuit.cells.get("$_DFF_P_", 0)
    n_out = genome.grid.n_outputs
    doc: dict = {
        "format": REPORT_FORMAT, "name": name, "top": top, "genome_hash": m.genome_hash,
        "latency": latency, "pipeline": m.pipeline,
        "cells_table": library.describe(), "costs_table": costs.describe(),
        "flow": synthesis_script(top) if netlist_path is None else [f"read_verilog {netlist_path}"],
        "activity": {"method": "zero-delay simulation of the mapped netlist, uniform random "
                               + ("stored weights" if words is None else f"addresses below {words}")
                               + " each evaluation (rst=0, valid_in=1)", "evaluations": evaluations, "seed": seed},
        "netlist": f"{name}.synth.v",
        "circuit": {**circuit.to_json(), "flip_flops": flops,
                    "energy_pj_per_weight": round(circuit.energy_pj / n_out, 9),
                    "simulation": _check_circuit(circuit, stimulus, genome, latency)},
    }
    logic_pj = circuit.energy_pj - _flop_energy_pj(circuit, mapped, library)
    estimate = cgp_estimate(genome, costs)
    ratio = logic_pj / estimate["energy_pj"] if estimate["energy_pj"] else None
    doc["estimate"] = {**estimate, "synthesised_logic_pj": round(logic_pj, 9),
                       "ratio": None if ratio is None else round(ratio, 4),
                       "tolerance": list(AGREEMENT_BAND),
                       "agree": ratio is not None and AGREEMENT_BAND[0] <= ratio <= AGREEMENT_BAND[1],
                       "explanation": _explain(estimate, circuit, logic_pj, flops)}
    if genome.grid.n_inputs == 0:
        doc["zero_input"] = _zero_input_note(circuit, estimate)
    doc["baseline"], baseline_verilog = _baseline(m, library, seed, evaluations, say)
    doc["comparison"] = _compare(doc, genome, costs, words is not None)
    doc["proof"] = None
    if prove:
        doc["proof"] = {}
        steps = latency + 2 if latency else 0
        for language, rtl_path in (("rtlil", m.rtlil), ("verilog", m.verilog)):
            say(f"proving the netlist equal to {rtl_path.name}")
            proof = prove_equivalent(_read(rtl_path), mapped.verilog, top, language, steps)
            doc["proof"][f"circuit_{language}"] = {**vars(proof), "rtl": rtl_path.name}
        if m.baseline is not None and netlist_path is None:
            b = m.baseline
            assert baseline_verilog is not None  # _baseline mapped it
            b_steps = b.latency + 2 if b.latency else 0
            for language, rtl_path in (("rtlil", b.rtlil), ("verilog", b.verilog)):
                say(f"proving the baseline netlist equal to {rtl_path.name}")
                proof = prove_equivalent(_read(rtl_path), baseline_verilog, b.top, language, b_steps)
                doc["proof"][f"baseline_{language}"] = {**vars(proof), "rtl": rtl_path.name}
    doc["ok"] = bool(doc["circuit"]["simulation"]["matches_genome"]
                     and (doc["baseline"] is None or doc["baseline"]["simulation"]["matches_values"])
                     and (doc["proof"] is None or all(p["equivalent"] for p in doc["proof"].values())))
    _write_report(path, name, doc, mapped.verilog if netlist_path is None else None)
    return doc


def synth(rtldir: str | os.PathLike | ExportResult | Manifest, *, prove: bool = False,
          netlist: str | os.PathLike | None = None, cells: str | os.PathLike | None = None,
          costs: str | os.PathLike | None = None, seed: int = 0, evaluations: int = ACTIVITY_EVALUATIONS,
          progress: ProgressCallback | None = None) -> SynthReport:
    """Synthesise an export directory (``cgphw synth``): cells, area, energy against the
    search's estimate and the ROM baseline; with ``prove`` formal equivalence of the netlist
    with both the RTLIL and the Verilog. ``cells``/``costs``: tables other than the packaged.
    ``rtldir``: the folder, or the ExportResult / Manifest that stands for it."""
    from cgphw.costs import load_costs
    from cgphw.hw.cells import load_cells

    folder = stage_path(rtldir)
    doc = synth_rtl_dir(folder, load_cells(cells), load_costs(costs), prove=prove, netlist_path=netlist, seed=seed,
                        evaluations=evaluations, progress=progress)
    found = find_manifest(folder)
    assert found is not None  # checked whole by synth_rtl_dir just now
    directory = found.parent
    return SynthReport(directory, doc["name"], doc["ok"], dict(doc["proof"] or {}), doc,
                       directory / f"{doc['name']}.synth.json",
                       None if netlist is not None else directory / f"{doc['name']}.synth.v")


def _write_report(directory: Path, name: str, doc: dict, netlist: str | None) -> None:
    """NAME.synth.json (and the mapped NAME.synth.v), recorded in the directory's marker;
    a file of those names that cgphw did not write is not overwritten."""
    outputs = {f"{name}.synth.json": None, **({f"{name}.synth.v": netlist} if netlist is not None else {})}
    lock = dirs.DirLock(directory).acquire()
    try:
        marker = dirs.read_marker(directory)
        owned = set(marker.files) if marker else set()
        foreign = sorted(n for n in outputs if (directory / n).exists() and n not in owned)
        if foreign:
            raise UserError(f"{directory} holds {', '.join(foreign)}, which cgphw did not write; move it away "
                            "to write the synthesis report")
        if marker is not None:
            dirs.write_marker(directory, dirs.Marker(marker.kind, tuple(owned | set(outputs))))
        if netlist is not None:
            write_text_atomic(directory / f"{name}.synth.v", netlist)
        write_json_atomic(directory / f"{name}.synth.json", doc)
    finally:
        lock.release()


def _check_ports(mapped: Mapped, genome: Genome, top: str) -> None:
    """The netlist's ports must be the ones the manifest's genome implies."""
    want = {"weights": 8 * genome.grid.n_outputs}
    if genome.grid.n_inputs:
        want["stored"] = 8 * genome.grid.n_inputs
    ports = {**mapped.netlist.inputs, **mapped.netlist.outputs}
    for port, width in want.items():
        if len(ports.get(port, ())) != width:
            raise UserError(f"{top} has no {width}-bit port {port!r}, which the manifest's genome "
                            f"({genome.grid.n_inputs} inputs, {genome.grid.n_outputs} outputs) implies")


def _flop_energy_pj(report: CostReport, mapped: Mapped, library: CellLibrary) -> float:
    fj = sum(library.cells[c.type].energy_fj * report.simulation.toggles[c.name] + library.cells[c.type].clock_energy_fj
             for c in mapped.netlist.flops)
    return fj / 1000.0 * library.energy_to_anchor


def _explain(estimate: dict, circuit: CostReport, logic_pj: float, flops: int) -> str:
    parts = [f"the search prices {estimate['active_nodes']} active nodes one by one, each calibrated alone on "
             "uniform random operands"]
    if estimate["constant_folded_gates"]:
        parts.append(f"{estimate['constant_folded_gates']} of them compute only from constants and fold away "
                     "(constant folding)")
    if estimate["duplicate_gates"]:
        parts.append(f"{estimate['duplicate_gates']} repeat another gate on the same operands and are shared")
    parts.append("synthesis also merges logic across gate boundaries (e.g. a shift feeding an add costs no "
                 "cells) and the gates inside a circuit see correlated, not uniform, operands, which changes "
                 "their switching activity")
    if flops:
        parts.append(f"the {flops} pipeline flip-flops are excluded from this comparison "
                     "(the search does not price them)")
    return "; ".join(parts) + "."


def _zero_input_note(circuit: CostReport, estimate: dict) -> dict:
    n = circuit.n_cells
    return {"gates_surviving_synthesis": n,
            "statement": (f"This circuit has no inputs, so synthesis folds its {estimate['active_nodes']} active nodes "
                          f"into constants: {n} cells survive. Its weights are hard-wired (tied to supply and "
                          f"ground) and cost {circuit.energy_pj:.3g} pJ of logic energy per evaluation, whatever the "
                          f"search's estimate ({estimate['energy_pj']:.3g} pJ) says. The saving over memory comes "
                          "from fixing the weights in silicon, which any hard-wired constant does, not from the "
                          "evolved arithmetic; the price is that the weights can no longer be changed.")}


def _baseline(m: Manifest, library: CellLibrary, seed: int, evaluations: int, say) -> tuple[dict | None, str | None]:
    """The ROM baseline's report and its mapped netlist (Verilog), or (None, None)."""
    b = m.baseline
    if b is None:
        return None, None
    say(f"synthesising the baseline {b.top}")
    mapped = synthesise(_read(b.rtlil), b.top, "rtlil", label=str(b.rtlil))
    words = len(b.values)
    stimulus = default_stimulus(mapped.netlist, seed + 1, evaluations, below={"addr": words})
    report = cost_report(mapped, library, stimulus)
    out = {"top": b.top, **report.to_json(), "words": words,
           "energy_pj_per_weight": round(report.energy_pj, 9),
           "activity": "uniform random addresses below the word count, one read (one weight) per evaluation"}
    if "addr" in stimulus and "data" in report.simulation.outputs:
        out["simulation"] = _check_rom(report, stimulus, list(b.values), b.latency)
    else:
        out["simulation"] = {"matches_values": False, "vectors": 0,
                             "note": "the baseline netlist lacks the addr/data ports the manifest states"}
    return out, mapped.verilog


def address_words(m: Manifest) -> int | None:
    """The word count of an address circuit (``cgphw task make --selector address:LAYER``: its
    inputs are a weight's address, not stored weights), else None."""
    task = m.task
    if task is None:
        return None
    info = task.meta.get("address")
    words = info.get("words") if isinstance(info, dict) else None
    fits = (isinstance(words, int) and not isinstance(words, bool) and task.n_inputs > 0 and task.n_outputs == 1
            and words == task.n_items and 0 < words <= 256 ** task.n_inputs)  # else an edited meta: no address
    return words if fits else None


def _smaller(circuit: float, rom: float) -> str:
    return "circuit" if circuit < rom else "ROM baseline" if rom < circuit else "equal"


def _compare(doc: dict, genome: Genome, costs: CostTable, address: bool = False) -> dict:
    c, b = doc["circuit"], doc["baseline"]
    n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
    reads = 0 if address else n_in  # an address comes from a counter, not from memory
    sram = float(costs.memory.get("sram_read_pj_per_byte", 0.0))
    per_weight_circuit = c["energy_pj_per_weight"] + (reads / n_out) * sram
    out = {"inputs": "address" if address else "stored weights",
           "generated_weights_per_evaluation": n_out, "stored_weights_read_per_evaluation": reads,
           "sram_read_pj_per_byte": sram,
           "circuit_pj_per_weight_incl_stored_reads": round(per_weight_circuit, 9),
           "sram_pj_per_weight": sram, "circuit_area": c["area"]}
    if b is not None:
        out.update({"baseline_pj_per_weight": b["energy_pj_per_weight"], "baseline_area": b["area"],
                    "area_ratio_circuit_over_baseline": round(c["area"] / b["area"], 4) if b["area"] else None,
                    "energy_ratio_circuit_over_baseline":
                        (round(c["energy_pj_per_weight"] / b["energy_pj_per_weight"], 4)
                         if b["energy_pj_per_weight"] else None),
                    "smaller": {"cells": _smaller(c["n_cells"], b["n_cells"]), "area": _smaller(c["area"], b["area"]),
                                "energy_pj_per_weight": _smaller(c["energy_pj_per_weight"],
                                                                 b["energy_pj_per_weight"])}})
    return out


# --- the report in words -------------------------------------------------------------------
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


def report_lines(doc: dict) -> list[str]:
    """The report as `cgphw synth` prints it."""
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
    return lines
