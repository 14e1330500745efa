"""A fitted network as a list of inference steps, what every export reads.

:func:`inference_plan` gives the steps in the engine's own layout (channels-last, weights as the
engine stores them, float32): ``dense``, ``activation``, ``reshape``, ``conv2d``, ``pool``,
``batchnorm`` and ``flatten``. Dropout is the identity at inference and has no step; a layer the
exporters do not know raises :class:`ExportError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "INSTALL_HINT",
    "INPUT_CONTRACT",
    "ExportError",
    "MissingExportExtraError",
    "InferencePlan",
    "Step",
    "inference_plan",
]

INSTALL_HINT = "pip install -r requirements-export.txt (or pip install '.[export]')"
INPUT_CONTRACT = (
    "input 'pixels': float32 (n, 784), the 28x28 image row by row, values in [0, 1], white ink "
    "on black (MNIST's format divided by 255); output 'probabilities': float32 (n, {classes}), "
    "softmax over the classes {labels}"
)
ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "leaky_relu")


class ExportError(ValueError):
    """The model cannot be exported (not fitted, or a layer the exporters do not know)."""


class MissingExportExtraError(ImportError):
    """The optional packages of the ``export`` extra (onnx, onnxruntime) are not installed."""

    def __init__(self, what: str = "ONNX export"):
        super().__init__(f"{what} needs the optional package onnx: {INSTALL_HINT}")


@dataclass(frozen=True)
class Step:
    """One inference step: ``kind``, its float32 ``arrays`` and its scalar ``attrs``.

    Shapes are the engine's: dense weight ``(fan_in, fan_out)``; conv2d weight
    ``(k, k, c_in, filters)`` on channels-last ``(h, w, c)`` activations, with ``pads`` (top,
    bottom, left, right), ``stride`` and ``output_shape``; pool ``mode``, ``size`` and ``stride``;
    batchnorm ``gamma``, ``beta``, running ``mean`` and ``var`` per channel (the last axis) and
    ``epsilon``: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``; reshape ``shape``
    (the image ``(h, w, c)`` the input rows are read as).
    """

    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferencePlan:
    """The steps from the ``(n, n_features)`` input to the logits; softmax follows them."""

    n_features: int
    classes: list
    steps: list[Step]

    @property
    def contract(self) -> str:
        labels = ", ".join(str(c) for c in self.classes)
        return INPUT_CONTRACT.format(classes=len(self.classes), labels=f"[{labels}]")


def _float32(array: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def _activation_step(name: str, slope: float) -> Step:
    if name not in ACTIVATION_NAMES:
        raise ExportError(
            f"activation {name!r} cannot be exported: supported are {', '.join(ACTIVATION_NAMES)}"
        )
    attrs: dict[str, Any] = {"name": name}
    if name == "leaky_relu":
        attrs["slope"] = float(slope)
    return Step("activation", attrs=attrs)


def _dense_plan(model: Any) -> list[Step]:
    """Steps of a fully connected ``NeuralNetwork``: dense + activation per hidden layer."""
    params = model.get_params()
    n_hidden = len(model.coefs_) - 1
    activation = params.get("activation", "relu")
    names = list(activation) if isinstance(activation, (list, tuple)) else [activation] * n_hidden
    if len(names) != n_hidden:
        raise ExportError(f"{len(names)} activations for {n_hidden} hidden layers")
    steps = []
    for layer, (weight, bias) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        steps.append(Step("dense", {"weight": _float32(weight), "bias": _float32(bias)}))
        if layer < n_hidden:
            steps.append(_activation_step(names[layer], params.get("leaky_slope", 0.01)))
    return steps


SUPPORTED_LAYERS = (
    "dense",
    "conv2d",
    "maxpool",
    "avgpool",
    "batchnorm",
    "flatten",
    "dropout",
    *ACTIVATION_NAMES,
)


def _layer_step(layer: Any) -> Step | None:
    """The step of one engine layer (``nn.core.layers``); None for dropout (the identity)."""
    kind, cfg, params = layer.kind, layer.config, layer.params
    if kind == "dense":
        return Step("dense", {"weight": _float32(params[0]), "bias": _float32(params[1])})
    if kind in ACTIVATION_NAMES:
        return _activation_step(kind, cfg.get("slope", 0.0))
    if kind == "conv2d":
        kernel = layer.kernel
        pads = [kernel.pad_top, kernel.pad_bottom, kernel.pad_left, kernel.pad_right]
        attrs = {
            "stride": int(cfg["stride"]),
            "pads": [int(p) for p in pads],
            "output_shape": [int(s) for s in layer.output_shape],
        }
        return Step("conv2d", {"weight": _float32(params[0]), "bias": _float32(params[1])}, attrs)
    if kind in ("maxpool", "avgpool"):
        attrs = {"mode": kind[:3], "size": int(cfg["size"]), "stride": int(cfg["stride"])}
        return Step("pool", attrs=attrs)
    if kind == "batchnorm":
        arrays = {
            "gamma": _float32(params[0]),
            "beta": _float32(params[1]),
            "mean": _float32(layer.state["running_mean"]),
            "var": _float32(layer.state["running_var"]),
        }
        return Step("batchnorm", arrays, {"epsilon": float(cfg["epsilon"])})
    if kind == "flatten":
        return Step("flatten")
    if kind == "dropout":
        return None
    raise ExportError(
        f"a {kind!r} layer cannot be exported: supported are {', '.join(SUPPORTED_LAYERS)}"
    )


def _stack_plan(model: Any) -> list[Step]:
    """Steps of a network built from ``nn.core.layers`` (``model.layers_``)."""
    input_shape = tuple(int(s) for s in model.input_shape_)
    steps = []
    if len(input_shape) == 3:  # rows of pixels read as channels-last images
        steps.append(Step("reshape", attrs={"shape": list(input_shape)}))
    for index, layer in enumerate(model.layers_):
        try:
            step = _layer_step(layer)
        except ExportError as exc:
            raise ExportError(f"layer {index}: {exc}") from None
        if step is None:
            continue
        if step.kind == "dense" and len(layer.input_shape) > 1:
            steps.append(Step("flatten"))  # a dense layer reads an image as its flat vector
        steps.append(step)
    return steps


def inference_plan(model: Any) -> InferencePlan:
    """The inference steps of a fitted model; :class:`ExportError` if it cannot be exported."""
    fitted = getattr(model, "_is_fitted", None)
    if not hasattr(model, "classes_") or (callable(fitted) and not fitted()):
        raise ExportError("the model is not fitted: train it (or load a saved model) first")
    if int(model.n_features_in_) != 784:
        record = (getattr(model, "metadata_", None) or {}).get("dataset") or {}
        trained = f" (trained on the data set {record['name']!r})" if record.get("name") else ""
        raise ExportError(
            f"the model takes {int(model.n_features_in_):,} inputs{trained}; the exports read "
            "28x28 greyscale images (784 pixels), as MNIST's"
        )
    steps = _stack_plan(model) if hasattr(model, "layers_") else _dense_plan(model)
    return InferencePlan(int(model.n_features_in_), list(model.classes_.tolist()), steps)
