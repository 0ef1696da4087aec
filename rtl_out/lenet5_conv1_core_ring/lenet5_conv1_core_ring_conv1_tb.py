"""cocotb test module for the layer engine lenet5_conv1_core_ring_conv1 (written by `cgphw export --layer`).

The testbench lives in the installed package (cgphw.layer.testbench), so `cgphw verify-layer`
and your flow run the same code. Set CGPHW_STIMULUS to lenet5_conv1_core_ring_conv1_stim.npz (or a file from
`cgphw verify-layer RTLDIR --layer conv1 --write-stimulus FILE`).
"""
from cgphw.layer.testbench import layer_matches_network  # noqa: F401  (cocotb finds it here)
