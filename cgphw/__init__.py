"""cgphw: evolve 8-bit circuits that compute int8 network weights, as verified hardware."""
from cgphw.errors import UserError
from cgphw.task import Task, load_task

__all__ = ["Task", "UserError", "load_task", "evolve", "resume", "RunResult", "insert", "Insertion",
           "run_campaign", "CampaignResult", "load_experiment", "load_results", "summarize", "write_report"]

_LAZY = {"evolve": "cgphw.cgp.search", "resume": "cgphw.cgp.search", "RunResult": "cgphw.cgp.search",
         "insert": "cgphw.insertion", "Insertion": "cgphw.insertion",
         "run_campaign": "cgphw.campaign.runner", "CampaignResult": "cgphw.campaign.runner",
         "load_experiment": "cgphw.campaign.experiment", "load_results": "cgphw.campaign.results",
         "summarize": "cgphw.campaign.results", "write_report": "cgphw.campaign.report"}


def __getattr__(name):  # the CGP engine loads numba, insertion torch: import them only when used
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cgphw' has no attribute {name!r}")
