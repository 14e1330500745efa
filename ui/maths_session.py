"""Session state of the How it computes page (``pages/maths.py``).

Session keys owned here: ``maths_drawing`` (the Draw page's last drawing, the 784 input values,
set by :func:`remember_drawing`), ``maths_trace`` (the example's :class:`nn.core.maths.Trace`
and what it was made for), ``maths_stepped`` (a second trace that takes the SGD steps, and the
losses so far), ``maths_edits`` (the units switched off or scaled, per model) and
``maths_accuracy`` (the edited network's test accuracy, per model and edits) and
``maths_edited_proba`` (its probabilities for the input).

A trace is made once per (model file version, input, true class): choosing another unit,
position or temperature only reads its numbers. The one-example passes run on one BLAS thread:
their products are tiny, and OpenBLAS's threads only wait for each other (as on the Draw page).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import streamlit as st

from nn.core.blas import limit_threads
from nn.core.maths import Trace
from nn.core.unit_edits import edit_units
from nn.services.maths import edited_accuracy, trace_for

DRAWING_KEY = "maths_drawing"
TRACE_KEY = "maths_trace"
STEPPED_KEY = "maths_stepped"
EDITS_KEY = "maths_edits"
ACCURACY_KEY = "maths_accuracy"
PROBA_KEY = "maths_edited_proba"
SAMPLE_SIZE = 1000
"""The fixed sample of test images the edited network is scored on at once."""


def remember_drawing(x: np.ndarray) -> None:
    """Keep the Draw page's drawing (its 784 input values) for this page."""
    st.session_state[DRAWING_KEY] = np.asarray(x, np.float32).copy()


def carried_drawing() -> np.ndarray | None:
    return st.session_state.get(DRAWING_KEY)


def _digest(x: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(x, np.float64).tobytes()).hexdigest()


def base_trace(model_key: str, model: Any, x: np.ndarray, label: Any) -> Trace:
    """The example's trace through ``model`` (made once per model, input and label)."""
    key = (model_key, _digest(x), label)
    kept = st.session_state.get(TRACE_KEY)
    if kept is None or kept[0] != key:
        with limit_threads(1):
            kept = (key, trace_for(model, x, label))
        st.session_state[TRACE_KEY] = kept
        st.session_state.pop(STEPPED_KEY, None)
    return kept[1]


def stepped() -> tuple[Trace | None, list[dict]]:
    """The trace that has taken steps (None before the first) and the steps' records."""
    kept = st.session_state.get(STEPPED_KEY)
    return (None, []) if kept is None else kept


def take_step(lr: float) -> None:
    """Button callback: one SGD step on the stepped copy (made from the example's trace the
    first time)."""
    base = st.session_state[TRACE_KEY][1]
    trace, records = stepped()
    with limit_threads(1):
        if trace is None:
            trace = Trace(base.net, base.x, base.label)
            records = []
        records = [*records, trace.sgd_step(lr)]
    st.session_state[STEPPED_KEY] = (trace, records)


def reset_steps() -> None:
    """Button callback: forget the steps."""
    st.session_state.pop(STEPPED_KEY, None)


def edits(model_key: str) -> dict[tuple[int, int], float]:
    """The units switched off or scaled for this model (a copy to read)."""
    return dict(st.session_state.setdefault(EDITS_KEY, {}).get(model_key, {}))


def set_edits(model_key: str, changed: dict[tuple[int, int], float]) -> None:
    st.session_state.setdefault(EDITS_KEY, {})[model_key] = dict(changed)


def sample_indices(n: int) -> np.ndarray:
    """The fixed sample of test images: the same ``SAMPLE_SIZE`` every time."""
    size = min(SAMPLE_SIZE, n)
    return np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def accuracy(
    model_key: str, model: Any, changed: dict, x: np.ndarray, y: np.ndarray, part: str
) -> float:
    """Test accuracy of ``model`` with ``changed`` on ``part`` (``sample`` or ``full``),
    measured once per model, edits and part."""
    cache = st.session_state.setdefault(ACCURACY_KEY, {})
    key = (model_key, tuple(sorted(changed.items())), part)
    if key not in cache:
        if part == "sample":
            rows = sample_indices(len(x))
            x, y = x[rows], y[rows]
        cache[key] = edited_accuracy(model, changed, x, y)[0]
    return cache[key]


def measured(model_key: str, changed: dict, part: str) -> float | None:
    """The accuracy already measured for these edits, else None."""
    key = (model_key, tuple(sorted(changed.items())), part)
    return st.session_state.get(ACCURACY_KEY, {}).get(key)


def edited_proba(model_key: str, model: Any, changed: dict, x: np.ndarray) -> np.ndarray:
    """The edited network's probabilities for one input, computed once per model, edits and
    input (without edits: the example's own trace)."""
    if not changed:
        return st.session_state[TRACE_KEY][1].proba
    key = (model_key, tuple(sorted(changed.items())), _digest(x))
    kept = st.session_state.get(PROBA_KEY)
    if kept is None or kept[0] != key:
        edited = edit_units(model, changed)
        kept = (key, np.asarray(edited.predict_proba(np.asarray(x, np.float32)[None, :]))[0])
        st.session_state[PROBA_KEY] = kept
    return kept[1]
