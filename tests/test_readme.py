"""The README's Python snippets run as written, in a fresh folder, so the notebook example a
user copies stays true."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.slow
def test_the_readme_notebook_example_runs_and_says_what_it_shows(tmp_path, monkeypatch, capsys):
    (snippet,) = snippets()
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md's Python example", "exec"), {"__name__": "__readme__"})
    reached, synthesised, verified, top1 = capsys.readouterr().out.splitlines()
    assert reached.split()[0] == "True" and int(reached.split()[1]) > 0  # threshold met, a real circuit
    assert (synthesised, verified) == ("True", "True")
    assert 0.9 < float(top1) <= 1.0
    assert (tmp_path / "runs" / "ring" / "best.json").is_file() and (tmp_path / "rtl_out" / "ring").is_dir()
