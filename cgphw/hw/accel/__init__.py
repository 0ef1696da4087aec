"""The int8 layer engine: an Amaranth conv2d / depthwise / linear datapath whose weights come
from a weight source (the evolved circuit, a ROM, or an external memory), its plan, its
requantisation (torch's layers: exact fixed point; TFLite's: its integer requantisation), and its
energy from synthesis (docs/layer-engine.md, docs/mobilenet_engine.md)."""
from cgphw.hw.accel.plan import EngineConfig, Geometry, LoadPlan, layer_geometry, plan_load, resolve
from cgphw.hw.accel.requant import Requant, TfliteRequant, layer_requant, requant_params

__all__ = ["EngineConfig", "Geometry", "LoadPlan", "Requant", "TfliteRequant", "layer_geometry", "layer_requant",
           "plan_load", "requant_params", "resolve"]
