"""Which input pixels made a fitted model choose a class: saliency, integrated gradients,
occlusion.

Every method takes a fitted ``NeuralNetwork``, one float input ``x`` as the model reads it
(784 values in [0, 1] for MNIST, or ``(h, w, c)``) and the index of the class to explain
(in ``model.classes_``), and returns a map of ``x``'s shape.

- :func:`saliency`: the gradient of the class score (the logit, before softmax) with respect to
  the input, one backward pass through the stack down to the input (``need_dx``).
- :func:`integrated_gradients`: ``(x - baseline) * mean over a in (0, 1] of grad(baseline +
  a (x - baseline))`` by the midpoint rule over ``steps`` points, all in one batch. Its
  attributions add up to ``score(x) - score(baseline)`` (completeness) as ``steps`` grows. The
  baseline is :func:`black_baseline` (no ink) or :func:`blurred_baseline` (the digit blurred
  beyond recognition).
- :func:`occlusion`: how much the class probability drops when a square patch of the input is
  set to ``fill``; each pixel gets the mean drop of the patches covering it. One batch of
  occluded copies.

The passes run the model's layers in prediction mode (no dropout, batch norm on its running
statistics) and leave its weights untouched.
"""

from __future__ import annotations

import math

import numpy as np

from nn.core.losses import softmax
from nn.core.network import predicting
from nn.core.probe import forward, gradient_arrays, image_shape, release

METHODS = ("saliency", "integrated_gradients", "occlusion")
BASELINES = ("black", "blurred")


def _prepared(model, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x / 255.0
    shape = tuple(x.shape)
    if math.prod(shape) != model.n_features_in_:
        raise ValueError(f"x has {math.prod(shape)} values; the model reads {model.n_features_in_}")
    return x.reshape(1, -1), shape


def _target(model, target: int) -> int:
    n = len(model.classes_)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < n:
        raise ValueError(f"target={target!r}: use a class index from 0 to {n - 1}")
    return int(target)


def scores(model, x: np.ndarray) -> np.ndarray:
    """Logits of a float batch ``(n, features)``, in float64."""
    layers = model.layers_
    with predicting(model):
        out = forward(layers, np.asarray(x, layers[0].dtype), keep=False)
        result = np.array(out, np.float64)
        release(layers)
    return result


def score_gradients(model, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, d logit[target] / d x)`` of a float batch ``(n, features)``."""
    layers = model.layers_
    dtype = layers[0].dtype
    with predicting(model), gradient_arrays(layers):
        out = forward(layers, np.asarray(x, dtype), keep=True)
        logits = np.array(out, np.float64)
        dy = np.zeros(out.shape, dtype)
        dy[:, target] = 1
        a = dy
        for layer in reversed(layers):
            a = layer.backward(a, need_dx=True)
        dx = np.array(a, np.float64).reshape(x.shape[0], -1)
        release(layers)
    return logits, dx


def saliency(model, x: np.ndarray, target: int) -> np.ndarray:
    """The gradient of the target's logit with respect to the input, shaped like ``x``."""
    flat, shape = _prepared(model, x)
    _, dx = score_gradients(model, flat, _target(model, target))
    return dx.reshape(shape)


def black_baseline(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(np.asarray(x, np.float64))


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """The ``(n, n)`` matrix of a 1-D Gaussian blur with zero padding (rows: outputs)."""
    t = np.arange(n)
    weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    radius = max(1, int(math.ceil(3 * sigma)))
    return weights / weights[radius if n > 2 * radius else n // 2].sum()


def blurred_baseline(x: np.ndarray, image: tuple[int, ...] | None = None, sigma: float = 5.0):
    """``x`` blurred by a Gaussian of ``sigma`` pixels (zero padding), separably; ``image`` is
    its ``(h, w, c)`` shape (square greyscale when ``None``)."""
    x = np.asarray(x, np.float64)
    shape = image or image_shape(x.shape if x.ndim == 3 else (x.size,))
    img = x.reshape(shape)
    rows, cols = _blur_matrix(shape[0], sigma), _blur_matrix(shape[1], sigma)
    blurred = np.einsum("ij,jkc,lk->ilc", rows, img, cols)
    return blurred.reshape(x.shape)


def baseline_for(name: str, x: np.ndarray) -> np.ndarray:
    if name == "black":
        return black_baseline(x)
    if name == "blurred":
        return blurred_baseline(x)
    raise ValueError(f"baseline={name!r}: use one of {', '.join(BASELINES)}")


def integrated_gradients(
    model, x: np.ndarray, target: int, baseline: np.ndarray | str = "black", steps: int = 32
) -> np.ndarray:
    """Integrated gradients of the target's logit from ``baseline`` (an array like ``x``, or
    ``"black"``/``"blurred"``) to ``x``, with ``steps`` midpoints in one batch."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: use a whole number >= 1")
    flat, shape = _prepared(model, x)
    if isinstance(baseline, str):
        baseline = baseline_for(baseline, flat.reshape(shape))
    base = np.asarray(baseline, np.float64).reshape(1, -1)
    if base.shape != flat.shape:
        raise ValueError(f"the baseline has {base.size} values; x has {flat.size}")
    alphas = (np.arange(steps) + 0.5) / steps
    path = base + alphas[:, None] * (flat - base)
    _, dx = score_gradients(model, path, _target(model, target))
    return ((flat - base) * dx.mean(axis=0)).reshape(shape)


def occlusion(
    model, x: np.ndarray, target: int, patch: int = 6, stride: int = 2, fill: float = 0.0
) -> np.ndarray:
    """Mean drop of the target's probability over the ``patch`` x ``patch`` squares (moved by
    ``stride``) covering each pixel, when that square is set to ``fill``."""
    for name, value in (("patch", patch), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: use a whole number >= 1")
    flat, shape = _prepared(model, x)
    target = _target(model, target)
    h, w, c = image_shape(shape if len(shape) == 3 else (flat.size,))
    img = flat.reshape(h, w, c)
    tops = list(range(0, max(h - patch, 0) + 1, stride))
    lefts = list(range(0, max(w - patch, 0) + 1, stride))
    if tops[-1] + patch < h:
        tops.append(h - patch)
    if lefts[-1] + patch < w:
        lefts.append(w - patch)
    windows = [(t, left) for t in tops for left in lefts]
    batch = np.repeat(img[None], len(windows) + 1, axis=0)
    for k, (t, left) in enumerate(windows, start=1):
        batch[k, t : t + patch, left : left + patch, :] = fill
    proba = softmax(scores(model, batch.reshape(len(batch), -1)))[:, target]
    drops = proba[0] - proba[1:]
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for drop, (t, left) in zip(drops, windows, strict=True):
        total[t : t + patch, left : left + patch] += drop
        count[t : t + patch, left : left + patch] += 1
    per_pixel = total / np.maximum(count, 1)
    return np.repeat(per_pixel[:, :, None], c, axis=2).reshape(shape)


def attribution(
    model, x: np.ndarray, target: int, method: str, baseline: str = "black", **options
) -> np.ndarray:
    """One of :data:`METHODS` (``baseline`` for integrated gradients; ``options`` such as
    ``steps`` or ``patch`` and ``stride`` go to the method)."""
    if method == "saliency":
        return saliency(model, x, target)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, baseline, **options)
    if method == "occlusion":
        return occlusion(model, x, target, **options)
    raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}")
