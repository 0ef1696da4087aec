"""The package surface: every name a user scripts with is the documented object, also after
every module behind it has been imported, in whatever order (no subpackage shares a name with
an API function)."""
import json
import subprocess
import sys

import pytest

# A fresh interpreter: the submodules first, the API names last, as a notebook may do.
SCRIPT = """
import importlib, inspect, json, pkgutil
import cgphw
for package in ("cgphw.verification", "cgphw.layer"):
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("tb_") and info.name != "testbench":  # cocotb's simulator side
            importlib.import_module(package + "." + info.name)
for module in sorted(set(cgphw._LAZY.values())):
    importlib.import_module(module)
clashes = [n for n in cgphw.__all__ if n in cgphw._LAZY and f"cgphw.{n}" in __import__("sys").modules]
wrong = [n for n in cgphw.__all__ if n in cgphw._LAZY
         and getattr(cgphw, n) is not getattr(importlib.import_module(cgphw._LAZY[n]), n)]
functions = [n for n in cgphw.__all__ if n[0].islower()]
not_functions = [n for n in functions if not inspect.isfunction(getattr(cgphw, n))]
print(json.dumps([clashes, wrong, not_functions, len(functions)]))
"""


@pytest.mark.slow
def test_every_api_name_is_its_documented_object_after_the_submodules_are_imported():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clashes, wrong, not_functions, n = json.loads(done.stdout.splitlines()[-1])
    assert (clashes, wrong, not_functions) == ([], [], [])
    assert n >= 19  # evolve, export, synth, verify, insert, run_campaign, ...


def test_cgphw_verify_is_the_function_beside_the_verification_package():
    import cgphw
    from cgphw import verify
    from cgphw.verification import backends, verdict

    assert verify is cgphw.verify is verdict.verify and callable(verify)
    assert backends.SIMULATORS and cgphw.Accuracy.__name__ == "Accuracy"


def test_every_api_function_takes_at_most_two_arguments_by_position():
    """Options by keyword (``export(run, out_dir=...)``), so that a new option never shifts a
    caller's arguments; evolve's task, settings and limits are its three by design."""
    import inspect

    import cgphw

    by_position = {}
    for name in cgphw.__all__:
        obj = getattr(cgphw, name)
        if inspect.isfunction(obj):
            kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            by_position[name] = [p for p, v in inspect.signature(obj).parameters.items() if v.kind in kinds]
    assert len(by_position) >= 19 and by_position.pop("evolve") == ["task", "settings", "limits"]
    assert {n: p for n, p in by_position.items() if len(p) > 2} == {}
