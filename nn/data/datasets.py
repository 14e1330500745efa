"""MNIST loading, user-supplied datasets and stratified, seeded splits.

At rest, images are ``uint8`` arrays of shape ``(n, 784)`` (row-major 28x28, ink = 255 on 0)
and labels are ``int64`` arrays of shape ``(n,)`` with values 0-9. Everything returned here is
read-only (``flags.writeable == False``) so that callers may cache and share it safely.

Every problem with a file raises :class:`DataError` (a ``ValueError``) whose message starts with
the file and names the fault, e.g.
``data/x.idx3-ubyte: wrong magic number 2050, expected 2051 for an IDX image file``.

Loading the bundled MNIST (gunzip of 55 MB plus SHA-256) takes about 0.4 s.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import warnings
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, Union

import numpy as np

from nn.core.limits import MAX_DATASET_CLASSES, MAX_DATASET_IMAGES
from nn.core.npy import (
    ARCHIVE_ERRORS,
    MAX_NPY_HEADER_BYTES,
    ZIP_MAGICS,
    archive_members,
    read_member,
    read_npy_header,
)

__all__ = [
    "MNIST_DIR",
    "MNIST_SHA256",
    "SPLITS",
    "DataError",
    "MNIST",
    "ImageSet",
    "Split",
    "read_idx",
    "find_idx_pair",
    "load_mnist",
    "load_dataset",
    "split_dataset",
]

PathLike = Union[str, "os.PathLike[str]"]

MNIST_DIR = Path(__file__).resolve().parents[2] / "data"

#: SHA-256 of the *decompressed* official MNIST files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Split schemes understood by :func:`split_dataset` (for UI select boxes).
SPLITS = ("standard", "80:10:10", "custom")

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10

_IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension
_IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_KIND = {
    "labels": (_IDX_LABELS, "an IDX label file"),
    "images": (_IDX_IMAGES, "an IDX image file"),
}
MAX_DATASET_ELEMENTS = MAX_DATASET_IMAGES * 28 * 28
"""Pixels of one dataset file; an array or IDX header promising more is refused unread."""
MAX_DATASET_BYTES = MAX_DATASET_ELEMENTS * 4
"""Bytes of one dataset array (float32 pixels; float64 data sets hold half as many images)."""
MAX_CSV_BYTES = 256 << 20
"""Decompressed text of one CSV dataset (about 100,000 rows of 785 values)."""
_READ_CHUNK = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"


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


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading, transparently gunzipping when it starts with 1f 8b."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below; opened apart to name the error)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")  # type: ignore[return-value]


def _read_exactly(f: IO[bytes], n: int, path: Path, hasher: hashlib._Hash | None) -> bytes:
    """Read up to ``n`` bytes in chunks, turning gzip corruption into a DataError.

    ``n`` has been checked against the limits; reading in chunks stops at the end of the data,
    so a short (or short-decompressing) file never costs more than what it holds."""
    parts = []
    got = 0
    try:
        while got < n:
            chunk = f.read(min(_READ_CHUNK, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    data = b"".join(parts)
    if hasher is not None:
        hasher.update(data)
    return data


def _check_size(source: Any, shape: tuple, itemsize: int) -> None:
    """Refuse an array the header promises before it is read: more than a dataset can be."""
    n = math.prod(int(d) for d in shape)
    if n > MAX_DATASET_ELEMENTS or n * itemsize > MAX_DATASET_BYTES:
        raise DataError(
            f"{source}: the header promises shape {tuple(shape)} ({n * itemsize:,} bytes); a "
            f"dataset file holds at most {MAX_DATASET_IMAGES:,} images of 28x28 "
            f"({MAX_DATASET_BYTES:,} bytes)"
        )


def _read_idx(
    path: Path,
    kind: Literal["images", "labels"] | None = None,
    hasher: hashlib._Hash | None = None,
) -> np.ndarray:
    with _open_binary(path) as f:
        head = _read_exactly(f, 4, path, hasher)
        if len(head) < 4:
            raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
        magic = int.from_bytes(head, "big")
        if kind is not None and magic != _IDX_KIND[kind][0]:
            expected, what = _IDX_KIND[kind]
            raise DataError(f"{path}: wrong magic number {magic}, expected {expected} for {what}")
        if magic not in (_IDX_LABELS, _IDX_IMAGES):
            hint = ""
            if head[:2] == b"\x00\x00" and head[2] != 0x08:
                hint = f" (IDX data type 0x{head[2]:02X}; only unsigned bytes 0x08 are supported)"
            raise DataError(
                f"{path}: wrong magic number {magic}, expected {_IDX_LABELS} (IDX labels) "
                f"or {_IDX_IMAGES} (IDX images){hint}"
            )
        ndim = magic & 0xFF
        dims_raw = _read_exactly(f, 4 * ndim, path, hasher)
        if len(dims_raw) < 4 * ndim:
            raise DataError(
                f"{path}: truncated IDX header ({4 + len(dims_raw)} of {4 + 4 * ndim} bytes)"
            )
        dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
        if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
            raise DataError(f"{path}: image size {dims[1]}x{dims[2]} in the IDX header is empty")
        _check_size(path, dims, 1)
        expected = math.prod(dims)
        payload = _read_exactly(f, expected, path, hasher)
        if len(payload) < expected:
            raise DataError(
                f"{path}: truncated: the header declares shape {dims} ({expected} bytes of data) "
                f"but the file holds only {len(payload)}"
            )
        extra = len(_read_exactly(f, 1 << 20, path, None))
        if extra:
            amount = f"at least {extra}" if extra == 1 << 20 else str(extra)
            raise DataError(
                f"{path}: {amount} unexpected extra bytes after the {expected} bytes of data "
                f"declared by the header (shape {dims})"
            )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def read_idx(path: PathLike, kind: Literal["images", "labels"] | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped, detected by content) into a read-only uint8 array.

    Images (magic 2051) come back as ``(n, rows, cols)``, labels (magic 2049) as ``(n,)``.
    ``kind`` demands one of the two. Bad magic, truncation or extra bytes raise :class:`DataError`.
    """
    return _read_idx(Path(path), kind)


