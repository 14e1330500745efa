"""``y = a*x + b*y`` in one pass, from the OpenBLAS that NumPy itself links.

An optimizer step is a handful of element-wise updates over every parameter. Written with NumPy
ufuncs, ``m = b1*m + (1-b1)*g`` is three passes over memory and a temporary, all on one core.
OpenBLAS's ``axpby`` and ``axpy`` do it in one vectorised pass, and ``axpy`` spreads long vectors
over OpenBLAS's threads, which otherwise wait idle between the matrix products.

NumPy's wheels ship OpenBLAS as ``scipy-openblas``; the library is found among the loaded shared
objects (or next to NumPy), its routines are called through ``ctypes`` (which releases the GIL),
and a self-test on small vectors must agree with NumPy before they are used. Where none is found
(another BLAS, another build, another platform) or ``NN_PURE_NUMPY=1`` is set, the same operations
run as NumPy ufuncs: the results agree up to rounding.

OpenBLAS's idle threads spin after every call, by default for 2**28 cycles (about a tenth of a
second), before they sleep. Between two products of a convolutional network come milliseconds of
NumPy passes that ``nn.core.threads`` splits over the same cores, and a spinning BLAS thread takes
the core its pool thread needs: measured here, a CNN training batch at two threads took 17.6 ms
with the default spin and 12.7-14.9 ms with a spin of 2**18 cycles (see ``IDLE_SPIN``). So on
import, unless ``OPENBLAS_THREAD_TIMEOUT`` is set already (the user's choice is kept), it is set
to ``IDLE_SPIN`` (child processes inherit it) and OpenBLAS's thread server is restarted to read
it. The restart happens once, when this module is first imported; a program that runs products on
other threads at that moment should set ``OPENBLAS_THREAD_TIMEOUT`` itself before it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator

import numpy as np

# (name pattern, integer type) in the order they are tried; {} is "saxpy", "daxpby", ...
_SYMBOLS = (
    ("scipy_cblas_{}64_", ctypes.c_int64),
    ("scipy_cblas_{}", ctypes.c_int32),
    ("cblas_{}64_", ctypes.c_int64),
    ("cblas_{}", ctypes.c_int32),
)


def _candidates() -> list[str]:
    """Paths of OpenBLAS libraries: the ones already loaded first, then those beside NumPy."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(np.__file__))
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        for path in sorted(glob.glob(os.path.join(root, folder, "*openblas*"))):
            if path not in paths:
                paths.append(path)
    return paths


def _libraries() -> list[ctypes.CDLL]:
    """The candidate libraries that load (read once, at import)."""
    libs = []
    for path in _candidates():
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


_LIBRARIES = _libraries()


class _Routines:
    """``axpy`` and ``axpby`` for float32 and float64 from one library."""

    def __init__(self, lib: ctypes.CDLL, pattern: str, int_t) -> None:
        ptr = ctypes.c_void_p
        self.funcs = {}
        for prefix, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            axpy = getattr(lib, pattern.format(prefix + "axpy"))
            axpy.argtypes = [int_t, real, ptr, int_t, ptr, int_t]
            axpy.restype = None
            axpby = getattr(lib, pattern.format(prefix + "axpby"))
            axpby.argtypes = [int_t, real, ptr, int_t, real, ptr, int_t]
            axpby.restype = None
            dtype = np.dtype(np.float32 if prefix == "s" else np.float64)
            self.funcs[dtype] = (axpy, axpby)


def _load() -> _Routines | None:
    if os.environ.get("NN_PURE_NUMPY", "") not in ("", "0"):
        return None
    for lib in _LIBRARIES:
        for pattern, int_t in _SYMBOLS:
            try:
                routines = _Routines(lib, pattern, int_t)
            except AttributeError:
                continue
            if _self_test(routines):
                return routines
    return None


def _self_test(routines: _Routines) -> bool:
    """Both routines, both precisions, against NumPy on small vectors (wrong integer width or
    calling convention would give wrong numbers here, not later in training)."""
    for dtype, (axpy, axpby) in routines.funcs.items():
        x = np.arange(1, 40, dtype=dtype)
        y = np.linspace(-3, 3, 39).astype(dtype)
        want_axpy = y + dtype.type(0.5) * x
        want_axpby = dtype.type(0.25) * x + dtype.type(-2.0) * y
        a, b = y.copy(), y.copy()
        axpy(x.size, 0.5, x.ctypes.data, 1, a.ctypes.data, 1)
        axpby(x.size, 0.25, x.ctypes.data, 1, -2.0, b.ctypes.data, 1)
        if not (np.allclose(a, want_axpy) and np.allclose(b, want_axpby)):
            return False
    return True


