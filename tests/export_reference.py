"""A convolutional network for the export tests, built from the engine's own kernels
(``nn.core.conv``) with seeded random weights, shaped as the exporters read a fitted network:
``layers_`` (objects with ``kind``, ``config``, ``params``, ``state``, ``input_shape``,
``output_shape`` and a conv layer's ``kernel``), ``input_shape_``, ``classes_``,
``n_features_in_`` and ``predict_proba``.

It exercises every step kind with the awkward cases: 'same' padding with stride 2 (the odd pixel
of padding goes after), 'valid' padding, max and average pooling with a stride other than the
size, batch normalisation with non-trivial running statistics, leaky ReLU, and a dense layer on an
image (the implicit flatten, in channels-last order).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nn.core.conv import Conv2DKernel
from nn.core.losses import softmax
from nn.core.pooling import Pool2DKernel


def _conv(rng, input_shape, filters, kernel, stride, padding):
    k = Conv2DKernel(input_shape, filters, kernel, stride, padding)
    fan_in = kernel * kernel * input_shape[2]
    weight = rng.normal(0, np.sqrt(2 / fan_in), k.weight_shape).astype(np.float32)
    bias = rng.normal(0, 0.1, filters).astype(np.float32)
    cfg = {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding}
    return SimpleNamespace(
        kind="conv2d",
        config=cfg,
        params=[weight, bias],
        state={},
        input_shape=input_shape,
        output_shape=k.output_shape,
        kernel=k,
        run=lambda x: k.forward(x, weight, bias, keep=False).copy(),
    )


def _pool(input_shape, mode, size, stride):
    k = Pool2DKernel(input_shape, size, stride, mode)
    return SimpleNamespace(
        kind=f"{mode}pool",
        config={"size": size, "stride": stride},
        params=[],
        state={},
        input_shape=input_shape,
        output_shape=k.output_shape,
        run=lambda x: k.forward(x, keep=False).copy(),
    )


def _activation(kind, shape, slope=None):
    def run(x):
        if kind == "relu":
            return np.maximum(x, 0)
        return np.maximum(x, x * np.float32(slope))

    config = {} if slope is None else {"slope": slope}
    return SimpleNamespace(
        kind=kind,
        config=config,
        params=[],
        state={},
        input_shape=shape,
        output_shape=shape,
        run=run,
    )


def _batchnorm(rng, shape):
    c = shape[-1]
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.normal(0, 0.2, c).astype(np.float32)
    mean = rng.normal(0, 0.5, c).astype(np.float32)
    var = rng.uniform(0.2, 2.0, c).astype(np.float32)
    eps = 1e-5

    def run(x):
        inv_std = (1.0 / np.sqrt(var + eps)).astype(np.float32)
        return (x - mean) * inv_std * gamma + beta

    return SimpleNamespace(
        kind="batchnorm",
        config={"momentum": 0.9, "epsilon": eps},
        params=[gamma, beta],
        state={"running_mean": mean, "running_var": var},
        input_shape=shape,
        output_shape=shape,
        run=run,
    )


def _dense(rng, shape, units):
    fan_in = int(np.prod(shape))
    weight = rng.normal(0, np.sqrt(1 / fan_in), (fan_in, units)).astype(np.float32)
    bias = rng.normal(0, 0.1, units).astype(np.float32)
    return SimpleNamespace(
        kind="dense",
        config={"units": units},
        params=[weight, bias],
        state={},
        input_shape=shape,
        output_shape=(units,),
        run=lambda x: x.reshape(x.shape[0], -1) @ weight + bias,
    )


def _dropout(shape):
    return SimpleNamespace(
        kind="dropout",
        config={"rate": 0.5},
        params=[],
        state={},
        input_shape=shape,
        output_shape=shape,
        run=lambda x: x,
    )


class ReferenceCNN:
    """conv 'same' k3 s2 -> relu -> maxpool 3 s2 -> conv 'valid' k3 -> batchnorm -> leaky_relu
    -> dropout -> avgpool 2 s1 -> dense 10 (on the 4x4x6 image)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        layers = [_conv(rng, (28, 28, 1), 4, 3, 2, "same")]
        layers.append(_activation("relu", layers[-1].output_shape))
        layers.append(_pool(layers[-1].output_shape, "max", 3, 2))
        layers.append(_conv(rng, layers[-1].output_shape, 6, 3, 1, "valid"))
        layers.append(_batchnorm(rng, layers[-1].output_shape))
        layers.append(_activation("leaky_relu", layers[-1].output_shape, slope=0.1))
        layers.append(_dropout(layers[-1].output_shape))
        layers.append(_pool(layers[-1].output_shape, "avg", 2, 1))
        layers.append(_dense(rng, layers[-1].output_shape, 10))
        self.layers_ = layers
        self.input_shape_ = (28, 28, 1)
        self.n_features_in_ = 784
        self.classes_ = np.arange(10)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32).reshape(-1, *self.input_shape_)
        for layer in self.layers_:
            x = layer.run(x)
        return softmax(x.astype(np.float32))