_IDX_ROLES = {"images": "idx3", "labels": "idx1"}


def _idx_candidates(folder: Path, kind: str, role: str) -> list[Path]:
    idx = _IDX_ROLES[role]
    names = (f"{kind}-{role}-{idx}-ubyte", f"{kind}-{role}.{idx}-ubyte")
    return [folder / (name + ext) for name in names for ext in ("", ".gz")]


def find_idx_pair(folder: PathLike, kind: Literal["train", "t10k", "test"]) -> tuple[Path, Path]:
    """Return ``(images_path, labels_path)`` of the ``kind`` IDX files in ``folder``.

    Accepts ``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``, each with or without
    ``.gz`` (likewise for labels and ``t10k``; ``"test"`` is an alias of ``"t10k"``).
    """
    folder = Path(folder)
    if kind == "test":
        kind = "t10k"
    if kind not in ("train", "t10k"):
        raise ValueError(f"kind={kind!r} is not allowed; use 'train', 't10k' or 'test'")
    found = []
    for role in ("images", "labels"):
        candidates = _idx_candidates(folder, kind, role)
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            tried = ", ".join(p.name for p in candidates)
            raise DataError(f"{folder}: no {kind} {role} IDX file (looked for {tried})")
        found.append(hit)
    return found[0], found[1]


