"""Layers, each with its forward and backward side by side (``nn.core.sequential`` chains them).

A layer is built from a JSON-able dict such as ``{"type": "conv2d", "filters": 32, "kernel": 3}``
(see ``LAYERS``). ``build(input_shape, dtype)`` infers its output shape from its input shape
(shapes exclude the batch axis) and raises ``ValueError`` with the fault; ``Sequential`` prefixes
the fault with the layer's index and type. Trained parameters are views of ONE flat parameter
array and their gradients views of ONE flat gradient array, both owned by ``Sequential``, so an
optimizer updates everything in a few long passes. Non-trainable state (batch norm's running
mean and variance) lives in ``Layer.state``, apart from the parameters: saved with the model,
never seen by the optimizer.

``forward(x, training, keep, rng)``: ``training`` turns on dropout and batch statistics, ``keep``
keeps what ``backward`` needs. Every layer writes into buffers it makes once per batch size;
activations work in place on the previous layer's output when nothing else needs that output
(their derivative is computed from their output). ``backward(dy, need_dx)`` writes the layer's
gradients into its gradient views and returns dL/dx (or None when ``need_dx`` is False: nothing
before the layer is trained). Images are channels-last ``(height, width, channels)``.

A dense layer on an image input reads it as the flattened vector (``flatten`` is implicit), so a
stack may end on a convolution or pooling layer and the output layer still applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from nn.core import limits
from nn.core.activations import ACTIVATIONS, Activation, get_activation
from nn.core.conv import PADDINGS, Conv2DKernel
from nn.core.initializers import INITIALIZERS, default_init, initialize
from nn.core.pooling import Pool2DKernel

Shape = tuple[int, ...]


class Layer:
    """Base class. Subclasses set ``kind`` (the registry key) and ``settings`` (their allowed
    keys with defaults), and implement ``_output_shape``, ``forward`` and ``backward``."""

    kind = ""
    settings: dict[str, Any] = {}
    param_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    activation_name: str | None = None  # the name initialisers use for a following dense/conv

    def __init__(self, **settings: Any):
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            allowed = ", ".join(["type", *self.settings]) or "type"
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; use {allowed}")
        self.config = {**self.settings, **settings}
        self._check_settings()
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()
        self.dtype = np.dtype(np.float32)
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.state: dict[str, np.ndarray] = {}
        self._buffers: dict[int, dict[str, np.ndarray]] = {}

    def _check_settings(self) -> None:
        """Raise ``ValueError`` for a setting of the wrong kind or range."""

    # -- shapes
    def build(self, input_shape: Shape, dtype) -> Shape:
        """Fix the input shape and dtype; return the output shape (``ValueError`` if none)."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def param_shapes(self) -> list[Shape]:
        """Shapes of the trained parameters, in ``param_names`` order."""
        return []

    def state_shapes(self) -> list[Shape]:
        """Shapes of the non-trainable state arrays, in ``state_names`` order."""
        return []

    @property
    def n_parameters(self) -> int:
        return int(sum(math.prod(s) for s in self.param_shapes()))

    def buffer_bytes(self, n: int, keep: bool = True) -> int:
        """Bytes of the buffers ``forward`` and ``backward`` make for a batch of ``n``."""
        return n * math.prod(self.output_shape) * self.dtype.itemsize

    # -- parameters and state
    def initialize(self, rng: np.random.Generator, init: str, next_activation: str) -> None:
        """Fill the parameter views; ``next_activation`` picks the ``auto`` initialiser."""

    def reset_state(self) -> None:
        """Give the non-trainable state its starting values."""

    # -- buffers
    def buffer(self, n: int, name: str, shape: Shape, dtype=None) -> np.ndarray:
        """The work array ``name`` for batches of ``n`` rows, made once per batch size."""
        per_batch = self._buffers.setdefault(n, {})
        array = per_batch.get(name)
        if array is None:
            array = per_batch[name] = np.empty(shape, dtype or self.dtype)
        return array

    def clear_buffers(self) -> None:
        self._buffers = {}

    # -- the maths
    def forward(
        self, x: np.ndarray, training: bool, keep: bool, rng: np.random.Generator | None
    ) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        raise NotImplementedError

    # -- description
    def spec(self) -> dict[str, Any]:
        """The JSON-able dict that builds this layer again."""
        return {"type": self.kind, **self.config}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def _whole(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed: use a whole number >= {low}")
    return int(value)


def _fraction(value: Any, name: str, low: float, high: float, allowed: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or not low <= value < high
    ):
        raise ValueError(f"{name}={value!r} is not allowed: use {allowed}")
    return float(value)


def _image(input_shape: Shape, kind: str) -> Shape:
    if len(input_shape) != 3:
        raise ValueError(
            f"{kind} needs an image input (height, width, channels) but gets a vector of "
            f"{input_shape[0]} (after a flatten or dense layer); put the {kind} layers before "
            f"the flatten and dense layers"
        )
    return input_shape


# ---------------------------------------------------------------------------- trained layers
class Dense(Layer):
    """``y = x @ W + b`` with ``W`` of shape ``(inputs, units)``; an image input is flattened."""

    kind = "dense"
    settings = {"units": None}
    param_names = ("weight", "bias")

    def _check_settings(self):
        self.config["units"] = _whole(self.config["units"], "units")

    def _output_shape(self, input_shape):
        return (self.config["units"],)

    def param_shapes(self):
        return [(math.prod(self.input_shape), self.config["units"]), (self.config["units"],)]

    def initialize(self, rng, init, next_activation):
        name = default_init(next_activation) if init == "auto" else init
        fan_in, fan_out = self.param_shapes()[0]
        self.params[0][...] = initialize(name, fan_in, fan_out, rng, self.dtype)
        self.params[1].fill(0)

    def buffer_bytes(self, n, keep=True):
        dx = n * math.prod(self.input_shape) if keep else 0
        return (n * self.config["units"] + dx) * self.dtype.itemsize

    def forward(self, x, training, keep, rng):
        n = x.shape[0]
        x2 = x.reshape(n, -1)
        self._x = x2
        z = np.matmul(x2, self.params[0], out=self.buffer(n, "z", (n, self.config["units"])))
        z += self.params[1]
        return z

    def backward(self, dy, need_dx):
        weight, (dweight, dbias) = self.params[0], self.grads
        np.matmul(self._x.T, dy, out=dweight)
        np.sum(dy, axis=0, out=dbias)
        if not need_dx:
            return None
        n = dy.shape[0]
        dx = np.matmul(dy, weight.T, out=self.buffer(n, "dx", (n, weight.shape[0])))
        return dx.reshape(n, *self.input_shape)


_CONV_FANS: dict[str, Callable[[int, int], float]] = {
    "he_normal": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),
    "he_uniform": lambda fan_in, fan_out: math.sqrt(6.0 / fan_in),
    "xavier_normal": lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),
    "xavier_uniform": lambda fan_in, fan_out: math.sqrt(6.0 / (fan_in + fan_out)),
}


