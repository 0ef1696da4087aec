"""A search's settings, the one place each knob is defined, defaulted and checked:
``SearchSettings`` (what the search does: grid, operators, objective, threshold) and
``Limits`` (when it stops), both frozen and checked when made, plus the seed and the thread
count, which ``evolve`` takes on their own (one settings object serves every seed).

The CLI takes its defaults from here (``default``), a campaign's [search] table is derived
from the fields (``knobs``), ``RunConfig`` (config.json) is built from and read back into
these objects, and the engine checks its arguments with the same rules. A new knob is a new
field here (with its ``Knob``) and what it changes in the search.

An error names the knob as the caller spells it: ``SettingError.named`` ("--lambda" for the
CLI, "search.lambda" in an experiment file); by default its field (JSON) name.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from cgphw import gates as G
from cgphw.cgp.genome import Grid
from cgphw.errors import UserError

MUTATIONS = ("single", "active", "uniform")
STARTS = ("random", "constructive")
OBJECTIVES = ("lexicographic", "pareto")
PARETO_MIN, PARETO_MAX = 16, 1000  # at least 16: the kept extremes (up to 9) must leave members to thin
MAX_LAMBDA = 1000  # every offspring holds a copy of the evaluation state
MAX_COUNT = 10**18  # generations / patience: the compiled loop counts in int64
MAX_SEED = 2**63 - 1  # seeds are stored as int64 (numpy's SeedSequence, the results table)
MAX_WORKERS = 256  # threads per run: a team never outnumbers lambda, and gains little past a socket
DEFAULT_GENERATIONS = 1_000_000  # used when no stopping rule is given: a run always ends
SEED = 0  # the default seed of evolve, the CLI and a campaign


@dataclass(frozen=True)
class Knob:
    """How a setting is checked and described: its kind ("int", "float", "bool", "str"),
    inclusive ``low``/``high``, exclusive ``above``, ``choices``, help text, and its name in
    files and flags (``json``: "lambda" for the field ``lam``)."""
    kind: str
    low: float | None = None
    above: float | None = None
    high: float | None = None
    choices: tuple = ()
    help: str = ""
    json: str = ""
    flag: str = ""  # the CLI's option when not --NAME (a bool's off switch: "--adaptive/--fixed-rate")

    def check(self, value, name: str):
        """``value`` as this knob holds it (ints int, floats float) or a SettingError."""
        if value is None:
            return None
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, bool):
                raise SettingError(name, "{key} must be true or false, got " + repr(value))
            return value
        if kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise SettingError(name, "{key} must be one of " + ", ".join(self.choices) + f", got {value!r}")
            return value
        number = _number(value, kind == "int")
        if number is None:
            raise SettingError(name, "{key} must be " + ("a whole number" if kind == "int" else "a number")
                               + f", got {value!r}")
        low = self.low if self.low is not None else self.above
        got = f"{number:g}" if isinstance(number, float) else str(number)
        if (self.low is not None and number < self.low) or (self.above is not None and number <= self.above) \
                or (self.high is not None and number > self.high):
            if self.high is not None and self.above is not None:
                raise SettingError(name, "{key} must be in " + f"({_show(low)}, {_show(self.high)}], got {got}")
            if self.high is not None:
                raise SettingError(name, "{key} must be from " + f"{_show(low)} to {_show(self.high)}, got {got}")
            raise SettingError(name, "{key} must be " + ("positive" if self.above == 0 else f"at least {_show(low)}")
                               + f", got {got}")
        return number


class SettingError(UserError):
    """A setting out of its range; ``template`` names the setting as "{key}"."""

    def __init__(self, name: str, template: str):
        self.name, self.template = name, template
        super().__init__(template.format(key=name))

    def named(self, key: str, prefix: str = "") -> UserError:
        """The same error naming the setting ``key`` (a flag, a table key), after ``prefix``."""
        return UserError(prefix + self.template.format(key=key))


def _number(value, whole: bool):
    """``value`` as an int (``whole``) or a finite float; None if it is neither (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value) if whole else float(value)
    value = float(value)
    return value if not whole and math.isfinite(value) else None


def _show(x) -> str:
    """1e+18 for a large power of ten, else every digit (a seed's bound is 9,223,372,036,854,775,807)."""
    if isinstance(x, int) and x >= 10**9 and str(x).rstrip("0") == "1":
        return f"{x:.0e}"
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _knob(default: Any = MISSING, compare: bool = True, **spec) -> Any:
    return field(default=default, compare=compare, metadata={"knob": Knob(**spec), "json": spec.get("json", "")})


@dataclass(frozen=True)
class Setting:
    """One knob of a settings class, as a front end (CLI, experiment file) describes it."""
    attr: str  # the field's name (the keyword argument)
    name: str  # in files and flags ("lambda")
    knob: Knob
    default: Any  # MISSING: required


