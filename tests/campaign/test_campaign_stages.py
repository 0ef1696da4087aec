"""The campaign's door to the other stages (stages.py): search operators, the accuracy
baseline measured once per model and images, compiling once."""
import json
import time

import pytest

import cgphw
from cgphw.campaign import stages

SEARCH = {"rows": 5, "cols": 5, "levels_back": 5, "lambda": 4, "mutation": "uniform", "mutation_max": 0.15,
          "adaptive": True, "start": "auto", "function_set": "seed27", "value_bank": False, "threshold": 0.0,
          "seed": 3, "generations": 300}


@pytest.fixture(scope="module")
def kernel():
    return stages.network_task(stages.load_model("lenet5"), "core-ring:conv1", None, [0])


def test_operator_settings_reach_the_search_and_decide_whether_a_run_is_continued(tmp_path, kernel):
    stages.evolve(kernel, SEARCH, tmp_path / "evolve", 10.0)
    config = stages.search_state(tmp_path / "evolve")["config"]
    assert (config.mutation, config.adaptive, config.start, config.seed) == ("uniform", True, "random", 3)
    assert stages.search_settings_match(config, SEARCH, kernel)
    assert not stages.search_settings_match(config, {**SEARCH, "mutation": "active"}, kernel)
    assert not stages.search_settings_match(config, {**SEARCH, "start": "constructive"}, kernel)
    with pytest.raises(cgphw.UserError, match="no rate to adapt"):
        stages.check_search(kernel, {**SEARCH, "mutation": "single"})
    # search.workers: that many threads, the same circuit bit for bit
    stages.evolve(kernel, SEARCH, tmp_path / "two", 10.0, workers=2)
    one, two = cgphw.load_run(tmp_path / "evolve"), cgphw.load_run(tmp_path / "two")
    assert (one.metrics.workers, two.metrics.workers) == (1, 2) and one.genome.digest() == two.genome.digest()
    # the knobs a campaign could not set before reach the search, and decide whether a run is continued
    front = {**SEARCH, "objective": "pareto", "pareto_size": 16, "rotate_every": 50}
    stages.evolve(kernel, front, tmp_path / "front")
    config = stages.search_state(tmp_path / "front")["config"]
    assert (config.objective, config.pareto_size, config.rotate_every, config.checkpoint_every) == \
        ("pareto", 16, 50, 30.0)
    assert stages.search_settings_match(config, front, kernel)
    assert not stages.search_settings_match(config, {**front, "rotate_every": 60}, kernel)
    assert not stages.search_settings_match(one.config, front, kernel)


def test_the_baseline_is_measured_once_per_model_and_images(tmp_path, monkeypatch):
    from cgphw.nn import accuracy

    calls = []
    real = accuracy.measure
    monkeypatch.setattr(accuracy, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    sha = stages.file_digest(stages.model_file("lenet5"))
    first = stages.baseline(tmp_path, "lenet5", sha, "mnist5k", "test", 100)
    assert stages.baseline(tmp_path, "lenet5", sha, "mnist5k", "test", 100) == first and len(calls) == 1
    assert first["images"] == 100 and first["source"] == "mnist5k:test[:100]"
    other = stages.baseline(tmp_path, "lenet5", sha, "mnist5k", "test", 50)  # other images: its own file
    assert other["images"] == 50 and len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    for path in tmp_path.glob("*.json"):  # a damaged or edited file is measured again, never believed
        doc = json.loads(path.read_text())
        doc["accuracy"]["top1"] = "high"
        path.write_text(json.dumps(doc))
    assert stages.baseline(tmp_path, "lenet5", sha, "mnist5k", "test", 100) == first and len(calls) == 3
    # a data folder whose images change under the same name is measured again
    from cgphw.nn.data import IDX_FILES, load_split, write_idx

    mnist = tmp_path / "idx"
    mnist.mkdir()
    split = load_split("mnist5k", "test").head(30)
    pixels = (split.images[:, 0] * 255).round().astype("uint8")
    write_idx(mnist / IDX_FILES[("t10k", "labels")], split.labels)
    write_idx(mnist / IDX_FILES[("t10k", "images")], pixels)
    own = stages.baseline(tmp_path / "b", "lenet5", sha, str(mnist), "test", None)
    assert stages.baseline(tmp_path / "b", "lenet5", sha, str(mnist), "test", None) == own and len(calls) == 4
    write_idx(mnist / IDX_FILES[("t10k", "images")], 255 - pixels)
    assert stages.baseline(tmp_path / "b", "lenet5", sha, str(mnist), "test", None) != own and len(calls) == 5


def test_compile_search_compiles_only_when_the_kernels_are_not_ready(monkeypatch, kernel):
    from cgphw.cgp import jit

    stages.compile_search()  # compiled (or loaded) in this process from now on
    assert stages.compile_search() is None
    monkeypatch.setattr(jit, "kernels_ready", lambda: False)
    start = time.monotonic()
    spent = stages.compile_search()  # the seconds it spent, measured within this call
    assert isinstance(spent, float) and 0.0 < spent <= time.monotonic() - start
