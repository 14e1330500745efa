"""The live layer map: a fixed set of test images projected every epoch onto one PCA basis, so
that the frames of a training run can be compared (and played) and the clusters seen forming.

:class:`LiveMap` rides on the inside recorder (``nn.core.probe.InsideRecorder``). Every epoch it
runs its images through the model up to the last hidden layer and keeps that layer's outputs
(float32 in one array of at most :data:`BUDGET_BYTES`: the planned epochs' outputs bound how
many images it takes, from :data:`MIN_IMAGES` to :data:`MAX_IMAGES`; a run longer than the array
holds keeps every other epoch from then on, the first and the newest always). It then fits PCA
on the newest epoch's outputs and projects every kept epoch onto that one basis, in one product
over the array: all frames share the axes, and a finished run's frames are all on its last
epoch's basis. Each component's sign is aligned with the previous epoch's
basis (``nn.core.projection.align_signs``), so the picture does not flip while it is watched.

What travels (as JSON, in ``inside_start``/``inside_epoch``, and is saved in the model file's
``inside`` record): at the start ``{"layer", "layer_name", "labels", "indices", "images"}``
(``labels``: class positions; ``indices``: the images' positions in the set); per epoch
``{"epochs", "points", "predicted", "explained"}``, ``points`` the base64 of float16 ``(E, n,
2)`` coordinates of all frames so far and ``predicted`` the base64 of the ``(E, n)`` predicted
class positions (uint16). Each epoch's payload replaces the last one (:func:`decode_frames`).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from nn.core.blas import limit_threads
from nn.core.projection import last_hidden_layer, layer_output, pca

MAX_IMAGES = 500
"""Images the map follows at most (50 per class for MNIST)."""
MIN_IMAGES = 100
BUDGET_BYTES = 32 << 20
"""Bytes the kept layer outputs may take over the planned epochs (float32)."""


def map_indices(y: np.ndarray, count: int) -> np.ndarray:
    """About ``count`` positions of ``y``, the first of each class in turn (an equal number of
    each class, fewer for a class that has fewer)."""
    y = np.asarray(y)
    classes = np.unique(y)
    per_class = max(1, count // max(len(classes), 1))
    picks = [np.flatnonzero(y == c)[:per_class] for c in classes]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, int)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def decode_frames(frames: dict[str, Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(E, n, 2)`` coordinates and ``(E, n)`` predicted class positions of an epoch
    payload's ``frames`` for a map of ``n`` images; a ValueError if they do not fit."""
    epochs = len(frames["epochs"])
    points = np.frombuffer(base64.b64decode(frames["points"]), np.float16)
    predicted = np.frombuffer(base64.b64decode(frames["predicted"]), np.uint16)
    if points.size != epochs * n * 2 or predicted.size != epochs * n:
        raise ValueError(f"the map frames do not hold {epochs} epochs of {n} points")
    return points.reshape(epochs, n, 2).astype(np.float64), predicted.reshape(epochs, n)


class LiveMap:
    """Follows ``x``/``y`` (test images and their labels; see :func:`map_indices`) through the
    epochs of one training run (see the module docstring)."""

    def __init__(self, x, y, *, images: str = "test"):
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        self.images = images
        self._picks: np.ndarray | None = None
        self._layer: int | None = None
        self._store: np.ndarray | None = None  # (capacity, n, width) float32
        self._predicted: list[np.ndarray] = []
        self._epochs: list[float] = []
        self._components: np.ndarray | None = None

    def start(self, model: Any) -> dict[str, Any]:
        """Which layer and images the map follows, sized to the budget."""
        layers = model.layers_
        self._layer = last_hidden_layer(layers)
        width = int(np.prod(layers[self._layer].output_shape))
        epochs = max(int(getattr(model, "epochs", 1) or 1), 1)
        fits = BUDGET_BYTES // (4 * width * epochs)
        count = int(min(MAX_IMAGES, max(MIN_IMAGES, fits)))
        self._picks = map_indices(self.y, count)
        per_epoch = 4 * width * len(self._picks)
        capacity = max(2, min(epochs, BUDGET_BYTES // per_epoch))
        self._store = np.empty((capacity, len(self._picks), width), np.float32)
        self._predicted, self._epochs = [], []
        self._components = None
        classes = np.asarray(model.classes_)
        return {
            "layer": self._layer,
            "layer_name": f"{self._layer} {layers[self._layer].kind}",
            "labels": np.searchsorted(classes, self.y[self._picks]).tolist(),
            "indices": self._picks.tolist(),
            "images": self.images,
        }

    def epoch(self, model: Any, epoch: float) -> dict[str, Any] | None:
        """Every frame so far on the newest epoch's basis; ``None`` when the layer's outputs
        are not finite (a diverged network), and that epoch is left out. On one BLAS thread:
        its products are small, and on a busy machine a second thread stalled them tenfold."""
        with limit_threads(1):
            return self._epoch(model, epoch)

    def _room(self) -> int:
        """Where the next epoch's outputs go: the array doubles while it stays within the
        budget; past it, every other kept epoch goes (the first stays)."""
        kept = len(self._epochs)
        if kept < self._store.shape[0]:
            return kept
        if 2 * self._store.nbytes <= BUDGET_BYTES:
            self._store = np.concatenate([self._store, np.empty_like(self._store)])
            return kept
        keep = list(range(0, kept, 2))
        self._store[: len(keep)] = self._store[keep]
        self._predicted = [self._predicted[i] for i in keep]
        self._epochs = [self._epochs[i] for i in keep]
        return len(keep)

    def _epoch(self, model: Any, epoch: float) -> dict[str, Any] | None:
        if self._picks is None:
            self.start(model)
        features, logits = layer_output(
            model.layers_, self.x[self._picks], self._layer, to_end=True
        )
        if not (np.isfinite(features).all() and np.isfinite(logits).all()):
            return None
        kept = self._room()
        self._store[kept] = features
        self._predicted.append(logits.argmax(axis=1).astype(np.uint16))
        self._epochs.append(epoch)
        basis = pca(features, 2, reference=self._components)
        self._components = basis.components
        frames = self._store[: kept + 1]
        flat = frames.reshape(-1, frames.shape[2])
        components = basis.components.astype(np.float32)
        points = flat @ components.T - (basis.mean @ basis.components.T).astype(np.float32)
        points = points.reshape(kept + 1, -1, 2)
        return {
            "epochs": list(self._epochs),
            "points": _b64(points.astype(np.float16)),
            "predicted": _b64(np.stack(self._predicted)),
            "explained": [round(float(v), 4) for v in basis.explained],
        }
