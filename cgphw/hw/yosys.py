"""Run Yosys (pyosys) scripts, each in a fresh Python process.

One process per script because pyosys keeps global state: cell counts drift when
several designs are synthesised in one process, and a failing pass ends the whole
process. The child runs the commands in a scratch directory; the parent reads back
the files the script wrote and its log, and turns a failure into one clear sentence.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from cgphw.errors import UserError

# The child: run each command against one design; report the failing command on error.
_CHILD = r"""
import json, sys
from pyosys import libyosys as ys
commands = json.load(sys.stdin)
design = ys.Design()
for i, cmd in enumerate(commands):
    print(f"@@CGPHW-COMMAND {i}", flush=True)
    ys.run_pass(cmd, design)
print("@@CGPHW-DONE", flush=True)
"""


class YosysError(UserError):
    """Yosys stopped with an error; the message names the command and Yosys' reason."""

    def __init__(self, message: str, log: str = "", command: str = ""):
        super().__init__(message)
        self.log = log
        self.command = command


@dataclass(frozen=True)
class YosysRun:
    log: str
    files: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return self.files[name].decode()


def yosys_version() -> str:
    """e.g. "Yosys 0.70 (git sha1 28ba3cb92)", read in a child like every other run."""
    code = "from pyosys import libyosys as ys; print(ys.yosys_maybe_version())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    match = re.search(r"Yosys [^,(]+(\(git sha1 \w+)?", proc.stdout)
    if proc.returncode != 0 or not match:
        raise YosysError("pyosys is not usable: " + (proc.stderr.strip().splitlines() or ["no version"])[-1])
    return match.group(0).strip() + (")" if match.group(1) else "")


def run_yosys(commands: Sequence[str], inputs: Mapping[str, str | bytes] | None = None,
              outputs: Sequence[str] = (), timeout_s: float = 300.0) -> YosysRun:
    """Run ``commands`` in a fresh process inside a scratch directory holding ``inputs``
    (name -> content); return the log and the contents of the ``outputs`` files."""
    with tempfile.TemporaryDirectory(prefix="cgphw-yosys-") as tmp:
        for name, content in (inputs or {}).items():
            data = content.encode() if isinstance(content, str) else content
            Path(tmp, name).write_bytes(data)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(list(commands)),
                                  capture_output=True, text=True, cwd=tmp, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise YosysError(f"yosys did not finish within {timeout_s:.0f} s") from None
        log = proc.stdout + proc.stderr
        if proc.returncode != 0 or "@@CGPHW-DONE" not in proc.stdout:
            raise _failure(commands, log, proc.returncode)
        files = {}
        for name in outputs:
            path = Path(tmp, name)
            if not path.is_file():
                raise YosysError(f"yosys finished but did not write {name}", log)
            files[name] = path.read_bytes()
        return YosysRun(log, files)


def _failure(commands: Sequence[str], log: str, returncode: int) -> YosysError:
    started = re.findall(r"@@CGPHW-COMMAND (\d+)", log)
    command = commands[int(started[-1])] if started else ""
    if "No module named 'pyosys'" in log:
        return YosysError("pyosys is not installed: pip install pyosys", log)
    errors = [line.strip() for line in log.splitlines() if line.strip().startswith("ERROR:")]
    reason = errors[-1][len("ERROR:"):].strip() if errors else f"exit status {returncode}"
    where = f" at `{command}`" if command else ""
    return YosysError(f"yosys failed{where}: {reason}", log, command)