_ROUTINES = _load()
_use_blas = _ROUTINES is not None

IDLE_SPIN = 20
"""OpenBLAS's idle threads spin for 2**IDLE_SPIN cycles (about 0.4 ms) before they sleep. Timed
here at two threads, half an epoch of each (seconds, OPENBLAS_THREAD_TIMEOUT 18 / 20 / 22 / 28):
the benchmark CNN split across threads (``nn.core.data_parallel``) 2.53 / 2.54 / 2.65 / 2.73, the
same CNN with batch norm (not split, its NumPy passes split instead) 6.03 / 5.92 / 6.69 / 6.85;
a dense network's epoch (medians of three) 0.90 / 0.86 / 0.84 / 0.85, and in two more pairs of 20
against 28 0.83 / 0.83 and 0.89 / 0.83 (its back-to-back products wait for sleeping threads when
the spin is short). 20 keeps the convolutional gains and costs the dense network 0-7%."""


def _shorten_idle_spin() -> int | None:
    """Sets ``OPENBLAS_THREAD_TIMEOUT`` to ``IDLE_SPIN`` unless it is set, then makes OpenBLAS
    read it: ``openblas_read_env`` and a shutdown of its thread server, which starts again with
    the new spin at the next threaded call (as after a fork). Returns the spin exponent OpenBLAS
    reports now, or None without OpenBLAS."""
    if os.environ.get("NN_PURE_NUMPY", "") not in ("", "0"):
        return None
    for lib in _LIBRARIES:
        try:
            read_env, timeout = lib.openblas_read_env, lib.openblas_thread_timeout
            shutdown = lib.blas_thread_shutdown_
        except AttributeError:
            continue
        read_env.restype, read_env.argtypes = None, []
        timeout.restype, timeout.argtypes = ctypes.c_int, []
        shutdown.restype, shutdown.argtypes = ctypes.c_int, []
        if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(IDLE_SPIN)
            read_env()
            shutdown()
        return int(timeout())
    return None


idle_spin = _shorten_idle_spin()
"""The exponent of OpenBLAS's idle spin in this process (None without OpenBLAS)."""


def _routine(x: np.ndarray, y: np.ndarray, which: int):
    if not _use_blas or x.dtype != y.dtype or x.shape != y.shape or x.ndim != 1:
        return None
    funcs = _ROUTINES.funcs.get(x.dtype)
    if funcs is None or not (x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable):
        return None
    return funcs[which]


def axpy(alpha: float, x: np.ndarray, y: np.ndarray, work: np.ndarray) -> None:
    """``y += alpha * x`` in place. ``work`` (same shape, may be ``x``) is scratch for the NumPy
    path, whose result is then left in it."""
    f = _routine(x, y, 0)
    if f is not None:
        f(x.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
    else:
        np.multiply(x, alpha, out=work)
        y += work


def axpby(alpha: float, x: np.ndarray, beta: float, y: np.ndarray, work: np.ndarray) -> None:
    """``y = alpha * x + beta * y`` in place. ``work`` as for ``axpy``."""
    f = _routine(x, y, 1)
    if f is not None:
        f(x.size, alpha, x.ctypes.data, 1, beta, y.ctypes.data, 1)
    else:
        np.multiply(x, alpha, out=work)
        y *= beta
        y += work


# --------------------------------------------------------------------------- thread count
def _thread_functions():
    """(get, set) of OpenBLAS's thread count, or None."""
    for lib in _LIBRARIES:
        for get_name, set_name, int_t in (
            (
                "scipy_openblas_get_num_threads64_",
                "scipy_openblas_set_num_threads64_",
                ctypes.c_int,
            ),
            ("openblas_get_num_threads", "openblas_set_num_threads", ctypes.c_int),
        ):
            try:
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
            except AttributeError:
                continue
            get.restype, get.argtypes = int_t, []
            set_.restype, set_.argtypes = None, [int_t]
            return get, set_
    return None


_THREADS = _thread_functions()


def get_threads() -> int | None:
    """OpenBLAS's current thread count (None when it cannot be read)."""
    return int(_THREADS[0]()) if _THREADS else None


def set_threads(n: int) -> bool:
    """Set OpenBLAS's thread count to ``n`` (at least 1) for the calls that follow; False when
    it cannot be set. Call it between products, from the thread that runs them."""
    if not _THREADS:
        return False
    _THREADS[1](max(1, int(n)))
    return True


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Run the block with OpenBLAS on ``n`` threads (``None``: unchanged), then restore it."""
    before = get_threads()
    if n is None or before is None or n == before:
        yield
        return
    _THREADS[1](int(n))
    try:
        yield
    finally:
        _THREADS[1](before)
