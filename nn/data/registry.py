"""Data sets the user adds: validated image sets kept in a data folder, beside the bundled MNIST.

The data folder is ``$NN_DATA_DIR``, else ``data/sets/`` in the repository (git ignores it). Each
added set is a sub-folder named after the set holding

- ``arrays.npz``: ``x_train``, ``y_train``, ``x_test``, ``y_test`` -- images as uint8 rows
  ``(n, h*w*c)`` (row-major height, width, channels), labels as int64 ``0..K-1``;
- ``info.json``: name, image shape ``[h, w, c]``, class names, counts per class per part, source,
  SHA-256 of the arrays, the date it was added, and how its test part was made.

:func:`add_set` reads IDX pairs (raw or gzipped), a labelled CSV (label, then the pixels), an
``.npz`` with ``x_train, y_train, x_test, y_test`` (or ``x, y``), ``.npy`` pairs, or a folder
holding any of these, with the checks every data file gets (format, counts, label range, the
size cap) before anything is written. A set without a test part gets a seeded stratified test
part (:data:`TEST_FRACTION` of its images, seed :data:`TEST_SPLIT_SEED`), recorded in its
description. Every class needs training images (:data:`~nn.core.limits.MIN_CLASS_TRAIN_IMAGES`).
The set is written to a temporary folder (locked while it is written) and renamed into place at
the end in one step that fails if the name was taken meanwhile, so a failed add leaves nothing
behind and two adds of one name never both succeed. A name already taken needs
``overwrite=True``. What an add or a removal killed midway left is deleted at the next add or
listing (:func:`clean_leftovers`).

The bundled MNIST is always the first set, :data:`MNIST_NAME`, and cannot be removed.

Models record the set they were trained on (:meth:`DataSetInfo.record`, stored by
``nn.io.model_files.save_model``); :func:`check_model_fits` refuses a model whose record names a
different image shape or class count. A model without a record is an MNIST model.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.bounded_json import JSONInputError, read_json_file
from nn.core.limits import MAX_DATASET_CLASSES
from nn.core.tempfiles import held, remove_abandoned
from nn.data.arrays import MNIST, DataError
from nn.data.datasets import load_dataset
from nn.data.idx import load_mnist
from nn.data.set_checks import SET_KEYS, TEST_FRACTION, TEST_SPLIT_SEED, validated_arrays

__all__ = [
    "DATA_DIR_ENV",
    "MNIST_NAME",
    "MNIST_SHA256",
    "TEST_FRACTION",
    "TEST_SPLIT_SEED",
    "DataSet",
    "DataSetInfo",
    "DataSetMismatch",
    "SetExistsError",
    "add_set",
    "arrays_sha256",
    "check_model_fits",
    "clean_leftovers",
    "fits",
    "data_dir",
    "get_info",
    "has_set",
    "list_sets",
    "load_set",
    "mnist_info",
    "model_record",
    "record_label",
    "parse_class_names",
    "parse_image_shape",
    "remove_set",
    "sanitize_set_name",
]

DATA_DIR_ENV = "NN_DATA_DIR"
MNIST_NAME = "mnist"
MAX_SET_NAME_LENGTH = 64
INFO_FILE = "info.json"
_ADDING = ".adding-"
_REMOVING = ".removing-"
ARRAYS_FILE = "arrays.npz"
_REPO_DIR = Path(__file__).resolve().parents[2]

#: :func:`arrays_sha256` of the bundled MNIST (its IDX files are checked by their own digests).
MNIST_SHA256 = "1e35582d42a90940c55b956deb61875c020b567ed20e3c5b174f52bf7809ed9b"


class SetExistsError(DataError):
    """A data set of that name exists and replacing it was not asked for (the command line
    says how: ``--overwrite``; the Data page: its "Replace" box)."""


class DataSetMismatch(ValueError):
    """A model and a data set disagree on the image shape or the number of classes."""


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$NN_DATA_DIR``, else ``data/sets/`` in the repository (read at call
    time; nothing is created)."""
    if override:
        return Path(override).expanduser()
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else _REPO_DIR / "data" / "sets"


