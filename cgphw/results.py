"""The one shape of what a stage returns (after pymoo's ``Result``): every public result —
RunResult, ExportResult, SynthReport, Verdict, Insertion, LayerVerdict, LayerEnergy,
LayerExport, CampaignResult — is a frozen value with

  ok         whether the stage succeeded in its own terms (the threshold reached, every
             check passed, every run finished); a command exits 1 when it is False
  to_json()  a JSON object (what ``--json`` prints)
  lines()    the human summary, one string per line (what the command prints)
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Result(Protocol):
    @property
    def ok(self) -> bool: ...

    def to_json(self) -> dict: ...

    def lines(self) -> list[str]: ...
