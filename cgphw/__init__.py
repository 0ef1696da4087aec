"""cgphw: evolve 8-bit circuits that compute int8 network weights, as verified hardware.

The Python API (each command is a thin layer over one of these):
  evolve(task, SearchSettings, Limits, seed=) / resume -> RunResult   a CGP search, written to a
                                      run directory; SearchSettings / Limits: every knob, checked
  record_run(genome, task, out=)      a run directory holding a given genome (found elsewhere)
  load_run(dir) -> Run                a run directory, every file checked (RunConfig, Metrics, .pareto)
  export(run or genome) -> ExportResult (directory, Manifest)
  load_manifest(dir) -> Manifest      an export directory, every file checked
  synth(rtl dir) -> SynthReport       synthesis, energy, formal proof of the .il and the .v
  verify(rtl or run dir) -> Verdict   cycle-accurate simulation against the software model
  insert(run dir or weights) -> Insertion   the circuit's weights back in the network: accuracy
  verify_layer(run or rtl dir, layer) -> LayerVerdict   real images through the int8 layer engine
                                      fed by the circuit, every activation against torch
  layer_energy(run or rtl dir, layer) -> LayerEnergy    energy per image per weight source
  export_layer(run dir, layer) -> LayerExport          the engine's Verilog beside the circuit
  run_engine(QuantLayer, codes) -> codes               any int8 conv/linear layer through the engine
  run_campaign(experiment) -> CampaignResult   every run of an experiment file, on Dask
  load_experiment(file or name) -> Experiment; load_results(dir) -> DataFrame; summarize(table);
  write_report(dir) -> report.html
  The common steps: load_model(name or file), make_task(model, selector, layer=), example_task(),
  Genome (a circuit: evaluate, expressions).
Each verb takes the previous stage's result or its folder (a RunResult or Run for a run, an
ExportResult for an export) and options by keyword; each result is frozen, with ``ok``,
``to_json()`` and ``lines()`` (cgphw.results); long stages report Progress events (cgphw.progress).
Errors a user can cause raise UserError, a ValueError (the CLI: exit 2); files that contradict each other
or a re-evaluation raise MismatchError, a UserError (the CLI: exit 1).
"""
from cgphw.errors import MismatchError, UserError

__all__ = ["Accuracy", "ExportResult", "Manifest", "Metrics", "MismatchError", "Run", "RunConfig", "RunResult",
           "SearchSettings", "Limits", "SynthReport", "Task", "UserError", "Verdict", "evolve", "export",
           "load_manifest", "load_run",
           "load_task", "record_run", "resume", "synth", "verify", "insert", "Insertion",
           "verify_layer", "LayerVerdict", "layer_energy", "LayerEnergy", "export_layer", "LayerExport",
           "run_engine", "QuantLayer",
           "run_campaign", "CampaignResult", "load_experiment", "load_results", "summarize", "write_report",
           "load_model", "make_task", "example_task", "Genome"]

# Loaded on first use (even numpy: `cgphw` starts fast and Ctrl-C at start-up is one line);
# the CGP engine brings numba, export Amaranth, verify cocotb, insertion torch.
_LAZY = {"Task": "cgphw.task", "load_task": "cgphw.task", "example_task": "cgphw.task",
         "load_model": "cgphw.nn.networks", "make_task": "cgphw.nn.selectors", "Genome": "cgphw.cgp.genome",
         "evolve": "cgphw.cgp.search", "resume": "cgphw.cgp.search", "RunResult": "cgphw.cgp.search",
         "record_run": "cgphw.cgp.search",
         "SearchSettings": "cgphw.cgp.settings", "Limits": "cgphw.cgp.settings",
         "load_run": "cgphw.cgp.rundir", "Run": "cgphw.cgp.rundir", "RunConfig": "cgphw.cgp.rundir",
         "Metrics": "cgphw.cgp.metrics",
         "export": "cgphw.hw.export", "ExportResult": "cgphw.hw.export",
         "load_manifest": "cgphw.hw.manifest", "Manifest": "cgphw.hw.manifest",
         "synth": "cgphw.hw.synth_report", "SynthReport": "cgphw.hw.synth_report",
         "verify": "cgphw.verification.verdict", "Verdict": "cgphw.verification.verdict",
         "insert": "cgphw.insertion", "Insertion": "cgphw.insertion", "Accuracy": "cgphw.nn.accuracy",
         "verify_layer": "cgphw.layer.verify", "LayerVerdict": "cgphw.layer.verify",
         "run_engine": "cgphw.layer.verify", "QuantLayer": "cgphw.quantlayer",
         "layer_energy": "cgphw.layer.energy", "LayerEnergy": "cgphw.layer.energy",
         "export_layer": "cgphw.layer.export", "LayerExport": "cgphw.layer.export",
         "run_campaign": "cgphw.campaign.runner", "CampaignResult": "cgphw.campaign.runner",
         "load_experiment": "cgphw.campaign.experiment", "load_results": "cgphw.campaign.results",
         "summarize": "cgphw.campaign.results", "write_report": "cgphw.campaign.report"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cgphw' has no attribute {name!r}")
