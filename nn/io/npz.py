"""The model file's container: limits, ``ModelFileError``, the atomic write and the ``.npz``
reader.

A model file is ONE ``.npz`` archive written with :func:`numpy.savez` (uncompressed). It holds
``__meta__`` -- a JSON document stored as a 0-d NumPy unicode array, so it loads with
``allow_pickle=False`` -- and every weight / optimizer-state array under its own name.

Why uncompressed: trained float weights are close to incompressible (deflate saves ~5-10%),
MNIST-sized models are a few MB at most, and stored members load faster and without the
zip-bomb exposure of deflated members. The cost: NumPy stores unicode as UTF-32, so a long
per-batch loss history in ``__meta__`` takes 4 bytes per character (~1 MB for ~15k batches).

Reading is header-first (``nn.core.npy``): the member count, the expanded size and every
array's shape and dtype are checked against the limits below before any array is read.
All writes are atomic: temp file in the target directory, fsync, ``os.replace``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from nn.core.bounded_json import JSONInputError, loads
from nn.core.limits import MAX_PARAMETERS
from nn.core.npy import ARCHIVE_ERRORS, archive_members, read_member
from nn.core.tempfiles import hold

__all__ = [
    "FORMAT_VERSION",
    "LIBRARY",
    "META_KEY",
    "ALLOWED_ARRAY_KINDS",
    "MAX_ARRAY_ELEMENTS",
    "MAX_ARRAY_BYTES",
    "MAX_META_BYTES",
    "MAX_UNCOMPRESSED_BYTES",
    "TEMP_SUFFIX",
    "ModelFileError",
    "ArrayBudget",
    "atomic_write",
    "check_version",
    "check_manifest",
    "load_npz_payload",
]

TEMP_SUFFIX = ".tmp"
"""The ending of :func:`atomic_write`'s temp files (``.NAME.XXXXXXXX.tmp``)."""
FORMAT_VERSION = 2
"""2: arrays named by layer (``layer0.dense.weight``, ``layer3.batchnorm.running_mean``,
``opt.m.layer0.dense.weight``) and the stack in the metadata; 1: a dense net's ``coef_<i>``,
``intercept_<i>`` and ``opt.<slot>.<i>``. Both load."""
LIBRARY = "nn"
META_KEY = "__meta__"
ALLOWED_ARRAY_KINDS = "biufcUS"  # bool, ints, floats, complex, fixed-width text
MAX_OPTIMIZER_SLOTS = 2
"""Most per-parameter state arrays an optimizer keeps (Adam's ``m`` and ``v``)."""
MAX_ARRAY_ELEMENTS = MAX_PARAMETERS * (1 + MAX_OPTIMIZER_SLOTS)
"""Elements of all arrays in one model file: the weights and the optimizer's state."""
MAX_ARRAY_BYTES = MAX_ARRAY_ELEMENTS * 8
"""Bytes of all arrays in one model file (every element in float64)."""
MAX_META_BYTES = 64 << 20
"""Bytes of the metadata document (UTF-32 in ``.npz``; a long per-batch history is ~1 MB)."""
MAX_UNCOMPRESSED_BYTES = MAX_ARRAY_BYTES + MAX_META_BYTES
"""Largest model file, on disk or expanded from an archive: what a model of MAX_PARAMETERS is."""
MAX_ARCHIVE_MEMBERS = 10_000


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, unsafe or from an unsupported version.

    The message always names the file and the fault. ``path`` holds the file name/path.
    """

    def __init__(self, path: Any, fault: str | None = None):
        if fault is None:  # ModelFileError("full message")
            self.path, self.fault = None, str(path)
            super().__init__(str(path))
        else:
            self.path, self.fault = str(path), fault
            super().__init__(f"{self.path}: {fault}")


class ArrayBudget:
    """What the arrays of one file may take, charged before NumPy allocates each one."""

    def __init__(self, label: Any):
        self.label = label
        self.elements = 0
        self.bytes = 0

    def charge(self, shape: tuple, dtype: np.dtype, what: str = "array") -> None:
        n = shape_elements(shape, self.label)
        self.elements += n
        self.bytes += n * dtype.itemsize
        if self.elements > MAX_ARRAY_ELEMENTS or self.bytes > MAX_ARRAY_BYTES:
            raise ModelFileError(
                self.label,
                f"{what} of shape {shape} and dtype {dtype} takes the file's arrays to "
                f"{self.elements:,} elements ({self.bytes:,} bytes); a model of this product has "
                f"at most {MAX_PARAMETERS:,} parameters ({MAX_ARRAY_ELEMENTS:,} elements with "
                f"its optimizer state, {MAX_ARRAY_BYTES:,} bytes)",
            )


def shape_elements(shape: Any, label: Any) -> int:
    """Number of elements of ``shape``, refusing anything but a tuple of non-negative ints."""
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ModelFileError(label, f"array shape {shape!r} is not whole numbers")
    return math.prod(shape)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any], *, replace: bool = True) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path`` (``.NAME.*.tmp``, locked while
    it is written, so a killed writer's file is found by
    :func:`nn.core.tempfiles.remove_abandoned`), fsync, then os.replace. An ``OSError`` (a full
    disk) names ``path``, and the temp file is removed. ``replace=False`` never replaces a
    file: ``FileExistsError`` if one is at ``path``, even one written a moment ago."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by `with tmp:`, kept for its name)
        dir=folder, prefix=f".{path.name}.", suffix=TEMP_SUFFIX, delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            hold(tmp.fileno())
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.fchmod(tmp.fileno(), mode)
            if replace:
                os.replace(tmp_path, path)  # still locked: never taken for a leftover
            else:  # a link fails if a file took the name meanwhile: check and write are one
                os.link(tmp_path, path)
                tmp_path.unlink()
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not exc.filename:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    try:  # make the rename itself durable (best effort; not available on every platform)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def check_version(version: Any, label: Any) -> None:
    """``format_version`` is one this version of nn reads."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(label, f"missing or invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            label,
            f"made by a newer version of nn (format_version {version}; this version reads "
            f"up to {FORMAT_VERSION}); upgrade to load it",
        )
    if version < 1:
        raise ModelFileError(label, f"unsupported format_version {version}")