class Conv2D(Layer):
    """Channels-last convolution (``nn.core.conv.Conv2DKernel``), weight ``(k, k, c, filters)``.

    He and Xavier initialisers use ``fan_in = k*k*c`` and ``fan_out = k*k*filters``.
    """

    kind = "conv2d"
    settings = {"filters": None, "kernel": 3, "stride": 1, "padding": "valid"}
    param_names = ("weight", "bias")

    def _check_settings(self):
        cfg = self.config
        cfg["filters"] = _whole(cfg["filters"], "filters")
        cfg["kernel"] = _whole(cfg["kernel"], "kernel")
        cfg["stride"] = _whole(cfg["stride"], "stride")
        if cfg["padding"] not in PADDINGS:
            raise ValueError(
                f"padding={cfg['padding']!r} is not allowed: use {' or '.join(PADDINGS)}"
            )

    def _output_shape(self, input_shape):
        h, w, _ = _image(input_shape, "conv2d")
        cfg = self.config
        if cfg["padding"] == "valid" and cfg["kernel"] > min(h, w):
            raise ValueError(
                f"kernel {cfg['kernel']} is larger than its {h}x{w} input; use a kernel of at "
                f"most {min(h, w)} or padding 'same'"
            )
        n_params = (cfg["kernel"] ** 2 * input_shape[2] + 1) * cfg["filters"]
        if n_params > limits.MAX_PARAMETERS:  # the kernel makes arrays of this size
            raise ValueError(
                f"{cfg['filters']:,} filters of {cfg['kernel']}x{cfg['kernel']}x{input_shape[2]} "
                f"are {n_params:,} parameters; the limit is {limits.MAX_PARAMETERS:,} "
                f"(nn.core.limits.MAX_PARAMETERS): use fewer or smaller filters"
            )
        self.kernel = Conv2DKernel(
            input_shape, cfg["filters"], cfg["kernel"], cfg["stride"], cfg["padding"], self.dtype
        )
        return tuple(self.kernel.output_shape)

    def param_shapes(self):
        k, c, f = self.config["kernel"], self.input_shape[2], self.config["filters"]
        return [(k, k, c, f), (f,)]

    def initialize(self, rng, init, next_activation):
        name = default_init(next_activation) if init == "auto" else init
        k, c, f = self.config["kernel"], self.input_shape[2], self.config["filters"]
        fan_in, fan_out = k * k * c, k * k * f
        if name in _CONV_FANS:
            scale = _CONV_FANS[name](fan_in, fan_out)
            if name.endswith("normal"):
                values = rng.standard_normal((fan_in, f)) * scale
            else:
                values = rng.uniform(-scale, scale, size=(fan_in, f))
        else:
            values = INITIALIZERS[name](fan_in, f, rng)
        self.params[0][...] = values.reshape(k, k, c, f)
        self.params[1].fill(0)

    def buffer_bytes(self, n, keep=True):
        return self.kernel.planned_bytes(n, keep)

    def forward(self, x, training, keep, rng):
        return self.kernel.forward(x, self.params[0], self.params[1], keep=keep)

    def forward_pool_order(self, x):
        """The kept forward with its output in pool order, for the 2x2 max pooling after it
        (``Sequential`` plans it; ``backward`` then takes dy in that order)."""
        return self.kernel.forward_pool_order(x, self.params[0], self.params[1])

    def backward(self, dy, need_dx):
        return self.kernel.backward(dy, self.params[0], self.grads[0], self.grads[1], need_dx)

    def clear_buffers(self):
        super().clear_buffers()
        self.kernel.clear_buffers()


