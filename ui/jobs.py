"""The dashboard's background jobs: one thread per job, never calling Streamlit.

:class:`BackgroundJob` holds what every job shares: a state dict behind a lock, ``snapshot()``
(a deep copy, safe to read from the page), and pause, resume and stop through an
``nn.services.control.JobControl`` (they only set events). A subclass implements
:meth:`BackgroundJob.work`, which calls an ``nn.services`` job; an exception in it is captured
(``status == "failed"``, ``error`` and ``traceback`` in the snapshot).

With a ``runner`` (an ``nn.services.jobs.JobRunner``) the job itself runs in a worker process
(or a Ray task) through :meth:`BackgroundJob.run_in_worker`: the thread only relays the worker's
messages into the state, the job's place in the runner's queue (``status == "queued"``,
``queue_position``) included, and the controls drive the worker through the runner's events.
A crash, a ``MemoryError`` or a kill of the worker is a failed job whose ``error`` says what
happened; the server goes on. :meth:`close` (the browser session ended) stops the job and ends
its worker if it does not stop by itself.
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
    STOPPED_STATUS = "stopped"  # the status of a job stopped before it started

    def __init__(self, name: str, state: dict[str, Any], runner: Any = None):
        super().__init__(name=name, daemon=True)
        self.runner = runner
        self.runner_job: Any = None  # the runner's nn.services.jobs.Job, once submitted
        self.control = runner.new_control() if runner is not None else JobControl()
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "status": "preparing",
            "paused": False,
            "error": None,
            "traceback": None,
            "queue_position": None,
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
        """Ask the job to stop; a paused job wakes up to stop, a queued one leaves the queue."""
        self.resume()
        self.control.stop()
        job = self.runner_job
        if job is not None:
            self.runner.cancel(job.id, terminate_after=None)

    def close(self) -> None:
        """Stop the job for good (its session ended): a worker that does not stop within the
        runner's grace period is terminated. Calling it again changes nothing."""
        self.stop()
        job = self.runner_job
        if job is not None:
            self.runner.cancel(job.id)

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

    def snapshot(self, without: tuple[str, ...] = ()) -> dict[str, Any]:
        """A consistent deep copy of the state, plus ``alive``, ``stop_requested`` and, until the
        job ends, ``elapsed`` (seconds of work, pauses left out). ``without``: keys left out
        (a live view that polls skips what it does not show, such as a training's ``inside``
        record, instead of copying it on every poll)."""
        with self._lock:
            snap = copy.deepcopy({k: v for k, v in self._state.items() if k not in without})
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

    def worker_event(self, event: dict[str, Any]) -> None:
        """An event the job emitted in its worker (with a ``runner``); subclasses relay it."""

    def _relay(self, job: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "status" and message.get("status") == "queued":
            self._set(status="queued", queue_position=message.get("position"))
        elif kind == "status" and message.get("status") == "running":
            self._set(status="preparing", queue_position=None)
        elif kind == "event":
            self.worker_event(message["event"])

    def run_in_worker(self, target: str, config: dict, arrays: dict | None = None) -> Any:
        """Run ``target`` through the runner and relay its messages until it ends. Returns the
        runner's job when it returned a value (``job.value``); otherwise sets the state
        (``failed`` with the worker's message, or ``stopped`` when it never started) and returns
        None."""
        if self.control.stop_requested:
            self._set(status=self.STOPPED_STATUS, stop_message="Stopped before it started.")
            return None
        job = self.runner.submit(
            target, config, arrays=arrays, listener=self._relay, control=self.control
        )
        self.runner_job = job
        job.wait()
        if job.status == "cancelled":
            self._set(
                status=self.STOPPED_STATUS,
                stop_message="Stopped while waiting in the queue.",
                queue_position=None,
                paused=False,
            )
            return None
        if job.status == "failed":
            self._set(
                elapsed=self._active_seconds(),
                status="failed",
                error=job.error,
                traceback=job.traceback or "",
                paused=False,
            )
            return None
        return job

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
