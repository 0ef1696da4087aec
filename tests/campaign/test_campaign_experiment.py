"""Experiment files: validation (errors name the file and the key), profiles, overrides,
sweeps, and every shipped experiment."""
import pytest

from cgphw.campaign.experiment import load_experiment, shipped
from cgphw.campaign.runspec import RunSpec, expand
from cgphw.campaign.schema import STAGES, TABLES
from cgphw.errors import UserError

MODEL = {"path": "lenet5", "sha256": "0" * 64}
DATA = {"source": "mnist5k", "split": "test", "limit": None}
STUDY = ("single-filter", "grid-sizes", "reversed-filter", "zero-outer-ring", "single-channel", "layer-bypass",
         "no-input", "two-layer-shared", "mobilenetv2", "worst-case")


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text('format = "cgphw-experiment/1"\nname = "t"\n' + text)
    return path


BASE = '[task]\nselector = "core-ring:conv1"\n[search]\ngrid = "5x5"\ngenerations = 100\n'


def runs(path, profile="full", overrides=()):
    exp = load_experiment(path, profile, overrides=list(overrides))
    return expand(exp, MODEL, DATA, lambda: ["conv1", "conv2"])


def test_every_study_experiment_is_shipped_and_valid():
    found = shipped()
    assert set(STUDY) <= set(found)
    for name in ("single-filter", "single-channel", "layer-bypass", "no-input"):  # docs/results.md's side-by-side rows
        study = expand(load_experiment(name, "study"), MODEL, DATA)
        assert len({s.search["seed"] for s in study}) >= 3 and study[0].stages == STAGES
        assert all(s.search["mutation"] == "single" and s.search["start"] == "auto" for s in study)
    for name in found:
        quick = load_experiment(name, "quick")
        assert "quick" in quick.profiles and quick.name == name
        full = load_experiment(name, "full")
        assert len(expand(full, MODEL, DATA, lambda: ["features.0.0", "features.1.conv.0.0"])) >= \
            len(expand(quick, MODEL, DATA, lambda: ["features.0.0", "features.1.conv.0.0"]))


def test_sweeps_are_the_product_of_lists_tasks_first(tmp_path):
    path = write(tmp_path, '[task]\nselector = "core-ring:conv1"\nfilters = [[0], [1]]\n'
                           '[search]\ngrid = ["2x2", "5x5"]\nthreshold = [0, 1]\nseed = [1, 2, 3]\n'
                           'generations = 100\n')
    specs = runs(path)
    assert len(specs) == 2 * 2 * 2 * 3
    assert [s.task["filters"] for s in specs[:2]] == [[0], [0]]
    assert {(s.search["rows"], s.search["cols"], s.search["levels_back"]) for s in specs} == {(2, 2, 2), (5, 5, 5)}
    assert len({s.run_id for s in specs}) == len(specs)
    # a plain list of filters is one value, not a sweep
    assert len(runs(write(tmp_path, BASE.replace('conv1"', 'conv1"\nfilters = [0, 1]')))) == 1


def test_profile_and_overrides_change_the_runs(tmp_path):
    path = write(tmp_path, BASE + '[profiles.quick.search]\nseed = [7, 8]\ngenerations = 5\n')
    full, quick = runs(path), runs(path, "quick")
    assert [s.search["seed"] for s in full] == [0]  # the CLI's default seed
    assert [(s.search["seed"], s.search["generations"]) for s in quick] == [(7, 5), (8, 5)]
    changed = runs(path, "quick", ["search.seed=[4,5,6]", "task.layer=conv2"])
    assert [s.search["seed"] for s in changed] == [4, 5, 6] and changed[0].task["layer"] == "conv2"
    assert full[0].digest != quick[0].digest  # another setting, another run folder


def test_per_task_search_settings_and_layer_all(tmp_path):
    path = write(tmp_path, '[[task]]\nselector = "core-ring:conv1"\n[[task]]\nselector = "first-n:4"\n'
                           'layer = "all"\n[task.search]\ngrid = "3x3"\n[search]\ngrid = "5x5"\ngenerations = 9\n')
    specs = runs(path)
    assert [(s.task.get("layer"), s.grid) for s in specs] == [(None, "5x5"), ("conv1", "3x3"), ("conv2", "3x3")]


