"""The arithmetic of one example through a network, as JSON-able numbers.

:class:`Trace` runs one example through a float64 copy of a fitted network's stack
(``nn.core.sequential.Sequential``), using the layers' own ``forward`` and ``backward``, and
keeps every layer's input, output, dL/d(output) and dL/d(input) and every parameter's
gradient. From those it answers, for one unit of one layer (layer indices as
``Sequential.layers`` numbers them, which is what ``python -m nn info`` prints):

- ``unit(layer, unit, position)``: what the unit reads and its weights, its bias, ``z``, the
  activation that follows (or the softmax probability for the output layer), the loss, dL/dz,
  dL/dw and dL/db. A dense unit reads the layer's whole (flattened) input; a convolution filter at
  an output position reads the input patch under its kernel (``dL/dkernel`` sums over all
  positions); a batch-norm unit reads ``x_hat = (x - mean) / sqrt(var + eps)`` and has the weight
  gamma and the bias beta; a pooling unit reads its window, with weight 1 on the value that won
  (max) or ``1/size^2`` on each value (average) and no parameters.
- ``gradient_check(...)``: float64 central differences of the loss beside the backpropagated
  gradient, for the unit's weights with the largest gradients (for a pooling unit, for its
  inputs).
- ``softmax_table(temperature)``: logits, exponentials, their sum and the probabilities.
- ``sgd_step(lr)``: one plain SGD step on this example for every parameter of the copy.

The loss is the cross-entropy of the example, ``-log p[label]`` (no L2 term). Everything is
float64, so the gradient check compares backprop with central differences to ~1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core.layers import ActivationLayer, Layer
from nn.core.sequential import Sequential

__all__ = [
    "CHECK_STEP",
    "EXPLAINED_KINDS",
    "MathsError",
    "Trace",
    "float64_stack",
    "relative_error",
]

EXPLAINED_KINDS = ("dense", "conv2d", "batchnorm", "maxpool", "avgpool")
"""Layer kinds with units of their own; activations, dropout and flatten are shown as the ``a``
of the layer before them."""
IMAGE_KINDS = ("conv2d", "maxpool", "avgpool")
CHECK_STEP = 1e-6
"""The central-difference step h of the gradient check (float64)."""
CHECK_SAMPLE = 8
_PASS_THROUGH = ("batchnorm", "dropout")  # between a layer and the activation that follows it


class MathsError(ValueError):
    """A layer, unit, position, label or setting that the network does not have."""


def relative_error(backprop: float, numeric: float) -> float:
    """``|b - n| / max(|b|, |n|, 1e-8)``: the relative error of a gradient check (the floor keeps
    two gradients that are both about zero from counting as far apart)."""
    return abs(backprop - numeric) / max(abs(backprop), abs(numeric), 1e-8)


def float64_stack(net: Sequential) -> Sequential:
    """A float64 copy of ``net`` (parameters and running statistics), gradients attached."""
    copy = Sequential(net.specs(), net.input_shape, np.float64)
    copy.allocate()
    copy.flat_params[...] = net.flat_params
    copy.load_state(dict(net.named_state()))
    copy.attach_gradients()
    return copy


@dataclass(frozen=True)
class UnitRef:
    """One unit: ``layer`` index, ``unit`` (feature, or channel/filter of an image layer) and
    ``position`` ``(row, column)`` on an image layer's output (None for a vector layer)."""

    layer: int
    unit: int
    position: tuple[int, int] | None


