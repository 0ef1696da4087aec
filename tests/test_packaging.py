"""A real (non-editable) install: the wheel is built, installed into a fresh venv and used
from a folder outside the repository. The venv borrows this environment's dependencies
(torch, numba, ...) through a .pth file so the test needs no network, but cgphw itself comes
from the wheel: the shipped model, the MNIST images and the gate costs are package data."""
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "cgphw", "models")


def _run(cmd, cwd, check=True):
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(cgphw executable of a fresh venv holding only the wheel, its site-packages, a work folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a clean copy: the build writes nothing into the repository
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")} \
            if (REPO / name).is_dir() else {}
        copy(REPO / name, src / name, **kwargs)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src],
         tmp)
    wheel = next((tmp / "dist").glob("cgphw-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel], tmp)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip())
    (site / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "work"  # not the repository
    work.mkdir()
    where = _run([python, "-c", "import cgphw; print(cgphw.__file__)"], work).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not the source tree
    return venv / "bin" / "cgphw", site, work


def test_the_listed_packages_are_every_package_of_the_source_tree():
    import tomllib

    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "cgphw").rglob("__init__.py"))
    assert sorted(listed) == sorted(found + ["cgphw.models"])


@pytest.mark.slow
def test_installed_wheel_runs_the_network_flow_from_another_folder(wheel_venv):
    cgphw, site, work = wheel_venv
    acc = json.loads(_run([cgphw, "model", "eval", "--json"], work).stdout)
    assert acc["top1"] == 0.987 and acc["images"] == 1000  # the shipped model on the built-in images
    assert acc["model"] == "cgphw:models/lenet5_mnist5k.pt"
    layers = json.loads(_run([cgphw, "model", "layers", "--json"], work).stdout)
    assert [r["name"] for r in layers] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    mobilenet = site / "cgphw" / "models" / "mobilenetv2"
    assert (mobilenet / "tf2_mobilenet_v2_1.0_224_ptq.tflite").stat().st_size == 4_070_174
    assert len(list((mobilenet / "images").glob("*.*"))) == 7 and (mobilenet / "LICENSE").is_file()
    photos = json.loads(_run([cgphw, "model", "eval", "--model", "mobilenetv2", "--json"], work).stdout)
    assert photos["top1"] == 1.0 and photos["images"] == 7
    assert photos["model"] == "cgphw:models/mobilenetv2/tf2_mobilenet_v2_1.0_224_ptq.tflite"
    sens = json.loads(_run([cgphw, "model", "sensitivity", "--layers", "conv1", "--k", "1", "--limit", "50",
                            "--json"], work).stdout)
    assert len(sens["rows"]) == 1
    task = json.loads(_run([cgphw, "task", "make", "--selector", "core-ring", "--filters", "0", "--out", "t.npz",
                            "--json"], work).stdout)
    assert (work / "t.npz").is_file() and task["inputs"] == 9 and task["outputs"] == 16
    _run([cgphw, "evolve", "t.npz", "--rows", "3", "--cols", "3", "--generations", "300", "--seed", "1",
          "--out", "run", "--quiet"], work)
    ins = json.loads(_run([cgphw, "insert", "run", "--limit", "200", "--json"], work).stdout)
    assert ins["layers"] == ["conv1"] and ins["layer_weights"] == {"conv1": 150}
    assert ins["before"]["images"] == 200 and ins["model"] == "cgphw:models/lenet5_mnist5k.pt"


@pytest.mark.slow
def test_installed_wheel_calibrates_into_the_working_folder(wheel_venv):
    cgphw, site, work = wheel_venv
    packaged = site / "cgphw" / "data" / "gate_costs.json"
    before = packaged.read_bytes()
    args = [cgphw, "calibrate", "--function-set", "and", "--evaluations", "64", "--json"]
    doc = json.loads(_run(args, work).stdout)
    assert json.loads((work / "gate_costs.json").read_text()) == doc and packaged.read_bytes() == before
    again = _run(args, work, check=False)
    assert again.returncode == 2 and "exists: pass --force" in again.stderr


@pytest.mark.slow
def test_a_wheel_install_missing_its_model_says_to_reinstall(wheel_venv):
    cgphw, site, work = wheel_venv
    model = site / "cgphw" / "models" / "lenet5_mnist5k.pt"
    saved = model.read_bytes()
    model.unlink()
    try:
        res = _run([cgphw, "model", "eval"], work, check=False)
    finally:
        model.write_bytes(saved)
    err = res.stderr.strip()
    assert res.returncode == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert "reinstall cgphw" in err and "--model" in err and "model train" not in err
