"""Saving and loading fitted models.

Native format: ONE ``.npz`` archive written with :func:`numpy.savez` (uncompressed).
It holds ``__meta__`` -- a JSON document stored as a 0-d NumPy unicode array, so it loads
with ``allow_pickle=False`` -- and every weight / optimizer-state array under its own name.

Why uncompressed: trained float weights are close to incompressible (deflate saves ~5-10%),
MNIST-sized models are a few MB at most, and stored members load faster and without the
zip-bomb exposure of deflated members. The cost: NumPy stores unicode as UTF-32, so a long
per-batch loss history in ``__meta__`` takes 4 bytes per character (~1 MB for ~15k batches).

The file-level metadata document looks like::

    {"format_version": 1, "library": "nn", "name": ..., "created": ISO-UTC, "saved": ISO-UTC,
     "architecture": {"layer_sizes": [...], "activations": [...]},
     "metrics": {...}, "notes": ..., "n_parameters": int,
     "array_manifest": {name: {"shape": [...], "dtype": "float32"}},
     "state_keys": [...],            # which top-level keys came from model.to_state()
     "state_shadowed": {...},        # to_state() keys that collide with file-level keys
     "params": ..., "classes": ..., "history": ..., "n_iter": ..., ...}   # to_state() metadata

Compatibility format: ``.pkl`` (the first reference design saved pickles). We only ever write
plain containers -- ``{"format_version", "meta", "arrays"}`` -- and read pickles through a
restricted unpickler that resolves nothing but the few NumPy globals needed to rebuild plain
numeric arrays. A pickle naming any other global (``os.system``, ``builtins.exec``, ``numpy.load``,
a pickled model class, ...) is refused before anything is called.

All writes are atomic: temp file in the target directory, fsync, ``os.replace``.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import pickletools
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.multiarray import scalar as _np_scalar
    from numpy.core.numeric import _frombuffer as _np_frombuffer

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMATS",
    "MAX_UPLOAD_BYTES",
    "ModelFileError",
    "save_model",
    "load_model",
    "read_metadata",
    "export_pickle",
    "RestrictedUnpickler",
    "sanitize_model_name",
    "model_path",
    "list_models",
    "delete_model",
    "load_model_bytes",
]

FORMAT_VERSION = 1
LIBRARY = "nn"
SUPPORTED_FORMATS = (".npz", ".pkl")
PICKLE_PROTOCOL = 4  # protocol 4 arrays need only _reconstruct/ndarray/dtype (no _frombuffer)
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 1 << 30  # guard against zip bombs / absurd headers
MAX_ARCHIVE_MEMBERS = 10_000
MAX_NAME_LENGTH = 64

META_KEY = "__meta__"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # local file header / empty archive
_NPY_MAGIC = b"\x93NUMPY"
_ALLOWED_ARRAY_KINDS = frozenset("biufcUS")  # bool, ints, floats, complex, fixed-width text

# Keys of the file-level document (everything else at top level came from model.to_state()).
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
    "array_manifest",
    "state_keys",
    "state_shadowed",
)
_ARRAY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Names np.savez(file, *args, allow_pickle=..., **kwds) cannot take as keyword arrays.
_SAVEZ_RESERVED = frozenset({"file", "args", "allow_pickle", "kwds", META_KEY})


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


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype.kind in _ALLOWED_ARRAY_KINDS:
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


def _model_class():
    """The class used to rebuild models (indirection so tests can substitute a stand-in)."""
    from nn.core.network import NeuralNetwork

    return NeuralNetwork


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
    return {"layer_sizes": sizes, "activations": hidden + (["softmax"] if sizes else [])}


def _n_parameters(model: Any, arrays: dict[str, np.ndarray]) -> int:
    n = getattr(model, "n_parameters_", None)
    if isinstance(n, (int, np.integer)):
        return int(n)
    return int(sum(a.size for k, a in arrays.items() if re.fullmatch(r"(coef|intercept)_\d+", k)))


def _collect_state(model: Any) -> tuple[dict, dict[str, np.ndarray]]:
    if not hasattr(model, "to_state"):
        raise TypeError(f"cannot save {type(model).__name__}: it has no to_state() method")
    state_meta, arrays = model.to_state()
    if not isinstance(state_meta, dict) or not isinstance(arrays, dict):
        raise TypeError("model.to_state() must return (dict, dict[str, ndarray])")
    clean: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME_RE.match(name) or name in _SAVEZ_RESERVED:
            raise ValueError(f"cannot save model: invalid array name {name!r}")
        arr = np.asarray(arr)
        if arr.dtype.kind not in _ALLOWED_ARRAY_KINDS:
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


def _atomic_write(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync, then os.replace."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    tmp = tempfile.NamedTemporaryFile(
        dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            tmp_path.unlink()
        except FileNotFoundError:
            pass
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
) -> Path:
    """Save a fitted model atomically; returns the path written.

    ``.npz`` (or no extension, which gets ``.npz``) writes the native format, ``.pkl`` the
    plain-container pickle (see :func:`export_pickle`). ``name`` defaults to the file stem;
    ``created`` is kept from the model's ``metadata_`` (set by load_model and by save_model);
    ``metrics`` and ``notes`` default to those in ``metadata_`` -- metrics only if the model was
    not trained further since. Sets ``model.metadata_`` to the new file's metadata.
    """
    path = _normalise_suffix(Path(path))
    if path.suffix.lower() == ".pkl":
        return export_pickle(model, path, name=name, metrics=metrics, notes=notes)
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(model, path, state_meta, arrays, name, metrics, notes)
    meta_array = np.array(json.dumps(meta, ensure_ascii=False))  # 0-d '<U..' array

    def write(f):
        np.savez(f, **{META_KEY: meta_array}, **arrays)

    _atomic_write(path, write)
    _remember(model, meta, path, "npz")
    return path


def export_pickle(
    model: Any,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    metrics: dict | None = None,
    notes: str | None = None,
) -> Path:
    """Write the compatibility pickle: ``{"format_version", "meta", "arrays"}`` of plain
    containers and ndarrays only (protocol 4), atomically. Never pickles the model object."""
    path = Path(path)
    if path.suffix.lower() != ".pkl":
        raise ValueError(f"cannot export pickle to {path}: the file name must end with .pkl")
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(model, path, state_meta, arrays, name, metrics, notes)
    payload = {
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "arrays": {k: np.ascontiguousarray(a) for k, a in arrays.items()},
    }

    def write(f):
        pickle.dump(payload, f, protocol=PICKLE_PROTOCOL)

    _atomic_write(path, write)
    _remember(model, meta, path, "pkl")
    return path


def _public_metadata(meta: dict, path: Any, fmt: str) -> dict:
    info = {k: meta.get(k) for k in _FILE_KEYS if k not in ("state_keys", "state_shadowed")}
    info["n_iter"] = meta.get("n_iter", meta.get("state_shadowed", {}).get("n_iter"))
    info["path"] = str(path)
    info["format"] = fmt
    return info


def _remember(model: Any, meta: dict, path: Path, fmt: str) -> None:
    try:
        model.metadata_ = _public_metadata(meta, path, fmt)
    except AttributeError:  # pragma: no cover - models with __slots__
        pass


# --------------------------------------------------------------------------------------------
# restricted unpickling
# --------------------------------------------------------------------------------------------


def _check_dtype(dt: np.dtype, label: Any) -> np.dtype:
    if dt.hasobject or dt.kind not in _ALLOWED_ARRAY_KINDS or dt.fields is not None:
        raise ModelFileError(label, f"pickle refuses dtype {dt!r} (only plain numeric arrays)")
    return dt


def _check_dtype_state(dt: np.dtype, state: Any, label: Any) -> None:
    """A dtype's BUILD state must be the one NumPy itself gives that dtype (byte order aside):
    a crafted state could otherwise graft fields or the 'holds object pointers' flag onto a
    plain float dtype, and NumPy would then treat raw file bytes as PyObject pointers."""
    canonical = dt.__reduce__()[2]
    ok = (
        isinstance(state, tuple)
        and len(state) == len(canonical)
        and state[0] == canonical[0]
        and state[1] in ("<", ">", "|", "=")
        and (state[1] == "|") == (canonical[1] == "|")
        and state[2:] == canonical[2:]
    )
    if not ok:
        raise ModelFileError(label, f"pickle refuses a tampered state for dtype {dt}")


def _check_array_state(state: Any, label: Any) -> None:
    """ndarray BUILD state: (version, shape, dtype, is_fortran, raw bytes) of a plain dtype."""
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    ok = (
        isinstance(state, tuple)
        and len(state) == 4
        and isinstance(state[0], tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in state[0])
        and isinstance(state[1], np.dtype)
        and isinstance(state[2], bool)
        and isinstance(state[3], (bytes, bytearray))
    )
    if not ok:
        raise ModelFileError(label, "pickle refuses an array state that is not plain raw data")
    _check_dtype(state[1], label)


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only the NumPy globals needed to rebuild plain numeric arrays.

    Allowed: ``numpy(._core|.core).multiarray._reconstruct`` (subtype must be exactly
    ``numpy.ndarray``), ``numpy.ndarray``, ``numpy.dtype`` (object/structured dtypes refused),
    ``numpy(._core|.core).multiarray.scalar`` (same dtype check) and, for in-band protocol 5
    pickles, ``numpy(._core|.core).numeric._frombuffer``. Everything else raises ModelFileError.
    Persistent ids and out-of-band buffers are refused too.

    Built on the pure-Python unpickler so that BUILD (``__setstate__``) can be checked as well:
    it is allowed only on dtypes and plain arrays, with states NumPy itself would produce.
    (Model pickles hold a handful of large byte strings, so the pure-Python loop is fast enough.)
    """

    def __init__(self, file, label: Any = "<pickle>"):
        super().__init__(file)
        self._label = label
        label_ = label

        def safe_dtype(obj, align=False, copy=False):
            if not isinstance(obj, str):
                raise ModelFileError(label_, f"pickle refuses dtype constructor arg {obj!r}")
            return _check_dtype(np.dtype(obj, align=bool(align), copy=bool(copy)), label_)

        def safe_reconstruct(subtype, shape, typecode):
            if subtype is not np.ndarray:
                raise ModelFileError(label_, f"pickle refuses array subtype {subtype!r}")
            return _np_reconstruct(np.ndarray, shape, typecode)

        def safe_scalar(dtype, *args):
            if not isinstance(dtype, np.dtype):
                raise ModelFileError(label_, "pickle refuses a scalar without a NumPy dtype")
            _check_dtype(dtype, label_)
            if args and not isinstance(args[0], (bytes, bytearray)):
                raise ModelFileError(label_, "pickle refuses a scalar built from non-bytes data")
            return _np_scalar(dtype, *args)

        def safe_frombuffer(buf, dtype, shape, order, axis_order=None):
            if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype):
                raise ModelFileError(label_, "pickle refuses _frombuffer with non-bytes data")
            _check_dtype(dtype, label_)
            return np.array(_np_frombuffer(buf, dtype, shape, order, axis_order))

        self._allowed = {}
        for core in ("numpy._core", "numpy.core"):
            self._allowed[(f"{core}.multiarray", "_reconstruct")] = safe_reconstruct
            self._allowed[(f"{core}.multiarray", "scalar")] = safe_scalar
            self._allowed[(f"{core}.numeric", "_frombuffer")] = safe_frombuffer
        self._allowed[("numpy", "ndarray")] = np.ndarray
        self._allowed[("numpy", "dtype")] = safe_dtype

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise ModelFileError(
                self._label,
                f"pickle refuses global '{module}.{name}' (only plain NumPy arrays and "
                "containers are allowed; this file may try to run code)",
            ) from None

    def persistent_load(self, pid):
        raise ModelFileError(self._label, "pickle refuses persistent ids")

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) is np.dtype or isinstance(inst, np.dtype):
            _check_dtype_state(inst, state, self._label)
        elif type(inst) is np.ndarray:
            _check_array_state(state, self._label)
        else:
            raise ModelFileError(
                self._label, f"pickle refuses to set the state of a {type(inst).__name__}"
            )
        super().load_build()

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


