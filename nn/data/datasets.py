"""User-supplied data-set files: IDX, ``.npy``, ``.npz``, CSV and folders of them."""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np

from nn.core.npy import (
    ARCHIVE_ERRORS,
    MAX_NPY_HEADER_BYTES,
    ZIP_MAGICS,
    archive_members,
    read_member,
    read_npy_header,
)
from nn.data.arrays import (
    MAX_DATASET_BYTES,
    MNIST,
    N_PIXELS,
    DataError,
    ImageSet,
    check_size,
    pair_images,
)
from nn.data.idx import check_regular_file, find_idx_pair, open_binary, read_exactly, read_idx

__all__ = ["load_dataset"]

PathLike = Union[str, "os.PathLike[str]"]

MAX_CSV_BYTES = 256 << 20
"""Decompressed text of one CSV dataset (about 100,000 rows of 785 values)."""


def _not_plain(source: Any) -> Callable[[str], DataError]:
    """``fail`` for ``nn.core.npy``: the fault of ``source``'s array as a DataError."""
    return lambda fault: DataError(f"{source}: not a plain numeric array: {fault}")


def _load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file of plain numbers, its header checked against the limits first."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            shape, dtype = read_npy_header(f, _not_plain(path), "biuf")
            check_size(path, shape, dtype.itemsize)
            f.seek(0)
            return np.lib.format.read_array(
                f, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES
            )
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, EOFError) as exc:  # truncated payloads
        raise DataError(f"{path}: not a plain numeric .npy array ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as .npy ({exc})") from None


def _load_array_file(path: Path, role: str) -> np.ndarray:
    """An array from a ``.npy`` or IDX file (``role`` is ``"images"`` or ``"labels"``)."""
    if path.suffix == ".npy":
        return _load_npy(path)
    return read_idx(path, role)  # type: ignore[arg-type]


_NPZ_FULL = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(path: Path, any_shape: bool = False) -> MNIST | ImageSet:
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) in ZIP_MAGICS
        if not is_zip:
            raise DataError(f"{path}: not an .npz (zip) archive: unrecognised content")
        with zipfile.ZipFile(path) as zf:
            return _npz_parts(zf, path, any_shape)
    except DataError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None


def _npz_parts(zf: zipfile.ZipFile, path: Path, any_shape: bool) -> MNIST | ImageSet:
    """The images and labels of an open ``.npz``, every member's header checked first."""
    members = archive_members(
        zf,
        lambda key, fault: _not_plain(path if key is None else f"{path}[{key}]")(fault),
        kinds="biuf",
        max_members=len(_NPZ_FULL) + 16,
        max_bytes=len(_NPZ_FULL) * MAX_DATASET_BYTES,
        what="a dataset file",
    )
    keys = set(members)

    def get(key: str) -> np.ndarray:
        member, shape, dtype = members[key]
        check_size(f"{path}[{key}]", shape, dtype.itemsize)
        try:
            return read_member(zf, member)
        except ARCHIVE_ERRORS as exc:
            raise DataError(f"{path}[{key}]: corrupt array data ({exc})") from None

    if set(_NPZ_FULL) <= keys:
        train = pair_images(
            get("x_train"), get("y_train"), f"{path}[x_train]", f"{path}[y_train]", any_shape
        )
        test = pair_images(
            get("x_test"), get("y_test"), f"{path}[x_test]", f"{path}[y_test]", any_shape
        )
        return MNIST(train.x, train.y, test.x, test.y)  # type: ignore[arg-type]
    if "x" in keys:
        y = get("y") if "y" in keys else None
        return pair_images(get("x"), y, f"{path}[x]", f"{path}[y]", any_shape)
    missing = ", ".join(k for k in _NPZ_FULL if k not in keys)
    found = ", ".join(sorted(keys)) or "none"
    raise DataError(
        f"{path}: missing keys {missing}; expected x_train, y_train, x_test, y_test "
        f"(or x with optional y), found: {found}"
    )


