"""cocotb test module for an exported cgphw layer engine, for your own cocotb flow.

The testbench lives in the installed package (cgphw.layer.testbench) so that
`cgphw verify-layer` and this folder run the very same code. It needs CGPHW_STIMULUS: the
NAME_LAYER_stim.npz that `cgphw export --layer` wrote, or a file from
`cgphw verify-layer RTLDIR --layer LAYER --write-stimulus FILE`. See README.md.
"""
from cgphw.layer.testbench import layer_matches_network  # noqa: F401  (cocotb finds it here)
