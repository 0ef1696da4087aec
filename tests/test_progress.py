"""Progress on long steps: a status line on stderr only when stderr is a terminal, never in
stdout or --json output; stages report through a callback instead of printing."""
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cgphw.progress import Progress, terminal_progress

CLI = [sys.executable, "-c", "from cgphw.cli import main; main()"]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_off_when_not_a_terminal_or_quiet():
    with terminal_progress(stream=io.StringIO()) as progress:
        assert progress is None
    with terminal_progress(quiet=True, stream=FakeTerminal()) as progress:
        assert progress is None


def test_progress_draws_on_a_terminal():
    screen = FakeTerminal()
    with terminal_progress(stream=screen) as progress:
        progress(Progress("counting things", 3, 8))
        progress(Progress("a step that cannot count"))
    drawn = screen.getvalue()
    assert "counting things" in drawn and "3/8" in drawn and "a step that cannot count" in drawn


def _run_with_stderr_on_a_terminal(args, cwd):
    """(exit code, stdout, what the terminal on stderr showed)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=terminal, cwd=cwd)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(controller)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


def test_model_eval_shows_progress_on_a_terminal_and_keeps_json_clean(tmp_path):
    code, out, shown = _run_with_stderr_on_a_terminal(["model", "eval", "--limit", "600", "--json"], tmp_path)
    assert code == 0 and json.loads(out)["images"] == 600  # stdout: the document and nothing else
    assert "loading the model" in shown and "accuracy" in shown
    piped = subprocess.run(CLI + ["model", "eval", "--limit", "600", "--json"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
    assert piped.returncode == 0 and json.loads(piped.stdout)["images"] == 600
    assert "loading the model" not in piped.stderr and "\x1b[" not in piped.stderr  # quiet off a terminal


def _recorder():
    seen = []
    return seen, lambda event: seen.append((event.what, event.done, event.total))


def test_verify_gates_reports_every_input_pair():
    from cgphw.verification.conformance import check_amaranth

    seen, progress = _recorder()
    assert check_amaranth(ids=(1, 8), progress=progress).passed
    counts = [(d, t) for _, d, t in seen]
    assert counts[0] == (0, 65536) and counts[-1] == (65536, 65536)


@pytest.mark.yosys
def test_calibration_reports_each_synthesised_operator():
    from cgphw.hw.calibrate import REFERENCES, calibrate
    from cgphw.hw.cells import load_cells

    seen, progress = _recorder()
    calibrate((8,), load_cells(), evaluations=64, progress=progress)
    jobs = 1 + len(REFERENCES)
    counted = [(d, t) for w, d, t in seen if w == "synthesising with Yosys"]
    assert counted[0] == (0, jobs) and counted[-1] == (jobs, jobs)


def test_training_reports_its_steps():
    from cgphw.nn.data import load_split
    from cgphw.nn.train import TrainConfig, train

    seen, progress = _recorder()
    cfg = TrainConfig(epochs=2, qat_epochs=1, max_steps=2, batch=16, seed=1)
    train(cfg, load_split("mnist5k", "train").head(64), load_split("mnist5k", "validation").head(16), progress=progress)
    assert [(d, t) for w, d, t in seen if w == "float training"] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [(d, t) for w, d, t in seen if w == "quantization-aware training"][-1] == (2, 2)


@pytest.mark.parametrize("what", ["sign"])
def test_sensitivity_reports_each_row(what):
    from cgphw.nn.accuracy import sensitivity
    from cgphw.nn.data import load_split
    from cgphw.nn.model import load_model

    seen, progress = _recorder()
    rows = sensitivity(load_model(), load_split("mnist5k", "test").head(20), [1, 2], ["conv1"], what, 0, progress)
    counted = [(d, t) for w, d, t in seen if w == f"perturbed layers ({what})"]
    assert len(rows) == 2 and counted == [(0, 2), (1, 2), (2, 2)]


@pytest.mark.parametrize("sim", ["amaranth", pytest.param("icarus", marks=pytest.mark.simulator)])
def test_verify_reports_its_build_and_simulation(tmp_path, sim):
    from cgphw.verification.backends import missing_reason
    from cgphw.verification.verdict import verify

    if missing_reason(sim):
        pytest.skip(missing_reason(sim))
    seen, progress = _recorder()
    design = Path(__file__).resolve().parents[1] / "rtl_out" / "lenet5_core_ring"
    assert verify(design, sim=sim, n_random=10, workdir=tmp_path, progress=progress).ok
    steps = list(dict.fromkeys(w for w, _, _ in seen))
    if sim == "icarus":  # the cocotb runner: Verilator builds report the same way
        assert steps[-2:] == ["building lenet5_core_ring.v with icarus", "simulating on icarus"]
    else:
        done, total = [(d, t) for w, d, t in seen if w == steps[-1]][-1]
        assert steps[-1] == "simulating on amaranth (cycles)" and done == total > 0
