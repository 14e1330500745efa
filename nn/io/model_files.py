"""Saving and loading fitted models.

Native format: ONE ``.npz`` archive (``nn.io.npz``): ``__meta__``, a JSON document, and every
weight / optimizer-state array under its own name. Compatibility format: ``.pkl`` of plain
containers, read through a restricted unpickler (``nn.io.pickle_compat``).

The file-level metadata document looks like::

    {"format_version": 1, "library": "nn", "name": ..., "created": ISO-UTC, "saved": ISO-UTC,
     "architecture": {"layer_sizes": [...], "activations": [...]},
     "metrics": {...}, "notes": ..., "n_parameters": int,
     "inside": {...} or None,        # per-layer statistics recorded in training (nn.core.probe)
     "confidence_threshold": {"version": 1, "value", "coverage", "accuracy", "images"} or None,
                                     # below it the model says "not sure" (nn.core.confidence);
                                     # absent in older files, read as None
     "dataset": {"name", "sha256", "image_shape": [h, w, c], "class_names": [...]},  # or absent
     "array_manifest": {name: {"shape": [...], "dtype": "float32"}},
     "state_keys": [...],            # which top-level keys came from to_state(model)
     "state_shadowed": {...},        # to_state() keys that collide with file-level keys
     "params": ..., "classes": ..., "history": ..., "n_iter": ..., ...}   # to_state() metadata

Every load checks the file before a model is built (``nn.io.model_checks``); every write is
atomic.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.activations import ACTIVATIONS
from nn.core.layer_spec import compact
from nn.core.limits import MAX_PARAMETERS
from nn.core.network import NeuralNetwork
from nn.core.npy import ZIP_MAGICS
from nn.core.state import from_state, to_state
from nn.io import npz
from nn.io.model_checks import check_weights, checked_state
from nn.io.npz import (
    ALLOWED_ARRAY_KINDS,
    FORMAT_VERSION,
    LIBRARY,
    META_KEY,
    ModelFileError,
    atomic_write,
    load_npz_payload,
)
from nn.io.pickle_compat import load_pickle_payload, write_pickle_payload

__all__ = [
    "SUPPORTED_FORMATS",
    "MAX_UPLOAD_BYTES",
    "ModelFileError",
    "save_model",
    "load_model",
    "read_metadata",
    "export_pickle",
    "load_model_bytes",
]

SUPPORTED_FORMATS = (".npz", ".pkl")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_NPY_MAGIC = b"\x93NUMPY"

# Keys of the file-level document (everything else at top level came from to_state(model)).
_FILE_KEYS = (
    "format_version",
    "library",
    "name",
    "created",
    "saved",
    "architecture",
    "metrics",
    "notes",
    "n_parameters",
    "inside",
    "dataset",
    "confidence_threshold",
    "array_manifest",
    "state_keys",
    "state_shadowed",
)
_ARRAY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Names np.savez(file, *args, allow_pickle=..., **kwds) cannot take as keyword arrays.
_SAVEZ_RESERVED = frozenset({"file", "args", "allow_pickle", "kwds", META_KEY})


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype.kind in ALLOWED_ARRAY_KINDS:
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _to_json_compatible(value: Any, what: str) -> Any:
    """Round-trip through JSON so both formats carry exactly the same plain data."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save model: {what} is not JSON-serialisable ({exc})") from exc


def _normalise_suffix(path: Path) -> Path:
    suffix = path.suffix.lower()
    if suffix == "":
        return path.with_name(path.name + ".npz")
    if suffix not in SUPPORTED_FORMATS:
        raise ValueError(
            f"cannot save model to {path}: unsupported extension {path.suffix!r}; "
            f"use one of {', '.join(SUPPORTED_FORMATS)}"
        )
    return path


def _activation_name(act: Any) -> str:
    if isinstance(act, dict):
        return str(act.get("name", act.get("class_name", "?")))
    if isinstance(act, str):
        return act
    return str(getattr(act, "name", act))


