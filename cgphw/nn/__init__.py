"""Quantized networks: MNIST data (data), LeNet-5 and MobileNetV2 (lenet, mobilenet), the int8
adapter over torch.ao (quant), model files (model), training (train), layer access (layers),
CGP task selectors (tasks) and accuracy/sensitivity (accuracy). Nothing here knows of CGP."""
