"""Answering only when sure: the accuracy/coverage trade-off of a confidence threshold.

A model answers an image when its top probability (its confidence) is at least the threshold,
and says "not sure" otherwise. Coverage is the fraction of images answered; the accuracy is
measured on those answered images only. Threshold 0 answers everything (coverage 1, the plain
accuracy); as it rises, coverage falls and the accuracy on what is left usually rises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLDS = tuple(round(t, 2) for t in np.linspace(0.0, 1.0, 101))
"""The thresholds of the coverage curve, 0 to 1 in steps of 0.01."""
THRESHOLD_VERSION = 1
"""Version of the ``confidence_threshold`` record saved with a model (:func:`threshold_record`)."""


def check_threshold(value) -> float:
    """``value`` as a threshold in [0, 1]; a ValueError says what is allowed."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if isinstance(value, bool) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the confidence threshold must be a number from 0 to 1; got {value!r}")
    return threshold


def coverage_curve(
    confidence: np.ndarray, correct: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
) -> list[list[float | None]]:
    """``[[threshold, coverage, accuracy], ...]`` for each threshold (ascending), ``accuracy``
    ``None`` where no image is answered."""
    confidence = np.asarray(confidence, np.float64).ravel()
    correct = np.asarray(correct, bool).ravel()
    if confidence.shape != correct.shape or confidence.size == 0:
        raise ValueError("the coverage curve needs one confidence and one outcome per image")
    order = np.argsort(confidence)
    sorted_conf = confidence[order]
    right_from = np.concatenate([np.cumsum(correct[order][::-1])[::-1], [0]])
    n = confidence.size
    rows: list[list[float | None]] = []
    for t in sorted(float(t) for t in thresholds):
        first = int(np.searchsorted(sorted_conf, t, side="left"))
        answered = n - first
        accuracy = float(right_from[first] / answered) if answered else None
        rows.append([t, answered / n, accuracy])
    return rows


def threshold_value(metadata: dict | None) -> float | None:
    """The threshold saved in a model file's metadata (``confidence_threshold``), or ``None``
    when it has none (older files) or one of a later version than this reader knows."""
    record = (metadata or {}).get("confidence_threshold")
    if not isinstance(record, dict) or record.get("version") != THRESHOLD_VERSION:
        return None
    return check_threshold(record.get("value"))


def threshold_record(
    value: float, *, coverage: float | None = None, accuracy: float | None = None, images: int = 0
) -> dict:
    """What a model file keeps of a chosen threshold: the value, and the coverage and accuracy
    it had on the ``images`` test images it was chosen on."""
    return {
        "version": THRESHOLD_VERSION,
        "value": check_threshold(value),
        "coverage": None if coverage is None else float(coverage),
        "accuracy": None if accuracy is None else float(accuracy),
        "images": int(images),
    }
