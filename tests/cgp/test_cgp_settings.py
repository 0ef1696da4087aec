"""SearchSettings and Limits, the one place a search knob is defined, defaulted and checked
(issue 20): the CLI, the Python API and a campaign build the same settings from the same
inputs, every knob reaches all three, config.json keeps its format, and no front end restates
a default."""
import dataclasses
import json
import re
from pathlib import Path

import pytest

import cgphw
from cgphw.campaign.experiment import load_experiment
from cgphw.campaign.runspec import expand
from cgphw.campaign.schema import TABLES, search_settings
from cgphw.cgp.settings import DEFAULT_GENERATIONS, Limits, SearchSettings, knobs
from cgphw.commands.evolve import cli_settings
from cgphw.errors import UserError
from cgphw.task import example_task

MODEL = {"path": "lenet5", "sha256": "0" * 64}
DATA = {"source": "mnist5k", "split": "test", "limit": None}
KNOBS = knobs(SearchSettings) + knobs(Limits)

# every knob away from its default: a knob a front end drops would show as a difference
API = (SearchSettings(6, 4, 3, lam=5, mutation="active", mutation_max=0.2, adaptive=True, start="random",
                      threshold=1.5, objective="pareto", pareto_size=20, rotate_every=300, value_bank=True,
                      function_set="add,sub,shr1", checkpoint_every=2.0),
       Limits(generations=1234, time_budget=60.0, patience=77), 9)
CLI = ["--rows", "6", "--cols", "4", "--levels-back", "3", "--lambda", "5", "--mutation", "active", "--mutation-max",
       "0.2", "--adaptive", "--start", "random", "--threshold", "1.5", "--objective", "pareto", "--pareto-size", "20",
       "--rotate-every", "300", "--value-bank", "--function-set", "add,sub,shr1", "--checkpoint-every", "2",
       "--generations", "1234", "--time-budget", "60", "--patience", "77", "--seed", "9"]
CAMPAIGN = """grid = "6x4"\nlevels_back = 3\nlambda = 5\nmutation = "active"\nmutation_max = 0.2\nadaptive = true
start = "random"\nthreshold = 1.5\nobjective = "pareto"\npareto_size = 20\nrotate_every = 300\nvalue_bank = true
function_set = "add,sub,shr1"\ncheckpoint_every = 2\ngenerations = 1234\ntime_budget = 60\npatience = 77\nseed = 9
"""


def from_cli(args):
    from cgphw.cli import _register_all, cli

    _register_all()
    params = cli.commands["evolve"].make_context("evolve", ["task.npz", *args]).params
    return (*cli_settings(params), params["seed"])


def from_campaign(tmp_path, search):
    path = tmp_path / "exp.toml"
    path.write_text(f'format = "cgphw-experiment/1"\nname = "t"\n[task]\nselector = "core-ring:conv1"\n'
                    f"[search]\n{search}")
    spec, = expand(load_experiment(path), MODEL, DATA)
    return search_settings(spec.search, spec.extra.get("checkpoint_every"))


def fields(built):
    settings, limits, seed = built
    return dataclasses.astuple(settings), dataclasses.astuple(limits), seed  # checkpoint_every too


def test_cli_python_and_campaign_build_the_same_settings(tmp_path):
    for f in dataclasses.fields(SearchSettings) + dataclasses.fields(Limits):
        if f.default is not dataclasses.MISSING:
            assert getattr(API[0] if f.name in SearchSettings.__dataclass_fields__ else API[1], f.name) != f.default
    assert fields(from_cli(CLI)) == fields(API) == fields(from_campaign(tmp_path, CAMPAIGN))
    # and the defaults: one set of them (a campaign's seed was 1 and its checkpoint interval 10 s)
    defaults = (SearchSettings(5, 5), Limits(), 0)
    assert fields(from_cli(["--rows", "5", "--cols", "5"])) == fields(defaults)
    assert fields(from_campaign(tmp_path, f'grid = "5x5"\ngenerations = {DEFAULT_GENERATIONS}\n')) == fields(defaults)
    assert defaults[1].generations == DEFAULT_GENERATIONS and defaults[0].checkpoint_every == 30.0


def test_every_knob_is_an_option_and_a_campaign_key():
    from cgphw.cli import _register_all, cli

    _register_all()
    options = {p.name for p in cli.commands["evolve"].params}
    assert {s.attr for s in KNOBS} <= options
    assert {s.name for s in KNOBS} - {"rows", "cols"} | {"grid", "seed", "workers"} == set(TABLES["search"])
    assert all(TABLES["search"][s.name].default == s.default for s in KNOBS if s.name not in ("rows", "cols"))


@pytest.mark.parametrize("name, python, message", [
    ("lambda", lambda: SearchSettings(5, 5, lam=0), "{key} must be from 1 to 1,000, got 0"),
    ("checkpoint_every", lambda: SearchSettings(5, 5, checkpoint_every=float("nan")),
     "{key} must be a number, got nan"),
    ("time_budget", lambda: Limits(time_budget=0), "{key} must be positive, got 0"),
    ("pareto_size", lambda: SearchSettings(5, 5, objective="pareto", pareto_size=0),
     "objective pareto searches for the Pareto front: it needs an archive ({key} > 0)"),
    ("seed", lambda: cgphw.evolve(example_task(), SearchSettings(5, 5), seed=2**63),
     "{key} must be from 0 to 9,223,372,036,854,775,807, got " + str(2**63))])
