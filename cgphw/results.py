"""The one shape of what a stage returns (after pymoo's ``Result``): every public result —
RunResult, ExportResult, SynthReport, Verdict, Insertion, LayerVerdict, LayerEnergy,
LayerExport, CampaignResult — is a frozen value with

  ok         whether the stage succeeded in its own terms (the threshold reached, every
             check passed, every run finished); a command exits 1 when it is False
  to_json()  a JSON object (what ``--json`` prints)
  lines()    the human summary, one string per line (what the command prints)

Each verb takes the previous stage's result or a path (``stage_path``).
"""
from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from cgphw.errors import UserError


@runtime_checkable
class Result(Protocol):
    @property
    def ok(self) -> bool: ...

    def to_json(self) -> dict: ...

    def lines(self) -> list[str]: ...


def stage_path(value: Any) -> Any:
    """The folder that ``value``, a previous stage's result, stands for, so that each verb takes
    the result or a path: a RunResult's ``run_dir``; the ``directory`` of a Run (load_run), an
    ExportResult, a Manifest or a LayerExport. Anything else comes back as given (a path, or
    what the verb checks itself)."""
    if isinstance(value, (str, os.PathLike)):
        return value
    if hasattr(value, "run_dir") and hasattr(value, "stop_reason"):  # a RunResult
        if value.run_dir is None:
            raise UserError("this search was not written to a run directory: give evolve an out= folder")
        return value.run_dir
    directory = getattr(value, "directory", None)
    return directory if isinstance(directory, os.PathLike) else value
