"""Digits drawn with a pen, the way a mouse draws them on the Draw page: a fixed, varied set.

``drawn_digits(per_class=8, seed=0)`` returns ``(canvases, labels)``: ``canvases`` is uint8
``(n, 280, 280, 4)``, white ink on an opaque black background, the RGBA array the Draw page's
canvas gives; ``labels`` is int64 ``(n,)``. Run them through
:func:`nn.data.preprocess.preprocess_drawing` to get what a model sees
(:func:`drawn_inputs` does that). The set measures how well a model reads drawn digits, which
MNIST's pen-on-paper test set does not: strokes are uniform and thick, the shapes simple.
``python bench/drawn_digits.py MODEL ...`` counts how many of them saved models read; the
figures are in bench/README.md.

Each digit is a few strokes (polylines and arcs) in a unit box, made different per sample by
its height on the canvas (30-85 %), width (50-105 % of the height), slant (shear up to
+-0.45), rotation (+-20 degrees), position (anywhere it fits), pen width (8-40 px; the page's
pen is 20) and a wobble of every point (up to 2.5 % of the height), and for 1, 4, 7 and 9
between two common ways of writing them. Everything comes from
``np.random.default_rng([seed, label, index])``: the same arguments give the same pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from nn.data.preprocess import preprocess_drawing

__all__ = ["CANVAS_SIZE", "digit_strokes", "drawn_digits", "drawn_inputs"]

CANVAS_SIZE = 280
_POINTS_PER_ARC = 24

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points of an elliptic arc from angle ``start`` to ``end`` (degrees, counter-clockwise as
    seen on screen; 0 = right, 90 = up)."""
    steps = max(2, int(_POINTS_PER_ARC * abs(end - start) / 360) + 2)
    return [
        (cx + rx * math.cos(math.radians(a)), cy - ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, steps)
    ]


def digit_strokes(label: int, variant: int = 0) -> list[Stroke]:
    """The strokes of ``label`` in the unit box (x right, y down), in writing order."""
    if label == 0:
        return [_arc(0.5, 0.5, 0.42, 0.48, 100, 100 + 365)]
    if label == 1:
        if variant:
            return [[(0.25, 0.25), (0.55, 0.02), (0.55, 0.98)]]
        return [[(0.5, 0.02), (0.5, 0.98)]]
    if label == 2:
        return [_arc(0.5, 0.3, 0.38, 0.28, 160, -40) + [(0.08, 0.98), (0.95, 0.98)]]
    if label == 3:
        return [_arc(0.48, 0.26, 0.36, 0.24, 150, -90) + _arc(0.48, 0.73, 0.42, 0.25, 90, -150)]
    if label == 4:
        if variant:
            return [[(0.3, 0.02), (0.1, 0.62), (0.92, 0.62)], [(0.7, 0.3), (0.7, 0.98)]]
        return [[(0.7, 0.98), (0.7, 0.02), (0.05, 0.66), (0.95, 0.66)]]
    if label == 5:
        return [
            [(0.88, 0.02), (0.25, 0.02), (0.2, 0.45)] + _arc(0.5, 0.68, 0.4, 0.3, 135, -150),
        ]
    if label == 6:
        return [[(0.78, 0.04), (0.45, 0.25), (0.15, 0.62)] + _arc(0.5, 0.7, 0.36, 0.28, 180, 545)]
    if label == 7:
        if variant:
            return [[(0.05, 0.02), (0.95, 0.02), (0.4, 0.98)], [(0.3, 0.5), (0.85, 0.5)]]
        return [[(0.05, 0.02), (0.95, 0.02), (0.4, 0.98)]]
    if label == 8:
        return [_arc(0.5, 0.26, 0.3, 0.24, 270, 270 + 360) + _arc(0.5, 0.74, 0.38, 0.25, 90, -270)]
    if label == 9:
        if variant:
            return [_arc(0.45, 0.28, 0.38, 0.26, 0, 365) + [(0.83, 0.6), (0.6, 0.98)]]
        return [_arc(0.45, 0.28, 0.38, 0.26, 0, 365), [(0.83, 0.28), (0.78, 0.98)]]
    raise ValueError(f"label must be a digit 0-9, got {label!r}")


def _draw_one(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    height = size * rng.uniform(0.3, 0.85)
    width = height * rng.uniform(0.5, 1.05)
    if label == 1:
        width = height * 0.4
    shear = rng.uniform(-0.45, 0.45)
    angle = math.radians(rng.uniform(-20, 20))
    pen = int(rng.integers(8, 41))
    wobble = rng.uniform(0.0, 0.025)
    variant = int(rng.integers(0, 2))
    strokes = digit_strokes(label, variant)
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=float)
        pts = pts + rng.normal(0.0, wobble, pts.shape)
        u = (pts[:, 0] - 0.5 - shear * (pts[:, 1] - 0.5)) * width
        v = (pts[:, 1] - 0.5) * height
        placed.append(np.stack([u * cos - v * sin, u * sin + v * cos], axis=1))
    every = np.concatenate(placed)
    margin = pen / 2 + 2
    low, high = every.min(axis=0), every.max(axis=0)
    span = np.maximum(high - low, 1.0)
    room = np.maximum(size - 2 * margin - span, 0.0)
    origin = margin + rng.uniform(0.0, 1.0, 2) * room - low
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for pts in placed:
        xy = [(float(x), float(y)) for x, y in pts + origin]
        draw.line(xy, fill=255, width=pen, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends, like the canvas' brush
            r = pen / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    grey = np.asarray(image)
    rgba = np.empty((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 255
    return rgba


def drawn_digits(
    per_class: int = 8, seed: int = 0, size: int = CANVAS_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``(canvases uint8 (10 * per_class, size, size, 4), labels int64)``, digits 0-9 in turn
    (0, 1, ..., 9, 0, 1, ...). Deterministic in ``(per_class, seed, size)``."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)):
        raise ValueError(f"per_class must be a whole number 1-1000, got {per_class!r}")
    if not 1 <= per_class <= 1000:
        raise ValueError(f"per_class must be 1-1000, got {per_class}")
    if not 56 <= int(size) <= 1024:
        raise ValueError(f"size must be 56-1024 pixels, got {size}")
    labels = np.tile(np.arange(10, dtype=np.int64), per_class)
    canvases = np.empty((len(labels), size, size, 4), dtype=np.uint8)
    for i, label in enumerate(labels):
        rng = np.random.default_rng([int(seed), int(label), i // 10])
        canvases[i] = _draw_one(int(label), rng, int(size))
    return canvases, labels


def drawn_inputs(per_class: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x uint8 (n, 784), labels)``: :func:`drawn_digits` through ``preprocess_drawing``, the
    28x28 images a model sees on the Draw page."""
    canvases, labels = drawn_digits(per_class, seed)
    x = np.stack([preprocess_drawing(c).image28.reshape(-1) for c in canvases])
    return x, labels