_REFUSED_OPCODES = frozenset(
    {"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER"}
)


def _load_pickle_payload(data: bytes, label: Any) -> tuple[dict, dict[str, np.ndarray]]:
    if len(data) < 2 or data[0] != 0x80 or data[1] < 2:
        raise ModelFileError(label, "not a pickle written with protocol 2 or newer")
    try:
        # Static scan first: refuse opcodes that could bypass find_class (copyreg extension
        # codes are served from a process-wide cache) before executing anything.
        for opcode, _arg, _pos in pickletools.genops(data):
            if opcode.name in _REFUSED_OPCODES:
                raise ModelFileError(label, f"pickle refuses opcode {opcode.name}")
        payload = RestrictedUnpickler(io.BytesIO(data), label).load()
    except ModelFileError:
        raise
    except Exception as exc:  # the restricted unpickler cannot call user code; any error = corrupt
        raise ModelFileError(
            label, f"not a readable pickle (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc

    if not isinstance(payload, dict) or not {"format_version", "meta", "arrays"} <= set(payload):
        raise ModelFileError(
            label, "pickle does not hold a model export (expected format_version, meta, arrays)"
        )
    _check_version(payload["format_version"], label)
    meta, arrays = payload["meta"], payload["arrays"]
    if not isinstance(meta, dict):
        raise ModelFileError(label, "pickle 'meta' is not a dict")
    try:
        json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(label, f"pickle 'meta' is not plain JSON data ({exc})") from exc
    if not isinstance(arrays, dict):
        raise ModelFileError(label, "pickle 'arrays' is not a dict")
    out: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        if not isinstance(key, str) or type(arr) is not np.ndarray:
            raise ModelFileError(label, f"pickle 'arrays' entry {key!r} is not a plain ndarray")
        if arr.dtype.hasobject or arr.dtype.kind not in _ALLOWED_ARRAY_KINDS:
            raise ModelFileError(label, f"array {key!r} has refused dtype {arr.dtype}")
        out[key] = arr if arr.flags.writeable else arr.copy()
    return meta, out


# --------------------------------------------------------------------------------------------
# npz reading
# --------------------------------------------------------------------------------------------


def _decode_meta(meta_array: np.ndarray, label: Any) -> dict:
    if meta_array.dtype.kind not in "US" or meta_array.size != 1:
        raise ModelFileError(label, f"'{META_KEY}' is not a single JSON string")
    text = meta_array.reshape(-1)[0]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="strict")
    try:
        meta = json.loads(str(text))
    except ValueError as exc:
        raise ModelFileError(label, f"'{META_KEY}' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(label, f"'{META_KEY}' is not a JSON object")
    return meta


_NPZ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    ValueError,
    OSError,
    KeyError,
    NotImplementedError,
    MemoryError,
    OverflowError,
    RuntimeError,
)


