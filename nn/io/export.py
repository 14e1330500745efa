"""Export a fitted network for use outside this project: ONNX, or one offline HTML page.

Both exporters read the network through :func:`inference_plan`, a list of inference steps in the
engine's own layout (channels-last, weights as the engine stores them, float32): ``dense``,
``activation``, ``reshape``, ``conv2d``, ``pool``, ``batchnorm`` and ``flatten``. Dropout is the
identity at inference and has no step. The ONNX writer (:mod:`nn.io.onnx_export`) turns the steps
into ONNX nodes; the HTML writer (:mod:`nn.io.html_export`) embeds them, with their arrays as
base64 float32, in a page whose JavaScript runs the same steps.

Input contract of every export: ``(n, 784)`` float32 pixels in [0, 1] (MNIST's row-major 28x28,
white ink on black), ``n`` free. Output: ``(n, n_classes)`` probabilities (softmax), columns in
the model's ``classes_`` order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nn.io.model_files import _atomic_write

__all__ = [
    "EXPORT_FORMATS",
    "INSTALL_HINT",
    "INPUT_CONTRACT",
    "ExportError",
    "MissingExportExtraError",
    "InferencePlan",
    "Step",
    "inference_plan",
    "export_bytes",
    "export_model",
]

EXPORT_FORMATS = ("onnx", "html")
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
    ``(k, k, c_in, filters)`` on channels-last ``(h, w, c)`` activations; batchnorm ``scale`` and
    ``shift`` per channel (the last axis), ``y = x * scale + shift`` with the running statistics
    folded in (``mean``, ``var``, ``gamma``, ``beta`` and ``epsilon`` are kept for ONNX).
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


def inference_plan(model: Any) -> InferencePlan:
    """The inference steps of a fitted model; :class:`ExportError` if it cannot be exported."""
    if not hasattr(model, "classes_") or not hasattr(model, "coefs_"):
        raise ExportError("the model is not fitted: train it (or load a saved model) first")
    steps = _dense_plan(model)
    return InferencePlan(int(model.n_features_in_), list(model.classes_.tolist()), steps)


def export_bytes(model: Any, fmt: str, *, title: str | None = None) -> bytes:
    """The model as an ONNX file (``fmt="onnx"``) or an HTML page (``"html"``), as bytes."""
    if fmt == "onnx":
        from nn.io.onnx_export import onnx_bytes

        return onnx_bytes(model, name=title)
    if fmt == "html":
        from nn.io.html_export import html_page

        return html_page(model, title=title).encode("utf-8")
    raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")


def export_model(
    model: Any, path: str | os.PathLike, fmt: str | None = None, *, title: str | None = None
) -> Path:
    """Write the export atomically (temp file + rename) to ``path``; returns the path.

    ``fmt`` defaults to the file's extension (``.onnx`` or ``.html``). The bytes are made before
    anything is written, so a failed export leaves no file behind.
    """
    path = Path(path)
    if fmt is None:
        fmt = path.suffix.lower().lstrip(".")
        if fmt == "htm":
            fmt = "html"
    data = export_bytes(model, fmt, title=title)
    _atomic_write(path, lambda f: f.write(data))
    return path
