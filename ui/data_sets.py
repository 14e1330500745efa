"""Adding a data set from the dashboard: uploaded files written to a temporary folder (whose
path never reaches a message), or a folder inside the import folder (``$NN_IMPORT_ROOT``, else
``data/``; links out of it are not followed, and nothing is said about paths outside it), then
``nn.data.registry.add_set`` (the same checks as ``python -m nn data add``). No Streamlit here."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nn.data.arrays import DataError
from nn.data.registry import (
    DataSetInfo,
    SetExistsError,
    add_set,
    parse_class_names,
    parse_image_shape,
)

__all__ = [
    "IMPORT_ROOT_ENV",
    "MAX_UPLOAD_BYTES",
    "add_from_folder",
    "add_from_uploads",
    "folder_import_allowed",
    "import_root",
]

IMPORT_ROOT_ENV = "NN_IMPORT_ROOT"
_DATA_FOLDER = Path(__file__).resolve().parents[1] / "data"

MAX_UPLOAD_BYTES = 400 << 20
"""Bytes of all files of one upload together (CIFAR-10 as .npz is about 180 MB)."""

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
# names a data folder's files have (nn.data.load_dataset reads such a folder)
_FOLDER_NAMES = ("x_train", "y_train", "x_test", "y_test", "train-", "t10k-")


def _upload_name(name: str) -> str:
    """The upload's bare file name; refused if it holds a separator or control character."""
    text = str(name)
    if not text or _UNSAFE.search(text) or text in (".", "..") or text.startswith("."):
        raise DataError(
            f"{text.encode('unicode_escape').decode('ascii')!r}: a file name may not be empty, "
            "start with '.', or hold path separators or control characters"
        )
    return text


def _pair(paths: list[Path]) -> tuple[Path, Path] | None:
    """Two ``.npy``/IDX files that are an images file and a labels file by their names."""
    if len(paths) != 2:
        return None

    def is_labels(p: Path) -> bool:
        name = p.name.lower()
        return "label" in name or name.startswith("y") or "idx1" in name

    labels = [p for p in paths if is_labels(p)]
    if len(labels) != 1:
        return None
    images = next(p for p in paths if p is not labels[0])
    return images, labels[0]


def add_from_uploads(
    files: Sequence[tuple[str, bytes]],
    name: str,
    *,
    classes: str = "",
    shape: str = "",
    overwrite: bool = False,
    data_dir: Path | None = None,
) -> DataSetInfo:
    """Add the set held by the uploaded ``files`` (``(file name, bytes)`` pairs): one file (an
    ``.npz``, a ``.csv``), IDX or ``.npy`` files named as in a data folder, or an images file and
    a labels file. ``classes``: comma-separated class names; ``shape``: ``HxWxC`` of flat rows.
    ``DataError`` says what was wrong; nothing is kept on failure."""
    if not files:
        raise DataError("choose the data set's files to upload")
    total = sum(len(data) for _, data in files)
    if total > MAX_UPLOAD_BYTES:
        raise DataError(
            f"the files hold {total:,} bytes; an upload holds at most {MAX_UPLOAD_BYTES:,}: add "
            "a larger set from a folder on the server"
        )
    names = [_upload_name(n) for n, _ in files]
    if len(set(names)) != len(names):
        raise DataError("two uploaded files have the same name")
    class_names = parse_class_names(classes)
    image_shape = parse_image_shape(shape)
    with tempfile.TemporaryDirectory(prefix="nn-upload-") as tmp:
        folder = Path(tmp)
        paths = []
        for file_name, (_, data) in zip(names, files, strict=True):
            path = folder / file_name
            path.write_bytes(data)
            paths.append(path)
        label = ", ".join(names)
        pair = _pair(paths)
        if len(paths) == 1:
            source: object = paths[0]
        elif pair is not None and not any(n.startswith(_FOLDER_NAMES) for n in names):
            source = pair
        else:
            source = folder
        try:
            return add_set(
                source,  # type: ignore[arg-type]
                name,
                class_names=class_names,
                image_shape=image_shape,
                overwrite=overwrite,
                folder=data_dir,
                source_label=f"upload: {label}",
            )
        except SetExistsError as exc:
            raise SetExistsError(f"{exc}, or tick “Replace a set of the same name”") from None
        except DataError as exc:  # the files by the names they were uploaded with
            text = str(exc).replace(f"{folder}{os.sep}", "").replace(str(folder), "the upload")
            raise DataError(text) from None


def import_root() -> Path:
    """The one folder on the server that sets may be added from: ``$NN_IMPORT_ROOT``, else the
    repository's ``data/`` folder."""
    text = os.environ.get(IMPORT_ROOT_ENV, "").strip()
    return Path(text) if text else _DATA_FOLDER


def folder_import_allowed(signed_in: bool, admin: bool) -> bool:
    """Whether a person may add a set from a folder on the server: without sign-in (one
    person's own dashboard), or when signed in as a teacher (``NN_ADMINS``)."""
    return not signed_in or admin


def _inside_root(text: str, root: Path) -> Path:
    """The real path ``text`` names inside ``root`` (relative to it, or absolute), links
    followed; ``DataError`` for anything outside it, saying nothing about what is there."""
    root_real = root.resolve()
    outside = DataError(
        f"{text[:80]!r} is not in the import folder; give a folder or data file inside "
        f"{root} (a path relative to it, or absolute)"
    )
    if not text.isprintable():
        raise outside
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = root_real / candidate
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):
        raise outside from None
    if not real.is_relative_to(root_real):
        raise outside
    if not real.exists():
        raise DataError(f"{text[:80]!r}: no such file or folder in the import folder {root}")
    if real.is_dir():
        for entry in real.iterdir():
            if entry.is_symlink() and not entry.resolve().is_relative_to(root_real):
                raise DataError(
                    f"{text[:80]!r}: {entry.name} links outside the import folder; copy the file "
                    "in instead"
                )
    return real


def add_from_folder(
    folder: str,
    name: str,
    *,
    classes: str = "",
    shape: str = "",
    overwrite: bool = False,
    data_dir: Path | None = None,
    root: Path | None = None,
) -> DataSetInfo:
    """Add the set in ``folder`` (or the file ``folder`` names) inside the import folder
    ``root`` (default :func:`import_root`); links out of it are not followed."""
    root = import_root() if root is None else Path(root)
    text = str(folder or "").strip()
    if not text:
        raise DataError(f"give the path of a folder (or data file) inside {root}")
    path = _inside_root(text, root)
    try:
        return add_set(
            path,
            name,
            class_names=parse_class_names(classes),
            image_shape=parse_image_shape(shape),
            overwrite=overwrite,
            folder=data_dir,
            source_label=str(path),
        )
    except SetExistsError as exc:
        raise SetExistsError(f"{exc}, or tick “Replace a set of the same name”") from None
