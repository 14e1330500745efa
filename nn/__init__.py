"""A neural network written from scratch in NumPy, for MNIST.

    from nn import NeuralNetwork, load_model, load_mnist
"""

from .network import NeuralNetwork, TrainingEvent

__all__ = ["NeuralNetwork", "TrainingEvent", "load_model", "load_mnist", "save_model"]
__version__ = "0.1.0"


def __getattr__(name):  # lazy: keeps `import nn` light for the pieces that need only the network
    if name in ("load_model", "save_model"):
        from . import persistence

        return getattr(persistence, name)
    if name == "load_mnist":
        from .data import load_mnist

        return load_mnist
    raise AttributeError(f"module 'nn' has no attribute {name!r}")
