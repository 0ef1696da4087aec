"""What a cocotb run leaves (``CocotbRun``), the environment it runs in, and ``--keep``'s
directory. Testbenches (tb_circuit.py, tb_gates.py) describe *what* to check and write a JSON
summary to CGPHW_REPORT; the cocotb backends (backends.py) build and run them."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cgphw.errors import UserError


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
def patched_environ(extra: dict[str, str]):
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
