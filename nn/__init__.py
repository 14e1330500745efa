"""A neural network written from scratch in NumPy, for MNIST.

from nn import NeuralNetwork, load_model, load_mnist
"""

from nn.core.events import TrainingEvent
from nn.core.network import NeuralNetwork
from nn.core.params import ParameterError

__all__ = [
    "NeuralNetwork",
    "ParameterError",
    "TrainingEvent",
    "load_model",
    "load_mnist",
    "save_model",
]
__version__ = "0.1.0"


def __getattr__(name):  # lazy: keeps `import nn` light for the pieces that need only the network
    if name in ("load_model", "save_model"):
        from nn.io import model_files

        return getattr(model_files, name)
    if name == "load_mnist":
        from nn.data import load_mnist

        return load_mnist
    raise AttributeError(f"module 'nn' has no attribute {name!r}")