class BatchNorm(Layer):
    """Batch normalisation per feature (vector input) or per channel (image input).

    Training normalises by the batch's mean and (biased) variance and moves the running
    statistics toward them: ``running = momentum * running + (1 - momentum) * batch`` (the running
    variance takes the unbiased batch variance). Prediction normalises by the running statistics.
    ``y = gamma * x_hat + beta``; gamma starts at 1, beta at 0.
    """

    kind = "batchnorm"
    settings = {"momentum": 0.9, "epsilon": 1e-5}
    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")

    def _check_settings(self):
        cfg = self.config
        cfg["momentum"] = _fraction(cfg["momentum"], "momentum", 0, 1, "a number in [0, 1)")
        epsilon = cfg["epsilon"]
        if not (_fraction(epsilon, "epsilon", 0, math.inf, "a number > 0") > 0):
            raise ValueError(f"epsilon={epsilon!r} is not allowed: use a number > 0")
        cfg["epsilon"] = float(epsilon)

    def param_shapes(self):
        return [(self.input_shape[-1],)] * 2

    def state_shapes(self):
        return [(self.input_shape[-1],)] * 2

    def initialize(self, rng, init, next_activation):
        self.params[0].fill(1)
        self.params[1].fill(0)

    def reset_state(self):
        self.state = {
            "running_mean": np.zeros(self.input_shape[-1], self.dtype),
            "running_var": np.ones(self.input_shape[-1], self.dtype),
        }

    def buffer_bytes(self, n, keep=True):
        size = n * math.prod(self.input_shape)
        return (size * (3 if keep else 1)) * self.dtype.itemsize

    def forward(self, x, training, keep, rng):
        """Training: mean, ``x - mean`` (kept for backward), the variance from it, then ``y =
        centred * (gamma * inv_std) + beta``: five passes. Prediction without ``keep``: ``y = x *
        scale + shift`` with both folded per channel, two passes."""
        n, c = x.shape[0], self.input_shape[-1]
        rows = x.reshape(-1, c)
        y = self.buffer(n, "y", x.shape)
        out = y.reshape(-1, c)
        gamma, beta = self.params
        self._training = training
        if not (training or keep):
            mean, var = self.state["running_mean"], self.state["running_var"]
            scale = (gamma / np.sqrt(var + self.config["epsilon"])).astype(self.dtype)
            np.multiply(rows, scale, out=out)
            out += beta - mean * scale
            return y
        centred = self.buffer(n, "centred", x.shape).reshape(-1, c)
        mean = rows.mean(axis=0) if training else self.state["running_mean"]
        np.subtract(rows, mean, out=centred)
        if training:
            var = np.einsum("ij,ij->j", centred, centred) / rows.shape[0]
            self._update_running(mean, var, rows.shape[0])
        else:
            var = self.state["running_var"]
        self._inv_std = (1.0 / np.sqrt(var + self.config["epsilon"])).astype(self.dtype)
        np.multiply(centred, gamma * self._inv_std, out=out)
        out += beta
        return y

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        m = self.config["momentum"]
        unbiased = var * (count / max(count - 1, 1))
        running_mean, running_var = self.state["running_mean"], self.state["running_var"]
        running_mean *= m
        running_mean += (1 - m) * mean
        running_var *= m
        running_var += (1 - m) * unbiased

    def backward(self, dy, need_dx):
        n, c = dy.shape[0], self.input_shape[-1]
        g = dy.reshape(-1, c)
        centred = self.buffer(n, "centred", dy.shape).reshape(-1, c)
        dgamma, dbeta = self.grads
        np.einsum("ij,ij->j", g, centred, out=dgamma)  # sum(dy * x_hat) = this * inv_std
        dgamma *= self._inv_std
        np.sum(g, axis=0, out=dbeta)
        if not need_dx:
            return None
        dx = self.buffer(n, "dx", dy.shape)
        rows = dx.reshape(-1, c)
        scale = self.params[0] * self._inv_std
        if not self._training:
            np.multiply(g, scale, out=rows)
            return dx
        # dx = gamma*inv_std/m * (m*dy - sum(dy) - x_hat*sum(dy*x_hat)), m rows per channel
        count = g.shape[0]
        np.multiply(centred, dgamma * self._inv_std / count, out=rows)
        rows += dbeta / count
        np.subtract(g, rows, out=rows)
        rows *= scale
        return dx


