"""The models folder: where saved models live, what they may be called, listing, finding,
deleting and saving them. One home for these rules, shared by the command line and the
dashboard.

The folder is ``--models-dir`` (or another explicit folder), else ``$NN_MODELS_DIR``, else
``saved_models/`` in the repository. A model's name is its file stem (:func:`sanitize_model_name`
says what a name may hold); a file of that name stays inside the folder (:func:`model_path`).
Every path that saves a trained model -- the Train page, ``python -m nn train``, fine-tuning, a
search's best trained on the Train page -- goes through :func:`save_named`, with one metadata
record (:class:`SaveRecord`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nn.core.tempfiles import remove_abandoned
from nn.io.model_files import SUPPORTED_FORMATS, load_model, read_metadata, save_model
from nn.io.npz import TEMP_SUFFIX, ModelFileError

__all__ = [
    "MODELS_DIR_ENV",
    "MAX_NAME_LENGTH",
    "SaveRecord",
    "models_dir",
    "sanitize_model_name",
    "model_path",
    "find_model",
    "resolve_model_path",
    "check_writable_folder",
    "list_models",
    "delete_model",
    "save_named",
]

MODELS_DIR_ENV = "NN_MODELS_DIR"
REPO_DIR = Path(__file__).resolve().parents[2]
MAX_NAME_LENGTH = 64
_WRITE_TEST = ".write-test."


def models_dir(override: str | os.PathLike | None = None, *, create: bool = False) -> Path:
    """``override``, else ``$NN_MODELS_DIR``, else ``saved_models/`` in the repository; read at
    call time. ``create`` makes the folder if it is missing (a failure is left to the caller's
    first write)."""
    if override:
        folder = Path(override).expanduser()
    else:
        value = os.environ.get(MODELS_DIR_ENV, "").strip()
        folder = Path(value).expanduser() if value else REPO_DIR / "saved_models"
    if create:
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
    return folder


_NAME_OK_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_NAME_RULES = (
    "model names may use only ASCII letters, digits, '-', '_' and '.' (spaces become '_'), "
    f"must be 1-{MAX_NAME_LENGTH} characters, must not start with '.' or contain '..', "
    "and must not be a reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)"
)


def sanitize_model_name(name: str) -> str:
    """Validate a user-supplied model name and return the safe file stem (no extension).

    Runs of spaces become '_' (control characters are refused); a trailing .npz/.pkl is
    dropped. Raises ValueError naming
    the problem and the rules otherwise.
    """
    if not isinstance(name, str):
        raise ValueError(f"invalid model name {name!r}: {_NAME_RULES}")
    if not name.isprintable():
        raise ValueError(
            f"invalid model name {name!r}: it holds a line break, tab or other control "
            f"character; {_NAME_RULES}"
        )
    stem = re.sub(r" +", "_", name.strip())
    for ext in SUPPORTED_FORMATS:
        if stem.lower().endswith(ext) and len(stem) > len(ext):
            stem = stem[: -len(ext)]
            break

    def bad(reason: str) -> ValueError:
        return ValueError(f"invalid model name {name!r}: {reason}; {_NAME_RULES}")

    if not stem:
        raise bad("it is empty")
    if "/" in stem or "\\" in stem:
        raise bad("it contains a path separator")
    if ".." in stem:
        raise bad("it contains '..'")
    if stem.startswith("."):
        raise bad("it starts with '.'")
    if stem.endswith("."):
        raise bad("it ends with '.'")
    if len(stem) > MAX_NAME_LENGTH:
        raise bad(f"it is {len(stem)} characters long")
    if not _NAME_OK_RE.match(stem):
        bad_chars = sorted({c for c in stem if not re.match(r"[A-Za-z0-9_.\-]", c)})
        raise bad(f"it contains {''.join(bad_chars)!r}")
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise bad("it is a reserved device name")
    return stem


def model_path(folder: str | os.PathLike, name: str, fmt: str = "npz") -> Path:
    """``folder / (sanitize_model_name(name) + '.' + fmt)``, guaranteed to stay inside folder
    (also when the target is a symlink pointing elsewhere)."""
    ext = "." + str(fmt).lower().lstrip(".")
    if ext not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}")
    stem = sanitize_model_name(name)
    base = Path(folder).resolve()
    path = base / f"{stem}{ext}"
    resolved = path.resolve()
    if resolved.parent != base:
        raise ValueError(f"model path for {name!r} escapes the folder {base}")
    return path


def find_model(folder: str | os.PathLike, name: str | None) -> Path | None:
    """The saved model called ``name`` in ``folder`` (``.npz`` preferred, then ``.pkl``), or
    None when there is none or ``name`` is not a valid model name."""
    if not name:
        return None
    for ext in SUPPORTED_FORMATS:
        try:
            path = model_path(folder, name, ext[1:])
        except ValueError:
            return None
        if path.is_file():
            return path
    return None


def resolve_model_path(spec: str, folder: str | os.PathLike | None = None) -> Path:
    """A model file from a path or a saved model's name; ``FileNotFoundError`` if neither."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise IsADirectoryError(f"{spec}: is a folder, not a model file")
    folder = models_dir(folder)
    found = find_model(folder, spec)
    if found is not None:
        return found
    raise FileNotFoundError(
        f"{spec}: no such model file, and no saved model of that name in {folder}"
    )


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """``folder``, created if missing, once a temporary file was written and removed in it.

    Raises OSError (with ``strerror`` saying why) when models cannot be saved there: a plain
    file, a read-only or virtual file system such as ``/proc``, no permission."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "it is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=_WRITE_TEST, suffix=".tmp") as f:
        f.write(b"\0")
        f.flush()
    return folder


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _remove_killed_saves(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """Delete the temp files of saves that were killed midway (``.NAME.*.tmp`` that no running
    save holds; the folder check's own ``.write-test.*`` files are left alone); returns their
    paths and sizes. Every listing does this first."""
    return remove_abandoned(
        folder,
        lambda name: (
            name.startswith(".") and name.endswith(TEMP_SUFFIX) and not name.startswith(_WRITE_TEST)
        ),
    )


def list_models(folder: str | os.PathLike) -> list[dict]:
    """One row per ``.npz``/``.pkl`` file in ``folder`` (not recursive, hidden/temp files
    skipped), newest ``saved`` first. Unreadable files get a row with ``error`` set instead of
    raising. ``stem`` is the file stem to pass to delete_model/model_path (``name`` is the
    display name stored in the file). Row keys: name, stem, path, format, size_bytes, layers,
    activations, n_parameters,
    test_accuracy, metrics, notes, created, saved, n_iter, dataset (the set's record or None for
    an MNIST model), error."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    _remove_killed_saves(folder)
    rows = []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in SUPPORTED_FORMATS:
            continue
        if not path.is_file():
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        row: dict[str, Any] = {
            "name": path.stem,
            "stem": path.stem,
            "path": str(path),
            "format": path.suffix.lower()[1:],
            "size_bytes": stat.st_size,
            "layers": None,
            "stack": None,
            "activations": None,
            "n_parameters": None,
            "test_accuracy": None,
            "metrics": {},
            "notes": None,
            "created": None,
            "saved": None,
            "n_iter": None,
            "dataset": None,
            "error": None,
        }
        try:
            meta = read_metadata(path)
        except Exception as exc:  # one bad file must not break the whole table
            row["error"] = (
                str(exc)
                if isinstance(exc, (ModelFileError, OSError))
                else (f"{path}: {type(exc).__name__}: {exc}")
            )
        else:
            arch = meta.get("architecture") or {}
            metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
            row.update(
                name=meta.get("name") or path.stem,
                layers=arch.get("layer_sizes"),
                stack=meta.get("stack") if meta.get("params", {}).get("layers") else None,
                activations=arch.get("activations"),
                n_parameters=meta.get("n_parameters"),
                test_accuracy=metrics.get("test_accuracy"),
                metrics=metrics,
                notes=meta.get("notes"),
                created=meta.get("created"),
                saved=meta.get("saved"),
                n_iter=meta.get("n_iter"),
                dataset=meta.get("dataset"),
            )
        saved_ts = _parse_time(row["saved"])
        row["_sort"] = (
            row["error"] is None,
            saved_ts if saved_ts is not None else -math.inf,
            stat.st_mtime,
        )
        rows.append(row)
    rows.sort(key=lambda r: r["_sort"], reverse=True)
    for row in rows:
        del row["_sort"]
    return rows


def delete_model(folder: str | os.PathLike, name: str, fmt: str | None = None) -> list[Path]:
    """Delete the model called ``name`` in ``folder`` (both formats unless ``fmt`` is given).
    Returns the paths deleted; FileNotFoundError if there was nothing to delete."""
    fmts = [fmt] if fmt is not None else [s[1:] for s in SUPPORTED_FORMATS]
    deleted = []
    for f in fmts:
        path = model_path(folder, name, f)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(path)
    if not deleted:
        raise FileNotFoundError(f"no saved model named {sanitize_model_name(name)!r} in {folder}")
    return deleted


@dataclass(frozen=True)
class SaveRecord:
    """What every saved trained model records besides its weights, whoever saves it.

    ``metrics``: the training's final numbers (test and validation accuracy, last loss, epochs,
    seconds, training images); ``notes``: how it was trained, in words; ``inside``: the
    per-layer record of ``nn.core.probe`` (or None); ``dataset``: the data set's record
    (``nn.data.registry.DataSetInfo.record()``; None for MNIST)."""

    metrics: dict
    notes: str | None = None
    inside: dict | None = None
    dataset: dict | None = None

    def to_dict(self) -> dict:
        """Plain JSON data, to cross a process boundary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SaveRecord:
        return cls(
            metrics=dict(data.get("metrics") or {}),
            notes=data.get("notes"),
            inside=data.get("inside"),
            dataset=data.get("dataset"),
        )


def save_named(
    model: Any, path: str | os.PathLike, name: str, record: SaveRecord, *, overwrite: bool = True
) -> Path:
    """Save a trained ``model`` to ``path`` under the model name ``name`` with ``record``;
    returns the path written. ``ValueError`` if a file is there and ``overwrite`` is False."""
    path = Path(path)
    taken = ValueError(f"a model called {name!r} exists already ({path}); pick a new name")
    if path.exists() and not overwrite:
        raise taken
    try:
        return save_model(
            model,
            path,
            name=name,
            metrics=record.metrics,
            notes=record.notes,
            inside=record.inside,
            dataset=record.dataset,
            replace=overwrite,
        )
    except FileExistsError:  # saved by someone else between the check and the write
        raise taken from None


def save_threshold(path: str | os.PathLike, record: dict | None) -> Path:
    """Rewrite the saved model at ``path`` with the confidence threshold ``record``
    (``nn.core.confidence.threshold_record``; None removes it), everything else kept."""
    model = load_model(path)
    name = (getattr(model, "metadata_", None) or {}).get("name")
    return save_model(model, path, name=name, threshold=record or {})
