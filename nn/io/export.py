"""Export a fitted network for use outside this project: ONNX, one offline HTML page, or a
readable NumPy program with its weights.

The exporters read the network through :func:`nn.io.plan.inference_plan`, a list of
inference steps in the engine's own layout. The ONNX writer (:mod:`nn.io.onnx_export`) turns the
steps into ONNX nodes; the HTML writer (:mod:`nn.io.html_export`) embeds them, with their arrays
as base64 float32, in a page whose JavaScript runs the same steps; the NumPy writer
(:mod:`nn.io.numpy_export`) writes them as a Python program of one function per layer.

Input contract of every export: ``(n, 784)`` float32 pixels in [0, 1] (MNIST's row-major 28x28,
white ink on black), ``n`` free. Output: ``(n, n_classes)`` probabilities (softmax), columns in
the model's ``classes_`` order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nn.io.html_export import html_page
from nn.io.npz import atomic_write
from nn.io.numpy_export import numpy_zip_bytes, write_numpy_program
from nn.io.onnx_export import onnx_bytes
from nn.io.plan import ExportError

__all__ = ["EXPORT_FORMATS", "FORMAT_SUFFIXES", "export_bytes", "export_model"]

EXPORT_FORMATS = ("onnx", "html", "numpy")
FORMAT_SUFFIXES = {"onnx": (".onnx",), "html": (".html", ".htm"), "numpy": (".py",)}
"""The file extensions of each format's files (the first is the default)."""


def export_bytes(model: Any, fmt: str, *, title: str | None = None) -> bytes:
    """The model as an ONNX file (``fmt="onnx"``), an HTML page (``"html"``) or a zip of the NumPy
    program and its weights (``"numpy"``), as bytes."""
    if fmt == "onnx":
        return onnx_bytes(model, name=title)
    if fmt == "html":
        return html_page(model, title=title).encode("utf-8")
    if fmt == "numpy":
        return numpy_zip_bytes(model)
    raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")


def export_model(
    model: Any, path: str | os.PathLike, fmt: str | None = None, *, title: str | None = None
) -> Path:
    """Write the export atomically (temp file + rename) to ``path``, a new or a regular file
    (a device, a pipe or a link is refused); returns the path.

    ``fmt`` defaults to the file's extension (``.onnx``, ``.html`` or ``.py``). The bytes are made
    before anything is written, so a failed export leaves no file behind. ``numpy`` writes the
    program to ``path`` (``.py``) and its weights beside it (``.npz``).
    """
    path = Path(path)
    if fmt is None:
        suffix = path.suffix.lower()
        fmt = next((f for f, ends in FORMAT_SUFFIXES.items() if suffix in ends), suffix[1:])
    written = [path, path.with_suffix(".npz")] if fmt == "numpy" else [path]
    for each in written:
        if each.is_symlink() or (each.exists() and not each.is_file()):
            raise ExportError(
                f"{each} is not a regular file; an export replaces only a regular file"
            )
    if fmt == "numpy":
        return write_numpy_program(model, path)[0]
    data = export_bytes(model, fmt, title=title)
    atomic_write(path, lambda f: f.write(data))
    return path
