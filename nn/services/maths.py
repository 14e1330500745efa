"""The maths of one example for the command line and the dashboard: choosing the example (a
test image, an image file, a drawing), the numbers of one unit (``nn.core.maths``), the test
accuracy of a network with units switched off (``nn.core.unit_edits``) and saving it as a new
model.

:func:`explain` gives the one JSON object of ``python -m nn explain``: the fields of
:data:`EXPLAIN_FIELDS`, in that order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.maths import MathsError, Trace
from nn.core.unit_edits import edit_units
from nn.data.idx import MNIST_DIR, find_idx_pair, read_idx
from nn.data.preprocess import load_image_file
from nn.io.models_folder import SaveRecord, model_path, sanitize_model_name, save_named

__all__ = [
    "DEFAULT_LR",
    "EXPLAIN_FIELDS",
    "Example",
    "edited_accuracy",
    "explain",
    "label_index",
    "load_example",
    "mnist_test_set",
    "save_edited_model",
    "trace_for",
]

DEFAULT_LR = 0.01
EXPLAIN_FIELDS = (
    "layer",
    "kind",
    "unit",
    "is_output",
    "inputs",
    "weights",
    "bias",
    "z",
    "a",
    "label",
    "loss",
    "delta",
    "grad_weights",
    "grad_bias",
    "numeric_grad",
    "max_rel_error",
    "loss_after_step",
)


@dataclass(frozen=True)
class Example:
    """One input: ``x`` (float64, the model's input values, [0, 1] for images), the true digit
    ``label`` (None when not known) and where it came from (``source``)."""

    x: np.ndarray
    label: Any
    source: str


def mnist_test_set(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The official MNIST test images ``(10000, 784)`` uint8 and their labels."""
    folder = Path(data_dir) if data_dir is not None else MNIST_DIR
    images, labels = find_idx_pair(folder, "t10k")
    return read_idx(images, "images").reshape(-1, 784), read_idx(labels, "labels")


def load_example(spec: str, data_dir: str | Path | None = None) -> Example:
    """``test:N`` (the N-th MNIST test image, with its label) or an image file (preprocessed like
    a drawing; no label). ``ValueError`` saying what is wrong."""
    if spec.startswith("test:"):
        index = spec[5:]
        if not re.fullmatch(r"[0-9]{1,9}", index):  # ASCII digits: '١٢' is not 12
            raise MathsError(f"--image {spec}: give test:N with N a whole number from 0 to 9999")
        x, y = mnist_test_set(data_dir)
        n = int(index)
        if n >= len(x):
            raise MathsError(f"--image {spec}: the test set has images 0 to {len(x) - 1}")
        return Example(x[n].astype(np.float64) / 255.0, int(y[n]), f"MNIST test image {n}")
    drawing = load_image_file(spec)
    if drawing.blank:
        raise MathsError(f"--image {spec}: {drawing.message or 'nothing drawn'} in the image")
    return Example(np.asarray(drawing.x, dtype=np.float64), None, f"image {spec}")


def label_index(model: Any, label: Any) -> int:
    """The position of ``label`` among ``model.classes_``; ``MathsError`` if it is not one."""
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    if label not in classes:
        raise MathsError(
            f"label {label!r} is not one of the model's classes "
            f"({', '.join(str(c) for c in classes)})"
        )
    return classes.index(label)


def trace_for(model: Any, x: np.ndarray, label: Any = None) -> Trace:
    """A :class:`nn.core.maths.Trace` of ``x`` through ``model``; with no label, the class the
    model predicts is taken as the true one."""
    if not hasattr(model, "layers_"):
        raise MathsError("the model is not a fitted network of this project's layers")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size != int(model.n_features_in_):
        raise MathsError(
            f"the input has {x.size} values but the model reads {int(model.n_features_in_)}"
        )
    if label is None:
        index = int(np.argmax(model.predict_proba(x[None, :])[0]))
    else:
        index = label_index(model, label)
    return Trace(model.stack_, x, index)


def explain(
    model: Any,
    example: Example,
    layer: int,
    unit: int,
    position: tuple[int, int] | None = None,
    lr: float = DEFAULT_LR,
    label: Any = None,
) -> dict[str, Any]:
    """The one JSON object of ``python -m nn explain`` (:data:`EXPLAIN_FIELDS`): the unit's
    forward and backward numbers, the gradient check and the loss after one SGD step of ``lr``
    on this example. ``label`` overrides the example's own."""
    trace = trace_for(model, example.x, example.label if label is None else label)
    numbers = trace.unit(layer, unit, position)
    check = trace.gradient_check(layer, unit, numbers["position"])
    numbers.update(check)
    numbers["label"] = model.classes_[trace.label].item()
    numbers["loss_after_step"] = trace.sgd_step(lr)["loss_after"]
    return {key: numbers[key] for key in EXPLAIN_FIELDS}


def edited_accuracy(
    model: Any, edits: dict, x: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Accuracy of ``model`` with ``edits`` (``{(layer, unit): scale}``) on ``(x, y)``, and the
    edited network's predictions."""
    edited = edit_units(model, edits) if edits else model
    predicted = edited.predict(x)
    return float(np.mean(predicted == y)), predicted


def _edits_text(edits: dict) -> str:
    parts = [
        f"layer {layer} unit {unit} {'off' if scale == 0 else f'x{scale:g}'}"
        for (layer, unit), scale in sorted(edits.items())
    ]
    return ", ".join(parts) or "no unit changed"


def save_edited_model(
    model: Any,
    edits: dict,
    name: str,
    folder: str | Path,
    source_name: str,
    metrics: dict | None = None,
) -> Path:
    """Save ``model`` with ``edits`` applied as the new model ``name`` in ``folder`` (never over
    an existing one). Its notes say which units were changed and from which model; ``metrics``
    (e.g. the edited network's test accuracy) are the edited network's own, none by default."""
    name = sanitize_model_name(name)
    target = model_path(folder, name)
    edited = edit_units(model, edits)
    previous = getattr(model, "metadata_", None) or {}
    edited.metadata_ = {"dataset": previous.get("dataset")}  # a new model: dates, no old metrics
    notes = f"{source_name} with units edited on the How it computes page: {_edits_text(edits)}"
    record = SaveRecord(metrics=dict(metrics or {}), notes=notes, dataset=previous.get("dataset"))
    return save_named(edited, target, name, record, overwrite=False)
