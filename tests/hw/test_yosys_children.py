"""A synthesis that times out or is interrupted ends everything it started: Yosys' child
processes (yosys-abc, here a stand-in started with Yosys' `!` command) and its scratch files."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from cgphw.hw.yosys import YosysError, ending_children, run_yosys

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")


def probe() -> tuple[str, str]:
    """A Yosys command that starts a long-running grandchild (as `abc` starts yosys-abc), and its marker."""
    marker = f"cgphw-probe-{uuid.uuid4().hex}"
    return f'!{sys.executable} -c "import time; time.sleep(120)" {marker}', marker


def running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes() \
                    and (entry / "stat").read_text().split(")")[-1].split()[0] != "Z":
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def wait_for(marker: str, present: bool, seconds: float = 60.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if bool(running(marker)) == present:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.yosys
def test_a_timeout_ends_the_whole_process_group(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    command, marker = probe()
    with pytest.raises(YosysError, match="did not finish within 2 s"):
        run_yosys([command], timeout_s=2)
    assert wait_for(marker, present=False, seconds=5), "yosys' child outlived the timeout"
    assert list(tmp_path.iterdir()) == []  # the scratch directory (ABC's TMPDIR too) is gone


@pytest.mark.yosys
def test_ctrl_c_ends_the_whole_process_group():
    command, marker = probe()
    interrupt = threading.Thread(target=lambda: wait_for(marker, present=True) and os.kill(os.getpid(), signal.SIGINT))
    # Python's own Ctrl-C handler: an imported library may have replaced it (dask_jobqueue.runner: sys.exit)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupt.start()
        with pytest.raises(KeyboardInterrupt):
            run_yosys([command], timeout_s=120)
        interrupt.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert wait_for(marker, present=False, seconds=5), "yosys' child outlived Ctrl-C"


@pytest.mark.yosys
def test_sigterm_ends_the_whole_process_group_then_the_process(tmp_path):
    command, marker = probe()
    script = "import os\nfrom cgphw.hw.yosys import run_yosys\nrun_yosys([os.environ['PROBE']], timeout_s=120)\n" \
             "print('returned')"  # the command in the environment: the marker only in the probe's command line
    env = {**os.environ, "TMPDIR": str(tmp_path), "PROBE": command}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_for(marker, present=True), "the probe never started"
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM and "returned" not in out, err  # SIGTERM still ends it
    assert wait_for(marker, present=False, seconds=5), "yosys' child outlived SIGTERM"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.yosys
def test_ending_children_stops_yosys_running_in_worker_threads():
    """Ctrl-C reaches only the main thread: ending_children() kills the children of the others."""
    command, marker = probe()
    failed = []
    worker = threading.Thread(target=lambda: pytest.raises(YosysError, run_yosys, [command], timeout_s=120)
                              and failed.append(True))
    with pytest.raises(KeyboardInterrupt), ending_children():
        worker.start()
        assert wait_for(marker, present=True), "the probe never started"
        raise KeyboardInterrupt
    worker.join(timeout=30)
    assert not worker.is_alive() and failed == [True]  # the thread returned with a YosysError
    assert wait_for(marker, present=False, seconds=5), "yosys' child outlived the interrupt"
