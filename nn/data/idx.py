"""IDX files (raw or gzipped) and the bundled MNIST, checked against its official SHA-256.

Loading the bundled MNIST (gunzip of 55 MB plus SHA-256) takes about 0.4 s.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path
from typing import IO, Literal, Union

import numpy as np

from nn.data.arrays import MNIST, DataError, ImageSet, check_size, pair_images

__all__ = [
    "MNIST_DIR",
    "MNIST_SHA256",
    "check_regular_file",
    "open_binary",
    "read_exactly",
    "read_idx",
    "find_idx_pair",
    "load_mnist",
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

_IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension
_IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_KIND = {
    "labels": (_IDX_LABELS, "an IDX label file"),
    "images": (_IDX_IMAGES, "an IDX image file"),
}
_READ_CHUNK = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def check_regular_file(path: Path) -> None:
    """``DataError`` when ``path`` exists but is not a regular file: reading a pipe blocks until
    someone writes, and a device such as /dev/zero never ends."""
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file (a folder, a device, a pipe or a socket)")


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading, transparently gunzipping when it starts with 1f 8b."""
    check_regular_file(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below; opened apart to name the error)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")  # type: ignore[return-value]


def read_exactly(f: IO[bytes], n: int, path: Path, hasher: hashlib._Hash | None) -> bytes:
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


def _read_idx(
    path: Path,
    kind: Literal["images", "labels"] | None = None,
    hasher: hashlib._Hash | None = None,
) -> np.ndarray:
    with open_binary(path) as f:
        head = read_exactly(f, 4, path, hasher)
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
        dims_raw = read_exactly(f, 4 * ndim, path, hasher)
        if len(dims_raw) < 4 * ndim:
            raise DataError(
                f"{path}: truncated IDX header ({4 + len(dims_raw)} of {4 + 4 * ndim} bytes)"
            )
        dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
        if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
            raise DataError(f"{path}: image size {dims[1]}x{dims[2]} in the IDX header is empty")
        check_size(path, dims, 1)
        expected = math.prod(dims)
        payload = read_exactly(f, expected, path, hasher)
        if len(payload) < expected:
            raise DataError(
                f"{path}: truncated: the header declares shape {dims} ({expected} bytes of data) "
                f"but the file holds only {len(payload)}"
            )
        extra = len(read_exactly(f, 1 << 20, path, None))
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


def _load_idxpair_images(folder: Path, kind: str, verify: bool) -> ImageSet:
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
    return pair_images(arrays[0], arrays[1], str(images_path), str(labels_path))


def load_mnist(data_dir: PathLike | None = None, verify: bool = True) -> MNIST:
    """Load MNIST from ``data_dir`` (default: the bundled ``data/`` folder).

    With ``verify`` the SHA-256 of every decompressed file is checked against the official
    checksums while reading. Returns read-only ``x_*`` uint8 ``(n, 784)``, ``y_*`` int64 ``(n,)``.
    Nothing is cached; callers cache.
    """
    folder = Path(data_dir) if data_dir is not None else MNIST_DIR
    train = _load_idxpair_images(folder, "train", verify)
    test = _load_idxpair_images(folder, "t10k", verify)
    return MNIST(train.x, train.y, test.x, test.y)  # type: ignore[arg-type]
