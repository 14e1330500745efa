"""Adding a data set from the dashboard: uploaded files written to a temporary folder, then
``nn.data.registry.add_set`` (the same checks as ``python -m nn data add``). No Streamlit here."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nn.data.arrays import DataError
from nn.data.registry import DataSetInfo, add_set, parse_class_names, parse_image_shape

__all__ = ["MAX_UPLOAD_BYTES", "add_from_folder", "add_from_uploads"]

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
        return add_set(
            source,  # type: ignore[arg-type]
            name,
            class_names=class_names,
            image_shape=image_shape,
            overwrite=overwrite,
            folder=data_dir,
            source_label=f"upload: {label}",
        )


def add_from_folder(
    folder: str,
    name: str,
    *,
    classes: str = "",
    shape: str = "",
    overwrite: bool = False,
    data_dir: Path | None = None,
) -> DataSetInfo:
    """Add the set in ``folder`` (or the file ``folder`` names) on the server's disk."""
    text = str(folder or "").strip()
    if not text:
        raise DataError("give the path of a folder (or data file) on the server")
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder on the server")
    return add_set(
        path,
        name,
        class_names=parse_class_names(classes),
        image_shape=parse_image_shape(shape),
        overwrite=overwrite,
        folder=data_dir,
        source_label=str(path),
    )
