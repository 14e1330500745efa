"""Image and label arrays as every data loader returns them.

At rest, images are ``uint8`` arrays of shape ``(n, 784)`` (row-major 28x28, ink = 255 on 0)
and labels are ``int64`` arrays of shape ``(n,)`` with values 0-9; a data set of another shape
keeps its ``(n, h, w, c)``. Everything returned is read-only (``flags.writeable == False``) so
that callers may cache and share it safely.

Every problem with a file raises :class:`DataError` (a ``ValueError``) whose message starts with
the file and names the fault, e.g.
``data/x.idx3-ubyte: wrong magic number 2050, expected 2051 for an IDX image file``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from nn.core.limits import MAX_DATASET_CLASSES, MAX_DATASET_IMAGES

__all__ = [
    "IMAGE_SIDE",
    "N_PIXELS",
    "N_CLASSES",
    "MAX_DATASET_ELEMENTS",
    "MAX_DATASET_BYTES",
    "DataError",
    "MNIST",
    "ImageSet",
    "Split",
    "check_size",
    "readonly",
    "pair_images",
]

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10

MAX_DATASET_ELEMENTS = MAX_DATASET_IMAGES * 28 * 28
"""Pixels of one dataset file; an array or IDX header promising more is refused unread."""
MAX_DATASET_BYTES = MAX_DATASET_ELEMENTS * 4
"""Bytes of one dataset array (float32 pixels; float64 data sets hold half as many images)."""


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names file and fault."""


class MNIST(NamedTuple):
    """Official train/test parts: ``x_*`` uint8 ``(n, 784)``, ``y_*`` int64 ``(n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class ImageSet(NamedTuple):
    """A single-part dataset: ``x`` uint8 ``(n, 784)``; ``y`` int64 ``(n,)`` or ``None`` if
    unlabeled."""

    x: np.ndarray
    y: np.ndarray | None


class Split(NamedTuple):
    """Train/validation/test parts produced by :func:`split_dataset`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def check_size(source: Any, shape: tuple, itemsize: int) -> None:
    """Refuse an array the header promises before it is read: more than a dataset can be."""
    n = math.prod(int(d) for d in shape)
    if n > MAX_DATASET_ELEMENTS or n * itemsize > MAX_DATASET_BYTES:
        raise DataError(
            f"{source}: the header promises shape {tuple(shape)} ({n * itemsize:,} bytes); a "
            f"dataset file holds at most {MAX_DATASET_IMAGES:,} images of 28x28 "
            f"({MAX_DATASET_BYTES:,} bytes)"
        )


def readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _any_image_layout(x: np.ndarray, source: str) -> np.ndarray:
    """Images of any size: ``(n, h, w)`` becomes ``(n, h, w, 1)``; ``(n, h, w, c)`` with c 1 or 3
    and flat rows ``(n, d)`` stay as they are."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        raise DataError(
            f"{source}: images have shape {x.shape}; expected (n, height, width), "
            f"(n, height, width, channels) with 1 or 3 channels, or rows of pixels (n, d)"
        )
    if 0 in x.shape[1:]:
        raise DataError(f"{source}: images of shape {x.shape[1:]} are empty")
    return x


def _as_images(x: np.ndarray, source: str, any_shape: bool = False) -> np.ndarray:
    """Validate and convert to read-only, C-contiguous uint8 ``(n, 784)``.

    Accepts ``(n, 784)`` or ``(n, 28, 28)``; integers 0-255; floats either in [0, 1]
    (scaled by 255 and rounded) or integral in [0, 255]. With ``any_shape`` images of any size
    pass (see :func:`_any_image_layout`) and keep their shape.
    """
    x = np.asarray(x)
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise DataError(f"{source}: images have dtype {x.dtype}, expected integers 0-255 or floats")
    if any_shape:
        x = _any_image_layout(x, source)
    elif x.ndim == 3 and x.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        x = x.reshape(len(x), N_PIXELS)
    elif x.ndim != 2 or x.shape[1] != N_PIXELS:
        got = "x".join(map(str, x.shape[1:])) if x.ndim >= 2 else "a 1-D array"
        raise DataError(
            f"{source}: wrong image size: expected 784 pixels (28x28) per image, got shape "
            f"{x.shape} ({got})"
        )
    if len(x) == 0:
        raise DataError(f"{source}: contains no images")
    if x.dtype == np.uint8:
        return readonly(np.ascontiguousarray(x))
    lo, hi = x.min(), x.max()
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{source}: images contain NaN or infinite pixel values")
        if lo >= 0 and hi <= 1:
            return readonly(np.rint(x * 255.0).astype(np.uint8))
        if lo >= 0 and hi <= 255 and bool(np.all(x == np.rint(x))):
            return readonly(x.astype(np.uint8))
        raise DataError(
            f"{source}: pixel values must be integers 0-255 or floats in [0, 1]; "
            f"found floats from {lo:g} to {hi:g}"
        )
    if lo < 0 or hi > 255:
        bad = int(lo) if lo < 0 else int(hi)
        raise DataError(f"{source}: pixel value {bad} is outside 0-255")
    return readonly(x.astype(np.uint8))


def _as_labels(y: np.ndarray, source: str, n_classes: int = N_CLASSES) -> np.ndarray:
    """Validate and convert to read-only int64 ``(n,)`` with values ``0..n_classes-1``."""
    top = n_classes - 1
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{source}: labels must be 1-D (one class index per image), got shape {y.shape}"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.all(y == np.rint(y)):
            raise DataError(f"{source}: labels must be whole numbers 0-{top}")
    elif not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{source}: labels have dtype {y.dtype}, expected integers 0-{top}")
    if len(y):
        bad = (y < 0) | (y >= n_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{source}: label {y[i]:g} at index {i} is outside 0-{top} "
                f"({int(bad.sum())} bad labels)"
            )
    return readonly(y.astype(np.int64))


def pair_images(
    x: np.ndarray, y: np.ndarray | None, x_src: str, y_src: str, any_shape: bool = False
) -> ImageSet:
    xs = _as_images(x, x_src, any_shape)
    if y is None:
        return ImageSet(xs, None)
    ys = _as_labels(y, y_src, MAX_DATASET_CLASSES if any_shape else N_CLASSES)
    if len(xs) != len(ys):
        where = x_src if x_src == y_src else f"{x_src} / {y_src}"
        raise DataError(f"{where}: {len(xs)} images but {len(ys)} labels")
    return ImageSet(xs, ys)