def _load_npz_payload(
    fileobj, label: Any, *, meta_only: bool, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES
) -> tuple[dict, dict[str, np.ndarray] | None]:
    try:
        with zipfile.ZipFile(fileobj) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ARCHIVE_MEMBERS:
                raise ModelFileError(label, f"archive has too many members ({len(infos)})")
            total = sum(i.file_size for i in infos)
            if total > max_uncompressed:
                raise ModelFileError(
                    label, f"archive expands to {total} bytes (limit {max_uncompressed})"
                )
        fileobj.seek(0)
        with np.load(fileobj, allow_pickle=False) as npz:
            if META_KEY not in npz.files:
                raise ModelFileError(
                    label, f"npz archive has no '{META_KEY}' entry (not a model saved by nn)"
                )
            meta = _decode_meta(npz[META_KEY], label)
            _check_version(meta.get("format_version"), label)
            if meta_only:
                _check_manifest(meta, set(npz.files) - {META_KEY}, None, label)
                return meta, None
            arrays: dict[str, np.ndarray] = {}
            for key in npz.files:
                if key == META_KEY:
                    continue
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise ModelFileError(
                            label,
                            f"array {key!r} holds pickled Python objects (object dtype); "
                            "refused for safety",
                        ) from exc
                    raise
    except ModelFileError:
        raise
    except _NPZ_ERRORS as exc:
        raise ModelFileError(
            label,
            f"not a readable .npz archive (truncated or corrupt?): {type(exc).__name__}: {exc}",
        ) from exc
    return meta, arrays


