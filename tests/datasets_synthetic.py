"""Synthetic image sets the data-set tests write in ``tmp_path``: each class lights its own band
of the image (greyscale) or its own channel and band (colour), so a small network learns them
in an epoch or two."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

GREY_SHAPE = (28, 28, 1)
COLOUR_SHAPE = (32, 32, 3)
GREY_CLASSES = ["circle", "square", "star"]
COLOUR_CLASSES = [f"c{k}" for k in range(10)]


def make_images(n: int, shape: tuple[int, int, int], n_classes: int, seed: int = 0):
    """``(x, y)``: uint8 images ``(n, h, w, c)`` and int64 labels, every class present."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    x = (rng.random((n, h, w, c)) * 60).astype(np.uint8)
    band = max(h // n_classes, 1)
    for k in range(n_classes):
        rows = slice((k * band) % h, (k * band) % h + band)
        x[y == k, rows, :, k % c] = 230
    return x, y.astype(np.int64)


def write_idx(folder: Path, x: np.ndarray, y: np.ndarray, kind: str = "train") -> None:
    """``kind-images-idx3-ubyte.gz`` and ``kind-labels-idx1-ubyte.gz`` (greyscale only)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = x.shape[:3]
    images = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
    labels = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
    with gzip.open(folder / f"{kind}-images-idx3-ubyte.gz", "wb") as f:
        f.write(images + x.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(labels + y.astype(np.uint8).tobytes())


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """A labelled CSV with a header: ``label,p0,p1,...``."""
    rows = x.reshape(len(x), -1)
    header = "label," + ",".join(f"p{i}" for i in range(rows.shape[1]))
    lines = [header] + [
        f"{label}," + ",".join(map(str, row)) for label, row in zip(y, rows, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def write_npz(path: Path, x: np.ndarray, y: np.ndarray, n_test: int) -> None:
    np.savez(path, x_train=x[n_test:], y_train=y[n_test:], x_test=x[:n_test], y_test=y[:n_test])


def write_npy_pair(folder: Path, x: np.ndarray, y: np.ndarray, n_test: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "x_train.npy", x[n_test:])
    np.save(folder / "y_train.npy", y[n_test:])
    np.save(folder / "x_test.npy", x[:n_test])
    np.save(folder / "y_test.npy", y[:n_test])
