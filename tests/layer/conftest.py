"""Fixtures of the layer tests: the committed conv1 example, and a run made from it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from layer_fixtures import EXAMPLE


@pytest.fixture
def example_copy(tmp_path) -> Path:
    """A copy of the committed export (tests may edit it)."""
    target = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> Path:
    """A run directory holding the committed example's circuit and task."""
    from cgphw.cgp.search import record_run
    from cgphw.hw.manifest import load_manifest

    m = load_manifest(EXAMPLE)
    run = tmp_path_factory.mktemp("runs") / "conv1_ring"
    record_run(m.genome, m.task, out=run, threshold=1.0)
    return run



@pytest.fixture(scope="session")
def mobilenet_run(tmp_path_factory) -> Path:
    """A run evolving MobileNetV2's depthwise dw43 (960 channels, 7 x 7): each channel's 9 weights
    from its first 3 (`task make --selector rows:3`), 300 generations on a 1 x 16 grid (~1 s)."""
    from cgphw import make_task
    from cgphw.cgp.search import evolve
    from cgphw.cgp.settings import Limits, SearchSettings

    out = tmp_path_factory.mktemp("mobilenet") / "dw43_rows"
    task = make_task("mobilenetv2", "rows:3", layer="dw43")
    evolve(task, SearchSettings(rows=1, cols=16), Limits(generations=300), seed=1, out=out, workers=1)
    return out
