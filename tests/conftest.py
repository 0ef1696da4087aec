"""Fixtures every test folder shares: the CLI run in-process."""
from __future__ import annotations

import signal
from typing import NamedTuple

import pytest


def pytest_configure(config):
    # A shell starts a background job with SIGINT ignored, and an ignored signal stays ignored in
    # every process started from it: the tests of Ctrl-C in a real cgphw process need it delivered.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
