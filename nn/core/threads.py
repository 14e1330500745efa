"""Large element-wise passes split across the cores BLAS may use.

The matrix products run on OpenBLAS's threads; everything between them (im2col and col2im copies,
pooling, ReLU, the optimizer's passes) is NumPy ufuncs and copies, which release the GIL. A pass
over a batch split into contiguous parts, one per thread, runs them side by side: ``split(task,
length, elements)`` calls ``task(start, stop)`` for parts of ``range(length)`` (batch rows, or
positions in a flat array), the calling thread doing the first part and a small pool the others;
a part no pool thread has started when the caller is done with its own (the machine's cores busy
with other work) is done by the caller too, so a split pass is never much slower than one thread.

How many parts: OpenBLAS's current thread count (``nn.core.blas.get_threads``), so whatever
limits BLAS limits this too: ``OPENBLAS_NUM_THREADS``, a job's ``NN_JOB_BLAS_THREADS``, the job
governor's ``set_threads`` on a busy machine, ``blas.limit_threads(1)`` around a page's small
work. One part, run in the calling thread with no pool at all, when that count is 1 (or cannot be
read), when the pass touches fewer than ``MIN_ELEMENTS`` values (threads would cost more than
they save), inside another split's task (no nesting) or for a length of 1; never so many parts
that one touches fewer than ``MIN_ELEMENTS / 2`` values (many cores, a small pass).

Every task writes only its own part's rows or positions, so the result is bit-for-bit the one of
a single call wherever a value does not depend on how the range is cut; callers state where it
does (a part boundary moved inside a reduction would change the order of its additions).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from nn.core import blas

MIN_ELEMENTS = 1 << 17
"""Values a pass must touch before it is split: measured here, a ReLU over 2**17 float32 values
takes ~50 us on one core, about five times a part's hand-off to a pool thread and back."""

_local = threading.local()
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0


def count() -> int:
    """Parts a large pass is split into now: OpenBLAS's thread count, 1 when it is unknown."""
    return max(1, blas.get_threads() or 1)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, made again when it is too small or this is a forked child (whose copy of the
    parent's pool has no threads)."""
    global _pool, _pool_size, _pool_pid
    with _lock:
        if _pool is None or _pool_size < workers or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nn-split")
            _pool_size, _pool_pid = workers, os.getpid()
        return _pool


def _run_inside(task: Callable[[], None]) -> None:
    outer = getattr(_local, "inside", False)
    _local.inside = True
    try:
        task()
    finally:
        _local.inside = outer


def _bounds(length: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(length)`` as evenly as
    possible with every inner boundary a multiple of ``align``; empty ranges are left out."""
    cuts = [0]
    for i in range(1, parts):
        cut = (length * i // parts) // align * align
        cuts.append(max(cut, cuts[-1]))
    cuts.append(length)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def split(task: Callable[[int, int], None], length: int, elements: int, align: int = 1) -> None:
    """``task(start, stop)`` over parts of ``range(length)``, in parallel when worth it.

    ``elements`` is how many values the whole pass touches (the threshold's measure); ``align``
    makes every inner boundary a multiple of it (for flat arrays: whole SIMD blocks and cache
    lines per part). An exception in any part is raised here, after every part has finished.
    """
    worth_it = elements >= MIN_ELEMENTS and not getattr(_local, "inside", False)
    most = max(1, elements // max(1, MIN_ELEMENTS // 2))  # parts of at least half the threshold
    parts = min(count(), length, most) if worth_it else 1
    ranges = _bounds(length, parts, align) if parts > 1 else [(0, length)]
    if len(ranges) == 1:
        task(0, length)
        return
    run_all([functools.partial(task, a, b) for a, b in ranges])


def run_all(tasks: list[Callable[[], None]]) -> None:
    """Every task side by side: the first in the calling thread, the others on the pool (a
    task no pool thread has started when the caller is done with its own runs in the caller
    too). Inside a task nothing is split again. An exception in any task is raised here, after
    every task has finished."""
    if not tasks:
        return
    pool = _executor(max(1, len(tasks) - 1))
    others = [pool.submit(_run_inside, task) for task in tasks[1:]]
    try:
        _run_inside(tasks[0])
        for future, task in zip(others, tasks[1:], strict=True):
            if future.cancel():  # no pool thread has started it (a busy machine): do it here
                _run_inside(task)
    finally:
        for future in others:
            future.cancel()
        errors = [f.exception() for f in others if not f.cancelled()]
    for error in errors:
        if error is not None:
            raise error