def _csv_fault(error: ValueError | None) -> str:
    """NumPy's parse error in the CSV's own terms: the line and column, and what is allowed."""
    found = re.search(r"string '(.*)' to \w+ at row (\d+), column (\d+)", str(error))
    if found:
        value, row, column = found.group(1), int(found.group(2)), int(found.group(3))
        return (
            f"line {row + 1} of the data, column {column}: {value[:20]!r} is not a number; every "
            "value is a label or a pixel, as a number"
        )
    changed = re.search(r"columns changed from (\d+) to (\d+) at row (\d+)", str(error))
    if changed:
        before, after, row = (int(g) for g in changed.groups())
        return (
            f"line {row} of the data has {after} columns, the lines before it {before}; every "
            "row needs the same number of columns"
        )
    return "every value after the header must be a number, one row per image"


def _load_csv(path: Path, any_shape: bool = False) -> ImageSet:
    """Kaggle digit-recognizer CSV: ``label,pixel0..pixel783`` or ``pixel0..pixel783``; with
    ``any_shape`` a label column and any number of pixel columns."""
    with open_binary(path) as fb:
        try:
            raw = read_exactly(fb, MAX_CSV_BYTES + 1, path, None)
            if len(raw) > MAX_CSV_BYTES:
                raise DataError(
                    f"{path}: the CSV holds more than {MAX_CSV_BYTES:,} bytes of text; "
                    f"split it, or store the images as .npz or IDX files"
                )
            text = raw.decode("utf-8-sig").replace("\r\n", "\n")  # a BOM is not row 1's
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not a UTF-8 text CSV ({exc})") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    first = text.split("\n", 1)[0].strip()
    if not first:
        raise DataError(f"{path}: empty CSV file")
    fields = first.split(",")
    try:
        [float(f) for f in fields]
        header = False
    except ValueError:
        header = True
    n_cols = len(fields)
    if any_shape and n_cols < 2:
        raise DataError(
            f"{path}: {'the header' if header else 'row 1'} has {n_cols} column; a labelled CSV "
            f"holds the label, then the pixels of one image per row"
        )
    if not any_shape and n_cols not in (N_PIXELS, N_PIXELS + 1):
        raise DataError(
            f"{path}: {'the header' if header else 'row 1'} has {n_cols} columns; expected 785 "
            f"(label + 784 pixels) or 784 (pixels only)"
        )
    table = None
    error: ValueError | None = None
    for dtype in (np.int32, np.float32):  # integers parse ~4x faster; floats as a fallback
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(
                    io.StringIO(text), delimiter=",", dtype=dtype, ndmin=2, skiprows=int(header)
                )
            break
        except ValueError as exc:
            error = exc
    if table is None:
        raise DataError(f"{path}: malformed CSV: {_csv_fault(error)}")
    if table.shape[0] == 0:
        raise DataError(f"{path}: CSV has a header but no data rows")
    if table.shape[1] != n_cols:
        raise DataError(
            f"{path}: rows have {table.shape[1]} columns but the first line has {n_cols}"
        )
    if n_cols == N_PIXELS and not any_shape:
        return pair_images(table, None, str(path), str(path))
    return pair_images(
        table[:, 1:], table[:, 0], f"{path} (pixel columns)", f"{path} (label column)", any_shape
    )


def _load_folder(folder: Path, any_shape: bool = False) -> MNIST | ImageSet:
    parts: dict[str, ImageSet] = {}
    for kind in ("train", "t10k"):
        try:
            images_path, labels_path = find_idx_pair(folder, kind)  # type: ignore[arg-type]
        except DataError:
            continue
        parts[kind] = pair_images(
            read_idx(images_path, "images"),
            read_idx(labels_path, "labels"),
            str(images_path),
            str(labels_path),
            any_shape,
        )
    if not parts:
        for suffix in ("train", "test"):
            xp, yp = folder / f"x_{suffix}.npy", folder / f"y_{suffix}.npy"
            if xp.is_file() and yp.is_file():
                parts["train" if suffix == "train" else "t10k"] = pair_images(
                    _load_npy(xp), _load_npy(yp), str(xp), str(yp), any_shape
                )
    if "train" in parts and "t10k" in parts:
        return MNIST(parts["train"].x, parts["train"].y, parts["t10k"].x, parts["t10k"].y)  # type: ignore[arg-type]
    if parts:
        return next(iter(parts.values()))
    if any_shape:
        return _load_folder_files(folder)
    raise DataError(
        f"{folder}: no dataset found; expected IDX files (train-images-idx3-ubyte[.gz] and "
        f"train-labels-idx1-ubyte[.gz], optionally t10k-*) or x_train.npy + y_train.npy"
    )


