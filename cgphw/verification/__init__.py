"""Verification: exported circuits simulated cycle by cycle against the software model
(``Genome.evaluate``) on Amaranth's simulator, Icarus or Verilator via cocotb; and every
gate checked against its int8 semantics on all input pairs."""
from cgphw.verification.conformance import Conformance, check_amaranth, check_cocotb
from cgphw.verification.backends import SIMULATORS, default_simulator, get_backend, missing_reason
from cgphw.verification.verdict import Verdict, verify

__all__ = ["Conformance", "SIMULATORS", "Verdict", "check_amaranth", "check_cocotb", "default_simulator",
           "get_backend", "missing_reason", "verify"]
