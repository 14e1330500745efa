"""The layer map: a saved model's layer outputs for test images, laid out in two dimensions.

:func:`layer_map` runs the first ``n`` test images through the model up to one layer, projects
that layer's outputs to 2-D with PCA (NumPy, :mod:`nn.core.projection`) or UMAP (umap-learn,
an optional dependency: ``pip install -r requirements-map.txt``), and returns every point with
its image's true and predicted label and the model's confidence, and how well the map keeps
the classes apart (a 5-nearest-neighbour vote in the map, :func:`neighbour_agreement`).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn.core.limits import MAX_DATASET_IMAGES
from nn.core.losses import softmax
from nn.core.network import predicting
from nn.core.projection import (
    check_layer,
    last_hidden_layer,
    layer_choices,
    layer_output,
    neighbour_agreement,
    pca,
)

METHODS = ("pca", "umap")
DEFAULT_IMAGES = 2000
UMAP_NEIGHBOURS = 15
UMAP_MIN_DIST = 0.1
UMAP_SEED = 0
UMAP_INSTALL = "pip install -r requirements-map.txt"


@dataclass
class LayerMap:
    """One map: ``points`` ``(n, 2)``, per point its test ``indices``, ``labels`` (true),
    ``predicted`` and ``confidence``; which ``layer`` (index and name) and ``method``; the
    fraction of labels a 5-NN vote in the map recovers (``agreement``); ``explained`` (PCA:
    the variance fraction along each axis); ``seconds`` the projection took."""

    points: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    layer: int
    layer_name: str
    method: str
    agreement: float
    seconds: float
    explained: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The map as the command line prints it: ``points`` ``[[x, y, label, predicted], ...]``
        and the rest."""
        return {
            "points": [
                [round(float(a), 5), round(float(b), 5), int(t), int(p)]
                for (a, b), t, p in zip(self.points, self.labels, self.predicted, strict=True)
            ],
            "layer": self.layer,
            "layer_name": self.layer_name,
            "method": self.method,
            "images": int(len(self.labels)),
            "indices": [int(i) for i in self.indices],
            "confidence": [round(float(c), 4) for c in self.confidence],
            "accuracy": float(np.mean(self.labels == self.predicted)),
            "neighbour_agreement": self.agreement,
            "explained_variance": self.explained,
            "seconds": round(self.seconds, 3),
        }


def umap_available() -> bool:
    """Whether umap-learn is installed (without importing it: its import takes seconds)."""
    return importlib.util.find_spec("umap") is not None


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "umap" and not umap_available():
        raise ValueError(f"UMAP needs umap-learn, which is not installed: {UMAP_INSTALL}")
    return method


def check_images(n: Any, available: int) -> int:
    """``n`` as a number of images from 10 to the ``available`` test images."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 10:
        raise ValueError(f"the number of images must be a whole number of at least 10; got {n!r}")
    if n > min(available, MAX_DATASET_IMAGES):
        raise ValueError(f"the number of images must be at most {available:,} (the test images)")
    return int(n)


def umap_points(features: np.ndarray, seed: int = UMAP_SEED) -> np.ndarray:
    """The UMAP embedding of ``features`` in 2-D (umap-learn; a fixed seed)."""
    import umap  # optional dependency, imported only when asked for

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(UMAP_NEIGHBOURS, len(features) - 1),
        min_dist=UMAP_MIN_DIST,
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so spares its warning
    )
    return np.asarray(reducer.fit_transform(features), np.float64)


def layer_map(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    layer: int | None = None,
    method: str = "pca",
    images: int = DEFAULT_IMAGES,
) -> LayerMap:
    """The map of ``layer`` (default: the last hidden layer) for the first ``images`` of
    ``(x, y)``. Arguments are checked before anything is computed."""
    method = check_method(method)
    n = check_images(images, int(x.shape[0]))
    layers = model.layers_
    index = last_hidden_layer(layers) if layer is None else check_layer(layers, layer)
    xs, ys = x[:n], np.asarray(y[:n])
    with predicting(model):
        features, logits = layer_output(layers, xs, index, to_end=True)
    proba = softmax(logits)
    predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
    start = time.perf_counter()
    explained: list[float] = []
    if method == "pca":
        basis = pca(features, 2)
        points = basis.project(features)
        explained = [round(float(v), 4) for v in basis.explained]
    else:
        points = umap_points(features)
    seconds = time.perf_counter() - start
    return LayerMap(
        points=points,
        indices=np.arange(n),
        labels=ys,
        predicted=predicted,
        confidence=proba.max(axis=1).astype(np.float64),
        layer=index,
        layer_name=layer_choices(layers)[index]["name"],
        method=method,
        agreement=neighbour_agreement(points, ys),
        seconds=seconds,
        explained=explained,
    )