# ---------------------------------------------------------------------------- shape layers
class _Pool(Layer):
    mode = ""
    settings = {"size": 2, "stride": None}

    def _check_settings(self):
        cfg = self.config
        cfg["size"] = _whole(cfg["size"], "size")
        cfg["stride"] = cfg["size"] if cfg["stride"] is None else _whole(cfg["stride"], "stride")

    def _output_shape(self, input_shape):
        h, w, _ = _image(input_shape, self.kind)
        size = self.config["size"]
        if size > min(h, w):
            raise ValueError(
                f"pool size {size} is larger than its {h}x{w} input: pooling leaves nothing; "
                f"use a size of at most {min(h, w)} or fewer pooling layers"
            )
        self.kernel = Pool2DKernel(input_shape, size, self.config["stride"], self.mode, self.dtype)
        return tuple(self.kernel.output_shape)

    def buffer_bytes(self, n, keep=True):
        return self.kernel.planned_bytes(n, keep)

    def forward(self, x, training, keep, rng):
        return self.kernel.forward(x, keep=keep)

    def backward(self, dy, need_dx):
        return self.kernel.backward(dy) if need_dx else None

    def clear_buffers(self):
        super().clear_buffers()
        self.kernel.clear_buffers()


class MaxPool2D(_Pool):
    kind, mode = "maxpool", "max"

    def forward_after_relu(self, x, keep):
        """The pooling of ``max(x, 0)``, computed as ``max(pooled x, 0)`` in the pooling's own
        pass; ``backward`` then includes ReLU's mask (``Sequential`` plans it)."""
        return self.kernel.forward(x, keep=keep, relu=True)

    def forward_blocks(self, blocks, relu):
        """The kept forward of an input in pool order (``Conv2D.forward_pool_order``), with
        the ReLU before it folded in if ``relu``; ``backward_blocks`` is its backward."""
        return self.kernel.forward_blocks(blocks, relu=relu)

    def backward_blocks(self, dy):
        """dL/d(input) in pool order, for the convolution's ``backward``."""
        return self.kernel.backward_blocks(dy)


