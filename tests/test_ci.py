""".ci/run: where Icarus can be installed (root with apt-get) but is not, CI fails instead of
letting the Icarus tests skip. Run against stand-ins for apt-get, id and make on a PATH that
holds nothing else, so the machine's own Icarus is not seen."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")


def _stand_in(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{script}\n")
    path.chmod(0o755)


def _ci(tmp_path, *, root: bool, apt: str | None):
    """Run a copy of .ci/run; ``apt``: None (no apt-get), "fails", or "installs" (iverilog, vvp)."""
    (tmp_path / ".ci").mkdir()
    shutil.copy2(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    _stand_in(bin_dir, "id", f"echo {0 if root else 1000}")
    _stand_in(bin_dir, "make", f'echo "$@" >> "{tmp_path}/make-ran"')
    if apt == "fails":
        _stand_in(bin_dir, "apt-get", "exit 100")
    elif apt == "installs":
        for tool in ("iverilog", "vvp"):  # what a successful install puts on PATH
            _stand_in(tmp_path, tool, "exit 0")
        _stand_in(bin_dir, "apt-get", f'[ "$1" = install ] && {shutil.which("cp")} "{tmp_path}/iverilog" '
                                      f'"{tmp_path}/vvp" "{bin_dir}/"')
    res = subprocess.run([BASH, str(tmp_path / ".ci" / "run")], env={"PATH": str(bin_dir)},
                         capture_output=True, text=True, timeout=60)
    ran = tmp_path / "make-ran"
    return res, ran.read_text().split() if ran.exists() else []


@pytest.mark.skipif(BASH is None or shutil.which("dirname") is None, reason="needs bash and dirname")
def test_ci_fails_when_icarus_was_expected_but_not_installed(tmp_path):
    res, tests_ran = _ci(tmp_path, root=True, apt="fails")
    assert res.returncode != 0 and not tests_ran
    assert "error: Icarus Verilog (iverilog, vvp) could not be installed" in res.stderr


@pytest.mark.skipif(BASH is None or shutil.which("dirname") is None, reason="needs bash and dirname")
@pytest.mark.parametrize("root, apt, note", [(True, "installs", False), (False, "fails", True), (True, None, True)])
def test_ci_runs_the_tests_when_icarus_is_installed_or_cannot_be_expected(tmp_path, root, apt, note):
    res, targets = _ci(tmp_path, root=root, apt=apt)
    assert res.returncode == 0 and targets == ["lint", "test"], res.stderr  # the linters first, then the tests
    assert ("its tests will skip" in res.stderr) == note
