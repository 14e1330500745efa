"""A single self-contained HTML page that reads digits drawn on it, offline.

The page (``templates/digit_reader.html`` + ``templates/digit_reader.js``) holds everything it
needs: the network's inference steps (:func:`nn.io.plan.inference_plan`) as JSON with every
array as base64 little-endian float32, and the JavaScript that runs them with ``Float32Array``
loops (dense, conv2d, pooling, batch normalisation, in the engine's channels-last layout). A
drawing on the canvas is prepared by a JavaScript port of
:func:`nn.data.preprocess.preprocess_drawing` (grey conversion, background removal, crop to the
ink, Pillow's BOX resize to 20 px on the longer side, centre of mass to (14, 14), the same
half-to-even roundings). Its Content-Security-Policy
allows no network request at all.

For scripts and tests the page defines ``predictPixels(array784)`` (ten probabilities, in the
model's ``classes_`` order), ``preprocessImageData(rgba, width, height)`` and ``predictCanvas()``;
the canvas has the id ``canvas`` and the prediction (the label first) the id ``prediction``.
A model saved with a confidence threshold (``nn.core.confidence``) makes the page say "Not sure
(best guess 7, 62.0 %)" when the top probability is below it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from nn.core.confidence import threshold_value
from nn.io.plan import InferencePlan, inference_plan

__all__ = ["html_page", "plan_to_html", "plan_json"]

_PLACEHOLDER = re.compile(r"__(TITLE|ABOUT|MODEL_JSON|SCRIPT)__")


@cache
def _template(name: str) -> str:
    return resources.files("nn.io").joinpath("templates", name).read_text(encoding="utf-8")


def _base64(array: np.ndarray) -> str:
    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes()).decode("ascii")


def plan_json(plan: InferencePlan, threshold: float | None = None) -> str:
    """The plan as the page's JSON document (safe to embed in a ``<script>`` element);
    ``threshold``: the confidence below which the page says "Not sure" (None: never)."""
    document = {
        "n_features": plan.n_features,
        "labels": [str(c) for c in plan.classes],
        "contract": plan.contract,
        "threshold": threshold,
        "steps": [
            {
                "kind": step.kind,
                "attrs": step.attrs,
                "shapes": {name: list(a.shape) for name, a in step.arrays.items()},
                "arrays": {name: _base64(a) for name, a in step.arrays.items()},
            }
            for step in plan.steps
        ],
    }
    # "<" never appears raw, so no "</script>" or "<!--" can end the element early.
    return json.dumps(document, separators=(",", ":")).replace("<", "\\u003c")


def _describe(plan: InferencePlan) -> str:
    parts = []
    for step in plan.steps:
        if step.kind == "dense":
            parts.append(f"dense {step.arrays['weight'].shape[1]}")
        elif step.kind == "conv2d":
            k, _, _, filters = step.arrays["weight"].shape
            parts.append(f"conv {filters}@{k}x{k}")
        elif step.kind == "pool":
            parts.append(f"{step.attrs['mode']}pool {step.attrs['size']}")
        elif step.kind == "batchnorm":
            parts.append("batchnorm")
    return " → ".join(parts)


def plan_to_html(
    plan: InferencePlan, *, title: str = "Digit reader", threshold: float | None = None
) -> str:
    """The page for ``plan``; below ``threshold`` (the model's saved confidence threshold) it
    says "Not sure" instead of naming a digit."""
    about = (
        f"A neural network trained from scratch in NumPy on MNIST ({_describe(plan)}), running "
        "in this page with no network access. Draw a digit with the mouse or a finger."
    )
    if threshold is not None:
        about += f" It names a digit only when at least {threshold:.0%} sure."
    values = {
        "TITLE": html.escape(title),
        "ABOUT": html.escape(about),
        "MODEL_JSON": plan_json(plan, threshold),
        "SCRIPT": _template("digit_reader.js"),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _template("digit_reader.html"))


def html_page(model: Any, *, title: str | None = None) -> str:
    """The single-file HTML digit reader of a fitted ``model`` (with the confidence threshold
    saved with it, if any); ExportError if unsupported."""
    threshold = threshold_value(getattr(model, "metadata_", None))
    return plan_to_html(inference_plan(model), title=title or "Digit reader", threshold=threshold)
