"""Run Yosys (pyosys) scripts, each in a fresh Python process.

One process per script because pyosys keeps global state: cell counts drift when
several designs are synthesised in one process, and a failing pass ends the whole
process. The child runs the commands in a scratch directory; the parent reads back
the files the script wrote and its log, and turns a failure into one clear sentence.

The child runs in a process group of its own, with the scratch directory as its TMPDIR:
Yosys' ``abc`` pass starts ``yosys-abc`` under it, and a timeout, Ctrl-C or SIGTERM ends the
whole group and removes ABC's scratch files with ours (else ABC ran on as an orphan).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
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
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="cgphw-yosys-") as tmp:
        for name, content in (inputs or {}).items():
            data = content.encode() if isinstance(content, str) else content
            Path(tmp, name).write_bytes(data)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": tmp}  # ABC's scratch goes with ours
        stdout, stderr, returncode = _run_child(json.dumps(list(commands)), tmp, env, timeout_s)
        log = stdout + stderr
        if returncode != 0 or "@@CGPHW-DONE" not in stdout:
            raise _failure(commands, log, returncode)
        files = {}
        for name in outputs:
            path = Path(tmp, name)
            if not path.is_file():
                raise YosysError(f"yosys finished but did not write {name}", log)
            files[name] = path.read_bytes()
        return YosysRun(log, files)


def _run_child(script: str, cwd: str, env: dict, timeout_s: float) -> tuple[str, str, int]:
    """The child's stdout, stderr and exit status. It leads a process group of its own; unless
    it ends cleanly (a timeout, an interrupt, a crash), the whole group is killed and reaped."""
    with subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=cwd, env=env, start_new_session=True) as proc:
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            stdout, stderr = proc.communicate(script, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            raise YosysError(f"yosys did not finish within {timeout_s:.0f} s") from None
        except BaseException:  # Ctrl-C, SIGTERM (see _sigterm_unwinds), anything else
            _kill_group(proc)
            proc.wait()  # not communicate(): a grandchild that left the group could hold the pipes open
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        if proc.returncode != 0:  # the child died, perhaps with yosys-abc still running under it
            _kill_group(proc)
        return stdout, stderr, proc.returncode


# Children running now, from any thread: ending_children() kills them when its caller stops.
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (only signals it: the thread that started it reaps it)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # no process groups (Windows): the child alone
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass  # the group has ended already


@contextmanager
def ending_children():
    """Around code whose threads call ``run_yosys``: Ctrl-C, SIGTERM or an error here kills every
    Yosys child still running (their groups too), so those threads return at once with a
    YosysError instead of synthesising on, unseen, after the caller gave up."""
    with _sigterm_unwinds():
        try:
            yield
        except BaseException:
            with _LIVE_LOCK:
                live = list(_LIVE)
            for proc in live:
                _kill_group(proc)
            raise


class _Terminated(BaseException):
    """SIGTERM arrived while a child ran: unwind (kill the child's group, remove the scratch
    directory), then let the signal do what it would have done."""


@contextmanager
def _sigterm_unwinds():
    """Turn a default (fatal) SIGTERM into an exception for the duration, then die of it as before.
    Only the main thread can set handlers; a handler someone else installed is left alone (it
    decides what SIGTERM means: if it raises, the child is killed like on Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def unwind(_signum, _frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)  # ends the process, as SIGTERM would have
        raise SystemExit(128 + signal.SIGTERM) from None  # only if SIGTERM is blocked
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _failure(commands: Sequence[str], log: str, returncode: int) -> YosysError:
    started = re.findall(r"@@CGPHW-COMMAND (\d+)", log)
    command = commands[int(started[-1])] if started else ""
    if "No module named 'pyosys'" in log:
        return YosysError("pyosys is not installed: pip install pyosys", log)
    errors = [line.strip() for line in log.splitlines() if line.strip().startswith("ERROR:")]
    reason = errors[-1][len("ERROR:"):].strip() if errors else f"exit status {returncode}"
    where = f" at `{command}`" if command else ""
    return YosysError(f"yosys failed{where}: {reason}", log, command)
