"""A neural network written from scratch in NumPy, for MNIST.

from nn import NeuralNetwork, load_model, load_mnist
"""

from nn.core.events import TrainingEvent
from nn.core.network import NeuralNetwork
from nn.core.params import ParameterError
from nn.data.idx import load_mnist
from nn.io.model_files import load_model, save_model

__all__ = [
    "NeuralNetwork",
    "ParameterError",
    "TrainingEvent",
    "load_model",
    "load_mnist",
    "save_model",
]
__version__ = "0.1.0"
