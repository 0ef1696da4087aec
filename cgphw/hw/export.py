"""Export: a run (or a bare genome) becomes an RTL directory with a manifest.

``DIR/NAME/`` holds ``NAME.v`` and ``NAME.il`` (the circuit), ``NAME_rom.v`` and
``NAME_rom.il`` (the ROM baseline, when the weights are known) and ``NAME.json`` (the
manifest, format ``cgphw-rtl/2``, read by ``hw.manifest.load_manifest``), which records the
sha256 of every file it names. The directory is marked as cgphw's (``cgphw.dirs``): an
export replaces only what an earlier export (or synth) wrote there and keeps any other file.
All files are written beside the directory first and then renamed in, the manifest last,
so a failed export leaves the previous one as it was; a reader that meets a half-renamed
export is stopped by the recorded hashes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cgphw import dirs, gates as G
from cgphw import records
from cgphw.cgp.pareto import choose_point
from cgphw.cgp.genome import Genome
from cgphw.cgp.metrics import Metrics
from cgphw.cgp.rundir import BEST, RUN_FORMAT, Run, load_run
from cgphw.errors import UserError
from cgphw.files import read_json
from cgphw.hw import emit, rom
from cgphw.hw.manifest import FORMAT, Manifest, load_manifest
from cgphw.results import stage_path
from cgphw.task import Task, expand_location_runs

if TYPE_CHECKING:
    from cgphw.cgp.search import RunResult

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Verilog-2005 and SystemVerilog words a module may not be called (the likely ones).
_RESERVED = frozenset("""always and assign automatic begin buf case casex casez cell config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
endprimitive endspecify endtable endtask event for force forever fork function generate genvar if
initial inout input instance integer join large liblist library localparam macromodule medium module
nand negedge nmos nor not or output parameter pmos posedge primitive pull0 pull1 pulldown pullup
real realtime reg release repeat rtran scalared signed small specify specparam strong0 strong1
supply0 supply1 table task time tran tri tri0 tri1 triand trior trireg unsigned use vectored wait
wand weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint class interface
package program typedef enum struct union""".split())


@dataclass(frozen=True)
class Source:
    """What an export is made from."""
    genome: Genome
    task: Task | None
    run: Run | None  # the run (checked by load_run), None for a bare genome
    path: Path
    default_name: str
    point: dict | None = None  # a point of the run's Pareto front instead of its best: index, max_error, found
    metrics: Metrics | None = None  # the run's figures for ``genome`` (its best's, or the point's)


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: the directory, its manifest (as ``load_manifest`` reads it back)
    and the files it wrote there (not a user's own files kept beside them). cgphw.results.Result:
    ``ok`` is always True, since an export writes every file or raises."""
    directory: Path
    manifest: Manifest
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return True

    def to_json(self) -> dict:
        """What `cgphw export --json` prints."""
        m = self.manifest
        return {"dir": str(self.directory), "name": m.name, "latency": m.latency, "pipeline": m.pipeline,
                "gates": m.doc.gates, "depth": m.doc.depth, "genome_hash": m.genome_hash,
                "ports": [vars(p) for p in m.ports], "files": list(self.files),
                "pareto_point": m.doc.source.get("pareto_point")}

    def lines(self) -> list[str]:
        m = self.manifest
        form = f"pipelined every {m.pipeline} levels, latency {m.latency}" if m.pipeline else "combinational"
        chosen = m.doc.source.get("pareto_point")
        return ([f"{self.directory}: {m.doc.gates} gates, depth {m.doc.depth}, {form}"
                 + (f", point {chosen['index']} of the run's Pareto front" if chosen else "")]
                + [f"  {self.directory / f}" for f in self.files]
                + ([f"  (no ROM baseline: {m.doc.baseline_note})"] if m.baseline is None else []))


