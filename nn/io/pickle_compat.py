"""Reading and writing the compatibility format: a ``.pkl`` of plain containers.

The first reference design saved pickles. This product only ever writes
``{"format_version", "meta", "arrays"}`` of plain containers and ndarrays (protocol 4), and reads
pickles through a restricted unpickler that resolves nothing but the few NumPy globals needed to
rebuild plain numeric arrays. A pickle naming any other global (``os.system``,
``builtins.exec``, ``numpy.load``, a pickled model class, ...) is refused before anything is
called.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
from typing import IO, Any

import numpy as np

from nn.io.npz import (
    ALLOWED_ARRAY_KINDS,
    FORMAT_VERSION,
    ArrayBudget,
    ModelFileError,
    check_version,
    shape_elements,
)

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.multiarray import scalar as _np_scalar
    from numpy.core.numeric import _frombuffer as _np_frombuffer

__all__ = ["PICKLE_PROTOCOL", "RestrictedUnpickler", "write_pickle_payload", "load_pickle_payload"]

PICKLE_PROTOCOL = 4  # protocol 4 arrays need only _reconstruct/ndarray/dtype (no _frombuffer)


def write_pickle_payload(f: IO[bytes], meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Pickle ``{"format_version", "meta", "arrays"}`` to ``f``; never the model object."""
    payload = {
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "arrays": {k: np.ascontiguousarray(a) for k, a in arrays.items()},
    }
    pickle.dump(payload, f, protocol=PICKLE_PROTOCOL)


def _check_dtype(dt: np.dtype, label: Any) -> np.dtype:
    if dt.hasobject or dt.kind not in ALLOWED_ARRAY_KINDS or dt.fields is not None:
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


def _check_array_state(state: Any, label: Any, budget: ArrayBudget) -> None:
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
    n = shape_elements(shape, label)
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
        self._budget = budget = ArrayBudget(label)
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
            if shape_elements(shape, label_) * dtype.itemsize != len(buf):
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


def load_pickle_payload(data: bytes, label: Any) -> tuple[dict, dict[str, np.ndarray]]:
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
            label,
            "not a readable pickle: the file is truncated or corrupt; upload the .npz or .pkl "
            "this project saved, unchanged",
        ) from exc

    if not isinstance(payload, dict) or not {"format_version", "meta", "arrays"} <= set(payload):
        raise ModelFileError(
            label, "pickle does not hold a model export (expected format_version, meta, arrays)"
        )
    check_version(payload["format_version"], label)
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
        if arr.dtype.hasobject or arr.dtype.kind not in ALLOWED_ARRAY_KINDS:
            raise ModelFileError(label, f"array {key!r} has refused dtype {arr.dtype}")
        out[key] = arr if arr.flags.writeable else arr.copy()
    return meta, out
