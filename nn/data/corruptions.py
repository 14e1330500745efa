"""Corruptions of 28x28 greyscale digits at growing strength, to measure how far a model's
reading holds.

Every corruption takes a batch ``(n, 784)`` (uint8 0-255 or floats in [0, 1]) and a level, and
returns float32 ``(n, 784)`` in [0, 1]. Level 0 leaves the images as they are (the clean
images, as floats). What a level means:

- ``noise``: Gaussian noise of that standard deviation added to every pixel (a fixed seed, so
  a level always adds the same noise), then clipped to [0, 1];
- ``rotation``: rotation by that many degrees about the centre, clockwise for the even-numbered
  images of the batch and anticlockwise for the odd ones;
- ``shift``: a move by that many pixels, each image in its own direction (a fixed seed);
- ``thinner`` / ``thicker``: grey-level erosion / dilation of the strokes with a 3x3 cross, that
  many times (a fraction blends the last step in: 1.5 is half-way between one and two);
- ``blur``: a Gaussian blur of that standard deviation, in pixels;
- ``contrast``: the contrast lowered by that fraction towards mid-grey (0.5): a pixel ``p``
  becomes ``0.5 + (p - 0.5) * (1 - level)``, so the background greys and the ink dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nn.core.augment import gaussian_smoothing_matrix, warp_batch

SIDE = 28
N_PIXELS = SIDE * SIDE
SEED = 0


@dataclass(frozen=True)
class Corruption:
    """A corruption: its name, what its level measures, the levels it is measured at (the first
    is 0, the clean images) and the function ``apply(x, level) -> images``."""

    name: str
    unit: str
    levels: tuple[float, ...]
    apply: Callable[[np.ndarray, float], np.ndarray]


def as_unit(x: np.ndarray) -> np.ndarray:
    """A batch of 28x28 images as float32 ``(n, 784)`` in [0, 1] (a new array)."""
    x = np.asarray(x)
    if x.ndim == 1 and x.size == N_PIXELS:
        x = x.reshape(1, N_PIXELS)
    if x.ndim < 2 or math.prod(x.shape[1:]) != N_PIXELS:
        raise ValueError(
            f"the corruptions take 28x28 greyscale images (n, 784); got shape {x.shape}"
        )
    x = x.reshape(x.shape[0], N_PIXELS)
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1 / 255)
    if x.dtype.kind != "f" or (x.size and not (x.min() >= 0.0 and x.max() <= 1.0)):
        raise ValueError("the images must be uint8 (0-255) or floats in [0, 1]")
    return x.astype(np.float32, copy=True)


def gaussian_noise(x: np.ndarray, sigma: float) -> np.ndarray:
    out = as_unit(x)
    if sigma <= 0:
        return out
    rng = np.random.default_rng(SEED)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(out, 0.0, 1.0, out=out)


def rotation(x: np.ndarray, degrees: float) -> np.ndarray:
    out = as_unit(x)
    if degrees == 0 or len(out) == 0:
        return out
    signs = np.where(np.arange(len(out)) % 2 == 0, 1.0, -1.0)
    return warp_batch(out, angle=signs * degrees)


def shift(x: np.ndarray, pixels: float) -> np.ndarray:
    out = as_unit(x)
    if pixels == 0 or len(out) == 0:
        return out
    angle = np.random.default_rng(SEED).uniform(0, 2 * np.pi, len(out))
    return warp_batch(out, dx=pixels * np.cos(angle), dy=pixels * np.sin(angle))


def _morphology(images: np.ndarray, pick: Callable) -> np.ndarray:
    """One grey-level erosion (``np.minimum``) or dilation (``np.maximum``) with a 3x3 cross;
    outside the image is black."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    out = padded[:, 1:-1, 1:-1].copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        pick(out, padded[:, dy : dy + SIDE, dx : dx + SIDE], out=out)
    return out


def _repeat_morphology(x: np.ndarray, steps: float, pick: Callable) -> np.ndarray:
    out = as_unit(x)
    if steps <= 0:
        return out
    images = out.reshape(-1, SIDE, SIDE)
    for _ in range(int(steps)):
        images = _morphology(images, pick)
    fraction = np.float32(steps - int(steps))
    if fraction:
        images = images + (_morphology(images, pick) - images) * fraction
    return np.ascontiguousarray(images.reshape(-1, N_PIXELS), np.float32)


def thinner(x: np.ndarray, steps: float) -> np.ndarray:
    return _repeat_morphology(x, steps, np.minimum)


def thicker(x: np.ndarray, steps: float) -> np.ndarray:
    return _repeat_morphology(x, steps, np.maximum)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    out = as_unit(x)
    if sigma <= 0:
        return out
    g = gaussian_smoothing_matrix(sigma)
    images = out.reshape(-1, SIDE, SIDE)
    blurred = g @ images @ g.T
    return np.clip(blurred.reshape(-1, N_PIXELS), 0.0, 1.0).astype(np.float32)


def contrast(x: np.ndarray, reduction: float) -> np.ndarray:
    out = as_unit(x)
    if reduction <= 0:
        return out
    out -= np.float32(0.5)
    out *= np.float32(1.0 - reduction)
    out += np.float32(0.5)
    return out


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("noise", "noise std", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6), gaussian_noise),
        Corruption("rotation", "degrees", (0.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0), rotation),
        Corruption("shift", "pixels", (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0), shift),
        Corruption("thinner", "erosions", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5), thinner),
        Corruption("thicker", "dilations", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), thicker),
        Corruption("blur", "blur std (px)", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), blur),
        Corruption("contrast", "contrast lost", (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9), contrast),
    )
}
"""Every corruption by name, in the order the charts list them."""


def corrupt(x: np.ndarray, name: str, level: float) -> np.ndarray:
    """``x`` corrupted by the corruption ``name`` at ``level``; a ValueError names the known
    corruptions."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name].apply(x, float(level))
