"""Export: a run (or a bare genome) becomes an RTL directory with a manifest.

``DIR/NAME/`` holds ``NAME.v`` and ``NAME.il`` (the circuit), ``NAME_rom.v`` and
``NAME_rom.il`` (the ROM baseline, when the weights are known) and ``NAME.json`` (the
manifest, format ``cgphw-rtl/1``). The directory is built beside the target and swapped
in with renames, so a reader sees the old export or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgphw import gates as G
from cgphw.cgp.checkpoint import RUN_FORMAT
from cgphw.cgp.genome import Genome
from cgphw.errors import UserError
from cgphw.files import read_json
from cgphw.hw import emit, rom
from cgphw.hw.manifest import FORMAT
from cgphw.task import Task, expand_location_runs, load_task

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
    run: dict | None  # best.json of a run, None for a bare genome
    path: Path
    default_name: str


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


def load_source(path: str | os.PathLike, force: bool = False) -> Source:
    """Read a run directory, a run's best.json, or a genome JSON file."""
    path = Path(path)
    if path.is_dir():
        return _load_run(path, path / "best.json", force)
    if not path.is_file():
        raise UserError(f"{path} is neither a run directory nor a genome file")
    doc = read_json(path)
    if isinstance(doc, dict) and doc.get("format") == RUN_FORMAT:
        return _load_run(path.parent, path, force, doc)
    if isinstance(doc, dict) and "genome" in doc and "format" not in doc:
        doc = doc["genome"]  # a bare {"genome": ...} wrapper
    genome = Genome.from_json(doc, source=str(path))
    return Source(genome, None, None, path, verilog_name(path.stem))


def _load_run(run_dir: Path, best_path: Path, force: bool, doc=None) -> Source:
    if doc is None:
        if not best_path.is_file():
            raise UserError(f"run directory {run_dir} has no best.json: is it a finished cgphw run?")
        doc = read_json(best_path)
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise UserError(f"{best_path} is not a cgphw run result (format must be {RUN_FORMAT!r})")
    if not isinstance(doc.get("genome"), dict):
        raise UserError(f"{best_path} holds no genome")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("threshold_reached"), bool):
        raise UserError(f"{best_path} lacks metrics.threshold_reached (true or false)")
    genome = Genome.from_json(doc["genome"], source=f"the genome in {best_path}")
    if not metrics["threshold_reached"] and not force:
        raise UserError(f"run {run_dir} never reached its error threshold "
                        f"(error {metrics.get('error_se')}, threshold {metrics.get('threshold')}); "
                        "pass --force to export it anyway")
    task_path = run_dir / "task.npz"
    if not task_path.is_file():
        raise UserError(f"run directory {run_dir} has no task.npz, so its weights are unknown")
    task = load_task(task_path)
    if (task.n_inputs, task.n_outputs) != (genome.grid.n_inputs, genome.grid.n_outputs):
        raise UserError(f"the genome of {best_path} has {genome.grid.n_inputs} inputs and "
                        f"{genome.grid.n_outputs} outputs but its task has {task.n_inputs} and {task.n_outputs}")
    return Source(genome, task, doc, best_path, verilog_name(run_dir.resolve().name))


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
        if task:
            entry["targets"] = task.targets[:, j].tolist()
            entry["values"] = produced[:, j].tolist()
        outputs_map.append(entry)
    return inputs_map, outputs_map


def rom_words(genome: Genome, task: Task | None) -> tuple[np.ndarray | None, str]:
    """The words the baseline ROM holds, and where they come from."""
    if task is not None:
        return task.targets.ravel(), "task targets, address = item * n_outputs + output"
    if genome.grid.n_inputs == 0:
        return genome.evaluate(np.zeros((1, 0), np.int8)).ravel(), "circuit outputs (no task; the circuit has no inputs)"
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
        "baseline": baseline,
        "source": {"kind": "run" if run else "genome", "path": str(source.path),
                   "metrics": run.get("metrics") if run else None,
                   "value_bank": run.get("value_bank") if run else None,
                   "costs": run.get("costs") if run else None},
    }
    if baseline is None:
        manifest["baseline_note"] = origin
    return files, manifest


def export(path: str | os.PathLike, out_dir: str | os.PathLike = "rtl_out", name: str | None = None,
           pipeline: int | None = None, force: bool = False) -> tuple[Path, dict]:
    """Export a run or genome; returns the written directory and its manifest."""
    pipeline = emit.check_pipeline(pipeline)
    source = load_source(path, force)
    name = check_name(name) if name is not None else source.default_name
    files, manifest = build_files(source, name, pipeline)
    target = Path(out_dir) / name
    write_dir_atomic(target, files, manifest, f"{name}.json")
    return target, manifest


def write_dir_atomic(target: Path, files: dict, manifest: dict, manifest_name: str) -> None:
    """Write every file into a fresh directory beside ``target``, then swap it in."""
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a directory; remove it or choose another --out/--name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
    except OSError as exc:
        raise UserError(f"cannot create the output directory {target.parent} ({exc.strerror})") from None
    old = None
    try:
        for filename, text in files.items():
            (staging / filename).write_text(text)
        (staging / manifest_name).write_text(json.dumps(manifest, indent=1) + "\n")
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
            os.rename(target, old / target.name)
        try:
            os.rename(staging, target)
        except OSError:
            if old is not None:  # put the previous export back
                os.rename(old / target.name, target)
            raise
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not target.exists() and (old / target.name).exists():
            os.rename(old / target.name, target)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {target} ({exc.strerror or exc})") from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
