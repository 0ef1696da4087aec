"""Fixtures every test folder shares: the CLI run in-process."""
from __future__ import annotations

from typing import NamedTuple

import pytest


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """`cli(*args)` runs `cgphw ARGS` in this process: (exit code, stdout, stderr); args are str()'d."""
    from cgphw.cli import main

    def run(*args) -> CliResult:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
