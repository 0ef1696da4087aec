"""Fixtures of the verification tests (helpers live in sim_fixtures.py)."""
from __future__ import annotations

import pytest
from sim_fixtures import export_run, make_run_dir


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path)


@pytest.fixture
def rtl_comb(run_dir, tmp_path):
    return export_run(run_dir, tmp_path / "rtl")


@pytest.fixture
def rtl_pipe(run_dir, tmp_path):
    """Pipelined every logic level: latency 3 for this depth-3 circuit."""
    return export_run(run_dir, tmp_path / "rtl_p1", pipeline=1)
