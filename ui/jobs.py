"""The dashboard's background jobs: one thread per job, never calling Streamlit.

:class:`BackgroundJob` holds what every job shares: a state dict behind a lock, ``snapshot()``
(a deep copy, safe to read from the page), and pause, resume and stop through an
``nn.services.control.JobControl`` (they only set events). A subclass implements
:meth:`BackgroundJob.work`, which calls an ``nn.services`` job; an exception in it is captured
(``status == "failed"``, ``error`` and ``traceback`` in the snapshot).
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from typing import Any

from nn.services.control import JobControl


class BackgroundJob(threading.Thread):
    FINAL_STATUSES: tuple[str, ...] = ()

    def __init__(self, name: str, state: dict[str, Any]):
        super().__init__(name=name, daemon=True)
        self.control = JobControl()
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "status": "preparing",
            "paused": False,
            "error": None,
            "traceback": None,
            **state,
        }
        self._started_at: float | None = None
        self._paused_seconds = 0.0
        self._pause_started: float | None = None

    # ------------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        with self._lock:
            if not self.control.paused and self._state["status"] not in self.FINAL_STATUSES:
                self.control.pause()
                self._pause_started = time.perf_counter()
                self._state["paused"] = True

    def resume(self) -> None:
        with self._lock:
            if self._pause_started is not None:
                self._paused_seconds += time.perf_counter() - self._pause_started
                self._pause_started = None
            self._state["paused"] = False
            self.control.resume()

    def stop(self) -> None:
        """Ask the job to stop; a paused job wakes up to stop."""
        self.resume()
        self.control.stop()

    def wait_until_paused(self, timeout: float | None = None) -> bool:
        """Wait until a paused job holds still (blocked between two batches)."""
        return self.control.wait_until_blocked(timeout)

    @property
    def paused(self) -> bool:
        return self.control.paused

    @property
    def stop_requested(self) -> bool:
        return self.control.stop_requested

    @property
    def done(self) -> bool:
        return self._state["status"] in self.FINAL_STATUSES

    def snapshot(self) -> dict[str, Any]:
        """A consistent deep copy of the state, plus ``alive``, ``stop_requested`` and, until the
        job ends, ``elapsed`` (seconds of work, pauses left out)."""
        with self._lock:
            snap = copy.deepcopy(self._state)
            if snap["status"] not in self.FINAL_STATUSES:
                snap["elapsed"] = self._active_seconds()
        snap["alive"] = self.is_alive()
        snap["stop_requested"] = self.control.stop_requested
        return snap

    # ------------------------------------------------------------------ for the thread
    def _active_seconds(self) -> float:
        if self._started_at is None:
            return 0.0
        paused = self._paused_seconds
        if self._pause_started is not None:
            paused += time.perf_counter() - self._pause_started
        return max(0.0, time.perf_counter() - self._started_at - paused)

    def _set(self, **values: Any) -> None:
        with self._lock:
            self._state.update(values)

    def _mark_started(self) -> None:
        with self._lock:
            self._started_at = time.perf_counter()

    def work(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - captured and shown, never lost
            self._set(
                elapsed=self._active_seconds(),
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
                paused=False,
            )
