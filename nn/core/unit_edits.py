"""Switching units off: a copy of a fitted network in which chosen dense units or convolution
filters have their output scaled (0 switches a unit off, 1 leaves it as it is).

A unit's output is what the next layers read: its value after the batch norm and the activation
that follow it. Scaling it by ``s >= 0`` is written into the parameters of the first layer that
reads it linearly, so the edited network is an ordinary network of the same stack that saves and
loads like any other:

- a dense or convolution layer reading it: the weights of that input (a row of a dense weight;
  the channel ``[:, :, u, :]`` of a kernel; every position of the channel when a dense layer
  reads a flattened feature map);
- a batch norm reading it: ``gamma' = s * gamma`` and ``beta' = beta - (1 - s) * gamma * mean /
  sqrt(var + eps)``, so that ``gamma' * (a - mean) / sqrt(var + eps) + beta'`` equals the old
  output on ``s * a``;
- no layer (the output layer's own units): the unit's weights and bias, which scales its logit.

Pooling, dropout and flatten between the activation and the reader pass the scale through
(max pooling because ``max(s * a) = s * max(a)`` for ``s >= 0``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from nn.core.layers import ActivationLayer, Layer

__all__ = ["EDITABLE_KINDS", "MAX_SCALE", "UnitEditError", "edit_units", "check_edits"]

EDITABLE_KINDS = ("dense", "conv2d")
MAX_SCALE = 4.0
_BEFORE_ACTIVATION = ("batchnorm", "dropout")
_PASS_THROUGH = ("maxpool", "avgpool", "dropout", "flatten")


class UnitEditError(ValueError):
    """An edit of a layer, unit or scale the network does not allow."""


def check_edits(layers: list[Layer], edits: Mapping[Any, Any]) -> dict[tuple[int, int], float]:
    """``edits`` (``{(layer, unit): scale}``) checked against ``layers``, as plain numbers."""
    checked: dict[tuple[int, int], float] = {}
    for key, scale in edits.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise UnitEditError(f"{key!r} is not a (layer, unit) pair")
        index, unit = key
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise UnitEditError(f"layer {index!r} is not a layer index")
        if not 0 <= index < len(layers):
            raise UnitEditError(f"layer {index} is not allowed: use 0 to {len(layers) - 1}")
        layer = layers[index]
        if layer.kind not in EDITABLE_KINDS:
            raise UnitEditError(
                f"layer {index} ({layer.kind}) cannot be edited: switch off the units of a "
                f"{' or '.join(EDITABLE_KINDS)} layer"
            )
        n = int(layer.output_shape[-1])
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
            raise UnitEditError(f"unit {unit!r} of layer {index} is not allowed: use 0 to {n - 1}")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float, np.integer, np.floating))
            or not 0 <= scale <= MAX_SCALE
        ):
            raise UnitEditError(
                f"scale {scale!r} for unit {unit} of layer {index} is not allowed: use a number "
                f"from 0 (off) to {MAX_SCALE:g}"
            )
        checked[(int(index), int(unit))] = float(scale)
    return checked


def edit_units(model: Any, edits: Mapping[Any, Any]) -> Any:
    """A deep copy of the fitted ``model`` (``nn.core.network.NeuralNetwork``) with each unit of
    ``edits`` (``{(layer, unit): scale}``, layer indices as ``model.layers_``) scaled."""
    layers = model.layers_
    checked = check_edits(layers, edits)
    edited = copy.deepcopy(model)
    for (index, unit), scale in sorted(checked.items()):
        if scale != 1.0:
            _scale_unit(edited.layers_, index, unit, scale)
    return edited


def _scale_unit(layers: list[Layer], index: int, unit: int, scale: float) -> None:
    j = index + 1
    while j < len(layers) and layers[j].kind in _BEFORE_ACTIVATION:
        j += 1
    if j < len(layers) and isinstance(layers[j], ActivationLayer):
        j += 1
    shape = tuple(layers[j - 1].output_shape)  # what the reader reads, before any flatten
    while j < len(layers) and layers[j].kind in _PASS_THROUGH:
        if layers[j].kind != "flatten":
            shape = tuple(layers[j].output_shape)
        j += 1
    if j == len(layers):  # the output layer's own unit: scale its logit
        weight, bias = layers[index].params
        weight[..., unit] *= scale
        bias[unit] *= scale
        return
    reader = layers[j]
    if reader.kind == "dense":
        rows = reader.params[0].reshape(*shape, reader.params[0].shape[1])
        rows[..., unit, :] *= scale
    elif reader.kind == "conv2d":
        reader.params[0][:, :, unit, :] *= scale
    elif reader.kind == "batchnorm":
        gamma, beta = reader.params
        mean, var = reader.state["running_mean"][unit], reader.state["running_var"][unit]
        std = math.sqrt(float(var) + reader.config["epsilon"])
        beta[unit] -= (1.0 - scale) * gamma[unit] * mean / std
        gamma[unit] *= scale
    else:
        raise UnitEditError(
            f"unit {unit} of layer {index}: its output is read by layer {j} ({reader.kind}), "
            "which cannot take the scale"
        )