# --------------------------------------------------------------------------------------------
# descriptions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSetInfo:
    """What ``info.json`` says about a set; ``counts`` maps ``"train"``/``"test"`` to the number
    of images per class. ``test_split`` is ``None`` when the source had its own test part,
    else ``{"fraction", "seed"}`` of the stratified test part made when the set was added."""

    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    counts: dict[str, list[int]]
    source: str
    sha256: str
    added: str
    test_split: dict[str, Any] | None = None
    builtin: bool = False
    path: Path | None = field(default=None, compare=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        return math.prod(self.image_shape)

    @property
    def shape_text(self) -> str:
        """``28x28`` for greyscale, ``32x32x3`` for colour."""
        h, w, c = self.image_shape
        return f"{h}x{w}" if c == 1 else f"{h}x{w}x{c}"

    @property
    def greyscale(self) -> bool:
        return self.image_shape[2] == 1

    @property
    def n_train(self) -> int:
        return int(sum(self.counts.get("train", [])))

    @property
    def n_test(self) -> int:
        return int(sum(self.counts.get("test", [])))

    def describe(self) -> str:
        """One line: ``fashion: 28x28 grey, 10 classes, 60,000 train + 10,000 test images``."""
        colour = "grey" if self.greyscale else "colour"
        return (
            f"{self.name}: {self.shape_text} {colour}, {self.n_classes} classes, "
            f"{self.n_train:,} train + {self.n_test:,} test images"
        )

    def record(self) -> dict[str, Any]:
        """What a model trained on this set stores about it."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "image_shape": list(self.image_shape),
            "class_names": list(self.class_names),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image_shape": list(self.image_shape),
            "class_names": list(self.class_names),
            "counts": {k: list(v) for k, v in self.counts.items()},
            "source": self.source,
            "sha256": self.sha256,
            "added": self.added,
            "test_split": self.test_split,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: Any) -> DataSetInfo:
        """Read ``info.json``'s document, every field checked (``DataError`` naming it)."""
        if not isinstance(doc, dict):
            raise DataError(f"{where}: the description is not a JSON object")
        try:
            shape = tuple(int(s) for s in doc["image_shape"])
            names = tuple(str(c) for c in doc["class_names"])
            counts = {k: [int(n) for n in doc["counts"][k]] for k in ("train", "test")}
            info = cls(
                name=str(doc["name"]),
                image_shape=shape,  # type: ignore[arg-type]
                class_names=names,
                counts=counts,
                source=str(doc.get("source", "")),
                sha256=str(doc["sha256"]),
                added=str(doc.get("added", "")),
                test_split=doc.get("test_split"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: the description lacks or garbles {exc}") from None
        if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
            raise DataError(f"{where}: image_shape {list(shape)} is not [height, width, 1 or 3]")
        if not 2 <= len(names) <= MAX_DATASET_CLASSES:
            raise DataError(f"{where}: {len(names)} class names; a set has 2 to 1,000 classes")
        if any(len(v) != len(names) for v in counts.values()):
            raise DataError(f"{where}: the counts per class do not match the class names")
        return info


def mnist_info() -> DataSetInfo:
    """The bundled MNIST's description (60,000 training and 10,000 test images)."""
    train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    return DataSetInfo(
        name=MNIST_NAME,
        image_shape=(28, 28, 1),
        class_names=tuple(str(d) for d in range(10)),
        counts={"train": train, "test": test},
        source="bundled (data/, the official IDX files)",
        sha256=MNIST_SHA256,
        added="",
        builtin=True,
    )


def parse_class_names(text: str | None) -> list[str] | None:
    """``"T-shirt,Trouser,..."`` as a list (spaces around names dropped); ``None``/empty gives
    ``None`` (the default names ``"0".."K-1"``)."""
    if text is None or not str(text).strip():
        return None
    return [part.strip() for part in str(text).split(",")]


def parse_image_shape(text: str | None) -> tuple[int, int, int] | None:
    """``"32x32x3"``, ``"32,32,3"`` or ``"28x28"`` (greyscale) as ``(h, w, c)``."""
    if text is None or not str(text).strip():
        return None
    parts = re.split(r"\s*[x,X*]\s*", str(text).strip())
    dims = [int(p) for p in parts] if all(re.fullmatch("[0-9]{1,9}", p) for p in parts) else []
    if len(dims) == 2:
        dims.append(1)
    if len(dims) != 3 or min(dims) < 1 or dims[2] not in (1, 3):
        raise DataError(
            f"image shape {text!r}: give HEIGHTxWIDTH (greyscale) or HEIGHTxWIDTHxCHANNELS with "
            f"1 or 3 channels, e.g. 28x28 or 32x32x3"
        )
    return dims[0], dims[1], dims[2]


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_NAME_RULES = (
    f"a data set name is 1-{MAX_SET_NAME_LENGTH} characters: lowercase letters, digits, '-', '_' "
    "and '.', starting with a letter or digit"
)


def sanitize_set_name(name: Any) -> str:
    """The set's name in lowercase (spaces become ``-``; the caller shows the name it got), or
    ``DataError`` naming the rule (a control character is refused, never replaced)."""
    if not isinstance(name, str):
        raise DataError(f"data set name {name!r}: {_NAME_RULES}")
    if not name.isprintable():
        raise DataError(
            f"data set name {name!r}: it holds a line break, tab or other control character; "
            f"{_NAME_RULES}"
        )
    clean = re.sub(r" +", "-", name.strip()).lower()
    if not clean or len(clean) > MAX_SET_NAME_LENGTH or not _NAME_RE.match(clean) or ".." in clean:
        raise DataError(f"data set name {name!r}: {_NAME_RULES}")
    return clean


def arrays_sha256(x_train, y_train, x_test, y_test) -> str:
    """SHA-256 of the four stored arrays' bytes, in this order: uint8 pixel rows, then int64
    little-endian labels, each C-contiguous."""
    digest = hashlib.sha256()
    for a, dtype in ((x_train, "u1"), (y_train, "<i8"), (x_test, "u1"), (y_test, "<i8")):
        digest.update(np.ascontiguousarray(a, dtype=dtype).data)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# adding
# --------------------------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _write_set(tmp: Path, arrays: dict[str, np.ndarray], info: DataSetInfo) -> None:
    with open(tmp / ARRAYS_FILE, "wb") as f:
        np.savez(f, **{k: np.ascontiguousarray(arrays[k]) for k in SET_KEYS})
        f.flush()
        os.fsync(f.fileno())
    (tmp / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")


def add_set(
    source: str | os.PathLike | tuple,
    name: str,
    *,
    class_names: list[str] | None = None,
    image_shape: tuple[int, int, int] | None = None,
    overwrite: bool = False,
    folder: str | os.PathLike | None = None,
    source_label: str | None = None,
) -> DataSetInfo:
    """Validate the data at ``source`` (a file, a folder, or an ``(images, labels)`` pair of
    files) and store it as the set ``name``; returns its description.

    ``class_names`` name the classes in label order (default ``"0".."K-1"`` with K the largest
    label + 1). ``image_shape`` ``(h, w, c)`` says how flat rows of pixels (CSV, 2-D arrays) are
    laid out; without it a square greyscale or colour image is assumed. ``overwrite`` replaces a
    set of that name. ``source_label`` is what the description records as the source (default:
    the path). Raises ``DataError`` with what was wrong; on any failure nothing is left behind.
    """
    clean = sanitize_set_name(name)
    if clean == MNIST_NAME:
        raise DataError(f"{MNIST_NAME!r} is the bundled MNIST; choose another name")
    root = data_dir(folder)
    target = root / clean
    if target.exists() and not overwrite:
        raise SetExistsError(f"a data set named {clean!r} exists already; remove it first")
    arrays, shape, names, test_split = validated_arrays(source, class_names, image_shape)
    k = len(names)
    info = DataSetInfo(
        name=clean,
        image_shape=shape,  # type: ignore[arg-type]
        class_names=names,
        counts={
            "train": np.bincount(arrays["y_train"], minlength=k).tolist(),
            "test": np.bincount(arrays["y_test"], minlength=k).tolist(),
        },
        source=source_label or str(source),
        sha256=arrays_sha256(*(arrays[key] for key in SET_KEYS)),
        added=_utc_now(),
        test_split=test_split,
        path=target,
    )
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_ADDING}{clean}.", dir=root))
    old: Path | None = None
    try:
        with held(tmp):
            tmp.chmod(0o755)  # mkdtemp makes it private; a set is as readable as the folder
            _write_set(tmp, arrays, info)
            if overwrite and target.exists():
                old = Path(tempfile.mkdtemp(prefix=f"{_REMOVING}{clean}.", dir=root))
                os.replace(target, old / clean)
            _rename_new(tmp, target, clean)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / clean).exists() and not target.exists():
            os.replace(old / clean, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return info


def _rename_new(tmp: Path, target: Path, clean: str) -> None:
    """Rename ``tmp`` to ``target`` unless a set took that name meanwhile: the rename of a
    folder onto a folder that holds files fails, so the check and the rename are one step."""
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise SetExistsError(
                f"a data set named {clean!r} was added meanwhile; remove it first"
            ) from None
        raise


def clean_leftovers(folder: str | os.PathLike | None = None) -> list[tuple[Path, int]]:
    """Delete what interrupted adds and removals left in the data folder (``.adding-*`` and
    ``.removing-*`` folders no running add or removal holds); returns their paths and sizes."""
    root = data_dir(folder)
    if not root.is_dir():
        return []
    return remove_abandoned(root, lambda name: name.startswith((_ADDING, _REMOVING)))


def remove_set(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Delete the set ``name``; returns its folder. The bundled MNIST cannot be removed."""
    clean = sanitize_set_name(name)
    if clean == MNIST_NAME:
        raise DataError(f"{MNIST_NAME!r} is the bundled MNIST and cannot be removed")
    target = data_dir(folder) / clean
    if not (target / INFO_FILE).is_file():
        raise DataError(f"no data set named {clean!r} in {data_dir(folder)}")
    root = target.parent
    doomed = Path(tempfile.mkdtemp(prefix=f"{_REMOVING}{clean}.", dir=root))
    with held(doomed):
        os.replace(target, doomed / clean)
        shutil.rmtree(doomed / clean, ignore_errors=True)
    shutil.rmtree(doomed, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _read_info(path: Path) -> DataSetInfo:
    where = path / INFO_FILE
    try:
        doc = read_json_file(where)
    except JSONInputError as exc:
        raise DataError(f"the description of the set {path.name!r} is unreadable: {exc}") from None
    info = DataSetInfo.from_dict(doc, where)
    if info.name != path.name:
        raise DataError(f"{where}: describes {info.name!r}, not {path.name!r}")
    return DataSetInfo(**{**info.__dict__, "path": path})


def list_sets(
    folder: str | os.PathLike | None = None, errors: list[str] | None = None
) -> list[DataSetInfo]:
    """MNIST, then every added set by name. A set whose description cannot be read is left out
    (its message appended to ``errors`` if given)."""
    sets = [mnist_info()]
    root = data_dir(folder)
    if not root.is_dir():
        return sets
    clean_leftovers(root)
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            sets.append(_read_info(path))
        except DataError as exc:
            if errors is not None:
                errors.append(str(exc))
    return sets


def has_set(name: str, folder: str | os.PathLike | None = None) -> bool:
    """Whether ``name`` is MNIST or a set's folder in the data folder, readable or not (so a set
    whose description is broken is reported as such, not as missing)."""
    try:
        clean = sanitize_set_name(name)
    except DataError:
        return False
    return clean == MNIST_NAME or (data_dir(folder) / clean).is_dir()


def get_info(name: str, folder: str | os.PathLike | None = None) -> DataSetInfo:
    """The description of the set ``name`` (``DataError`` if there is none)."""
    clean = sanitize_set_name(name)
    if clean == MNIST_NAME:
        return mnist_info()
    path = data_dir(folder) / clean
    if not path.is_dir():
        known = ", ".join(s.name for s in list_sets(folder))
        raise DataError(f"no data set named {clean!r}; the data sets are: {known}")
    return _read_info(path)


@dataclass(frozen=True)
class DataSet:
    """A loaded set: its description and its parts (``MNIST`` tuple of flat uint8 rows and int64
    labels, read-only)."""

    info: DataSetInfo
    data: MNIST


def load_set(name: str, folder: str | os.PathLike | None = None) -> DataSet:
    """The set ``name``, its arrays validated against its description (shapes, counts, SHA-256)."""
    info = get_info(name, folder)
    if info.builtin:
        return DataSet(info, load_mnist())
    path = info.path / ARRAYS_FILE  # type: ignore[operator]
    data = load_dataset(path, any_shape=True)
    if not isinstance(data, MNIST):
        raise DataError(f"{path}: lacks x_train, y_train, x_test or y_test")
    for key, a in zip(SET_KEYS, data, strict=True):
        if key.startswith("x") and (a.ndim != 2 or a.shape[1] != info.n_features):
            raise DataError(f"{path}[{key}]: shape {a.shape} is not {info.shape_text} rows")
    for part in ("train", "test"):
        y = getattr(data, f"y_{part}")
        if len(y) and int(y.max()) >= info.n_classes:
            raise DataError(f"{path}[y_{part}]: a label is outside 0-{info.n_classes - 1}")
        if np.bincount(y, minlength=info.n_classes).tolist() != info.counts[part]:
            raise DataError(f"{path}[y_{part}]: the counts per class disagree with {INFO_FILE}")
    if arrays_sha256(*data) != info.sha256:
        raise DataError(f"{path}: SHA-256 differs from {INFO_FILE}; the arrays were changed")
    return DataSet(info, data)


# --------------------------------------------------------------------------------------------
# models and sets
# --------------------------------------------------------------------------------------------


def _model_dims(model_or_meta: Any) -> tuple[int, int] | None:
    """``(inputs, classes)`` of a model, its file metadata or its ``list_models`` row, when
    known."""
    if isinstance(model_or_meta, dict):
        sizes = model_or_meta.get("layers")  # a list_models row
        if not isinstance(sizes, list):
            sizes = (model_or_meta.get("architecture") or {}).get("layer_sizes")
        if isinstance(sizes, list) and len(sizes) >= 2:
            with contextlib.suppress(TypeError, ValueError):
                return int(sizes[0]), int(sizes[-1])
        return None
    n_features = getattr(model_or_meta, "n_features_in_", None)
    classes = getattr(model_or_meta, "classes_", None)
    if n_features is None or classes is None:
        return None
    return int(n_features), len(classes)


def _unrecorded(n_features: int, n_classes: int) -> dict[str, Any]:
    """The record of a model that names no set and does not take MNIST's images: its image
    shape as far as its input size tells (square greyscale, square colour, else one row)."""
    side = math.isqrt(n_features)
    colour = math.isqrt(n_features // 3)
    if side * side == n_features:
        shape = [side, side, 1]
    elif n_features % 3 == 0 and colour * colour * 3 == n_features:
        shape = [colour, colour, 3]
    else:
        shape = [1, n_features, 1]
    return {
        "name": None,
        "sha256": None,
        "image_shape": shape,
        "class_names": [str(k) for k in range(n_classes)],
    }


def model_record(model_or_meta: Any) -> dict[str, Any]:
    """The data set a model (or its file metadata, or its ``list_models`` row) records. A model
    without one is an MNIST model when it takes MNIST's 784 pixels and 10 classes, else a model
    of an unnamed set (``name`` None) of the shape its input size tells."""
    meta = model_or_meta if isinstance(model_or_meta, dict) else None
    if meta is None:
        meta = getattr(model_or_meta, "metadata_", None)
    record = meta.get("dataset") if isinstance(meta, dict) else None
    if isinstance(record, dict) and record.get("image_shape") and record.get("class_names"):
        return record
    dims = _model_dims(model_or_meta)
    if dims is not None and dims != (28 * 28, 10):
        return _unrecorded(*dims)
    return mnist_info().record()


def record_label(record: dict[str, Any]) -> str:
    """``'colour' (32x32x3 images, 10 classes)``, or ``a set it does not name (...)``."""
    name = record.get("name")
    where = repr(name) if name else "a set it does not name"
    return (
        f"{where} ({_shape_text(record['image_shape'])} images, "
        f"{len(record['class_names'])} classes)"
    )


def _shape_text(shape: Any) -> str:
    h, w, c = (int(s) for s in shape)
    return f"{h}x{w}" if c == 1 else f"{h}x{w}x{c}"


def check_model_fits(model_or_meta: Any, info: DataSetInfo, model_label: str = "the model") -> None:
    """``DataSetMismatch`` when the model's recorded set has another image shape or class count
    than ``info``; a set of the same shape and classes (another copy, a retrained one) fits."""
    record = model_record(model_or_meta)
    shape = tuple(int(s) for s in record["image_shape"])
    n_classes = len(record["class_names"])
    dims = _model_dims(model_or_meta)
    takes = dims is None or dims == (info.n_features, info.n_classes)
    if shape == tuple(info.image_shape) and n_classes == info.n_classes and takes:
        return
    raise DataSetMismatch(
        f"{model_label} was trained on {record_label(record)} and cannot be used on "
        f"{info.name!r} ({info.shape_text} images, {info.n_classes} classes); choose a model "
        "trained on a set of that shape, or train one"
    )


def fits(model_or_meta: Any, info: DataSetInfo) -> bool:
    """Whether :func:`check_model_fits` passes."""
    with contextlib.suppress(DataSetMismatch):
        check_model_fits(model_or_meta, info)
        return True
    return False