def _load_folder_files(folder: Path) -> MNIST | ImageSet:
    """A folder holding one ``.npz``, one ``.csv`` or a ``train*.csv`` and a ``test*.csv``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    npz = [p for p in files if p.name.lower().endswith(".npz")]
    csv = [p for p in files if p.name.lower().endswith((".csv", ".csv.gz"))]
    if len(npz) == 1 and not csv:
        return _load_npz(npz[0], True)
    if len(csv) == 1 and not npz:
        return _load_csv(csv[0], True)
    train = [p for p in csv if p.name.lower().startswith("train")]
    test = [p for p in csv if p.name.lower().startswith(("test", "t10k"))]
    if len(csv) == 2 and len(train) == 1 and len(test) == 1 and not npz:
        a, b = _load_csv(train[0], True), _load_csv(test[0], True)
        return MNIST(a.x, a.y, b.x, b.y)  # type: ignore[arg-type]
    found = ", ".join(p.name for p in files[:10]) or "nothing"
    raise DataError(
        f"{folder}: no dataset found; expected IDX files (train-images-idx3-ubyte[.gz] and "
        f"train-labels-idx1-ubyte[.gz], optionally t10k-*), x_train.npy + y_train.npy "
        f"(optionally x_test.npy + y_test.npy), one .npz, one .csv, or train*.csv + test*.csv; "
        f"found: {found}"
    )


def load_dataset(
    path: PathLike | tuple[PathLike, PathLike], *, any_shape: bool = False
) -> MNIST | ImageSet:
    """Load a user-supplied dataset, validated, as read-only uint8 images and int64 labels.

    Returns :class:`MNIST` when the source has separate train and test parts, otherwise an
    :class:`ImageSet` (``y`` is ``None`` for unlabeled data). Understood sources:

    - a folder of IDX files (``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``, raw or
      ``.gz``, labels alike; ``t10k-*`` optional) or of ``x_train.npy``/``y_train.npy``
      (``x_test.npy``/``y_test.npy`` optional);
    - a Kaggle digit-recognizer ``.csv`` (``label,pixel0..pixel783``; without the label column,
      as in ``test.csv``, the labels are ``None``); a header line is optional;
    - an ``.npz`` with ``x_train, y_train, x_test, y_test`` (or ``x`` and optional ``y``);
    - a single ``.npy`` or IDX image file (unlabeled);
    - a pair ``(images_path, labels_path)`` of ``.npy`` or IDX files.

    Images may be ``(n, 784)`` or ``(n, 28, 28)``, integers 0-255 or floats in [0, 1].
    Anything else raises :class:`DataError` naming the file and the fault.

    ``any_shape`` reads image sets of any size and class count (what ``nn.data.registry`` adds):
    images ``(n, h, w)`` (returned as ``(n, h, w, 1)``), ``(n, h, w, c)`` with 1 or 3 channels, or
    flat rows ``(n, d)`` (returned 2-D: the caller says their shape); labels
    ``0..MAX_DATASET_CLASSES-1``; a CSV's first column is its label; a folder may also hold one
    ``.npz``, one ``.csv`` or ``train*.csv`` + ``test*.csv``.
    """
    if isinstance(path, (tuple, list)):
        if len(path) != 2:
            raise DataError(f"{path!r}: expected a pair (images_path, labels_path)")
        xp, yp = Path(path[0]), Path(path[1])
        return pair_images(
            _load_array_file(xp, "images"),
            _load_array_file(yp, "labels"),
            str(xp),
            str(yp),
            any_shape,
        )
    p = Path(path)
    if p.is_dir():
        return _load_folder(p, any_shape)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    name = p.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return _load_csv(p, any_shape)
    if name.endswith(".npz"):
        return _load_npz(p, any_shape)
    if name.endswith(".npy"):
        return pair_images(_load_npy(p), None, str(p), str(p), any_shape)
    if "idx" in name or "ubyte" in name:
        data = read_idx(p)
        if data.ndim == 1:
            raise DataError(f"{p}: holds labels only; pass (images_path, labels_path) instead")
        return pair_images(data, None, str(p), str(p), any_shape)
    raise DataError(f"{p}: unsupported file type; expected a folder, .csv, .npz, .npy or IDX file")
