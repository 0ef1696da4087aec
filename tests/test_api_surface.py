"""The package surface: every name a user scripts with is the documented object, also after
the modules behind it (and the subpackage cgphw.verify, whose name is also a function's) have
been imported, in whatever order."""
import json
import subprocess
import sys

import pytest

# A fresh interpreter: the submodules first, the API names last, as a notebook may do.
SCRIPT = """
import importlib, inspect, json, pkgutil
import cgphw.verify.runner  # the import system would set cgphw.verify to the subpackage
for info in pkgutil.iter_modules(importlib.import_module("cgphw.verify").__path__):
    if not info.name.startswith("tb_"):  # cocotb testbenches import cocotb's simulator side
        importlib.import_module("cgphw.verify." + info.name)
import cgphw
for module in sorted(set(cgphw._LAZY.values())):
    importlib.import_module(module)
from cgphw import verify
from cgphw.verify import runner
wrong = [n for n in cgphw.__all__ if n in cgphw._LAZY
         and getattr(cgphw, n) is not getattr(importlib.import_module(cgphw._LAZY[n]), n)]
functions = [n for n in cgphw.__all__ if n[0].islower()]
not_functions = [n for n in functions if not inspect.isfunction(getattr(cgphw, n))]
print(json.dumps([wrong, not_functions, verify is cgphw.verify, runner.__name__, len(functions)]))
"""


@pytest.mark.slow
def test_every_api_name_is_its_documented_object_after_the_submodules_are_imported():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wrong, not_functions, same, runner, n = json.loads(done.stdout.splitlines()[-1])
    assert (wrong, not_functions, same, runner) == ([], [], True, "cgphw.verify.runner")
    assert n >= 19  # evolve, export, synth, verify, insert, run_campaign, ...


def test_cgphw_verify_stays_the_function_after_its_subpackage_is_imported():
    import importlib

    importlib.import_module("cgphw.verify.runner")  # what the simulators, the CLI and tests import
    import cgphw
    from cgphw import verify
    from cgphw.verify import runner, verdict

    assert verify is cgphw.verify is verdict.verify and callable(verify)
    assert importlib.import_module("cgphw.verify").verify is verify  # the subpackage is still reachable
    assert runner.SIMULATORS and cgphw.Accuracy.__name__ == "Accuracy"