@pytest.mark.parametrize("text, message", [
    (BASE.replace('grid = "5x5"', 'grid = "5by5"'), 'search.grid must be rows x columns'),
    (BASE + 'sed = 3\n', "unknown key search.sed"),
    (BASE.replace("generations = 100", "generations = -1"), "search.generations must be from 1 to 1e+18, got -1"),
    (BASE.replace("generations = 100", 'threshold = "low"\ngenerations = 1'), "search.threshold must be a number"),
    (BASE.replace("generations = 100", ""), "stopping rule"),
    (BASE + "[verify]\nsimulator = 'modelsim'\n", "verify.simulator must be one of auto, icarus"),
    (BASE + "[profiles.quick.search]\nseeds = [1]\n", "profiles.quick: unknown key search.seeds"),
    (BASE.replace('selector = "core-ring:conv1"', 'filters = [0]'), "task.selector is required"),
    (BASE + "[data]\nsplit = 'train'\n", "data.split must be one of test, validation"),
    (BASE + 'mutation = "twice"\n', "search.mutation must be one of single, active, uniform"),
    (BASE + 'start = ["auto", "greedy"]\n', "search.start must be one of auto, random, constructive"),
    (BASE + 'adaptive = "yes"\n', "search.adaptive must be true or false"),
    (BASE + 'workers = 0\n', "search.workers must be"),
    ("colour = 1\n" + BASE, "unknown key 'colour'"),
    # the CLI's caps, at load time (issue 21: they failed on a Dask worker, or were ignored)
    (BASE.replace("generations = 100", "generations = 1" + "0" * 30), "search.generations must be from 1 to 1e+18"),
    (BASE.replace("generations = 100", "generations = 1e30"), "search.generations must be a whole number"),
    (BASE.replace("generations = 100", "time_budget = 0"), "search.time_budget must be positive, got 0"),
    (BASE + "workers = 1000\n", "search.workers must be from 1 to 256"),
    (BASE + f"seed = {2**63}\n", "search.seed must be from 0 to 9,223,372,036,854,775,807"),
    (BASE + "lambda = 1001\n", "search.lambda must be from 1 to 1,000"),
    (BASE + "mutation_max = 0\n", "search.mutation_max must be in (0, 1]"),
    (BASE.replace('"5x5"', '"1000x1001"'), "at most 1,000,000 are supported"),
    (BASE + "[verify]\nvectors = 1_000_000_000\n", "verify.vectors must be at most 1,000,000"),
    (BASE + "[verify]\nseed = -1\n", "verify.seed must be at least 0"),
    (BASE + "[synth]\nevaluations = 1_000_000_000_000\n", "synth.evaluations must be at most 1,000,000"),
    # the knobs a campaign could not set before, checked as the CLI checks them
    (BASE + 'objective = "pareto"\npareto_size = 0\n', "it needs an archive (search.pareto_size > 0)"),
    (BASE + "pareto_size = 8\n", "16 to 1000 circuits (search.pareto_size)"),
    (BASE + "rotate_every = 0\n", "search.rotate_every must be from 1 to 1e+09, got 0"),
    # stages that would be skipped, or run unnamed
    ('stages = ["evolve", "synth"]\n' + BASE, "stages lists 'synth', which needs 'export'"),
    ('stages = ["export", "verify"]\n' + BASE, "stages must list 'evolve'"),
    # sweeps too large to expand, and nesting that would exhaust the parser
    (BASE + "seed = [" + ", ".join(map(str, range(1000))) + "]\nthreshold = [" + ", ".join(map(str, range(101)))
     + "]\n", "the sweeps expand to more than 100,000 runs (task: search.threshold 101 x search.seed 1,000)"),
    ("deep = " + "[" * 10_000 + "]" * 10_000 + "\n" + BASE, "nests tables or lists deeper than 64 levels"),
    ("deep = " + "[" * 70 + "]" * 70 + "\n" + BASE, "nests tables or lists deeper than 64 levels"),
    (BASE.replace("[task]", "[task]\nfilters = [[0], []]\nlabel = '{kernel}'"), "task.label"),
])
def test_bad_experiment_files_name_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        runs(path)
    assert message in str(err.value)
    assert "exp.toml" in str(err.value) or "label" in message


def test_bad_toml_and_unknown_profile_and_override(tmp_path):
    with pytest.raises(UserError, match="not valid TOML"):
        runs(write(tmp_path, "[task\n"))
    with pytest.raises(UserError, match="has no profile 'fast'"):
        runs(write(tmp_path, BASE), "fast")
    with pytest.raises(UserError, match="must look like table.key=value"):
        runs(write(tmp_path, BASE), overrides=["seed"])
    with pytest.raises(UserError, match="'serch' is not a table"):
        runs(write(tmp_path, BASE), overrides=["serch.seed=1"])
    with pytest.raises(UserError, match="neither a file nor a shipped experiment"):
        load_experiment("no-such-experiment")


