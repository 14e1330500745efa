"""A job's BLAS threads: :class:`BlasGovernor` sets a local worker's between two batches from
how busy the other processes keep the cores; :func:`auto_blas_threads` counts a Ray task's."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from nn.core import blas


def auto_blas_threads(cores: int, running: int, reserved: int) -> int:
    """BLAS threads of a job when ``running`` jobs (this one included) share ``cores``, of which
    ``reserved`` are left to the server and the browser: at least one each.

    The count of a Ray task, which runs on a cluster's node beside other tasks; a local
    worker's threads follow the machine's load instead (:class:`BlasGovernor`)."""
    return max(1, (cores - reserved) // max(1, running))


def busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine (``/proc/stat``, every core) and this process (every
    thread) have used."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    times = os.times()
    return (user + nice + system + irq + softirq + steal) / ticks, times.user + times.system


class BlasGovernor:
    """A worker's BLAS thread count, set between two batches from how busy the other processes
    keep the cores: ``max_threads`` while they leave them idle, one thread while something
    else (a busy core, another job) takes more than :data:`CONTESTED_CORES` of a core.

    OpenBLAS's threads wait for each other at every product: when another process takes one of
    the cores, a second thread at the worker's lower priority stalls the job (34 s an epoch of
    the ``fast`` preset instead of 2.6 s with a busy loop on one of two cores), while beside
    the Train page open and polling (0.2-0.25 of a core) two threads beat one
    (bench/dashboard_overhead.py, bench/README.md "Dashboard overhead"). The job starts on
    one thread and goes up after a window of :data:`WINDOW_SECONDS` in which the others used
    less than :data:`QUIET_CORES`."""

    WINDOW_SECONDS = 1.0
    CONTESTED_CORES = 0.6
    QUIET_CORES = 0.4

    def __init__(
        self,
        max_threads: int,
        *,
        read: Callable[[], tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._blas = blas
        self.max_threads = max(1, int(max_threads))
        self._read = read or busy_seconds
        self._clock = clock
        self.threads = 1
        self.changes = 0
        blas.set_threads(1)
        self._start = (clock(), *self._read())

    def tick(self) -> int:
        """Called between two batches: once a window has passed, measure what the other
        processes used in it and set the thread count; returns it."""
        now = self._clock()
        if now - self._start[0] < self.WINDOW_SECONDS:
            return self.threads
        machine, own = self._read()
        others = ((machine - self._start[1]) - (own - self._start[2])) / (now - self._start[0])
        self._start = (now, machine, own)
        wanted = self.threads
        if others > self.CONTESTED_CORES:
            wanted = 1
        elif others < self.QUIET_CORES:
            wanted = self.max_threads
        if wanted != self.threads:
            self._blas.set_threads(wanted)
            self.threads = wanted
            self.changes += 1
        return self.threads
