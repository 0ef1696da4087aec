"""The layer flow: a circuit feeding the int8 layer engine (``hw/accel``), real images through
it compared activation by activation with the reference network (verify), its energy per
image against stored weights (energy), and its Verilog beside the circuit's (export)."""
