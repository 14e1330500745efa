"""The operating system's limits on a local worker: its CPU priority (``nice``), its address
space (``RLIMIT_AS``) and the BLAS thread variables it starts with."""

from __future__ import annotations

import contextlib
import os
import threading

from nn.core.limits import MAX_TRAINING_BYTES

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_JOB_NICE = 10
"""A local worker's ``nice`` increment over the server's: the server and the browser win the
cores whenever they want them, the jobs take the rest (bench/dashboard_overhead.py)."""


def address_space_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def lower_priority(increment: int) -> int:
    """Raise the ``nice`` value of every thread of this process by ``increment`` (Linux keeps
    it per thread, and NumPy's import has started the BLAS threads already); return the main
    thread's new value. Threads started afterwards inherit it."""
    if increment <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + increment)
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread only
        threads = [0]
    for tid in threads:
        with contextlib.suppress(OSError):  # a thread that has ended meanwhile
            os.setpriority(os.PRIO_PROCESS, tid, target)
    return os.getpriority(os.PRIO_PROCESS, 0)


def default_memory_limit() -> int:
    """A worker's default address-space allowance: ``nn.core.limits.MAX_TRAINING_BYTES`` (what
    the memory estimate lets a training have) plus 2 GiB for the data, its copies and the
    interpreter's own growth (thread stacks, allocator arenas)."""
    return MAX_TRAINING_BYTES + 2 * 1024**3


def _mapped_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def limit_address_space(extra_bytes: int) -> int | None:
    """Cap this process's address space (``RLIMIT_AS``, soft limit) at what it maps now plus
    ``extra_bytes``; return the cap, or ``None`` when there is none (``extra_bytes`` 0, no
    ``resource`` module or no ``/proc``). A lower hard limit stays in force."""
    if extra_bytes <= 0:
        return None
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = _mapped_bytes() + int(extra_bytes)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError):
        return None
    return cap


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def thread_variables(threads: int | None):
    """The BLAS thread variables set to ``threads`` while a worker starts (it inherits them)."""
    with _START_LOCK:
        saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
        if threads is not None:
            os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
