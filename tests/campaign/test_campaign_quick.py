"""Every shipped experiment runs with its quick profile, through every stage, on the test
LocalCluster (MobileNetV2 on random torchvision-format weights and a tiny image folder)."""
from pathlib import Path

import pandas as pd
import pytest

from cgphw.campaign.experiment import shipped
from cgphw.campaign.runner import run_campaign


@pytest.fixture(scope="module")
def imagenet_env(tmp_path_factory):
    """What mobilenetv2.toml reads from the environment: weights and image folders."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("imagenet_fixtures", Path(__file__).parents[1] / "nn" /
                                                  "imagenet_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    float_state, make_folder = fixtures.float_state, fixtures.make_folder

    root = tmp_path_factory.mktemp("imagenet")
    torch.save(float_state(), root / "mobilenet_v2.pth")
    folder = make_folder(root / "val")
    return {"CGPHW_MOBILENETV2": str(root / "mobilenet_v2.pth"), "CGPHW_IMAGENET_VAL": str(folder),
            "CGPHW_IMAGENET_CAL": str(folder)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(shipped()))
def test_every_shipped_experiment_runs_its_quick_profile(name, tmp_path, dask_client, imagenet_env, monkeypatch):
    for key, value in imagenet_env.items():
        monkeypatch.setenv(key, value)
    result = run_campaign(name, tmp_path / name, profile="quick", client=dask_client, show_progress=False)
    assert result.complete and result.ran == result.runs >= 1
    table = result.table()
    assert len(table) == result.runs
    for _, row in table.iterrows():
        assert row["verified"] == "pass" and row["synth_ok"], row["run"]  # hardware built, synthesised, simulated
        network = not row["selector"].startswith("values:")
        assert pd.isna(row["top1_after"]) != network  # inserted where the weights live
