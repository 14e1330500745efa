"""Evaluation metrics for integer class labels: accuracy, confusion matrix, per-class report.

All results are plain Python numbers / lists (JSON-able) except the confusion matrix, an int64
array with true classes as rows and predicted classes as columns. Undefined ratios (a class never
predicted, never present) are reported as 0.0, never NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["accuracy", "confusion_matrix", "classification_report", "top_confusions"]


def _labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate two 1-D label arrays of equal length (non-negative integers)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    for name, a in (("y_true", t), ("y_pred", p)):
        integral = np.issubdtype(a.dtype, np.integer) or (
            np.issubdtype(a.dtype, np.floating) and bool(np.all(a == np.round(a)))
        )
        if a.size and not integral:
            raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise ValueError(f"{name} must hold non-negative class labels, got {a.min()}")
    return t.astype(np.int64, copy=False), p.astype(np.int64, copy=False)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of labels predicted exactly. Raises ``ValueError`` on empty input."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if t.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(t == p))


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts: ``cm[i, j]`` = samples of true class ``i`` predicted as ``j``.

    ``K`` defaults to the largest label seen + 1. Labels outside ``0..K-1`` raise ``ValueError``.
    """
    t, p = _labels(y_true, y_pred)
    top = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if n_classes is None:
        n_classes = top
    elif n_classes < 1 or top > n_classes:
        raise ValueError(f"n_classes={n_classes} is too small for labels up to {top - 1}")
    k = int(n_classes)
    return np.bincount(t * k + p, minlength=k * k).astype(np.int64).reshape(k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0.0 where den == 0."""
    num = num.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def classification_report(y_true: Any, y_pred: Any, n_classes: int | None = None) -> dict[str, Any]:
    """Per-class precision, recall, f1 and support, with macro and support-weighted averages.

    Returns ``{"classes", "precision", "recall", "f1", "support"}`` (lists indexed by class),
    ``"macro"`` and ``"weighted"`` (dicts of precision/recall/f1), ``"accuracy"`` and ``"n"``.
    Macro averages are over all ``n_classes`` classes; zero divisions give 0.0.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2.0 * precision * recall, precision + recall)
    n = int(support.sum())
    weights = support / n if n else np.zeros(len(support))

    def avg(w: np.ndarray) -> dict[str, float]:
        return {
            "precision": float(precision @ w),
            "recall": float(recall @ w),
            "f1": float(f1 @ w),
        }

    k = cm.shape[0]
    return {
        "classes": list(range(k)),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "macro": avg(np.full(k, 1.0 / k) if k else np.zeros(0)),
        "weighted": avg(weights),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "n": n,
    }


def top_confusions(cm: Any, k: int = 10) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix as ``(true, pred, count)``.

    Sorted by count descending, ties by (true, pred) ascending; zero cells are left out.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    off = cm.astype(np.int64)  # a copy; signed so the sort key can be negated
    np.fill_diagonal(off, 0)
    flat = np.flatnonzero(off > 0)
    order = flat[np.lexsort((flat, -off.ravel()[flat]))][:k]
    rows, cols = np.divmod(order, cm.shape[1])
    return [(int(r), int(c), int(off[r, c])) for r, c in zip(rows, cols, strict=True)]
