"""The one hardened reader of ``.npy`` headers and ``.npz`` archives.

Model files (``nn.io``) and data-set files (``nn.data``) both read arrays through it: every
header is read first (a few hundred bytes), its dtype checked (no object arrays, no structured
dtypes) and its promised size charged to the caller's limits before any array data is read.

Faults are reported by calling ``fail(fault)``, which returns the caller's own exception (a
``ModelFileError``, a ``DataError``): ``fault`` is a phrase that reads after the array's name,
e.g. ``"has an unreadable .npy header (...)"``.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from typing import IO

import numpy as np

__all__ = [
    "MAX_NPY_HEADER_BYTES",
    "ZIP_MAGICS",
    "ARCHIVE_ERRORS",
    "read_npy_header",
    "archive_members",
    "read_member",
]

MAX_NPY_HEADER_BYTES = 10_000
"""Longest ``.npy`` header read (NumPy writes a few hundred bytes)."""

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
"""How an ``.npz`` (a zip) starts: its first member's header, or the end of an empty archive."""

ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    ValueError,
    OSError,
    KeyError,
    NotImplementedError,
    MemoryError,
    OverflowError,
    RuntimeError,
)
"""What a truncated or corrupt archive raises while it is read."""

Fail = Callable[[str], Exception]

_KIND_NAMES = {
    "b": "booleans",
    "i": "integers",
    "u": "unsigned integers",
    "f": "floats",
    "c": "complex numbers",
    "U": "text",
    "S": "bytes",
}


def read_npy_header(f: IO[bytes], fail: Fail, kinds: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from the ``.npy`` header at ``f``'s position (the data is not read).

    ``kinds`` are the dtype kinds allowed (``"biuf"``: plain numbers). Raises ``fail(fault)``
    for an unreadable header, an unknown version, an object, structured or disallowed dtype."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(
                f, max_header_size=MAX_NPY_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(
                f, max_header_size=MAX_NPY_HEADER_BYTES
            )
        else:
            raise fail(f"has an unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError) as exc:
        raise fail(f"has an unreadable .npy header ({exc})") from None
    if dtype.hasobject:
        raise fail("holds pickled Python objects (object dtype); refused for safety")
    if dtype.kind not in kinds or dtype.fields is not None:
        allowed = ", ".join(_KIND_NAMES[k] for k in kinds)
        raise fail(f"has unsupported dtype {dtype} (allowed: {allowed})")
    return tuple(int(d) for d in shape), dtype


def archive_members(
    zf: zipfile.ZipFile,
    fail: Callable[[str | None, str], Exception],
    *,
    kinds: str,
    max_members: int,
    max_bytes: int,
    what: str = "a file of this product",
) -> dict[str, tuple[str, tuple, np.dtype]]:
    """``{array name: (member name, shape, dtype)}`` of an ``.npz`` archive, read from the
    members' headers only, once the member count and the expanded size are within limits.

    ``fail(name, fault)`` makes the caller's exception; ``name`` is None for a fault of the
    whole archive. The caller charges each member's ``shape`` and ``dtype`` to its own budget
    before it calls :func:`read_member`."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise fail(None, f"archive has too many members ({len(infos)})")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise fail(
            None, f"archive expands to {total:,} bytes; {what} is at most {max_bytes:,} bytes"
        )
    members: dict[str, tuple[str, tuple, np.dtype]] = {}
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename.removesuffix(".npy")
        with zf.open(info) as member:
            shape, dtype = read_npy_header(member, lambda fault, n=name: fail(n, fault), kinds)
        members[name] = (info.filename, shape, dtype)
    return members


def read_member(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    """One array of an archive whose header :func:`archive_members` has checked."""
    with zf.open(member) as f:
        return np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES)