def verilog_name(text: str) -> str:
    """A Verilog identifier made from a file or directory name."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "circuit"
    if name[0].isdigit():
        name = "c_" + name
    return name + "_c" if name in _RESERVED else name


def check_name(name: str) -> str:
    if not _IDENT.match(name) or name in _RESERVED:
        raise UserError(f"--name {name!r} is not a usable Verilog identifier: use letters, digits and _ "
                        "(not starting with a digit, not a Verilog keyword)")
    return name


def load_source(path: str | os.PathLike, force: bool = False, point: int | None = None,
                max_error: float | None = None) -> Source:
    """Read a run directory (or its best.json: the directory is read), or a genome JSON file.
    ``point`` (an index of the run's Pareto front) or ``max_error`` (the cheapest point with a
    per-weight RMS error at most that, ``cgp.pareto.choose_point``) takes that point instead of
    the best; a chosen point needs no ``force`` (its error is the user's choice)."""
    path = Path(path)
    if (point is not None or max_error is not None) and not path.is_dir():
        raise UserError(f"--point and --max-error choose a point of a run's Pareto front: {path} is not a run "
                        "directory")
    if path.is_dir():
        run = load_run(path)
        if point is not None or max_error is not None:
            return _from_point(run, path, point, max_error)
        return _from_run(run, path, force)
    if not path.is_file():
        raise UserError(f"{path} is neither a run directory nor a genome file")
    doc = read_json(path)
    kind = doc.get("format") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind.split("/")[0] == RUN_FORMAT.split("/")[0]:
        if path.name != BEST:
            raise UserError(f"{path} is a run's {BEST}, which is only checked inside its run directory; "
                            "export the run directory")
        return _from_run(load_run(path.parent), path, force)
    if isinstance(doc, dict) and "genome" in doc and "format" not in doc:
        doc = doc["genome"]  # a bare {"genome": ...} wrapper
    genome = Genome.from_json(doc, source=str(path))
    return Source(genome, None, None, path, verilog_name(path.stem))


def _from_run(run: Run, path: Path, force: bool) -> Source:
    m = run.metrics
    if not m.threshold_reached and not force:
        raise UserError(f"run {run.directory} never reached its error threshold "
                        f"(error {m.error_se:g}, threshold {m.threshold:g}); pass --force to export it anyway")
    return Source(run.genome, run.task, run, path, verilog_name(run.directory.resolve().name), None, run.metrics)


def _from_point(run: Run, path: Path, point: int | None, max_error: float | None) -> Source:
    p = choose_point(run.pareto, point, max_error, f"run {run.directory}")
    return Source(p.genome, run.task, run, path, verilog_name(f"{run.directory.resolve().name}_p{p.index}"),
                  {"index": p.index, "max_error": max_error, "found": p.found}, p.metrics)


# --- what each port element carries -------------------------------------------------------
_CORE = [(1 + r, 1 + c) for r in range(3) for c in range(3)]
_RING = [(0, c) for c in range(5)] + [(r, c) for r in (1, 2, 3) for c in (0, 4)] + [(4, c) for c in range(5)]


def _kernel_names(meta: dict, n_in: int, n_out: int):
    """Kernel positions for the thesis' selectors: 3x3 core <-> 16-weight ring of a 5x5 kernel
    (several kernels side by side for the :concat form)."""
    kind = str(meta.get("selector", "")).split(":")[0]
    if kind not in ("core-ring", "ring-core"):
        return None
    src, dst = (_CORE, _RING) if kind == "core-ring" else (_RING, _CORE)
    kernels = n_in // len(src)
    if kernels < 1 or n_in != kernels * len(src) or n_out != kernels * len(dst):
        return None
    def label(k, rc):
        return (f"kernel {k} " if kernels > 1 else "kernel ") + f"[{rc[0]}][{rc[1]}]"
    return ([label(k, rc) for k in range(kernels) for rc in src],
            [label(k, rc) for k in range(kernels) for rc in dst])


def weight_names(meta: dict, n_in: int, n_out: int) -> tuple[list, list]:
    """Names for the stored (input) and generated (output) weights, from the task's meta
    (``input_names``/``output_names`` lists, or a core-ring/ring-core selector), else generic."""
    ins, outs = meta.get("input_names"), meta.get("output_names")
    if isinstance(ins, list) and len(ins) == n_in and isinstance(outs, list) and len(outs) == n_out:
        return [str(s) for s in ins], [str(s) for s in outs]
    return _kernel_names(meta, n_in, n_out) or (
        [f"stored weight {i}" for i in range(n_in)], [f"layer weight {j}" for j in range(n_out)])


def weight_locations(meta: dict, key: str, n_items: int, n: int) -> list | None:
    """Per element, per item: where the weight lives in the network ("conv1[0,0,1,1]"), from
    the task meta's runs ``[layer, first flat index, count]`` (as ``cgphw task`` writes them)."""
    shapes = meta.get("layers") or {}
    try:
        per_item = expand_location_runs(meta.get(key))
    except ValueError:
        return None
    if len(per_item) != n_items or any(len(item) != n for item in per_item):
        return None

    def where(name, flat):
        shape = shapes.get(name)
        if isinstance(shape, list) and shape and 0 <= flat < int(np.prod(shape)):
            return f"{name}[{','.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"
        return f"{name}.flat[{flat}]"

    return [[where(*item[e]) for item in per_item] for e in range(n)]


def port_maps(genome: Genome, task: Task | None, plan: emit.Plan) -> tuple[list, list]:
    n_in, n_out = genome.grid.n_inputs, genome.grid.n_outputs
    meta = task.meta if task else {}
    in_names, out_names = weight_names(meta, n_in, n_out)
    in_at = weight_locations(meta, "inputs_from", task.n_items, n_in) if task else None
    out_at = weight_locations(meta, "targets_at", task.n_items, n_out) if task else None
    produced = genome.evaluate(task.inputs) if task else None
    inputs_map = []
    for i in range(n_in):
        entry = {"element": i, "bits": [8 * i + 7, 8 * i], "weight": in_names[i]}
        if in_at:
            entry["at"] = in_at[i]
        if task:
            entry["values"] = task.inputs[:, i].tolist()
        inputs_map.append(entry)
    outputs_map = []
    for j, pin in enumerate(plan.outputs):
        if pin < n_in:
            driver = f"stored[{pin}]"
        elif plan.is_constant(pin):
            driver = f"constant {G.GATES[plan.gates[pin][0]].name}"
        else:
            driver = genome.pin_name(pin)
        entry = {"element": j, "bits": [8 * j + 7, 8 * j], "weight": out_names[j], "driver": driver}
        if out_at:
            entry["at"] = out_at[j]
        if task and produced is not None:
            entry["targets"] = task.targets[:, j].tolist()
            entry["values"] = produced[:, j].tolist()
        outputs_map.append(entry)
    return inputs_map, outputs_map


def rom_words(genome: Genome, task: Task | None) -> tuple[np.ndarray | None, str]:
    """The words the baseline ROM holds, and where they come from."""
    if task is not None:
        return task.targets.ravel(), "task targets, address = item * n_outputs + output"
    if genome.grid.n_inputs == 0:
        return (genome.evaluate(np.zeros((1, 0), np.int8)).ravel(),
                "circuit outputs (no task; the circuit has no inputs)")
    return None, "the weights are unknown without a task and the circuit has inputs"


# --- writing ------------------------------------------------------------------------------
def build_files(source: Source, name: str, pipeline: int | None) -> tuple[dict, dict]:
    """All files of an export as {filename: text}, and the manifest."""
    genome, task = source.genome, source.task
    component = emit.build_component(genome, pipeline)
    files = {f"{name}.v": emit.to_verilog(component, name), f"{name}.il": emit.to_rtlil(component, name)}
    inputs_map, outputs_map = port_maps(genome, task, component.plan)
    words, origin = rom_words(genome, task)
    baseline = None
    if words is not None:
        rom_name = f"{name}_rom"
        rom_part = rom.build_rom(words, registered=pipeline is not None)
        files[f"{rom_name}.v"] = emit.to_verilog(rom_part, rom_name)
        files[f"{rom_name}.il"] = emit.to_rtlil(rom_part, rom_name)
        baseline = {"verilog": f"{rom_name}.v", "rtlil": f"{rom_name}.il", "top": rom_name,
                    "latency": rom_part.latency, "clock": "clk" if rom_part.clocked else None,
                    "reset": "rst" if rom_part.clocked else None,
                    "ports": emit.describe_ports(rom_part), "words": len(rom_part.values),
                    "contents": origin, "values": list(rom_part.values)}
    run = source.run
    manifest = {
        "format": FORMAT, "name": name, "top": name,
        "latency": component.latency, "pipeline": pipeline, "depth": component.depth,
        "gates": component.plan.n_gates,
        "constants": len(component.plan.gates) - component.plan.n_gates,
        "ports": emit.describe_ports(component),
        "clock": "clk" if component.clocked else None, "reset": "rst" if component.clocked else None,
        "valid": {"in": "valid_in", "out": "valid_out"} if component.clocked else None,
        "genome": genome.to_json(), "genome_hash": genome.digest(),
        "expressions": genome.expressions(),
        "task": None if task is None else {
            "inputs": task.inputs.tolist(), "targets": task.targets.tolist(),
            "weights": None if task.weights is None else task.weights.tolist(),
            "mask": None if task.mask is None else task.mask.tolist(), "meta": task.meta},
        "inputs_map": inputs_map, "outputs_map": outputs_map,
        "files": {"verilog": f"{name}.v", "rtlil": f"{name}.il", "manifest": f"{name}.json"},
        "sha256": {f: hashlib.sha256(text.encode()).hexdigest() for f, text in files.items()},
        "baseline": baseline,
        "source": {"kind": "run" if run else "genome", "path": str(source.path),
                   "metrics": source.metrics.to_json() if source.metrics else None,
                   "value_bank": run.value_bank if run and source.point is None else None,
                   "pareto_point": source.point,  # None: the run's best
                   "costs": records.to_json(run.config.costs) if run else None},
    }
    if baseline is None:
        manifest["baseline_note"] = origin
    return files, manifest


def export(path: str | os.PathLike | RunResult | Run, *, out_dir: str | os.PathLike = "rtl_out",
           name: str | None = None, pipeline: int | None = None, force: bool = False, point: int | None = None,
           max_error: float | None = None) -> ExportResult:
    """Export a run (checked whole by load_run) or a genome file to ``out_dir/NAME/``.
    ``force`` exports a run that never reached its error threshold. ``point`` K or
    ``max_error`` T export a point of the run's Pareto front instead of its best (default name
    RUN_pK; the manifest's source.pareto_point records index, max_error and found). ``path``:
    a run directory, a genome file, or the RunResult / Run that stands for a run directory."""
    pipeline = emit.check_pipeline(pipeline)
    source = load_source(stage_path(path), force, point, max_error)
    name = check_name(name) if name is not None else source.default_name
    files, manifest = build_files(source, name, pipeline)
    target = Path(out_dir) / name
    written = write_export(target, files, f"{name}.json", manifest)
    return ExportResult(target, load_manifest(target / f"{name}.json"), written)


def write_export(target: Path, files: dict, manifest_name: str, manifest: dict) -> tuple[str, ...]:
    """Write the export into ``target`` (see the module text) and return the names of the
    files written (a user's own files kept there are not among them); UserError if
    ``target`` is not new, empty or an earlier export, or holds a file of cgphw's names that
    it did not write."""
    names = [*files, manifest_name]
    try:
        claim = dirs.claim(target, "export", names, replace=True)
    except OSError as exc:
        raise UserError(f"cannot create the output directory {target} ({exc.strerror or exc})") from None
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
        for filename, content in files.items():  # text, or bytes (a layer engine's stimulus)
            if isinstance(content, bytes):
                (staging / filename).write_bytes(content)
            else:
                (staging / filename).write_text(content)
        (staging / manifest_name).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        for filename in names:
            os.chmod(staging / filename, 0o644)
        before = set(claim.previous.files) if claim.previous else set()
        dirs.write_marker(target, dirs.Marker("export", tuple(before | set(names))))  # all ours, listed first
        for filename in names:  # the manifest last: it vouches for the rest
            os.replace(staging / filename, target / filename)
        dirs.remove_owned(target, before - set(names))  # e.g. the old synthesis report, an old ROM
        dirs.write_marker(target, dirs.Marker("export", tuple(names)))
        return tuple(sorted(names))
    except BaseException as exc:
        if claim.previous is None and not any((target / n).exists() for n in names):
            claim.abandon()
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {target} ({exc.strerror or exc})") from None
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # a directory this call made and filled
        claim.release()
