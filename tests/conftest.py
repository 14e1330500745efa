"""Fixtures the page tests share: one small trained model per session, and a models folder of each
module's own holding it (tests may add or delete files there without touching other modules)."""

from __future__ import annotations

import pytest

from nn.core.network import NeuralNetwork
from nn.data import load_mnist
from nn.io.model_files import save_model


@pytest.fixture(scope="session")
def small_model():
    """``(model, data)``: hidden layer of 32, 2 epochs on the first 5,000 training images (~1 s),
    and the MNIST data set. Treat the model as read-only."""
    data = load_mnist()
    model = NeuralNetwork(hidden_layers=(32,), epochs=2, random_state=0)
    model.fit(data.x_train[:5000], data.y_train[:5000])
    return model, data


@pytest.fixture(scope="module")
def small_model_dir(small_model, tmp_path_factory):
    """A fresh models folder for this module with ``small_model`` saved as ``small.npz``."""
    folder = tmp_path_factory.mktemp("models")
    save_model(small_model[0], folder / "small.npz")
    return folder


@pytest.fixture(scope="session")
def reference_cnn():
    """A convolutional network of the engine's own kernels with seeded random weights, every
    layer kind the exporters know (tests/export_reference.py)."""
    from export_reference import ReferenceCNN

    return ReferenceCNN()


CNN_LAYERS = [
    {"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2, "padding": "same"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 8, "kernel": 3},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2, "stride": 1},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 16},  # on the 4x4x8 image: the implicit flatten
    {"type": "batchnorm"},
    {"type": "leaky_relu", "slope": 0.1},
]


@pytest.fixture(scope="session")
def cnn_model(small_model):
    """A small convolutional network trained by the engine (2 epochs on 3,000 images, ~3 s):
    'same' and 'valid' convolutions, batch norm on images and on vectors, both poolings,
    dropout and the implicit flatten before a dense layer."""
    data = small_model[1]
    model = NeuralNetwork(layers=CNN_LAYERS, epochs=2, random_state=0)
    return model.fit(data.x_train[:3000], data.y_train[:3000])
