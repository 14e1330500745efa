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
     "inside": {...} or None,        # per-layer statistics recorded in training (nn.core.probe)
     "dataset": {"name", "sha256", "image_shape": [h, w, c], "class_names": [...]},  # or absent
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

import contextlib
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

from nn.core.limits import MAX_PARAMETERS

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
    "check_writable_folder",
]

FORMAT_VERSION = 2
"""2: arrays named by layer (``layer0.dense.weight``, ``layer3.batchnorm.running_mean``,
``opt.m.layer0.dense.weight``) and the stack in the metadata; 1: a dense net's ``coef_<i>``,
``intercept_<i>`` and ``opt.<slot>.<i>``. Both load."""
LIBRARY = "nn"
SUPPORTED_FORMATS = (".npz", ".pkl")
PICKLE_PROTOCOL = 4  # protocol 4 arrays need only _reconstruct/ndarray/dtype (no _frombuffer)
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
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
MAX_NPY_HEADER_BYTES = 10_000
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
    "inside",
    "dataset",
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
    stack = state_meta.get("stack")
    if isinstance(stack, list) and all(isinstance(s, dict) for s in stack):
        from nn.core.activations import ACTIVATIONS
        from nn.core.layer_spec import compact

        hidden = [str(s.get("type")) for s in stack if s.get("type") in ACTIVATIONS]
        return {"layer_sizes": sizes, "activations": [*hidden, "softmax"], "stack": compact(stack)}
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
    inside: dict | None = None,
    dataset: dict | None = None,
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
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by `with tmp:`, kept for its name)
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
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
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
    inside: dict | None = None,
    dataset: dict | None = None,
) -> Path:
    """Save a fitted model atomically; returns the path written.

    ``.npz`` (or no extension, which gets ``.npz``) writes the native format, ``.pkl`` the
    plain-container pickle (see :func:`export_pickle`). ``name`` defaults to the file stem;
    ``created`` is kept from the model's ``metadata_`` (set by load_model and by save_model);
    ``metrics``, ``notes`` and ``inside`` (the training's ``nn.core.probe`` record) default to
    those in ``metadata_`` -- metrics and inside only if the model was not trained further
    since. ``dataset`` (``nn.data.registry.DataSetInfo.record()``: name, SHA-256, image shape,
    class names) says what the model was trained on, default the one in ``metadata_``; a file
    without it holds an MNIST model. Sets ``model.metadata_`` to the new file's metadata.
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
        )
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(model, path, state_meta, arrays, name, metrics, notes, inside, dataset)
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
    inside: dict | None = None,
    dataset: dict | None = None,
) -> Path:
    """Write the compatibility pickle: ``{"format_version", "meta", "arrays"}`` of plain
    containers and ndarrays only (protocol 4), atomically. Never pickles the model object."""
    path = Path(path)
    if path.suffix.lower() != ".pkl":
        raise ValueError(f"cannot export pickle to {path}: the file name must end with .pkl")
    state_meta, arrays = _collect_state(model)
    meta = _build_meta(model, path, state_meta, arrays, name, metrics, notes, inside, dataset)
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
    with contextlib.suppress(AttributeError):  # models with __slots__ take no metadata
        model.metadata_ = _public_metadata(meta, path, fmt)


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


def _shape_elements(shape: Any, label: Any) -> int:
    """Number of elements of ``shape``, refusing anything but a tuple of non-negative ints."""
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ModelFileError(label, f"pickle refuses array shape {shape!r} (not whole numbers)")
    return math.prod(shape)


class _ArrayBudget:
    """What the arrays of one file may take, charged before NumPy allocates each one."""

    def __init__(self, label: Any):
        self.label = label
        self.elements = 0
        self.bytes = 0

    def charge(self, shape: tuple, dtype: np.dtype, what: str = "array") -> None:
        n = _shape_elements(shape, self.label)
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


def _check_array_state(state: Any, label: Any, budget: _ArrayBudget) -> None:
    """ndarray BUILD state: (version, shape, dtype, is_fortran, raw bytes) of a plain dtype,
    whose raw bytes are exactly what the shape needs (charged to the file's budget)."""
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    ok = (
        isinstance(state, tuple)
        and len(state) == 4
        and isinstance(state[0], tuple)
        and isinstance(state[1], np.dtype)
        and isinstance(state[2], bool)
        and isinstance(state[3], (bytes, bytearray))
    )
    if not ok:
        raise ModelFileError(label, "pickle refuses an array state that is not plain raw data")
    shape, dtype, raw = state[0], _check_dtype(state[1], label), state[3]
    n = _shape_elements(shape, label)
    if n * dtype.itemsize != len(raw):
        raise ModelFileError(
            label,
            f"pickle array of shape {shape} and dtype {dtype} needs {n * dtype.itemsize} "
            f"bytes but holds {len(raw)}",
        )
    budget.charge(shape, dtype)


class _RefusedConstructor:
    """Stands for ``numpy.ndarray`` in a pickle: usable as ``_reconstruct``'s subtype (that is
    how NumPy pickles arrays), refused when called (``ndarray(shape, dtype)`` allocates
    whatever the file asks for)."""

    def __init__(self, label: Any):
        self.label = label

    def __call__(self, *args, **kwargs):
        raise ModelFileError(
            self.label, "pickle refuses to call numpy.ndarray directly (NumPy never writes that)"
        )


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
        self._budget = budget = _ArrayBudget(label)
        ndarray_token = _RefusedConstructor(label)

        def safe_dtype(obj, align=False, copy=False):
            if not isinstance(obj, str):
                raise ModelFileError(label_, f"pickle refuses dtype constructor arg {obj!r}")
            return _check_dtype(np.dtype(obj, align=bool(align), copy=bool(copy)), label_)

        def safe_reconstruct(subtype, shape, typecode):
            if subtype is not ndarray_token:
                raise ModelFileError(label_, f"pickle refuses array subtype {subtype!r}")
            if not isinstance(typecode, (str, bytes)):
                raise ModelFileError(label_, f"pickle refuses array typecode {typecode!r}")
            try:
                dtype = np.dtype(typecode)
            except TypeError as exc:
                raise ModelFileError(label_, f"pickle refuses array typecode {typecode!r}") from exc
            shape = shape if isinstance(shape, tuple) else (shape,)
            budget.charge(shape, _check_dtype(dtype, label_))
            return _np_reconstruct(np.ndarray, shape, dtype)

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
            if _shape_elements(shape, label_) * dtype.itemsize != len(buf):
                raise ModelFileError(label_, "pickle refuses _frombuffer of the wrong size")
            budget.charge(shape, dtype)
            return np.array(_np_frombuffer(buf, dtype, shape, order, axis_order))

        self._allowed = {}
        for core in ("numpy._core", "numpy.core"):
            self._allowed[(f"{core}.multiarray", "_reconstruct")] = safe_reconstruct
            self._allowed[(f"{core}.multiarray", "scalar")] = safe_scalar
            self._allowed[(f"{core}.numeric", "_frombuffer")] = safe_frombuffer
        self._allowed[("numpy", "ndarray")] = ndarray_token
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
            _check_array_state(state, self._label, self._budget)
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


def _read_npy_header(member, label: Any, key: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from one archive member's ``.npy`` header (a few hundred bytes read)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(
                member, max_header_size=MAX_NPY_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(
                member, max_header_size=MAX_NPY_HEADER_BYTES
            )
        else:
            raise ModelFileError(label, f"array {key!r} has an unsupported .npy version {version}")
    except ModelFileError:
        raise
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ModelFileError(label, f"array {key!r} has an unreadable .npy header ({exc})") from exc
    if dtype.hasobject:
        raise ModelFileError(
            label, f"array {key!r} holds pickled Python objects (object dtype); refused for safety"
        )
    if dtype.kind not in _ALLOWED_ARRAY_KINDS or dtype.fields is not None:
        raise ModelFileError(label, f"array {key!r} has unsupported dtype {dtype}")
    return tuple(shape), dtype


def _npz_members(zf: zipfile.ZipFile, label: Any, max_uncompressed: int) -> dict[str, tuple]:
    """``{array name: (zip member name, shape, dtype)}`` read from the members' headers only,
    with the sizes those headers promise checked against the limits before any array is read."""
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ModelFileError(label, f"archive has too many members ({len(infos)})")
    total = sum(i.file_size for i in infos)
    if total > max_uncompressed:
        raise ModelFileError(
            label,
            f"archive expands to {total:,} bytes; a model file of this product is at most "
            f"{max_uncompressed:,} bytes",
        )
    members: dict[str, tuple] = {}
    budget = _ArrayBudget(label)
    for info in infos:
        if info.is_dir():
            continue
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with zf.open(info) as member:
            shape, dtype = _read_npy_header(member, label, key)
        if key == META_KEY:
            if math.prod(shape) != 1 or dtype.kind not in "US" or dtype.itemsize > MAX_META_BYTES:
                raise ModelFileError(
                    label,
                    f"'{META_KEY}' is not a single JSON string of at most {MAX_META_BYTES:,} bytes",
                )
        else:
            budget.charge(shape, dtype, what=f"array {key!r}")
        members[key] = (info.filename, shape, dtype)
    return members


def _load_npz_payload(
    fileobj, label: Any, *, meta_only: bool, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES
) -> tuple[dict, dict[str, tuple | np.ndarray]]:
    """The metadata and the arrays of an ``.npz`` model; with ``meta_only``, the arrays'
    ``(shape, dtype)`` from their headers instead of their data."""
    try:
        with zipfile.ZipFile(fileobj) as zf:
            members = _npz_members(zf, label, max_uncompressed)
            if META_KEY not in members:
                raise ModelFileError(
                    label, f"npz archive has no '{META_KEY}' entry (not a model saved by nn)"
                )

            def read(key: str) -> np.ndarray:
                with zf.open(members[key][0]) as member:
                    return np.lib.format.read_array(
                        member, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES
                    )

            meta = _decode_meta(read(META_KEY), label)
            _check_version(meta.get("format_version"), label)
            specs = {k: v[1:] for k, v in members.items() if k != META_KEY}
            _check_manifest(meta, specs, label)
            if meta_only:
                return meta, specs
            arrays = {key: read(key) for key in specs}
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


def _check_manifest(meta: dict, specs: dict[str, tuple], label: Any) -> None:
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
        if dtype.kind not in _ALLOWED_ARRAY_KINDS:
            raise ModelFileError(label, f"array {key!r} has unsupported dtype {dtype}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(label: Any, key: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ModelFileError(
            label, f"metadata field {key!r} is {json.dumps(value, default=repr)[:80]}; {allowed}"
        )


_OPTIONAL_TEXT_FIELDS = (
    "name",
    "created",
    "saved",
    "notes",
    "stop_reason",
    "stop_message",
    "classes_dtype",
)


def _check_field_types(meta: dict, state: dict, label: Any) -> None:
    """Every metadata value the loaders, ``info`` and the pages read has the type they expect:
    a wrong type is the file's fault (ModelFileError), not a crash further on."""
    merged = {**meta, **state}
    for key in _OPTIONAL_TEXT_FIELDS:
        value = merged.get(key)
        _check_type(label, key, value, value is None or isinstance(value, str), "expected text")
    for key in ("metrics", "architecture", "optimizer", "history", "inside"):
        value = merged.get(key)
        _check_type(
            label, key, value, value is None or isinstance(value, dict), "expected an object"
        )
    history = merged.get("history") or {}
    for key, value in history.items():
        _check_type(label, f"history.{key}", value, isinstance(value, list), "expected a list")
    for key in ("n_parameters", "n_iter"):
        value = merged.get(key)
        ok = value is None or (_is_int(value) and value >= 0)
        _check_type(label, key, value, ok, "expected a whole number >= 0")
    value = merged.get("best_val_accuracy")
    _check_type(
        label, "best_val_accuracy", value, value is None or _is_real(value), "expected a number"
    )
    _check_dataset(meta.get("dataset"), label)
    params = state.get("params")
    _check_type(label, "params", params, isinstance(params, dict), "expected an object")
    sizes = state.get("layer_sizes")
    ok = isinstance(sizes, list) and len(sizes) >= 2 and all(_is_int(n) and n >= 1 for n in sizes)
    _check_type(label, "layer_sizes", sizes, ok, "expected a list of 2 or more sizes >= 1")
    n_weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if n_weights > MAX_PARAMETERS:
        raise ModelFileError(
            label,
            f"layers {'-'.join(map(str, sizes))} have {n_weights:,} parameters; a model of this "
            f"product has at most {MAX_PARAMETERS:,}",
        )
    n_features = state.get("n_features_in")
    _check_type(label, "n_features_in", n_features, _is_int(n_features), "expected a whole number")
    classes = state.get("classes")
    ok = isinstance(classes, list) and all(
        isinstance(c, (int, float, str)) and not isinstance(c, bool) for c in classes
    )
    _check_type(label, "classes", classes, ok, "expected a list of labels")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ModelFileError(
            label,
            f"the model has {len(classes)} classes ({len(set(classes))} distinct); "
            "a classifier needs 2 or more distinct classes",
        )
    _check_dataset_fits(meta.get("dataset"), n_features, len(classes), label)


def _check_dataset_fits(record: Any, n_features: int, n_classes: int, label: Any) -> None:
    """The data set a model records has the model's own input size and number of classes."""
    if not isinstance(record, dict):
        return
    shape = [int(s) for s in record["image_shape"]]
    values = shape[0] * shape[1] * shape[2]
    shown = "x".join(map(str, shape[:2] if shape[2] == 1 else shape))  # 28x28, 32x32x3
    if values != n_features:
        raise ModelFileError(
            label,
            f"the model records the data set {record.get('name')!r} of "
            f"{shown} images ({values:,} values each) but takes "
            f"{n_features:,} inputs",
        )
    if len(record["class_names"]) != n_classes:
        raise ModelFileError(
            label,
            f"the model records the data set {record.get('name')!r} of "
            f"{len(record['class_names'])} classes but has {n_classes} classes",
        )


def _check_dataset(record: Any, label: Any) -> None:
    """The data set record is absent (an MNIST model) or names a set, its SHA-256, an image
    shape ``[h, w, 1 or 3]`` and 2 or more distinct class names."""
    if record is None:
        return
    _check_type(label, "dataset", record, isinstance(record, dict), "expected an object")
    for key in ("name", "sha256"):
        value = record.get(key)
        _check_type(
            label, f"dataset.{key}", value, value is None or isinstance(value, str), "expected text"
        )
    shape = record.get("image_shape")
    ok = (
        isinstance(shape, list)
        and len(shape) == 3
        and all(_is_int(s) and s >= 1 for s in shape)
        and shape[2] in (1, 3)
    )
    _check_type(label, "dataset.image_shape", shape, ok, "expected [height, width, 1 or 3]")
    names = record.get("class_names")
    ok = (
        isinstance(names, list)
        and len(names) >= 2
        and all(isinstance(c, str) for c in names)
        and len(set(names)) == len(names)
    )
    _check_type(label, "dataset.class_names", names, ok, "expected 2 or more distinct names")


_WEIGHT_NAME_RE = re.compile(r"(coef|intercept)_\d+|layer\d+\..+|opt\..+")


def _check_weights(arrays: dict[str, np.ndarray], label: Any) -> None:
    """Weights and optimizer state are finite float32/float64 numbers."""
    for key, arr in arrays.items():
        if not _WEIGHT_NAME_RE.fullmatch(key):
            continue
        if arr.dtype not in (np.float32, np.float64):
            raise ModelFileError(
                label, f"array {key!r} holds {arr.dtype} values; weights are float32 or float64"
            )
        if not np.isfinite(arr).all():
            raise ModelFileError(label, f"array {key!r} holds NaN or infinite values")


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


def _checked_state(meta: dict, specs: dict[str, tuple], label: Any) -> dict:
    """The model's fields from the metadata, once the manifest and every type are checked."""
    _check_manifest(meta, specs, label)
    state = _state_meta(meta, label)
    _check_field_types(meta, state, label)
    return state


def _build_model(meta: dict, arrays: dict[str, np.ndarray], label: Any, path: Any, fmt: str):
    state = _checked_state(meta, {k: (a.shape, a.dtype) for k, a in arrays.items()}, label)
    arrays = {k: arrays[k] for k in meta["array_manifest"]}
    _check_weights(arrays, label)
    cls = _model_class()
    try:
        model = cls.from_state(state, arrays)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise ModelFileError(
            label, f"model state is inconsistent: {type(exc).__name__}: {exc}"
        ) from exc
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
        size = os.fstat(f.fileno()).st_size
        if size > MAX_UNCOMPRESSED_BYTES:
            raise ModelFileError(
                path,
                f"file is {size:,} bytes; a model file of this product is at most "
                f"{MAX_UNCOMPRESSED_BYTES:,} bytes ({MAX_PARAMETERS:,} parameters)",
            )
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
    _checked_state(meta, specs, path)
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


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """``folder``, created if missing, once a temporary file was written and removed in it.

    Raises OSError (with ``strerror`` saying why) when models cannot be saved there: a plain
    file, a read-only or virtual file system such as ``/proc``, no permission."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "it is a file, not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test.", suffix=".tmp") as f:
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