def check_manifest(meta: dict, specs: dict[str, tuple], label: Any) -> None:
    """The manifest in the metadata agrees with the arrays present: ``specs`` maps each array
    name to its ``(shape, dtype)`` (from the ``.npy`` headers, or from the loaded arrays)."""
    if meta.get("library", LIBRARY) != LIBRARY:
        raise ModelFileError(label, f"made by library {meta.get('library')!r}, not {LIBRARY!r}")
    manifest = meta.get("array_manifest")
    if not isinstance(manifest, dict):
        raise ModelFileError(label, "metadata has no array_manifest")
    missing = sorted(set(manifest) - set(specs))
    if missing:
        raise ModelFileError(label, f"missing arrays: {', '.join(missing)}")
    for key, spec in manifest.items():
        shape, dtype = specs[key]
        try:
            want_shape = tuple(int(s) for s in spec["shape"])
            want_dtype = np.dtype(spec["dtype"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelFileError(label, f"bad manifest entry for array {key!r}") from exc
        if tuple(shape) != want_shape:
            raise ModelFileError(
                label, f"array {key!r} has shape {tuple(shape)}, metadata says {want_shape}"
            )
        if dtype != want_dtype:
            raise ModelFileError(
                label, f"array {key!r} has dtype {dtype}, metadata says {want_dtype}"
            )
        if dtype.kind not in ALLOWED_ARRAY_KINDS:
            raise ModelFileError(label, f"array {key!r} has unsupported dtype {dtype}")


def _decode_meta(meta_array: np.ndarray, label: Any) -> dict:
    if meta_array.dtype.kind not in "US" or meta_array.size != 1:
        raise ModelFileError(label, f"'{META_KEY}' is not a single JSON string")
    text = meta_array.reshape(-1)[0]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="strict")
    try:
        meta = loads(str(text), f"'{META_KEY}'", max_chars=MAX_META_BYTES)
    except JSONInputError as exc:
        raise ModelFileError(label, str(exc)) from None
    if not isinstance(meta, dict):
        raise ModelFileError(label, f"'{META_KEY}' is not a JSON object")
    return meta


def _npz_members(zf: zipfile.ZipFile, label: Any, max_uncompressed: int) -> dict[str, tuple]:
    """``{array name: (zip member name, shape, dtype)}`` read from the members' headers only,
    with the sizes those headers promise checked against the limits before any array is read."""

    def fail(key: str | None, fault: str) -> ModelFileError:
        return ModelFileError(label, fault if key is None else f"array {key!r} {fault}")

    members = archive_members(
        zf,
        fail,
        kinds=ALLOWED_ARRAY_KINDS,
        max_members=MAX_ARCHIVE_MEMBERS,
        max_bytes=max_uncompressed,
        what="a model file of this product",
    )
    budget = ArrayBudget(label)
    for key, (_member, shape, dtype) in members.items():
        if key == META_KEY:
            if math.prod(shape) != 1 or dtype.kind not in "US" or dtype.itemsize > MAX_META_BYTES:
                raise ModelFileError(
                    label,
                    f"'{META_KEY}' is not a single JSON string of at most {MAX_META_BYTES:,} bytes",
                )
        else:
            budget.charge(shape, dtype, what=f"array {key!r}")
    return members


def load_npz_payload(
    fileobj, label: Any, *, meta_only: bool, max_uncompressed: int | None = None
) -> tuple[dict, dict[str, tuple | np.ndarray]]:
    """The metadata and the arrays of an ``.npz`` model; with ``meta_only``, the arrays'
    ``(shape, dtype)`` from their headers instead of their data."""
    if max_uncompressed is None:
        max_uncompressed = MAX_UNCOMPRESSED_BYTES
    try:
        with zipfile.ZipFile(fileobj) as zf:
            members = _npz_members(zf, label, max_uncompressed)
            if META_KEY not in members:
                raise ModelFileError(
                    label, f"npz archive has no '{META_KEY}' entry (not a model saved by nn)"
                )
            meta = _decode_meta(read_member(zf, members[META_KEY][0]), label)
            check_version(meta.get("format_version"), label)
            specs = {k: v[1:] for k, v in members.items() if k != META_KEY}
            check_manifest(meta, specs, label)
            if meta_only:
                return meta, specs
            arrays = {key: read_member(zf, members[key][0]) for key in specs}
    except ModelFileError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise ModelFileError(
            label,
            "not a readable .npz archive: the file is truncated or corrupt",
        ) from exc
    return meta, arrays