def _architecture(model: Any, state_meta: dict, arrays: dict[str, np.ndarray]) -> dict:
    coefs = []
    i = 0
    while f"coef_{i}" in arrays:
        coefs.append(arrays[f"coef_{i}"])
        i += 1
    sizes = getattr(model, "layer_sizes_", None)
    if sizes is None and coefs:
        sizes = [int(coefs[0].shape[0])] + [int(c.shape[-1]) for c in coefs]
    sizes = [int(s) for s in sizes] if sizes is not None else []
    n_hidden = max(len(sizes) - 2, 0)
    params = state_meta.get("params") or {}
    act = params.get("activation", params.get("activations"))
    if isinstance(act, (list, tuple)):
        hidden = [_activation_name(a) for a in act]
    elif act is None:
        hidden = ["?"] * n_hidden
    else:
        hidden = [_activation_name(act)] * n_hidden
    stack = state_meta.get("stack")
    if isinstance(stack, list) and all(isinstance(s, dict) for s in stack):
        hidden = [str(s.get("type")) for s in stack if s.get("type") in ACTIVATIONS]
        return {"layer_sizes": sizes, "activations": [*hidden, "softmax"], "stack": compact(stack)}
    return {"layer_sizes": sizes, "activations": hidden + (["softmax"] if sizes else [])}


def _n_parameters(model: Any, arrays: dict[str, np.ndarray]) -> int:
    n = getattr(model, "n_parameters_", None)
    if isinstance(n, (int, np.integer)):
        return int(n)
    return int(sum(a.size for k, a in arrays.items() if re.fullmatch(r"(coef|intercept)_\d+", k)))


def _collect_state(model: Any) -> tuple[dict, dict[str, np.ndarray]]:
    if not isinstance(model, NeuralNetwork):
        raise TypeError(f"cannot save {type(model).__name__}: it is not a NeuralNetwork")
    state_meta, arrays = to_state(model)
    clean: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME_RE.match(name) or name in _SAVEZ_RESERVED:
            raise ValueError(f"cannot save model: invalid array name {name!r}")
        arr = np.asarray(arr)
        if arr.dtype.kind not in ALLOWED_ARRAY_KINDS:
            raise ValueError(
                f"cannot save model: array {name!r} has unsupported dtype {arr.dtype} "
                "(only numeric/text arrays are stored)"
            )
        clean[name] = arr
    return state_meta, clean


def _build_meta(
    model: Any,
    path: Path,
    state_meta: dict,
    arrays: dict[str, np.ndarray],
    name: str | None,
    metrics: dict | None,
    notes: str | None,
    inside: dict | None = None,
    dataset: dict | None = None,
    threshold: dict | None = None,
) -> dict:
    state_meta = _to_json_compatible(state_meta, "the model metadata (to_state)")
    previous = getattr(model, "metadata_", None)
    previous = previous if isinstance(previous, dict) else {}
    # Metrics describe a particular set of weights: only carry them over if the model
    # has not been trained further since it was loaded.
    same_weights = previous.get("n_iter") == state_meta.get("n_iter")
    if metrics is None:
        metrics = previous.get("metrics") if same_weights else None
    if notes is None:
        notes = previous.get("notes")
    if inside is None:
        inside = previous.get("inside") if same_weights else None
    if dataset is None:
        dataset = previous.get("dataset")
    if threshold is None:  # chosen on these weights' predictions
        threshold = previous.get("confidence_threshold") if same_weights else None
    if name is None:  # the file stem, so list_models rows and delete_model agree by default
        name = path.stem
    now = _utcnow()
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "library": LIBRARY,
        "name": str(name),
        "created": previous.get("created") or now,
        "saved": now,
        "architecture": _architecture(model, state_meta, arrays),
        "metrics": _to_json_compatible(dict(metrics or {}), "metrics"),
        "notes": None if notes is None else str(notes),
        "n_parameters": _n_parameters(model, arrays),
        "inside": None if inside is None else _to_json_compatible(dict(inside), "inside"),
        "dataset": _to_json_compatible(dataset, "dataset") if dataset else None,
        "confidence_threshold": _to_json_compatible(threshold, "confidence_threshold")
        if threshold
        else None,
        "array_manifest": {
            k: {"shape": [int(s) for s in a.shape], "dtype": a.dtype.str} for k, a in arrays.items()
        },
        "state_keys": list(state_meta),
        "state_shadowed": {},
    }
    for key, value in state_meta.items():
        if key in _FILE_KEYS:
            meta["state_shadowed"][key] = value
        else:
            meta[key] = value
    return meta


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def save_model(
    model: Any,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    metrics: dict | None = None,
    notes: str | None = None,
    inside: dict | None = None,
    dataset: dict | None = None,
    threshold: dict | None = None,
    replace: bool = True,
) -> Path:
    """Save a fitted model atomically; returns the path written (``replace=False``: never over
    an existing file, ``FileExistsError`` then).

    ``.npz`` (or no extension, which gets ``.npz``) writes the native format, ``.pkl`` the
    plain-container pickle (see :func:`export_pickle`). ``name`` defaults to the file stem;
    ``created`` is kept from the model's ``metadata_`` (set by load_model and by save_model);
    ``metrics``, ``notes`` and ``inside`` (the training's ``nn.core.probe`` record) default to
    those in ``metadata_`` -- metrics and inside only if the model was not trained further
    since. ``dataset`` (``nn.data.registry.DataSetInfo.record()``: name, SHA-256, image shape,
    class names) says what the model was trained on, default the one in ``metadata_``; a file
    without it holds an MNIST model. ``threshold`` (``nn.core.confidence.threshold_record``):
    the confidence below which the model says "not sure", default the one in ``metadata_`` if
    the model was not trained further since; ``{}`` removes it. Sets ``model.metadata_`` to
    the new file's metadata.
    """
    path = _normalise_suffix(Path(path))
    if path.suffix.lower() == ".pkl":
        return export_pickle(
            model,
            path,
            name=name,
            metrics=metrics,
            notes=notes,
            inside=inside,
            dataset=dataset,
            threshold=threshold,
            replace=replace,
        )
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(
        model, path, state_meta, arrays, name, metrics, notes, inside, dataset, threshold
    )
    meta_array = np.array(json.dumps(meta, ensure_ascii=False))  # 0-d '<U..' array

    atomic_write(path, lambda f: np.savez(f, **{META_KEY: meta_array}, **arrays), replace=replace)
    _remember(model, meta, path, "npz")
    return path


