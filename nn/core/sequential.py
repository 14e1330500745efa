"""``Sequential``: layers in order over one flat parameter array and one flat gradient array.

Building a stack checks every layer's settings and infers every shape without allocating; a
fault names the layer by its position and type (:class:`StackError`: ``index`` from 0, the
message from 1). The trained
parameters are views of ONE flat parameter array and their gradients views of ONE flat gradient
array, so an optimizer updates everything in a few long passes.

A ReLU followed by max pooling runs as pooling then ReLU (``forward`` without ``record``): the two
commute (ReLU keeps the order of values), so the pooled output is the same, and ReLU then touches a
quarter of the values (for 2x2 windows); the pooling kernel applies it in the same pass and its
winners carry ReLU's mask, so backward makes no separate ReLU pass either (the gradients are the
same too: see ``nn.core.pooling.Pool2DKernel.forward``).

A convolution followed (through such a ReLU or directly) by 2x2 max pooling with stride 2 trains
in pool order (``forward`` with ``keep``, without ``record``, on ``POOL_ORDER_MIN_ROWS`` images or
more): the convolution writes its output
positions as four contiguous blocks, one per offset of the pooling window
(``Conv2DKernel.forward_pool_order``), which the pooling compares whole instead of as strided
slices, and its backward hands the convolution dy in the same order. Only the order of the
convolution's output rows changes; every value is the one of the plain passes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nn.core.layers import (
    ActivationLayer,
    BatchNorm,
    Conv2D,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Shape,
    make_layer,
)

__all__ = ["StackError", "Sequential"]

POOL_ORDER_MIN_ROWS = 16
"""Batches of fewer images run in the plain order: for one drawing (the Draw page's saliency) the
pool order's extra reordering calls cost more than its contiguous pooling saves."""


class StackError(ValueError):
    """A stack fault naming the layer: ``index`` (in the stack, from 0) and ``kind``;
    ``built`` holds the layers before it, their shapes inferred."""

    def __init__(self, index: int, kind: Any, fault: str, built: Sequence[Layer] = ()):
        self.index, self.kind, self.fault, self.built = index, kind, fault, list(built)
        super().__init__(f"layer {index + 1} ({kind}): {fault}")


class Sequential:
    """Layers in order over one flat parameter array and one flat gradient array.

    ``specs`` are the layer dicts, the output dense layer included. Building checks every
    layer's settings and shapes without allocating; ``allocate()`` makes the flat parameter
    array and the state, ``attach_gradients()`` the flat gradient array (for training).
    """

    def __init__(self, specs: Sequence[dict], input_shape: Shape, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layers: list[Layer] = []
        shape = self.input_shape
        for index, spec in enumerate(specs):
            kind = spec.get("type") if isinstance(spec, dict) else type(spec).__name__
            try:
                layer = make_layer(spec)
                shape = layer.build(shape, self.dtype)
            except ValueError as exc:
                raise StackError(index, kind, str(exc), self.layers) from None
            self.layers.append(layer)
        self.output_shape = shape
        self._plan_in_place()
        self.relu_before_pool = [
            i
            for i, (layer, after) in enumerate(itertools.pairwise(self.layers))
            if type(layer) is ReLU and isinstance(after, MaxPool2D)
        ]
        self._deferred: frozenset[int] = frozenset()
        self.pool_order = self._plan_pool_order()
        self._pool_order_now: dict[int, int] = {}
        self._in_pool_order: frozenset[int] = frozenset()
        self.trained = [i for i, layer in enumerate(self.layers) if layer.param_names]
        self.n_parameters = int(sum(layer.n_parameters for layer in self.layers))
        self.flat_params: np.ndarray | None = None
        self.flat_grads: np.ndarray | None = None

    def _plan_in_place(self) -> None:
        """An activation works in place unless its input is the stack's input or another
        activation's output (seen through layers that may pass their input on unchanged)."""
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, ActivationLayer):
                continue
            j = i - 1
            while j >= 0 and isinstance(self.layers[j], (Dropout, Flatten)):
                j -= 1
            layer.in_place = j >= 0 and not isinstance(self.layers[j], ActivationLayer)

    def _plan_pool_order(self) -> dict[int, int]:
        """``{convolution index: pooling index}`` of the pairs that train in pool order."""
        plan = {}
        for i, layer in enumerate(self.layers):
            j = i + 2 if i + 1 in self.relu_before_pool else i + 1
            pool = self.layers[j] if j < len(self.layers) else None
            if (
                isinstance(layer, Conv2D)
                and isinstance(pool, MaxPool2D)
                and layer.kernel.pool_order_possible
                and pool.kernel.takes_blocks
            ):
                plan[i] = j
                layer.kernel.pool_order = True
        return plan

    # -- description
    def specs(self) -> list[dict[str, Any]]:
        return [layer.spec() for layer in self.layers]

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        return [
            (f"layer{i}.{layer.kind}.{name}", array)
            for i, layer in enumerate(self.layers)
            for name, array in zip(layer.param_names, layer.params, strict=True)
        ]

    def named_state(self) -> list[tuple[str, np.ndarray]]:
        return [
            (f"layer{i}.{layer.kind}.{name}", layer.state[name])
            for i, layer in enumerate(self.layers)
            for name in layer.state_names
        ]

    def load_state(self, named: dict[str, np.ndarray]) -> None:
        """Copy the non-trainable state named as ``named_state`` gives it (missing names keep
        their values)."""
        for i, layer in enumerate(self.layers):
            for name in layer.state_names:
                value = named.get(f"layer{i}.{layer.kind}.{name}")
                if value is not None:
                    layer.state[name][...] = value

    def param_names(self) -> list[str]:
        return [
            f"layer{i}.{layer.kind}.{name}"
            for i, layer in enumerate(self.layers)
            for name in layer.param_names
        ]

    def param_shapes(self) -> list[Shape]:
        return [s for layer in self.layers for s in layer.param_shapes()]

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    # -- memory
    def _views(self, flat: np.ndarray) -> list[list[np.ndarray]]:
        out, start = [], 0
        for layer in self.layers:
            views = []
            for shape in layer.param_shapes():
                size = math.prod(shape)
                views.append(flat[start : start + size].reshape(shape))
                start += size
            out.append(views)
        return out

    def allocate(self) -> np.ndarray:
        """Make the flat parameter array (uninitialised) and the layers' state."""
        return self._use_params(np.empty(self.n_parameters, self.dtype))

    def _use_params(self, flat: np.ndarray) -> np.ndarray:
        """Makes ``flat`` the flat parameter array (the layers' parameters its views) and resets
        the layers' state."""
        self.flat_params = flat
        for layer, views in zip(self.layers, self._views(flat), strict=True):
            layer.params = views
            layer.reset_state()
        return flat

    def attach_gradients(self) -> np.ndarray:
        self.flat_grads = np.empty(self.n_parameters, self.dtype)
        for layer, views in zip(self.layers, self._views(self.flat_grads), strict=True):
            layer.grads = views
        return self.flat_grads

    def replica(self) -> Sequential:
        """A stack of the same layers whose parameters are views of this one's (an update of
        either is the other's), with its own buffers and its own gradient array."""
        copy = Sequential(self.specs(), self.input_shape, self.dtype)
        copy._use_params(self.flat_params)
        copy.attach_gradients()
        return copy

    def detach_gradients(self) -> None:
        self.flat_grads = None
        for layer in self.layers:
            layer.grads = []

    def clear_buffers(self) -> None:
        for layer in self.layers:
            layer.clear_buffers()

    def __reduce__(self):
        """Pickle ships the specs, shapes, dtype and the named arrays, never the layer objects
        or their buffers; unpickling builds the stack again around fresh flat arrays."""
        arrays = None
        if self.flat_params is not None:
            arrays = (list(self.params), dict(self.named_state()))
        return _unpickled, (self.specs(), self.input_shape, self.dtype.str, arrays)

    def buffer_bytes(self, n: int, keep: bool = True) -> int:
        return int(sum(layer.buffer_bytes(n, keep) for layer in self.layers))

    def initialize(self, rng: np.random.Generator, init: str) -> None:
        """Initialise every trained layer in order from ``rng``; ``auto`` picks He or Xavier by
        the activation that follows the layer (``softmax`` for the last one)."""
        for i, layer in enumerate(self.layers):
            if layer.param_names:
                layer.initialize(rng, init, self._next_activation(i))

    def _next_activation(self, index: int) -> str:
        for layer in self.layers[index + 1 :]:
            if layer.activation_name:
                return layer.activation_name
            if layer.param_names and not isinstance(layer, BatchNorm):
                return "linear"
        return "softmax"

    # -- passes
    def forward(
        self,
        x: np.ndarray,
        training: bool = False,
        keep: bool = False,
        rng: np.random.Generator | None = None,
        record: list | None = None,
    ) -> np.ndarray:
        """The output of the stack for a float batch ``x``; ``record`` (a list) receives every
        layer's output."""
        a = x.reshape(x.shape[0], *self.input_shape)
        self.plan_pass(a.shape[0], keep, record is not None)
        for i in range(len(self.layers)):
            a = self.forward_layer(i, a, training, keep, rng)
            if record is not None:
                record.append(a.copy())
        return a

    def backward(self, dy: np.ndarray, need_dx: bool = False) -> np.ndarray | None:
        """Gradients of every parameter into the flat gradient array, from dL/d(output); with
        ``need_dx`` also returns dL/d(input) (otherwise the layers before the first trained one
        are skipped)."""
        first = 0 if need_dx else (self.trained[0] if self.trained else len(self.layers))
        for i in range(len(self.layers) - 1, first - 1, -1):
            dy = self.backward_layer(i, dy, need_dx or i > first)
        return dy if need_dx else None

    def plan_pass(self, n: int, keep: bool, recording: bool) -> None:
        """How the next forward on ``n`` images and its backward run the layers: a ReLU before
        max pooling inside the pooling, and the planned convolutions in pool order (with
        ``keep``, on ``POOL_ORDER_MIN_ROWS`` images or more); ``recording`` (every layer's own
        output wanted) runs every layer as itself. ``forward`` calls it; a caller that runs
        the layers one by one (``forward_layer``, ``backward_layer``) calls it first."""
        self._deferred = frozenset(self.relu_before_pool if not recording else ())
        in_order = keep and not recording and n >= POOL_ORDER_MIN_ROWS
        self._pool_order_now = self.pool_order if in_order else {}
        self._in_pool_order = frozenset(self._pool_order_now.values())

    def forward_layer(self, i: int, a: np.ndarray, training: bool, keep: bool, rng) -> np.ndarray:
        """Layer ``i``'s part of the forward pass that ``plan_pass`` planned (a deferred ReLU
        passes ``a`` on: the pooling after it applies it)."""
        layer = self.layers[i]
        if i in self._deferred:
            return a
        if i in self._pool_order_now:
            return layer.forward_pool_order(a)  # blocks for the pooling at pool_order[i]
        if i in self._in_pool_order:
            return layer.forward_blocks(a, relu=i - 1 in self._deferred)
        if i - 1 in self._deferred:
            return layer.forward_after_relu(a, keep)
        return layer.forward(a, training, keep, rng)

    def backward_layer(self, i: int, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        """Layer ``i``'s part of the backward pass of the last forward."""
        if i in self._in_pool_order:  # dy in pool order for the convolution before it
            return self.layers[i].backward_blocks(dy)
        if i in self._deferred:  # a deferred ReLU's mask is in its pooling's winners
            return dy
        return self.layers[i].backward(dy, need_dx=need_dx)


def _unpickled(specs: list[dict], input_shape: Shape, dtype: str, arrays: Any) -> Sequential:
    """The stack ``Sequential.__reduce__`` describes, its parameters and state filled in."""
    net = Sequential(specs, input_shape, np.dtype(dtype))
    if arrays is not None:
        params, state = arrays
        net.allocate()
        for p, value in zip(net.params, params, strict=True):
            p[...] = value
        net.load_state(state)
    return net
