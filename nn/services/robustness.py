"""How far a model's reading holds: its accuracy on test images as each corruption of
:mod:`nn.data.corruptions` grows, its worst images at each level, and its accuracy/coverage
curve as a confidence threshold rises (:mod:`nn.core.confidence`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn.core.confidence import coverage_curve
from nn.data.corruptions import CORRUPTIONS, corrupt

DEFAULT_IMAGES = 2000
WORST = 12
"""Images kept per level: those given the lowest probability for their true class."""
IMAGE_SHAPE = (28, 28, 1)


@dataclass
class Worst:
    """The worst images of one corruption level: test ``indices``, the corrupted images (uint8
    ``(k, 784)``), their predicted labels and the probability given to the true label."""

    level: float
    indices: list[int]
    images: np.ndarray
    predicted: list[int]
    true_probability: list[float]


@dataclass
class Robustness:
    """``test_accuracy`` on the clean images; ``curves`` name -> ``[[level, accuracy], ...]``
    (level 0 first: clean); ``worst`` name -> one :class:`Worst` per level; ``coverage``
    ``[[threshold, coverage, accuracy], ...]`` from threshold 0 up; ``images`` measured."""

    test_accuracy: float
    images: int
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    worst: dict[str, list[Worst]] = field(default_factory=dict)
    coverage: list[list[float | None]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "images": self.images,
            "corruptions": self.curves,
            "units": {name: CORRUPTIONS[name].unit for name in self.curves},
            "worst": {
                name: [{"level": w.level, "indices": w.indices} for w in levels]
                for name, levels in self.worst.items()
            },
            "coverage": self.coverage,
        }


def check_corruptions(names: Sequence[str] | None) -> list[str]:
    names = list(CORRUPTIONS) if names is None else list(names)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(
            f"unknown corruption(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known: {', '.join(CORRUPTIONS)}"
        )
    return names


def check_model_images(model: Any, n: Any, available: int) -> int:
    """The corruptions apply to 28x28 greyscale digits: ``model`` must read those, and ``n``
    must be a number of test images from 10 to ``available``."""
    shape = tuple(getattr(model, "input_shape_", ()) or ())
    if shape not in (IMAGE_SHAPE, (784,)):
        raise ValueError(
            "robustness is measured on 28x28 greyscale digits; this model reads inputs of shape "
            f"{'x'.join(map(str, shape)) or '?'}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 10 <= n <= available:
        raise ValueError(f"the number of images must be a whole number from 10 to {available:,}")
    return int(n)


def _worst(level: float, images: np.ndarray, proba: np.ndarray, y_idx: np.ndarray, classes):
    true_p = proba[np.arange(len(y_idx)), y_idx]
    order = np.argsort(true_p, kind="stable")[:WORST]
    return Worst(
        level=level,
        indices=[int(i) for i in order],
        images=np.clip(np.rint(images[order] * 255), 0, 255).astype(np.uint8),
        predicted=[int(c) for c in classes[proba[order].argmax(axis=1)]],
        true_probability=[round(float(p), 4) for p in true_p[order]],
    )


def robustness(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    images: int = DEFAULT_IMAGES,
    corruptions: Sequence[str] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Robustness:
    """Accuracy of ``model`` on the first ``images`` of ``(x, y)`` under every corruption and
    level, the worst images of each level and the coverage curve on the clean images.
    ``progress(fraction, what)`` hears each step. Arguments are checked first."""
    n = check_model_images(model, images, int(x.shape[0]))
    names = check_corruptions(corruptions)
    xs, ys = x[:n], np.asarray(y[:n])
    classes = np.asarray(model.classes_)
    y_idx = np.searchsorted(classes, ys)
    clean_proba = model.predict_proba(xs)
    clean_right = clean_proba.argmax(axis=1) == y_idx
    clean = float(np.mean(clean_right))
    result = Robustness(test_accuracy=clean, images=n)
    result.coverage = coverage_curve(clean_proba.max(axis=1), clean_right)
    clean_worst = _worst(0.0, corrupt(xs, names[0], 0.0), clean_proba, y_idx, classes)
    steps = sum(len(CORRUPTIONS[name].levels) - 1 for name in names)
    done = 0
    for name in names:
        curve, worst = [[0.0, clean]], [clean_worst]
        for level in CORRUPTIONS[name].levels[1:]:
            if progress is not None:
                progress(done / max(steps, 1), f"{name} {level:g}")
            corrupted = corrupt(xs, name, level)
            proba = model.predict_proba(corrupted)
            curve.append([float(level), float(np.mean(proba.argmax(axis=1) == y_idx))])
            worst.append(_worst(float(level), corrupted, proba, y_idx, classes))
            done += 1
        result.curves[name], result.worst[name] = curve, worst
    if progress is not None:
        progress(1.0, "done")
    return result