def test_paths_resolve_beside_the_file_and_from_the_environment(tmp_path, monkeypatch):
    from cgphw.campaign.experiment import environment_path

    exp = load_experiment(write(tmp_path, BASE + "[model]\npath = 'm/net.pt'\n"))
    assert exp.table("model")["path"] == str(tmp_path / "m" / "net.pt")
    monkeypatch.delenv("CGPHW_TEST_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="CGPHW_TEST_WEIGHTS, which is not set"):
        environment_path("$CGPHW_TEST_WEIGHTS", "model.torchvision")
    monkeypatch.setenv("CGPHW_TEST_WEIGHTS", str(tmp_path / "w.pth"))
    assert environment_path("$CGPHW_TEST_WEIGHTS", "model.torchvision") == str(tmp_path / "w.pth")


def test_search_operators_are_settings_and_sweeps():
    from cgphw.cgp.settings import MUTATIONS, STARTS

    assert TABLES["search"]["mutation"].choices == MUTATIONS and TABLES["search"]["start"].choices == ("auto", *STARTS)


def test_operator_sweeps_and_the_identity_of_earlier_runs(tmp_path):
    specs = runs(write(tmp_path, BASE + 'mutation = ["single", "uniform"]\n')) + \
        runs(write(tmp_path, BASE + 'mutation = "uniform"\nadaptive = [true]\n'))
    assert [(s.search["mutation"], s.search["adaptive"]) for s in specs] == \
        [("single", False), ("uniform", False), ("uniform", True)]
    assert len({s.digest for s in specs}) == 3
    with pytest.raises(UserError, match="exp.toml: .*no rate to adapt"):  # a sweep's impossible run: refused now
        runs(write(tmp_path, BASE + 'mutation = ["single", "uniform"]\nadaptive = [false, true]\n'))
    # a run at the operators every campaign used before they were settings keeps its hash,
    # so a campaign started then continues; its spec.json (without them) reads back the same
    default = specs[0]
    doc = default.to_json()
    doc["search"] = {k: v for k, v in doc["search"].items() if k not in ("mutation", "adaptive", "start")}
    assert RunSpec.from_json(doc) == default and "mutation" not in default.identity()["search"]
    assert RunSpec.from_json(specs[2].to_json()).search["mutation"] == "uniform"


def test_a_campaign_sets_every_search_knob_and_older_runs_keep_their_identity(tmp_path):
    default, = runs(write(tmp_path, BASE))
    specs = runs(write(tmp_path, BASE + 'objective = ["lexicographic", "pareto"]\npareto_size = [64, 16]\n'
                                        'rotate_every = 500\n'))
    assert [(s.search["objective"], s.search["pareto_size"], s.search["rotate_every"]) for s in specs] == \
        [("lexicographic", 64, 500), ("lexicographic", 16, 500), ("pareto", 64, 500), ("pareto", 16, 500)]
    # at their defaults they are left out of the identity: a campaign started before keeps its runs
    assert "objective" not in default.identity()["search"] and default.search["pareto_size"] == 64
    same, = runs(write(tmp_path, BASE + 'objective = "lexicographic"\npareto_size = 64\nrotate_every = 1000\n'))
    assert same.digest == default.digest


def test_search_threads_per_run_size_the_local_cluster_but_not_the_run(tmp_path, monkeypatch):
    from cgphw.campaign import cluster

    one, = runs(write(tmp_path, BASE))
    four, = runs(write(tmp_path, BASE + "workers = 4\n"))
    assert (one.workers, four.workers) == (1, 4) and one.digest == four.digest  # same run, more threads
    assert RunSpec.from_json(four.to_json()).workers == 4
    assert load_experiment(write(tmp_path, BASE + "workers = 4\n")).threads_per_run == 4
    monkeypatch.setattr(cluster.os, "cpu_count", lambda: 8)
    settings = cluster.ClusterSettings()
    assert [cluster.local_workers(settings, k) for k in (1, 4, 16)] == [8, 2, 1]
    assert cluster.local_workers(cluster.ClusterSettings(workers=3), 4) == 3  # as set


def test_an_environment_setting_may_name_a_default(monkeypatch, tmp_path):
    from cgphw.campaign.experiment import environment_path

    monkeypatch.delenv("CGPHW_TEST_IMAGES", raising=False)
    assert environment_path("${CGPHW_TEST_IMAGES:-photos}", "data.source") == "photos"
    with pytest.raises(UserError, match="CGPHW_TEST_IMAGES, which is not set"):
        environment_path("$CGPHW_TEST_IMAGES", "data.source")
    monkeypatch.setenv("CGPHW_TEST_IMAGES", str(tmp_path))
    assert environment_path("${CGPHW_TEST_IMAGES:-photos}", "data.source") == str(tmp_path.resolve())
    study = expand(load_experiment("mobilenetv2", "study"), {"path": "mobilenetv2", "sha256": "0" * 64}, DATA,
                   lambda: [f"layer{i}" for i in range(53)])
    assert len(study) == 53 * 4 and {s.search["threshold"] for s in study} == {0, 1, 5, 11}
