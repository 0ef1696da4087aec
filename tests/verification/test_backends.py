"""The simulator backend registry: one class per simulator name, a clear error for any other,
and no caller outside the registry branching on a simulator's name."""
import re
from pathlib import Path

import pytest

from cgphw.errors import UserError
from cgphw.verification import backends as B


def test_unknown_simulator_lists_the_supported_names():
    with pytest.raises(UserError) as caught:
        B.get_backend("nope")
    assert str(caught.value) == "unknown simulator 'nope'; choose one of amaranth, icarus, verilator"


@pytest.mark.parametrize("name, cls", [("amaranth", B.AmaranthBackend), ("icarus", B.IcarusBackend),
                                       ("verilator", B.VerilatorBackend)])
def test_each_name_maps_to_its_backend(name, cls):
    backend = B.get_backend(name)
    assert type(backend) is cls and backend.name == name
    assert B.SIMULATORS == ("amaranth", "icarus", "verilator")


def test_only_cocotb_simulators_run_a_testbench():
    assert isinstance(B.cocotb_backend("verilator"), B.VerilatorBackend)
    with pytest.raises(UserError, match="amaranth is not a cocotb simulator; choose one of icarus, verilator"):
        B.cocotb_backend("amaranth")


def test_no_simulator_name_branch_outside_the_registry():
    package = Path(B.__file__).resolve().parents[1]
    names = "|".join(B.SIMULATORS)  # a campaign's "auto" (no simulator chosen) is no backend branch
    branch = re.compile(rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    found = [f"{path.relative_to(package)}:{n}" for path in sorted(package.rglob("*.py"))
             if path != Path(B.__file__).resolve()
             for n, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line)]
    assert found == []