def export_pickle(
    model: Any,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    metrics: dict | None = None,
    notes: str | None = None,
    inside: dict | None = None,
    dataset: dict | None = None,
    threshold: dict | None = None,
    replace: bool = True,
) -> Path:
    """Write the compatibility pickle: ``{"format_version", "meta", "arrays"}`` of plain
    containers and ndarrays only (protocol 4), atomically (``replace=False``: never over an
    existing file). Never pickles the model object."""
    path = Path(path)
    if path.suffix.lower() != ".pkl":
        raise ValueError(f"cannot export pickle to {path}: the file name must end with .pkl")
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(
        model, path, state_meta, arrays, name, metrics, notes, inside, dataset, threshold
    )
    atomic_write(path, lambda f: write_pickle_payload(f, meta, arrays), replace=replace)
    _remember(model, meta, path, "pkl")
    return path


def _public_metadata(meta: dict, path: Any, fmt: str) -> dict:
    info = {k: meta.get(k) for k in _FILE_KEYS if k not in ("state_keys", "state_shadowed")}
    info["n_iter"] = meta.get("n_iter", meta.get("state_shadowed", {}).get("n_iter"))
    info["path"] = str(path)
    info["format"] = fmt
    return info


def _remember(model: Any, meta: dict, path: Path, fmt: str) -> None:
    with contextlib.suppress(AttributeError):  # models with __slots__ take no metadata
        model.metadata_ = _public_metadata(meta, path, fmt)


# --------------------------------------------------------------------------------------------
# validation + model construction
# --------------------------------------------------------------------------------------------


def _build_model(meta: dict, arrays: dict[str, np.ndarray], label: Any, path: Any, fmt: str):
    state = checked_state(meta, {k: (a.shape, a.dtype) for k, a in arrays.items()}, label)
    arrays = {k: arrays[k] for k in meta["array_manifest"]}
    check_weights(arrays, label)
    try:
        model = from_state(state, arrays)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        why = str(exc) if type(exc) is ValueError else "a field is missing or of the wrong kind"
        raise ModelFileError(label, f"model state is inconsistent: {why}") from exc
    claimed = state.get("layer_sizes")
    built = getattr(model, "layer_sizes_", claimed)
    if claimed is not None and list(built) != list(claimed):
        raise ModelFileError(
            label, f"metadata says layers {claimed}, the arrays and the stack make {list(built)}"
        )
    _remember(model, meta, path, fmt)
    return model


def _sniff(head: bytes) -> str:
    if not head:
        return "empty"
    if head[:4] in ZIP_MAGICS:
        return "npz"
    if head[:6] == _NPY_MAGIC:
        return "npy"
    if head[:1] == b"\x80":
        return "pkl"
    return "unknown"


