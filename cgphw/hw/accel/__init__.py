"""The int8 layer engine: an Amaranth conv2d / linear datapath whose weights come from a weight
source (the evolved circuit, a ROM, or an external memory), its plan, its fixed-point
requantisation, and its energy from synthesis (see README: "A layer in hardware")."""
from cgphw.hw.accel.plan import EngineConfig, Geometry, LoadPlan, plan_load, resolve
from cgphw.hw.accel.requant import Requant, requant_params

__all__ = ["EngineConfig", "Geometry", "LoadPlan", "Requant", "plan_load", "requant_params", "resolve"]