class AvgPool2D(_Pool):
    kind, mode = "avgpool", "avg"


class Flatten(Layer):
    kind = "flatten"

    def _output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def buffer_bytes(self, n, keep=True):
        return 0

    def forward(self, x, training, keep, rng):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx):
        return dy.reshape(dy.shape[0], *self.input_shape) if need_dx else None


class Dropout(Layer):
    """Inverted dropout: in training each value is kept with probability ``1 - rate`` and scaled
    by ``1 / (1 - rate)``; at predict time the layer passes its input through. The mask is drawn
    with ``rng.random(shape, dtype, out=...)`` into a buffer."""

    kind = "dropout"
    settings = {"rate": 0.5}

    def _check_settings(self):
        self.config["rate"] = _fraction(
            self.config["rate"], "rate", 0, 1, "a probability in [0, 1)"
        )

    def buffer_bytes(self, n, keep=True):
        return 2 * n * math.prod(self.input_shape) * self.dtype.itemsize

    def forward(self, x, training, keep, rng):
        rate = self.config["rate"]
        self._active = training and rate > 0
        if not self._active:
            return x
        n = x.shape[0]
        mask = self.buffer(n, "mask", x.shape)
        rng.random(mask.shape, dtype=mask.dtype, out=mask)
        np.greater_equal(mask, rate, out=mask)  # 1.0 where kept
        mask *= mask.dtype.type(1.0 / (1.0 - rate))
        return np.multiply(x, mask, out=self.buffer(n, "y", x.shape))

    def backward(self, dy, need_dx):
        if not need_dx:
            return None
        if self._active:
            dy *= self.buffer(dy.shape[0], "mask", dy.shape)
        return dy


class ActivationLayer(Layer):
    """An element-wise activation of ``nn.core.activations``; in place on its input when the
    stack allows (``in_place``), its derivative taken from its output."""

    function: Activation

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self.function = get_activation(self.kind, **self.config)
        self.activation_name = self.kind
        self.in_place = False

    def buffer_bytes(self, n, keep=True):
        return 0 if self.in_place else super().buffer_bytes(n, keep)

    def forward(self, x, training, keep, rng):
        out = x if self.in_place else self.buffer(x.shape[0], "y", x.shape)
        self._output = self.function.forward(x, out=out)
        return self._output

    def backward(self, dy, need_dx):
        return self.function.backward(dy, self._output) if need_dx else None


class ReLU(ActivationLayer):
    kind = "relu"


class Sigmoid(ActivationLayer):
    kind = "sigmoid"


class Tanh(ActivationLayer):
    kind = "tanh"


class LeakyReLU(ActivationLayer):
    kind = "leaky_relu"
    settings = {"slope": 0.01}

    def _check_settings(self):
        self.config["slope"] = _fraction(self.config["slope"], "slope", 0, 1, "a number in [0, 1)")


LAYERS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (
        Dense,
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        BatchNorm,
        Flatten,
        Dropout,
        ReLU,
        Sigmoid,
        Tanh,
        LeakyReLU,
    )
}
assert set(ACTIVATIONS) <= set(LAYERS)
TRAINED = frozenset(k for k, cls in LAYERS.items() if cls.param_names)
IMAGE_LAYERS = frozenset({"conv2d", "maxpool", "avgpool"})


def make_layer(spec: Any) -> Layer:
    """A layer from its dict ``{"type": ..., settings...}``; ``ValueError`` naming the fault."""
    if not isinstance(spec, dict):
        raise ValueError(f"{spec!r} is not a layer: give a dict such as {{'type': 'relu'}}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in LAYERS:
        raise ValueError(f"unknown type {kind!r}; use one of {', '.join(LAYERS)}")
    return LAYERS[kind](**{k: v for k, v in spec.items() if k != "type"})
