"""Two-dimensional maps of what a layer outputs: a layer's outputs for a batch, their principal
components (PCA, NumPy only) and how well the map keeps the classes apart.

PCA: the data are centred and the top ``k`` right singular vectors of the centred matrix are the
components. When the smaller side of the matrix is at most :data:`EXACT_SIDE`, they come exactly
from the eigenvectors of the smaller Gram matrix (``X^T X`` or ``X X^T``); beyond it, from a
randomized subspace iteration (Halko, Martinsson & Tropp, 2011) with :data:`OVERSAMPLE` extra
columns and :data:`POWER_ITERATIONS` passes, which for the top two components of a layer's
outputs (a fast-decaying spectrum) agrees with a direct SVD to about 1e-4 of the map's extent.
A component's sign is arbitrary; it is fixed so that the component's entry of largest
magnitude is positive (:func:`fix_signs`), or, given a reference basis, so that each component
points the way of the reference's (:func:`align_signs`), which keeps successive maps of a
training run from flipping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_SIDE = 1024
"""Largest smaller side of the data matrix whose PCA is computed exactly (an eigendecomposition
of the Gram matrix of that side)."""
OVERSAMPLE = 10
POWER_ITERATIONS = 7
SEED = 0
CHUNK = 500
"""Images per forward pass in :func:`layer_output`."""
NEIGHBOURS = 5


@dataclass(frozen=True)
class PCABasis:
    """``mean`` ``(d,)`` and ``components`` ``(k, d)`` (orthonormal rows), and the variance
    along each component and the total variance of the data it was fitted on."""

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    total_variance: float

    def project(self, x: np.ndarray) -> np.ndarray:
        """``x`` ``(n, d)`` in the basis's coordinates, ``(n, k)`` float64."""
        return (np.asarray(x, np.float64) - self.mean) @ self.components.T

    @property
    def explained(self) -> np.ndarray:
        """The fraction of the total variance along each component."""
        if self.total_variance <= 0:
            return np.zeros_like(self.variance)
        return self.variance / self.total_variance


