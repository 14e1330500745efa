"""Pause and stop requests for a running job, made from any thread.

The job calls :meth:`JobControl.checkpoint` between batches: it blocks while the job is paused
and returns whether a stop was asked for. The three events may be passed in (for example
``multiprocessing`` events, so that a job in a worker process is controlled from its parent).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["JobControl"]

_POLL_SECONDS = 0.5  # a paused job rechecks the stop request this often


class JobControl:
    def __init__(self, stop: Any = None, resume: Any = None, blocked: Any = None):
        self._stop = stop if stop is not None else threading.Event()
        self._resume = resume if resume is not None else threading.Event()  # set = running
        self._blocked = blocked if blocked is not None else threading.Event()  # set = waiting
        self._resume.set()
        self.stop_note: str | None = None

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self, note: str | None = None) -> None:
        """Ask the job to stop after the current batch; a paused job wakes up to stop.
        ``note`` (e.g. "stopped with Ctrl-C") goes in front of the recorded message."""
        if note is not None:
            self.stop_note = note
        self._stop.set()
        self._resume.set()

    def apply(self, paused: bool, stopped: bool) -> None:
        """Take the state the server sent a worker: stopped, else paused, else running."""
        if stopped:
            self.stop()
        elif paused:
            self.pause()
        else:
            self.resume()

    @property
    def blocked(self) -> bool:
        """Whether the job is holding still in :meth:`checkpoint` while paused."""
        return self._blocked.is_set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def checkpoint(self) -> bool:
        """Block while paused (until resumed or stopped); True if the job should stop."""
        if not self._resume.is_set():
            self._blocked.set()
            try:
                while not self._resume.wait(_POLL_SECONDS) and not self._stop.is_set():
                    pass
            finally:
                self._blocked.clear()
        return self._stop.is_set()
