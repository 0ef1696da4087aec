"""cocotb test module for an exported cgphw circuit, for your own cocotb flow.

The testbench itself lives in the installed package (cgphw.verification.tb_circuit) so that
`cgphw verify` and this folder run the very same code. It needs one environment variable,
CGPHW_STIMULUS: the file written by `cgphw verify RTLDIR --write-stimulus FILE`. See README.md.
"""
from cgphw.verification.tb_circuit import circuit_matches_software_model  # noqa: F401  (cocotb finds it here)