class Trace:
    """One example through a float64 copy of a stack: forward, backward and their numbers.

    ``x`` is the example's input row (any shape with ``prod(net.input_shape)`` values, floats in
    the units the model was trained on, [0, 1] for MNIST); ``label`` is the index of its true
    class among the outputs.
    """

    def __init__(self, net: Sequential, x: np.ndarray, label: int):
        self.n_classes = int(net.output_shape[-1])
        x = np.asarray(x)
        if x.size != math.prod(net.input_shape):  # checked before anything is copied
            raise MathsError(
                f"the input has {x.size} values but the network reads {math.prod(net.input_shape)}"
            )
        if x.dtype.kind not in "uif" or x.dtype == np.bool_:
            raise MathsError(f"the input must hold numbers, not {x.dtype}")
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise MathsError("the input holds NaN or infinite values")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise MathsError(f"label {label!r} is not a class index")
        if not 0 <= int(label) < self.n_classes:
            raise MathsError(f"label {label} is not allowed: use 0 to {self.n_classes - 1}")
        self.net = float64_stack(net)
        self.x = x.reshape(1, *self.net.input_shape)
        self.label = int(label)
        self.steps = 0
        self.run()

    # ------------------------------------------------------------------ the passes
    @property
    def layers(self) -> list[Layer]:
        return self.net.layers

    def run(self) -> None:
        """Forward and backward through the copy with its current parameters."""
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []
        a = self.x
        for layer in self.layers:
            self.inputs.append(a.copy())
            a = layer.forward(a, False, True, None)
            self.outputs.append(a.copy())
        self.logits = self.outputs[-1][0].copy()
        self.proba = _softmax(self.logits)
        self.loss = _cross_entropy(self.logits, self.label)
        dy = self.proba.copy()
        dy[self.label] -= 1.0
        dy = dy[None, :]
        self.output_grads: list[np.ndarray] = [np.empty(0)] * len(self.layers)
        self.input_grads: list[np.ndarray] = [np.empty(0)] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            self.output_grads[i] = dy.copy()
            dy = self.layers[i].backward(dy.copy(), need_dx=True)
            self.input_grads[i] = dy.copy()
        self.param_grads = [[g.copy() for g in layer.grads] for layer in self.layers]

    def losses_from(self, start: int, a: np.ndarray) -> list[float]:
        """The example's loss for each row of ``a`` given to layer ``start`` (the later layers'
        forward, all rows in one batch: prediction mode treats every row on its own)."""
        for layer in self.layers[start:]:
            a = layer.forward(a, False, False, None)
        return [_cross_entropy(row, self.label) for row in a.reshape(a.shape[0], -1)]

    # ------------------------------------------------------------------ choosing a unit
    def describe_layers(self) -> list[dict[str, Any]]:
        """Index, kind, output shape and whether it has units of its own, for every layer."""
        return [
            {
                "index": i,
                "kind": layer.kind,
                "output_shape": [int(s) for s in layer.output_shape],
                "explained": layer.kind in EXPLAINED_KINDS,
                "is_output": i == len(self.layers) - 1,
            }
            for i, layer in enumerate(self.layers)
        ]

    def n_units(self, layer: int) -> int:
        return int(self._layer(layer).output_shape[-1])

    def check_unit(self, layer: int, unit: Any, position: Any = None) -> UnitRef:
        """The unit as a :class:`UnitRef`; :class:`MathsError` naming what is wrong. An image
        layer's position defaults to where the unit's output is largest."""
        kind = self._layer(layer).kind
        if kind not in EXPLAINED_KINDS:
            raise MathsError(
                f"layer {layer} ({kind}) has no units of its own: choose a layer of kind "
                f"{', '.join(EXPLAINED_KINDS)} (an activation is shown as the 'a' of the layer "
                "before it)"
            )
        n = self.n_units(layer)
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
            raise MathsError(f"unit {unit!r} is not allowed for layer {layer}: use 0 to {n - 1}")
        unit = int(unit)
        out = self.outputs[layer][0]
        if out.ndim == 1:
            if position is not None:
                raise MathsError(f"layer {layer} ({kind}) is a vector: it has no positions")
            return UnitRef(layer, unit, None)
        h, w = out.shape[:2]
        if position is None:
            r, c = np.unravel_index(int(np.argmax(out[..., unit])), (h, w))
            return UnitRef(layer, unit, (int(r), int(c)))
        r, c = _position(position)
        if not (0 <= r < h and 0 <= c < w):
            raise MathsError(
                f"position {r},{c} is not allowed for layer {layer}: its maps are {h}x{w}, so use "
                f"rows 0 to {h - 1} and columns 0 to {w - 1}"
            )
        return UnitRef(layer, unit, (r, c))

    def most_active(self, layer: int) -> int:
        """The unit whose activation (or, for an image layer, largest value) is largest."""
        self.check_unit(layer, 0)
        after = self._activation_after(layer)
        out = self.outputs[after if after is not None else layer][0]
        if layer == len(self.layers) - 1:
            out = self.proba
        values = out.reshape(-1, out.shape[-1]).max(axis=0)
        return int(np.argmax(values))

    # ------------------------------------------------------------------ one unit's numbers
    def unit(self, layer: int, unit: Any, position: Any = None) -> dict[str, Any]:
        """The forward and backward numbers of one unit (see the module docstring)."""
        ref = self.check_unit(layer, unit, position)
        kind = self.layers[ref.layer].kind
        parts = _UNIT_PARTS[kind](self, ref)
        at = _index(ref)
        is_output = ref.layer == len(self.layers) - 1
        after = self._activation_after(ref.layer)
        z = float(self.outputs[ref.layer][at])
        if is_output:
            a, activation = float(self.proba[ref.unit]), "softmax"
        elif after is not None:
            a, activation = float(self.outputs[after][at]), self.layers[after].kind
        else:
            a, activation = z, "identity"
        return {
            "layer": ref.layer,
            "kind": kind,
            "unit": ref.unit,
            "position": list(ref.position) if ref.position else None,
            "is_output": is_output,
            **parts,
            "z": z,
            "activation": activation,
            "activation_layer": after,
            "activation_input": z if after is None else float(self.inputs[after][at]),
            "between": [la.kind for la in self.layers[ref.layer + 1 : after or ref.layer + 1]],
            "activation_slope": self._slope(after),
            "a": a,
            "label": self.label,
            "loss": self.loss,
            "delta": float(self.output_grads[ref.layer][at]),
        }

    def _dense(self, ref: UnitRef) -> dict[str, Any]:
        layer = self.layers[ref.layer]
        grads = self.param_grads[ref.layer]
        return {
            "inputs": _floats(self.inputs[ref.layer].reshape(-1)),
            "input_shape": list(layer.input_shape),
            "weights": _floats(layer.params[0][:, ref.unit]),
            "bias": float(layer.params[1][ref.unit]),
            "grad_weights": _floats(grads[0][:, ref.unit]),
            "grad_bias": float(grads[1][ref.unit]),
            "checks": "weights",
        }

    def _conv(self, ref: UnitRef) -> dict[str, Any]:
        layer = self.layers[ref.layer]
        kernel, grads = layer.kernel, self.param_grads[ref.layer]
        k, s = kernel.kernel, kernel.stride
        padded = np.pad(
            self.inputs[ref.layer][0],
            ((kernel.pad_top, kernel.pad_bottom), (kernel.pad_left, kernel.pad_right), (0, 0)),
        )
        r, c = ref.position
        patch = padded[r * s : r * s + k, c * s : c * s + k, :]
        return {
            "inputs": _floats(patch.reshape(-1)),
            "input_shape": [k, k, int(patch.shape[2])],
            "patch_origin": [r * s - kernel.pad_top, c * s - kernel.pad_left],
            "weights": _floats(layer.params[0][..., ref.unit].reshape(-1)),
            "bias": float(layer.params[1][ref.unit]),
            "grad_weights": _floats(grads[0][..., ref.unit].reshape(-1)),
            "grad_bias": float(grads[1][ref.unit]),
            "checks": "weights",
        }

    def _batchnorm(self, ref: UnitRef) -> dict[str, Any]:
        layer = self.layers[ref.layer]
        at = _index(ref)
        x = float(self.inputs[ref.layer][at])
        mean = float(layer.state["running_mean"][ref.unit])
        var = float(layer.state["running_var"][ref.unit])
        eps = float(layer.config["epsilon"])
        grads = self.param_grads[ref.layer]
        return {
            "inputs": [(x - mean) / math.sqrt(var + eps)],
            "input_shape": [1],
            "weights": [float(layer.params[0][ref.unit])],
            "bias": float(layer.params[1][ref.unit]),
            "grad_weights": [float(grads[0][ref.unit])],
            "grad_bias": float(grads[1][ref.unit]),
            "checks": "weights",
            "x": x,
            "running_mean": mean,
            "running_var": var,
            "epsilon": eps,
        }

    def _pool(self, ref: UnitRef) -> dict[str, Any]:
        layer = self.layers[ref.layer]
        size, stride = layer.config["size"], layer.config["stride"]
        r, c = ref.position
        rows, cols = slice(r * stride, r * stride + size), slice(c * stride, c * stride + size)
        window = self.inputs[ref.layer][0, rows, cols, ref.unit]
        if layer.kind == "maxpool":
            weights = np.zeros(window.size)
            weights[int(np.argmax(window))] = 1.0
        else:
            weights = np.full(window.size, 1.0 / window.size)
        return {
            "inputs": _floats(window.reshape(-1)),
            "input_shape": [size, size, 1],
            "patch_origin": [r * stride, c * stride],
            "weights": _floats(weights),
            "bias": 0.0,
            "grad_weights": None,
            "grad_bias": None,
            "checks": "inputs",
        }

    # ------------------------------------------------------------------ gradient check
    def gradient_check(
        self, layer: int, unit: Any, position: Any = None, sample: int = CHECK_SAMPLE
    ) -> dict[str, Any]:
        """Central differences ``(L(w + h) - L(w - h)) / 2h`` (h = :data:`CHECK_STEP`) for the
        ``sample`` weights of the unit with the largest backpropagated gradients (a pooling
        unit: its inputs), beside those gradients; ``max_rel_error`` over them."""
        ref = self.check_unit(layer, unit, position)
        kind = self.layers[ref.layer].kind
        if kind in ("maxpool", "avgpool"):
            targets, backprop = self._pool_targets(ref)
        else:
            targets, backprop = self._weight_targets(ref)
        chosen = sorted(int(j) for j in np.argsort(-np.abs(backprop), kind="stable")[:sample])
        numeric = self._central_differences(ref.layer, [targets[i] for i in chosen])
        rows = [
            {"index": i, "backprop": float(backprop[i]), "numeric": n}
            for i, n in zip(chosen, numeric, strict=True)
        ]
        errors = [relative_error(r["backprop"], r["numeric"]) for r in rows]
        return {
            "numeric_grad": rows,
            "max_rel_error": max(errors) if errors else None,
            "step": CHECK_STEP,
            "checks": "inputs" if kind in ("maxpool", "avgpool") else "weights",
        }

    def _weight_targets(self, ref: UnitRef) -> tuple[list, np.ndarray]:
        layer = self.layers[ref.layer]
        weight, grad = layer.params[0], self.param_grads[ref.layer][0]
        cells = np.arange(weight.size).reshape(weight.shape)
        # the unit's column of a dense weight, its filter of a kernel, its gamma
        cells = np.ravel(cells[..., ref.unit])
        return [(weight, int(j)) for j in cells], grad.reshape(-1)[cells]

    def _pool_targets(self, ref: UnitRef) -> tuple[list, np.ndarray]:
        layer = self.layers[ref.layer]
        size, stride = layer.config["size"], layer.config["stride"]
        r, c = ref.position
        x = self.inputs[ref.layer][0]
        cells = np.arange(x.size).reshape(x.shape)
        cells = cells[r * stride : r * stride + size, c * stride : c * stride + size, ref.unit]
        cells = np.ravel(cells)
        return [(None, int(j)) for j in cells], self.input_grads[ref.layer].reshape(-1)[cells]

    def _central_differences(self, layer: int, targets: list) -> list[float]:
        """dL/d(value) by central differences for each ``(array, flat index)`` of ``targets``: a
        parameter of ``layer``, or (``array`` None) one value of the layer's input. Every moved
        value gives the input of the layers after it, and all of those go forward as one batch."""
        h = CHECK_STEP
        moved = []
        for array, flat_index in targets:
            for sign in (1.0, -1.0):
                if array is None:
                    a = self.inputs[layer].copy()
                    a.reshape(-1)[flat_index] += sign * h
                    moved.append(a)
                    continue
                values = array.reshape(-1)
                kept = values[flat_index]
                values[flat_index] = kept + sign * h
                try:
                    out = self.layers[layer].forward(self.inputs[layer], False, False, None)
                    moved.append(out.copy())
                finally:
                    values[flat_index] = kept
        if not moved:
            return []
        start = layer if targets[0][0] is None else layer + 1
        losses = self.losses_from(start, np.concatenate(moved))
        return [(losses[2 * i] - losses[2 * i + 1]) / (2 * h) for i in range(len(targets))]

    # ------------------------------------------------------------------ the way back
    def output_gradient(self) -> dict[str, Any]:
        """dL/dlogits = p - onehot(label), with p and the one-hot vector."""
        onehot = np.zeros(self.n_classes)
        onehot[self.label] = 1.0
        return {
            "proba": _floats(self.proba),
            "onehot": _floats(onehot),
            "delta": _floats(self.output_grads[-1][0]),
        }

    def gradient_chain(self, layer: int) -> list[dict[str, Any]]:
        """For every layer from the output down to ``layer``: its index and kind, the size of
        dL/d(its output) (the root of the sum of squares) and its largest absolute value."""
        self._layer(layer)
        rows = []
        for i in range(len(self.layers) - 1, layer - 1, -1):
            g = self.output_grads[i]
            rows.append(
                {
                    "layer": i,
                    "kind": self.layers[i].kind,
                    "norm": float(np.sqrt(np.vdot(g, g))),
                    "largest": float(np.abs(g).max()),
                }
            )
        return rows

    def feature_map(self, layer: int, channel: int) -> list[list[float]]:
        """One channel of an image layer's output, rows of values."""
        self._layer(layer)
        out = self.outputs[layer][0]
        if out.ndim != 3 or not 0 <= channel < out.shape[2]:
            raise MathsError(f"layer {layer} has no feature map {channel}")
        return [_floats(row) for row in out[..., channel]]

    # ------------------------------------------------------------------ softmax and a step
    def softmax_table(self, temperature: float = 1.0) -> dict[str, Any]:
        """Logits, ``exp((z - max z) / T)``, their sum and the probabilities at temperature T,
        with the loss ``-log p[label]`` at that temperature."""
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0.01 <= temperature <= 100
        ):
            raise MathsError(f"temperature {temperature!r} is not allowed: use 0.01 to 100")
        shifted = (self.logits - self.logits.max()) / temperature
        exps = np.exp(shifted)
        total = float(exps.sum())
        proba = exps / total
        return {
            "temperature": float(temperature),
            "logits": _floats(self.logits),
            "max_logit": float(self.logits.max()),
            "exps": _floats(exps),
            "sum": total,
            "proba": _floats(proba),
            "label": self.label,
            "loss": float(-np.log(max(proba[self.label], 1e-300))),
        }

    def sgd_step(self, lr: float) -> dict[str, Any]:
        """One SGD step ``theta -= lr * dL/dtheta`` on every parameter of the copy for this
        example, then the passes again. Returns the loss and probabilities before and after and
        the step's size relative to the parameters (``|lr * grad| / |theta|``)."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 10:
            raise MathsError(f"learning rate {lr!r} is not allowed: use a number in (0, 10]")
        before, proba_before = self.loss, self.proba.copy()
        flat, grads = (
            self.net.flat_params,
            np.concatenate([g.reshape(-1) for layer in self.param_grads for g in layer]),
        )
        change = lr * grads
        relative = float(np.linalg.norm(change) / max(np.linalg.norm(flat), 1e-300))
        flat -= change
        self.steps += 1
        self.run()
        return {
            "lr": float(lr),
            "loss_before": before,
            "loss_after": self.loss,
            "proba_before": _floats(proba_before),
            "proba_after": _floats(self.proba),
            "relative_step": relative,
            "steps": self.steps,
        }

    # ------------------------------------------------------------------ helpers
    def _layer(self, index: Any) -> Layer:
        n = len(self.layers)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise MathsError(f"layer {index!r} is not a layer index: use 0 to {n - 1}")
        if not 0 <= index < n:
            raise MathsError(
                f"layer {index} is not allowed: the network has layers 0 to {n - 1} "
                "(python -m nn info MODEL lists them)"
            )
        return self.layers[int(index)]

    def _activation_after(self, index: int) -> int | None:
        """The activation layer that follows layer ``index`` through batch norm and dropout."""
        for j in range(index + 1, len(self.layers)):
            if isinstance(self.layers[j], ActivationLayer):
                return j
            if self.layers[j].kind not in _PASS_THROUGH:
                return None
        return None

    def _slope(self, after: int | None) -> float | None:
        if after is None or self.layers[after].kind != "leaky_relu":
            return None
        return float(self.layers[after].config["slope"])


_UNIT_PARTS = {
    "dense": Trace._dense,
    "conv2d": Trace._conv,
    "batchnorm": Trace._batchnorm,
    "maxpool": Trace._pool,
    "avgpool": Trace._pool,
}


def _index(ref: UnitRef) -> tuple:
    if ref.position is None:
        return (0, ref.unit)
    return (0, ref.position[0], ref.position[1], ref.unit)


def _position(position: Any) -> tuple[int, int]:
    if (
        isinstance(position, (tuple, list))
        and len(position) == 2
        and all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in position)
    ):
        return int(position[0]), int(position[1])
    raise MathsError(f"position {position!r} is not allowed: give a row and a column")


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _cross_entropy(logits: np.ndarray, label: int) -> float:
    """``-log softmax(logits)[label]``, measured from the label's logit so that a loss near
    zero (a confident right answer) keeps its digits: ``log1p(sum_j!=y exp(z_j - z_y))``."""
    others = np.delete(logits - logits[label], label)
    top = float(others.max(initial=-np.inf))
    if top <= 0:
        return float(np.log1p(np.exp(others).sum()))
    return top + float(np.log(np.exp(-top) + np.exp(others - top).sum()))