@dataclass(frozen=True)
class SearchSettings:
    """What a (1+lambda) search does; ``evolve(task, settings, limits, seed=...)`` runs it.
    Made, it is checked: a bad value is a SettingError (a UserError) naming the setting.
    ``levels_back`` None means ``cols``; ``function_set`` (a set name, "1,2,shr1" or ids) is
    held as its sorted gate ids; ``start`` "auto" is resolved per task (``resolved``)."""
    rows: int = _knob(kind="int", low=1, help="Grid rows.")
    cols: int = _knob(kind="int", low=1, help="Grid columns.")
    levels_back: int | None = _knob(None, kind="int", low=1, help="Columns a node may read back (default: cols).")
    lam: int = _knob(4, kind="int", low=1, high=MAX_LAMBDA, json="lambda", help="Offspring per generation.")
    mutation: str = _knob("single", kind="str", choices=MUTATIONS,
                          help="single: genes until one active gene changed (Goldman & Punch); active: until 1..k "
                               "active genes changed; uniform: 1..k genes (k from mutation_max).")
    mutation_max: float = _knob(0.15, kind="float", above=0.0, high=1.0,
                                help="k = ceil(F * genes) for mutation uniform/active: each offspring changes 1..k "
                                     "genes (active genes); the ceiling of the rate when adaptive.")
    adaptive: bool = _knob(False, kind="bool", flag="--adaptive/--fixed-rate",
                           help="Adapt the mutation rate by the 1/5th success rule (up to mutation_max).")
    start: str = _knob("auto", kind="str", choices=("auto", *STARTS),
                       help="First parent: random, or constructive (every wanted value built from the constants); "
                            "auto: constructive for value-bank and no-input tasks, else random.")
    threshold: float = _knob(0.0, kind="float", low=0.0, help="Per-weight RMS error t allowed (SE <= t^2 N).")
    objective: str = _knob("lexicographic", kind="str", choices=OBJECTIVES,
                           help="lexicographic: error to the threshold, then energy, error, delay, gates; pareto: "
                                "search for the Pareto front itself (a child must be no worse in all four, the "
                                "parent moves along the archive every rotate_every generations).")
    pareto_size: int = _knob(64, kind="int", low=0, high=PARETO_MAX,
                             help=f"Capacity of the Pareto archive of (error, energy, delay, gates) written to "
                                  f"pareto.json ({PARETO_MIN}..{PARETO_MAX}; 0: none). When full, the most crowded "
                                  "point goes (docs/search.md).")
    rotate_every: int = _knob(1000, kind="int", low=1, high=10**9,
                              help="objective pareto: generations between parent moves along the front.")
    value_bank: bool = _knob(False, kind="bool", help="Evolve the distinct values only, then wire each weight.")
    function_set: Any = _knob(G.DEFAULT_FUNCTION_SET, kind="str",
                              help="Set name or comma-separated gate ids/names.")
    # when a run writes its checkpoint: never changes the result, so not compared
    checkpoint_every: float = _knob(30.0, compare=False, kind="float", low=0.0,
                                    help="Seconds between checkpoints (0: after every chunk of generations).")

    def __post_init__(self):
        for f in fields(self):
            if f.name != "function_set":
                object.__setattr__(self, f.name, f.metadata["knob"].check(getattr(self, f.name), json_name(f)))
        spec = self.function_set
        object.__setattr__(self, "function_set", G.function_set(list(spec) if isinstance(spec, tuple) else spec))
        levels_back = self.cols if self.levels_back is None else self.levels_back
        object.__setattr__(self, "levels_back", levels_back)
        Grid(1, 1, self.rows, self.cols, levels_back, self.function_set)  # the node cap
        if self.adaptive and self.mutation == "single":
            raise SettingError("adaptive", "the single-active mutation changes one active gene: it has no rate to "
                                           "adapt ({key})")
        if 0 < self.pareto_size < PARETO_MIN:
            raise SettingError("pareto_size", f"the Pareto archive holds 0 (none) or {PARETO_MIN} to {PARETO_MAX} "
                                              f"circuits ({{key}}), got {self.pareto_size}")
        if self.objective == "pareto" and self.pareto_size == 0:
            raise SettingError("pareto_size", "objective pareto searches for the Pareto front: it needs an archive "
                                              "({key} > 0)")

    def resolved(self, n_inputs: int) -> "SearchSettings":
        """These settings as a run on a task with ``n_inputs`` inputs records them: start "auto"
        resolved (constructive for value-bank and no-input tasks, else random)."""
        if self.start != "auto":
            return self
        return replace(self, start="constructive" if self.value_bank or n_inputs == 0 else "random")


@dataclass(frozen=True)
class Limits:
    """When a search stops: after ``generations``, ``time_budget`` seconds of search or
    ``patience`` generations without improvement, whichever comes first. With none given
    a run stops after DEFAULT_GENERATIONS."""
    generations: int | None = _knob(None, kind="int", low=1, high=MAX_COUNT,
                                    help=f"Stop after N generations (default {DEFAULT_GENERATIONS:,} if no other "
                                         "limit).")
    time_budget: float | None = _knob(None, kind="float", above=0.0, help="Stop after SEC seconds of search.")
    patience: int | None = _knob(None, kind="int", low=1, high=MAX_COUNT,
                                 help="Stop after N generations without improvement.")

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["knob"].check(getattr(self, f.name), f.name))
        if self.generations is None and self.time_budget is None and self.patience is None:
            object.__setattr__(self, "generations", DEFAULT_GENERATIONS)


SEED_KNOB = Knob("int", low=0, high=MAX_SEED, help="Seed of the first parent and of every offspring drawn.")
WORKERS_KNOB = Knob("int", low=1, high=MAX_WORKERS, help="Threads evaluating offspring; never changes the result.")


def check_seed(seed) -> int:
    return SEED_KNOB.check(seed, "seed")


def json_name(f) -> str:
    return f.metadata.get("json") or f.name


def knobs(cls) -> tuple[Setting, ...]:
    """Every setting of ``cls`` (SearchSettings, Limits), in field order."""
    return tuple(Setting(f.name, json_name(f), f.metadata["knob"], f.default) for f in fields(cls))


def settings_of(cls, values: dict, key=lambda name: name, prefix: str = ""):
    """``cls(**values)``; a SettingError renamed by ``key(name)``, any error after ``prefix``."""
    try:
        return cls(**values)
    except SettingError as exc:
        raise exc.named(key(exc.name), prefix) from None
    except UserError as exc:  # the grid, the function set
        if not prefix:
            raise
        raise UserError(f"{prefix}{exc}") from None
