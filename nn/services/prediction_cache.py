"""A model's class probabilities on a test set, computed once and kept on disk.

Predicting MNIST's 10,000 test images with the shipped CNN takes seconds, and the Predictions
and Evaluate pages need them on their first load in every server. :func:`cached_proba` keeps the
probabilities in ``<folder>/<model file hash>-<set hash>-<n>.npy`` (float32): the file is
named by the content of the model file and of the data set, so a retrained or replaced model,
or another set, never reads another's. The folder is :func:`default_cache_dir` unless given:
``.cache/predictions`` beside the run database (``nn.services.runs.default_runs_path``).
An unreadable or mismatched file is recomputed; a folder that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nn.services.runs import default_runs_path

CHUNK = 1000
"""Images predicted per step (one progress report each)."""


def default_cache_dir() -> Path:
    """``.cache/predictions`` in the folder of the run database."""
    return default_runs_path().expanduser().resolve().parent / ".cache" / "predictions"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def set_digest(name: str, sha256: str) -> str:
    """The key of a data set in the cache's file names: its name and content hash, hashed."""
    return hashlib.sha256(f"{name}:{sha256}".encode()).hexdigest()


def _read(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        proba = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return proba if proba.shape == shape and proba.dtype == np.float32 else None


def _write(path: Path, proba: np.ndarray) -> None:
    """Write ``proba`` whole or not at all (a temporary file renamed into place)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, proba, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def cached_proba(
    model,
    model_file: str | os.PathLike,
    x: np.ndarray,
    set_digest: str,
    *,
    folder: str | os.PathLike | None = None,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """``model.predict_proba(x)`` as float32 (n, classes), read from the cache when the model
    file (``model_file``, the file ``model`` was loaded from) and the set (``set_digest``, e.g.
    its SHA-256) were predicted before; else computed :data:`CHUNK` images at a time, calling
    ``progress(fraction done)`` after each, and stored."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    n, k = len(x), len(model.classes_)
    path = folder / f"{file_digest(model_file)[:32]}-{set_digest[:16]}-{n}.npy"
    cached = _read(path, (n, k))
    if cached is not None:
        return cached
    proba = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, CHUNK):
        proba[start : start + CHUNK] = model.predict_proba(x[start : start + CHUNK])
        if progress is not None:
            progress(min(n, start + CHUNK) / max(n, 1))
    _write(path, proba)
    return proba