def fix_signs(components: np.ndarray) -> np.ndarray:
    """``components`` with each row's sign set so that its entry of largest magnitude is
    positive."""
    components = np.array(components, np.float64)
    rows = np.arange(components.shape[0])
    signs = np.sign(components[rows, np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


def align_signs(components: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """``components`` with each row flipped where it points away from the same row of
    ``reference`` (negative dot product); :func:`fix_signs` without a reference of the same
    shape."""
    components = fix_signs(components)
    if reference is None or np.shape(reference) != components.shape:
        return components
    signs = np.where(np.einsum("kd,kd->k", components, reference) < 0, -1.0, 1.0)
    return components * signs[:, None]


def _top_exact(xc: np.ndarray, k: int) -> np.ndarray:
    n, d = xc.shape
    if d <= n:
        values, vectors = np.linalg.eigh(xc.T @ xc)
        return vectors[:, ::-1][:, :k].T
    values, vectors = np.linalg.eigh(xc @ xc.T)
    order = np.argsort(values)[::-1][:k]
    u = vectors[:, order]
    v = xc.T @ u
    norms = np.linalg.norm(v, axis=0)
    norms[norms == 0] = 1.0
    return (v / norms).T


def _top_randomized(xc: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((xc.shape[1], k + OVERSAMPLE))
    q, _ = np.linalg.qr(xc @ q)
    for _ in range(POWER_ITERATIONS):
        q, _ = np.linalg.qr(xc.T @ q)
        q, _ = np.linalg.qr(xc @ q)
    _, _, vt = np.linalg.svd(q.T @ xc, full_matrices=False)
    return vt[:k]


def pca(
    x: np.ndarray, k: int = 2, *, reference: np.ndarray | None = None, seed: int = SEED
) -> PCABasis:
    """The top ``k`` principal components of ``x`` ``(n, d)`` (see the module docstring), signs
    aligned with ``reference`` (components of an earlier basis) when given."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs a 2-D array of at least 2 rows; got shape {x.shape}")
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and {min(x.shape)}; got {k}")
    if not np.isfinite(x).all():
        raise ValueError("the layer's outputs hold NaN or infinite values")
    mean = x.mean(axis=0)
    xc = x - mean
    exact = min(xc.shape) <= EXACT_SIDE
    top = _top_exact(xc, k) if exact else _top_randomized(xc, k, seed)
    components = align_signs(top, reference)
    n = x.shape[0]
    variance = np.square(xc @ components.T).sum(axis=0) / (n - 1)
    total = float(np.square(xc).sum() / (n - 1))
    return PCABasis(mean, components, variance, total)


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """The fraction of points whose label the majority vote of their ``k`` nearest other points
    (Euclidean, in the map) recovers; ties go to the label of the nearest voter among the tied.
    How well a 2-D map keeps the classes apart: 1.0 when every class forms its own island."""
    points = np.asarray(points, np.float64)
    labels = np.asarray(labels)
    n = points.shape[0]
    if n <= k:
        raise ValueError(f"a {k}-neighbour vote needs more than {k} points; got {n}")
    _, codes = np.unique(labels, return_inverse=True)
    n_codes = int(codes.max()) + 1
    correct = 0
    for start in range(0, n, CHUNK):
        block = points[start : start + CHUNK]
        d2 = np.square(block[:, None, :] - points[None, :, :]).sum(axis=2)
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest = np.argpartition(d2, k, axis=1)[:, :k]
        order = np.take_along_axis(d2, nearest, 1).argsort(axis=1)
        voters = codes[np.take_along_axis(nearest, order, 1)]  # nearest first
        votes = np.zeros((len(block), n_codes), np.int64)
        np.add.at(votes, (np.repeat(np.arange(len(block)), k), voters.ravel()), 1)
        top = votes.max(axis=1, keepdims=True)
        tied = votes[np.arange(len(block))[:, None], voters] == top
        winner = voters[np.arange(len(block)), tied.argmax(axis=1)]
        correct += int(np.count_nonzero(winner == codes[start : start + len(block)]))
    return correct / n


def layer_choices(layers: Sequence[Any]) -> list[dict[str, Any]]:
    """Index, name (``"<index> <kind>"``, as ``python -m nn info`` numbers the layers) and
    output shape of every layer of a model's stack."""
    return [
        {
            "index": i,
            "name": f"{i} {layer.kind}",
            "kind": layer.kind,
            "output_shape": [int(s) for s in layer.output_shape],
            "size": int(np.prod(layer.output_shape)),
        }
        for i, layer in enumerate(layers)
    ]


def last_hidden_layer(layers: Sequence[Any]) -> int:
    """The index of the last hidden layer's output: the layer just before the last trained
    layer (the output layer), passing over dropout, which is the identity in prediction."""
    trained = [i for i, layer in enumerate(layers) if layer.param_names]
    if not trained or trained[-1] == 0:
        return len(layers) - 1
    index = trained[-1] - 1
    while index > 0 and layers[index].kind == "dropout":
        index -= 1
    return index


def check_layer(layers: Sequence[Any], index: Any) -> int:
    """``index`` as a layer index of ``layers``; a ValueError names the allowed range."""
    try:
        value = int(index)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(index, bool) or value != index or not 0 <= value < len(layers):
        raise ValueError(
            f"layer {index!r} does not exist: the model has layers 0 to {len(layers) - 1} "
            "(python -m nn info MODEL lists them)"
        )
    return value


def layer_output(
    layers: Sequence[Any], x: np.ndarray, index: int, *, to_end: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The output of layer ``index`` for ``x`` (images as rows; uint8 is read as [0, 1]), in
    prediction mode (no dropout, batch norm on its running statistics), flattened to ``(n, d)``
    float32, computed :data:`CHUNK` images at a time; with ``to_end`` the same pass goes on to
    the stack's last layer and its output (the logits) comes second, else ``None``."""
    index = check_layer(layers, index)
    stack = list(layers if to_end else layers[: index + 1])
    dtype = stack[0].dtype
    size = int(np.prod(stack[index].output_shape))
    out = np.empty((x.shape[0], size), np.float32)
    logits = np.empty((x.shape[0], *stack[-1].output_shape), np.float64) if to_end else None
    try:
        for start in range(0, x.shape[0], CHUNK):
            rows = np.asarray(x[start : start + CHUNK]).reshape(-1, *stack[0].input_shape)
            a = rows.astype(dtype) / dtype.type(255.0) if rows.dtype == np.uint8 else rows
            a = np.asarray(a, dtype)
            for i, layer in enumerate(stack):
                a = layer.forward(a, False, False, None)
                if i == index:  # copied now: the next layer may work in place on it
                    out[start : start + len(rows)] = a.reshape(len(rows), -1)
            if logits is not None:
                logits[start : start + len(rows)] = a
    finally:
        for layer in stack:
            layer.clear_buffers()
    return out, logits