def _check_kind(label: Any, suffix: str, head: bytes) -> str:
    """Return 'npz' or 'pkl', or raise a clear ModelFileError."""
    suffix = suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise ModelFileError(
            label,
            f"unsupported file type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_FORMATS)}",
        )
    kind = _sniff(head)
    expected = suffix[1:]
    if kind == "empty":
        raise ModelFileError(label, "file is empty (0 bytes)")
    if kind == expected:
        return kind
    if kind == "npy":
        raise ModelFileError(label, "is a bare .npy array, not a model archive")
    if kind == "unknown":
        what = "an .npz (zip) archive" if expected == "npz" else "a pickle"
        raise ModelFileError(label, f"not {what}: unrecognised content")
    actual = "an .npz archive" if kind == "npz" else "a pickle"
    raise ModelFileError(
        label, f"named {suffix} but the content is {actual}; rename it to .{kind} to load it"
    )


def _read_source(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ModelFileError(path, f"cannot open: {exc}") from exc


def _load(path: str | os.PathLike, *, meta_only: bool):
    path = Path(path)
    with _read_source(path) as f:
        kind = _check_kind(path, path.suffix, f.read(8))
        size = os.fstat(f.fileno()).st_size
        if size > npz.MAX_UNCOMPRESSED_BYTES:
            raise ModelFileError(
                path,
                f"file is {size:,} bytes; a model file of this product is at most "
                f"{npz.MAX_UNCOMPRESSED_BYTES:,} bytes ({MAX_PARAMETERS:,} parameters)",
            )
        f.seek(0)
        if kind == "npz":
            meta, arrays = load_npz_payload(f, path, meta_only=meta_only)
        else:
            meta, arrays = load_pickle_payload(f.read(), path)
    return kind, meta, arrays


# --------------------------------------------------------------------------------------------
# public loading API
# --------------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike):
    """Load a model saved by :func:`save_model` (``.npz``) or :func:`export_pickle` (``.pkl``).

    Raises FileNotFoundError if the file does not exist, ModelFileError (a ValueError naming
    the file and the fault) for anything wrong with its content. The file metadata is attached
    as ``model.metadata_``.
    """
    path = Path(path)
    kind, meta, arrays = _load(path, meta_only=False)
    return _build_model(meta, arrays, path, path, kind)


def read_metadata(path: str | os.PathLike, *, check_arrays: bool = False) -> dict:
    """The file's metadata document, its types and its arrays' shapes and dtypes checked.

    Cheap for ``.npz``: only ``__meta__`` and the arrays' headers are read. With
    ``check_arrays`` the arrays' values are read and checked too, and the model is built, so
    that the document is returned exactly when :func:`load_model` would load the file.
    Same errors as :func:`load_model`.
    """
    path = Path(path)
    kind, meta, arrays = _load(path, meta_only=not check_arrays)
    if check_arrays:
        _build_model(meta, arrays, path, path, kind)
        return meta
    specs = {k: (a.shape, a.dtype) if isinstance(a, np.ndarray) else a for k, a in arrays.items()}
    checked_state(meta, specs, path)
    return meta


_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")


def _upload_label(filename: Any) -> str:
    """The upload's name for messages, refused if it holds a control character or a path
    separator (a browser sends a bare file name; anything else is forged or broken)."""
    name = str(filename)
    bad = sorted(set(_UNSAFE_NAME_CHARS.findall(name)))
    if bad:
        shown = ", ".join(repr(c) if c in "/\\" else f"U+{ord(c):04X}" for c in bad)
        raise ModelFileError(
            name.encode("unicode_escape").decode("ascii"),
            f"the upload's name contains {shown}; a file name may not contain control "
            "characters or path separators: rename the file and upload it again",
        )
    return name or "<upload>"


def load_model_bytes(data: bytes, filename: str, *, max_bytes: int = MAX_UPLOAD_BYTES):
    """Load an uploaded model from memory (nothing is written to disk).

    ``filename`` decides the expected format (.npz / .pkl) and names the upload in errors.
    """
    label = _upload_label(filename)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ModelFileError(
            label, f"upload is {len(data)} bytes, larger than the {max_bytes}-byte limit"
        )
    kind = _check_kind(label, Path(label).suffix, data[:8])
    if kind == "npz":
        meta, arrays = load_npz_payload(
            io.BytesIO(data),
            label,
            meta_only=False,
            max_uncompressed=min(npz.MAX_UNCOMPRESSED_BYTES, 20 * max(max_bytes, 1)),
        )
    else:
        meta, arrays = load_pickle_payload(data, label)
    return _build_model(meta, arrays, label, label, kind)
