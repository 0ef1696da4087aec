"""Every shipped experiment runs with its quick profile, through every stage, on the test
LocalCluster (MobileNetV2: the shipped TFLite network on its photos, out of the box; and
random torchvision-format weights on a tiny image folder)."""
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


@pytest.mark.yosys
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(shipped()))
def test_every_shipped_experiment_runs_its_quick_profile(name, tmp_path, dask_client, imagenet_env, monkeypatch):
    for key in imagenet_env:
        monkeypatch.delenv(key, raising=False)  # mobilenetv2.toml runs on what cgphw ships
    result = run_campaign(name, tmp_path / name, profile="quick", client=dask_client, show_progress=False)
    assert result.ok and result.ran == result.runs >= 1
    table = result.table()
    assert len(table) == result.runs
    for _, row in table.iterrows():
        assert row["verified"] == "pass" and row["synth_ok"], row["run"]  # hardware built, synthesised, simulated
        network = not row["selector"].startswith("values:")
        assert pd.isna(row["top1_after"]) != network  # inserted where the weights live


@pytest.mark.yosys
@pytest.mark.slow
def test_mobilenetv2_quick_profile_on_torchvision_weights(tmp_path, dask_client, imagenet_env, monkeypatch):
    monkeypatch.setenv("CGPHW_IMAGENET_VAL", imagenet_env["CGPHW_IMAGENET_VAL"])
    sets = [f"model.torchvision={imagenet_env['CGPHW_MOBILENETV2']}",
            f"model.calibration={imagenet_env['CGPHW_IMAGENET_CAL']}", "task.layer=features.0.0",
            "model.calibration_images=6"]
    result = run_campaign("mobilenetv2", tmp_path / "tv", profile="quick", overrides=sets, client=dask_client,
                          show_progress=False)
    assert result.ok and result.ran == result.runs == 1
    row = result.table().iloc[0]
    assert row["layer"] == "features.0.0" and row["accuracy_images"] == 6 and not pd.isna(row["top1_after"])