def test_each_front_end_names_the_knob_its_own_way(tmp_path, capsys, name, python, message):
    from cgphw.cli import main

    value = {"lambda": "0", "checkpoint_every": "nan", "time_budget": "0", "pareto_size": "0", "seed": str(2**63)}[name]
    extra = ["--objective", "pareto"] if name == "pareto_size" else []
    example_task().save(tmp_path / "t.npz")
    with pytest.raises(SystemExit) as exit_code:
        main(["evolve", str(tmp_path / "t.npz"), "--rows", "5", "--cols", "5", "--quiet", "--out", str(tmp_path / "r"),
              *extra, "--" + name.replace("_", "-"), value])
    assert exit_code.value.code == 2 and not (tmp_path / "r").exists()
    assert capsys.readouterr().err == "error: " + message.format(key="--" + name.replace("_", "-")) + "\n"
    with pytest.raises(UserError) as in_file:
        from_campaign(tmp_path, f'grid = "5x5"\ngenerations = 5\n{name} = {value}\n'
                      + ('objective = "pareto"\n' if extra else ""))
    assert str(in_file.value) == f"{tmp_path / 'exp.toml'}: " + message.format(key=f"search.{name}")
    with pytest.raises(UserError) as in_python:
        python()
    assert str(in_python.value) == message.format(key=name)


def test_config_json_is_built_from_the_settings_and_reads_back_into_them(tmp_path):
    settings, limits, seed = API[0], Limits(generations=5), 9
    cgphw.evolve(example_task(), settings, limits, seed=seed, out=tmp_path / "run", workers=1)
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert list(doc) == ["format", "run_id", "task", "costs", "rows", "cols", "levels_back", "lambda", "mutation_max",
                         "threshold", "value_bank", "function_set", "seed", "generations", "time_budget", "patience",
                         "checkpoint_every", "mutation", "adaptive", "start", "objective", "pareto_size",
                         "rotate_every"]  # the file format of cgphw-run-config/2, unchanged
    config = cgphw.load_run(tmp_path / "run").config
    assert config.settings == settings and config.limits == limits and config.seed == seed
    assert dataclasses.astuple(config.settings) == dataclasses.astuple(settings)
    # a config.json written before the operator and archive settings reads as those runs were
    for key in ("mutation", "adaptive", "start", "objective", "pareto_size", "rotate_every"):
        del doc[key]
    old = cgphw.RunConfig.from_json(doc)
    assert (old.mutation, old.start, old.pareto_size, old.settings.objective) == ("uniform", "random", 0,
                                                                                   "lexicographic")


# The front ends that restated the defaults before (issue 20); engine.py keeps the compiled
# loop's plain configuration (uniform mutation, no archive) for benches and kernel tests.
FRONT_ENDS = ("cgphw/commands/evolve.py", "cgphw/commands/demo.py", "cgphw/cgp/search.py", "cgphw/cgp/rundir.py",
              "cgphw/cgp/start.py", "cgphw/campaign/schema.py", "cgphw/campaign/stages.py",
              "cgphw/campaign/flow.py", "cgphw/campaign/runspec.py", "cgphw/campaign/experiment.py")


def restated(setting) -> re.Pattern | None:
    """A line that gives ``setting`` its default value: NAME = V, NAME: T = V, "NAME": V,
    Key("kind", V) after the name, --NAME ... default=V."""
    value = setting.default
    if value in (dataclasses.MISSING, None, False, 0):
        return None
    literal = (rf"[\"']{re.escape(value)}[\"']" if isinstance(value, str)
               else rf"(?:{value!r}|{value:g})" if isinstance(value, float) else rf"(?:{value}|{value:_})")
    names = "|".join({setting.attr, setting.name, setting.name.replace("_", "-")})
    return re.compile(rf"(?:\b(?:{names})\b[\"']?\s*(?::\s*[\w\[\]., |]+?)?\s*[=:,]\s*(?:Key\(\"\w+\",\s*)?"
                      rf"|--(?:{names})\b.*default=){literal}(?![\w.])")


def test_no_front_end_restates_a_search_default():
    root = Path(cgphw.__file__).parent.parent
    patterns = [p for p in map(restated, KNOBS) if p is not None]
    found = []
    for name in FRONT_ENDS:
        text = (root / name).read_text()
        # facts of files already written, not defaults: what a config.json written before a setting
        # existed means (rundir.LEGACY), what campaigns ran before a key existed (IDENTITY_SINCE)
        text = re.sub(r"\n(?:LEGACY|IDENTITY_SINCE)\b[^\n]*= \{[^}]*\}+", "\n", text)
        found += [f"{name}:{no}: {line.strip()}" for no, line in enumerate(text.splitlines(), 1)
                  if any(p.search(line) for p in patterns)]
    assert found == []
    # what the old code wrote is found
    lines = ['def evolve(task, rows, cols, levels_back=None, lam: int = 4,', '"lambda": Key("int", 4, sweep=True),',
             '@click.option("--checkpoint-every", type=float, default=30.0,', "seed, 1, None, None, 30.0, \"single\"",
             'pareto_size: int = 64, rotate_every: int = 1000) -> RunResult:', 'mutation_max: float = 0.15,']
    assert [any(p.search(line) for p in patterns) for line in lines] == [True, True, True, False, True, True]
