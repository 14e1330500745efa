"""What a job function sees in its worker (:class:`JobContext`), and what a worker does around
it: find the function by name, run it, check that its value can travel, and describe itself."""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from nn.core import blas
from nn.services.jobs.limits import address_space_limit
from nn.services.jobs.wire import pack_arrays

JOB_KINDS: dict[str, str] = {
    "train": "nn.services.jobs.bodies:train_job",
    "search": "nn.services.jobs.bodies:search_job",
    "finetune": "nn.services.jobs.bodies:finetune_job",
}
"""Job names the dashboard submits, and the functions that run them."""


class JobContext:
    """What a job function sees in its worker: ``config``, ``arrays``, ``control`` (an
    ``nn.services.control.JobControl`` driven by the server), ``emit`` and ``check``."""

    def __init__(self, config: dict[str, Any], arrays: dict[str, Any], control: Any, stop: Any):
        self.config = config
        self.arrays = arrays
        self.control = control
        self._stop = stop

    def send(self, message: Mapping[str, Any], blob: bytes | None = None) -> None:
        raise NotImplementedError

    def emit(self, payload: Mapping[str, Any]) -> None:
        """Send a JSON-able dict to the server (the job's listener receives it)."""
        self.send({"type": "event", "event": dict(payload)})

    def emit_often(self, payload: Mapping[str, Any]) -> None:
        """``emit`` for events that come many times a second (a training's batches): a context
        may hold them back and send them together (the listener still hears each one, in
        order, and none later than the next other message or :data:`EMIT_SECONDS`)."""
        self.emit(payload)

    def check(self) -> bool:
        """Block while paused; True once a stop was asked for (the job should end soon)."""
        return self.control.checkpoint()

    def stop_requested(self, timeout: float | None = None) -> bool:
        """True once a stop was asked for, waiting up to ``timeout`` seconds for it."""
        return bool(self._stop.wait(timeout))


class ReportedEvent(threading.Event):
    """The worker's "blocked" event: every change is also sent to the server."""

    def __init__(self, report: Callable[[bool], None]):
        super().__init__()
        self._report = report

    def set(self) -> None:
        super().set()
        self._report(True)

    def clear(self) -> None:
        super().clear()
        self._report(False)


def resolve(target: str) -> Callable[[JobContext], Any]:
    """The job function named ``"module:function"`` or by a :data:`JOB_KINDS` key."""
    path = JOB_KINDS.get(target, target)
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(
            f"unknown job {target!r}: use one of {', '.join(JOB_KINDS)} or 'module:function'"
        )
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def run_job(target: str, ctx: JobContext) -> tuple[Any, bytes | None]:
    out = resolve(target)(ctx)
    value, arrays = out if isinstance(out, tuple) else (out, None)
    json.dumps(value)  # a value that cannot travel fails here, in the worker, with its reason
    return value, pack_arrays(arrays)


def _address_space_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def worker_facts() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "blas_threads": blas.get_threads(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "address_space_limit": address_space_limit(),
        "imports_streamlit": any(
            m == "streamlit" or m.startswith("streamlit.") for m in sys.modules
        ),
    }
