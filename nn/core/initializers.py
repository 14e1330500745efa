"""Weight initialisers. Biases always start at zero.

``uniform`` is U(-1, 1) and ``normal`` is N(0, 1), fixed scales that ignore the layer's size (deep
or wide layers saturate: they show why He and Xavier/Glorot exist). He scales by ``fan_in`` for
ReLU-like units, Xavier/Glorot by ``fan_in + fan_out`` for sigmoid and tanh.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[int, int, np.random.Generator], np.ndarray]


def zeros(fan_in, fan_out, rng):
    return np.zeros((fan_in, fan_out))


def uniform(fan_in, fan_out, rng):
    return rng.uniform(-1.0, 1.0, size=(fan_in, fan_out))


def normal(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out))


def he_normal(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


def he_uniform(fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def xavier_normal(fan_in, fan_out, rng):
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform(fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f
    for f in (zeros, uniform, normal, he_normal, he_uniform, xavier_normal, xavier_uniform)
}
INIT_CHOICES = ("auto", *INITIALIZERS)

_DEFAULT = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "sigmoid": "xavier_uniform",
    "tanh": "xavier_uniform",
    "softmax": "xavier_uniform",
}


def default_init(activation_name: str) -> str:
    """The sensible initialiser for a layer followed by ``activation_name``."""
    return _DEFAULT.get(activation_name, "xavier_uniform")


def initialize(
    name: str, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32
) -> np.ndarray:
    if name not in INITIALIZERS:
        raise ValueError(f"init={name!r} is not allowed: choose one of {', '.join(INIT_CHOICES)}.")
    return np.ascontiguousarray(INITIALIZERS[name](fan_in, fan_out, rng), dtype=dtype)