def _canonical_idx_name(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name.replace("-images.idx3", "-images-idx3").replace("-labels.idx1", "-labels-idx1")


# --------------------------------------------------------------------------------------------
# Validation shared by all formats
# --------------------------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
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
        return _readonly(np.ascontiguousarray(x))
    lo, hi = x.min(), x.max()
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{source}: images contain NaN or infinite pixel values")
        if lo >= 0 and hi <= 1:
            return _readonly(np.rint(x * 255.0).astype(np.uint8))
        if lo >= 0 and hi <= 255 and bool(np.all(x == np.rint(x))):
            return _readonly(x.astype(np.uint8))
        raise DataError(
            f"{source}: pixel values must be integers 0-255 or floats in [0, 1]; "
            f"found floats from {lo:g} to {hi:g}"
        )
    if lo < 0 or hi > 255:
        bad = int(lo) if lo < 0 else int(hi)
        raise DataError(f"{source}: pixel value {bad} is outside 0-255")
    return _readonly(x.astype(np.uint8))


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
    return _readonly(y.astype(np.int64))


def _pair(
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


# --------------------------------------------------------------------------------------------
# Bundled MNIST
# --------------------------------------------------------------------------------------------


def _load_idx_pair(folder: Path, kind: str, verify: bool) -> ImageSet:
    images_path, labels_path = find_idx_pair(folder, kind)  # type: ignore[arg-type]
    arrays = []
    for path, role in ((images_path, "images"), (labels_path, "labels")):
        hasher = hashlib.sha256() if verify else None
        arrays.append(_read_idx(path, role, hasher))  # type: ignore[arg-type]
        if hasher is not None:
            name = _canonical_idx_name(path)
            expected = MNIST_SHA256.get(name)
            if expected is None:
                raise DataError(f"{path}: no known checksum for {name!r}; use verify=False")
            if hasher.hexdigest() != expected:
                raise DataError(
                    f"{path}: SHA-256 checksum mismatch for the decompressed {name} "
                    f"(got {hasher.hexdigest()}, expected {expected}); the file is corrupt or not "
                    f"the official MNIST file"
                )
    return _pair(arrays[0], arrays[1], str(images_path), str(labels_path))


def load_mnist(data_dir: PathLike | None = None, verify: bool = True) -> MNIST:
    """Load MNIST from ``data_dir`` (default: the bundled ``data/`` folder).

    With ``verify`` the SHA-256 of every decompressed file is checked against the official
    checksums while reading. Returns read-only ``x_*`` uint8 ``(n, 784)``, ``y_*`` int64 ``(n,)``.
    Nothing is cached; callers cache.
    """
    folder = Path(data_dir) if data_dir is not None else MNIST_DIR
    train = _load_idx_pair(folder, "train", verify)
    test = _load_idx_pair(folder, "t10k", verify)
    return MNIST(train.x, train.y, test.x, test.y)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# User datasets
# --------------------------------------------------------------------------------------------


def _not_plain(source: Any) -> Callable[[str], DataError]:
    """``fail`` for ``nn.core.npy``: the fault of ``source``'s array as a DataError."""
    return lambda fault: DataError(f"{source}: not a plain numeric array: {fault}")


def _load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file of plain numbers, its header checked against the limits first."""
    try:
        with open(path, "rb") as f:
            shape, dtype = read_npy_header(f, _not_plain(path), "biuf")
            _check_size(path, shape, dtype.itemsize)
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
    return _read_idx(path, role)  # type: ignore[arg-type]


_NPZ_FULL = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(path: Path, any_shape: bool = False) -> MNIST | ImageSet:
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
        _check_size(f"{path}[{key}]", shape, dtype.itemsize)
        try:
            return read_member(zf, member)
        except ARCHIVE_ERRORS as exc:
            raise DataError(f"{path}[{key}]: corrupt array data ({exc})") from None

    if set(_NPZ_FULL) <= keys:
        train = _pair(
            get("x_train"), get("y_train"), f"{path}[x_train]", f"{path}[y_train]", any_shape
        )
        test = _pair(get("x_test"), get("y_test"), f"{path}[x_test]", f"{path}[y_test]", any_shape)
        return MNIST(train.x, train.y, test.x, test.y)  # type: ignore[arg-type]
    if "x" in keys:
        y = get("y") if "y" in keys else None
        return _pair(get("x"), y, f"{path}[x]", f"{path}[y]", any_shape)
    missing = ", ".join(k for k in _NPZ_FULL if k not in keys)
    found = ", ".join(sorted(keys)) or "none"
    raise DataError(
        f"{path}: missing keys {missing}; expected x_train, y_train, x_test, y_test "
        f"(or x with optional y), found: {found}"
    )


def _load_csv(path: Path, any_shape: bool = False) -> ImageSet:
    """Kaggle digit-recognizer CSV: ``label,pixel0..pixel783`` or ``pixel0..pixel783``; with
    ``any_shape`` a label column and any number of pixel columns."""
    with _open_binary(path) as fb:
        try:
            raw = _read_exactly(fb, MAX_CSV_BYTES + 1, path, None)
            if len(raw) > MAX_CSV_BYTES:
                raise DataError(
                    f"{path}: the CSV holds more than {MAX_CSV_BYTES:,} bytes of text; "
                    f"split it, or store the images as .npz or IDX files"
                )
            text = raw.decode("utf-8").replace("\r\n", "\n")
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
        raise DataError(f"{path}: malformed CSV: {error}")
    if table.shape[0] == 0:
        raise DataError(f"{path}: CSV has a header but no data rows")
    if table.shape[1] != n_cols:
        raise DataError(
            f"{path}: rows have {table.shape[1]} columns but the first line has {n_cols}"
        )
    if n_cols == N_PIXELS and not any_shape:
        return _pair(table, None, str(path), str(path))
    return _pair(
        table[:, 1:], table[:, 0], f"{path} (pixel columns)", f"{path} (label column)", any_shape
    )


def _load_folder(folder: Path, any_shape: bool = False) -> MNIST | ImageSet:
    parts: dict[str, ImageSet] = {}
    for kind in ("train", "t10k"):
        try:
            images_path, labels_path = find_idx_pair(folder, kind)  # type: ignore[arg-type]
        except DataError:
            continue
        parts[kind] = _pair(
            _read_idx(images_path, "images"),
            _read_idx(labels_path, "labels"),
            str(images_path),
            str(labels_path),
            any_shape,
        )
    if not parts:
        for suffix in ("train", "test"):
            xp, yp = folder / f"x_{suffix}.npy", folder / f"y_{suffix}.npy"
            if xp.is_file() and yp.is_file():
                parts["train" if suffix == "train" else "t10k"] = _pair(
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
        return _pair(
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
        return _pair(_load_npy(p), None, str(p), str(p), any_shape)
    if "idx" in name or "ubyte" in name:
        data = _read_idx(p)
        if data.ndim == 1:
            raise DataError(f"{p}: holds labels only; pass (images_path, labels_path) instead")
        return _pair(data, None, str(p), str(p), any_shape)
    raise DataError(f"{p}: unsupported file type; expected a folder, .csv, .npz, .npy or IDX file")


# --------------------------------------------------------------------------------------------
# Stratified splits
# --------------------------------------------------------------------------------------------


def _augmenting_path(
    allowed: np.ndarray, extra: np.ndarray, row_need: np.ndarray, col_need: np.ndarray
) -> list[tuple[int, int]] | None:
    """BFS for an alternating path row -> col (+1) -> row (-1) ... ending at a needy column."""
    n_rows, n_cols = allowed.shape
    parent: dict[tuple[str, int], tuple[str, int] | None] = {}
    queue: deque[tuple[str, int]] = deque()
    for r in np.flatnonzero(row_need > 0):
        parent[("r", int(r))] = None
        queue.append(("r", int(r)))
    while queue:
        side, i = queue.popleft()
        if side == "r":
            nxt = [("c", int(c)) for c in np.flatnonzero(allowed[i] & ~extra[i])]
        else:
            if col_need[i] > 0:
                path, node = [], ("c", i)
                while parent[node] is not None:
                    prev = parent[node]
                    path.append((prev[1], node[1]) if prev[0] == "r" else (node[1], prev[1]))
                    node = prev
                return path[::-1]
            nxt = [("r", int(r)) for r in np.flatnonzero(extra[:, i])]
        for node in nxt:
            if node not in parent:
                parent[node] = (side, i)
                queue.append(node)
    return None


def _stratified_counts(class_counts: np.ndarray, part_sizes: Sequence[int]) -> np.ndarray:
    """Integer matrix (classes x parts) with exact row sums (class counts) and column sums
    (part sizes), every cell the floor or ceiling of its proportional share.

    Largest remainders get the spare units first; augmenting paths fix the rare cases where
    greedy handing-out gets stuck (a feasible rounding always exists).
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    sizes = np.asarray(part_sizes, dtype=np.int64)
    total = int(counts.sum())
    alloc, rem = np.divmod(counts[:, None] * sizes[None, :], total)
    row_need = counts - alloc.sum(axis=1)
    col_need = sizes - alloc.sum(axis=0)
    allowed = rem > 0
    extra = np.zeros_like(allowed)
    for flat in np.argsort(-rem, axis=None, kind="stable"):
        r, c = divmod(int(flat), len(sizes))
        if allowed[r, c] and row_need[r] > 0 and col_need[c] > 0:
            extra[r, c] = True
            row_need[r] -= 1
            col_need[c] -= 1
    while row_need.any():
        path = _augmenting_path(allowed, extra, row_need, col_need)
        if path is None:  # impossible by the matrix-rounding theorem
            raise RuntimeError("stratified allocation failed")
        start, end = path[0][0], path[-1][1]
        for k, (r, c) in enumerate(path):
            extra[r, c] = k % 2 == 0  # forward edges are added, backward edges removed
        row_need[start] -= 1
        col_need[end] -= 1
    return alloc + extra


def _stratified_parts(
    y: np.ndarray, sizes: Sequence[int], rng: np.random.Generator
) -> list[np.ndarray]:
    """Random disjoint index arrays of the given sizes, each stratified by ``y``, each shuffled."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    table = _stratified_counts(counts, sizes)
    perm = rng.permutation(len(y))
    by_class = perm[np.argsort(inverse[perm], kind="stable")]  # grouped by class, random within
    part_of = np.repeat(np.tile(np.arange(len(sizes)), len(classes)), table.ravel())
    return [rng.permutation(by_class[part_of == p]) for p in range(len(sizes))]


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r} must be a number in [0, 1)")
    if not 0 <= value < 1:
        raise ValueError(f"{name}={value!r} is outside the allowed range [0, 1)")
    return float(value)


def _parts_to_pool(data: MNIST | ImageSet, scheme: str) -> tuple[list, list]:
    """The image and label arrays a split draws from: both parts of an MNIST, the one part of an
    ImageSet (which the ``standard`` scheme, needing a test part, refuses)."""
    if isinstance(data, MNIST):
        return [data.x_train, data.x_test], [data.y_train, data.y_test]
    if not isinstance(data, ImageSet):
        raise TypeError(f"data must be an MNIST or ImageSet, not {type(data).__name__}")
    if data.y is None:
        raise ValueError("cannot split unlabeled data (y is None)")
    if scheme == "standard":
        raise ValueError(
            "scheme='standard' needs separate train and test parts (an MNIST); "
            "use '80:10:10' or 'custom' for a single-part dataset"
        )
    return [data.x], [data.y]


def split_dataset(
    data: MNIST | ImageSet,
    scheme: str = "standard",
    seed: int | None = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    train_size: int | None = None,
) -> Split:
    """Stratified, seeded train/validation/test split (read-only copies).

    - ``"standard"``: 10,000 validation images carved from the 60,000 training images, the rest
      (50,000) for training; the official test set stays the test set. Needs :class:`MNIST`.
    - ``"80:10:10"``: all images pooled (train + test) and split 80/10/10.
    - ``"custom"``: all images pooled, ``val_fraction`` and ``test_fraction`` of them (each in
      [0, 1), sum < 1) for validation and test, the rest for training. The fractions are ignored
      by the other schemes.

    ``train_size`` takes a stratified subset of the training part (validation and test do not
    change with it). Every class gets the floor or ceiling of its proportional share and the part
    sizes are exact. The same ``seed`` gives the same split.
    """
    if scheme not in SPLITS:
        raise ValueError(f"scheme={scheme!r} is not allowed; choose one of {SPLITS}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"seed={seed!r} must be a non-negative integer or None")
    rng = np.random.default_rng(seed)

    x_pool_parts, y_pool_parts = _parts_to_pool(data, scheme)

    if scheme == "standard":
        x_pool, y_pool = data.x_train, data.y_train  # type: ignore[union-attr]
        n = len(y_pool)
        n_val = round(n * 10_000 / 60_000)
        sizes = [n - n_val, n_val, 0]
    else:
        if scheme == "80:10:10":
            val_f, test_f = 0.1, 0.1
        else:
            val_f = _fraction("val_fraction", val_fraction)
            test_f = _fraction("test_fraction", test_fraction)
            if val_f + test_f >= 1:
                raise ValueError(
                    f"val_fraction + test_fraction = {val_f + test_f:g} must be below 1 "
                    f"(val_fraction={val_f:g}, test_fraction={test_f:g})"
                )
        x_pool = np.concatenate(x_pool_parts) if len(x_pool_parts) > 1 else x_pool_parts[0]
        y_pool = np.concatenate(y_pool_parts) if len(y_pool_parts) > 1 else y_pool_parts[0]
        n = len(y_pool)
        n_val, n_test = int(np.floor(n * val_f + 0.5)), int(np.floor(n * test_f + 0.5))
        sizes = [n - n_val - n_test, n_val, n_test]
        if sizes[0] < 1:
            raise ValueError(
                f"no training images left: {n} images, {n_val} for validation, {n_test} for test"
            )

    train_idx, val_idx, test_idx = _stratified_parts(y_pool, sizes, rng)
    if train_size is not None:
        if isinstance(train_size, bool) or not isinstance(train_size, (int, np.integer)):
            raise ValueError(f"train_size={train_size!r} must be an integer or None")
        if not 1 <= train_size <= len(train_idx):
            raise ValueError(
                f"train_size={train_size} is outside the allowed range 1..{len(train_idx)}"
            )
        keep, _ = _stratified_parts(
            y_pool[train_idx], [int(train_size), len(train_idx) - int(train_size)], rng
        )
        train_idx = train_idx[keep]

    def take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return _readonly(a[idx])

    if scheme == "standard":
        x_test, y_test = data.x_test, data.y_test  # type: ignore[union-attr]
    else:
        x_test, y_test = take(x_pool, test_idx), take(y_pool, test_idx)
    return Split(
        take(x_pool, train_idx),
        take(y_pool, train_idx),
        take(x_pool, val_idx),
        take(y_pool, val_idx),
        x_test,
        y_test,
    )