# --------------------------------------------------------------------------------------------
# validation + model construction
# --------------------------------------------------------------------------------------------


def _check_version(version: Any, label: Any) -> None:
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


def _check_manifest(
    meta: dict, present: set[str], arrays: dict[str, np.ndarray] | None, label: Any
) -> None:
    if meta.get("library", LIBRARY) != LIBRARY:
        raise ModelFileError(label, f"made by library {meta.get('library')!r}, not {LIBRARY!r}")
    manifest = meta.get("array_manifest")
    if not isinstance(manifest, dict):
        raise ModelFileError(label, "metadata has no array_manifest")
    missing = sorted(set(manifest) - present)
    if missing:
        raise ModelFileError(label, f"missing arrays: {', '.join(missing)}")
    if arrays is None:
        return
    for key, spec in manifest.items():
        arr = arrays[key]
        try:
            shape = tuple(int(s) for s in spec["shape"])
            dtype = np.dtype(spec["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(label, f"bad manifest entry for array {key!r}") from exc
        if arr.shape != shape:
            raise ModelFileError(
                label, f"array {key!r} has shape {arr.shape}, metadata says {shape}"
            )
        if arr.dtype != dtype:
            raise ModelFileError(
                label, f"array {key!r} has dtype {arr.dtype}, metadata says {dtype}"
            )
        if arr.dtype.kind not in _ALLOWED_ARRAY_KINDS:
            raise ModelFileError(label, f"array {key!r} has unsupported dtype {arr.dtype}")


def _state_meta(meta: dict, label: Any) -> dict:
    keys = meta.get("state_keys")
    shadowed = meta.get("state_shadowed") or {}
    if not isinstance(keys, list) or not isinstance(shadowed, dict):
        raise ModelFileError(label, "metadata has no state_keys")
    state = {}
    for key in keys:
        if key in shadowed:
            state[key] = shadowed[key]
        elif key in meta:
            state[key] = meta[key]
        else:
            raise ModelFileError(label, f"metadata is missing model field {key!r}")
    return state


def _build_model(meta: dict, arrays: dict[str, np.ndarray], label: Any, path: Any, fmt: str):
    _check_manifest(meta, set(arrays), arrays, label)
    manifest = meta["array_manifest"]
    arrays = {k: arrays[k] for k in manifest}
    state = _state_meta(meta, label)
    cls = _model_class()
    try:
        model = cls.from_state(state, arrays)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelFileError(
            label, f"model state is inconsistent: {type(exc).__name__}: {exc}"
        ) from exc
    _remember(model, meta, path, fmt)
    return model


def _sniff(head: bytes) -> str:
    if not head:
        return "empty"
    if head[:4] in _ZIP_MAGICS:
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
        f.seek(0)
        if kind == "npz":
            meta, arrays = _load_npz_payload(f, path, meta_only=meta_only)
        else:
            meta, arrays = _load_pickle_payload(f.read(), path)
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


def read_metadata(path: str | os.PathLike) -> dict:
    """The file's metadata document without building the model (cheap for .npz: only the
    ``__meta__`` member is read). Same errors as :func:`load_model`."""
    path = Path(path)
    kind, meta, arrays = _load(path, meta_only=True)
    if arrays is not None:
        _check_manifest(meta, set(arrays), arrays, path)
    return meta


def load_model_bytes(data: bytes, filename: str, *, max_bytes: int = MAX_UPLOAD_BYTES):
    """Load an uploaded model from memory (nothing is written to disk).

    ``filename`` decides the expected format (.npz / .pkl) and names the upload in errors.
    """
    label = Path(str(filename)).name or "<upload>"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ModelFileError(
            label, f"upload is {len(data)} bytes, larger than the {max_bytes}-byte limit"
        )
    kind = _check_kind(label, Path(label).suffix, data[:8])
    if kind == "npz":
        meta, arrays = _load_npz_payload(
            io.BytesIO(data),
            label,
            meta_only=False,
            max_uncompressed=min(MAX_UNCOMPRESSED_BYTES, 20 * max(max_bytes, 1)),
        )
    else:
        meta, arrays = _load_pickle_payload(data, label)
    return _build_model(meta, arrays, label, label, kind)


# --------------------------------------------------------------------------------------------
# names, folders
# --------------------------------------------------------------------------------------------

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

    Whitespace runs become '_'; a trailing .npz/.pkl is dropped. Raises ValueError naming
    the problem and the rules otherwise.
    """
    if not isinstance(name, str):
        raise ValueError(f"invalid model name {name!r}: {_NAME_RULES}")
    stem = re.sub(r"\s+", "_", name.strip())
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


def list_models(folder: str | os.PathLike) -> list[dict]:
    """One row per ``.npz``/``.pkl`` file in ``folder`` (not recursive, hidden/temp files
    skipped), newest ``saved`` first. Unreadable files get a row with ``error`` set instead of
    raising. ``stem`` is the file stem to pass to delete_model/model_path (``name`` is the
    display name stored in the file). Row keys: name, stem, path, format, size_bytes, layers, activations, n_parameters,
    test_accuracy, metrics, notes, created, saved, n_iter, error."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
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
            "activations": None,
            "n_parameters": None,
            "test_accuracy": None,
            "metrics": {},
            "notes": None,
            "created": None,
            "saved": None,
            "n_iter": None,
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
                activations=arch.get("activations"),
                n_parameters=meta.get("n_parameters"),
                test_accuracy=metrics.get("test_accuracy"),
                metrics=metrics,
                notes=meta.get("notes"),
                created=meta.get("created"),
                saved=meta.get("saved"),
                n_iter=meta.get("n_iter"),
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
