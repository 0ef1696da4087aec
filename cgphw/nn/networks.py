"""The networks cgphw works on, named or from a file, behind one loader for the Python API."""
from __future__ import annotations


def load_model(model=None):
    """The int8 network ``model`` names: None (the shipped LeNet-5), 'mobilenetv2' (the shipped
    int8 ImageNet MobileNetV2, TFLite), a cgphw .pt model file or an int8 .tflite file; a network
    object is returned as it is. What ``make_task``, ``insert`` and the ``model`` commands take."""
    from cgphw.nn.tflite_network import load_any

    return load_any(model)
