"""The job runner: at most ``max_jobs`` jobs at once, the others waiting in a queue that knows
each one's place; pause, resume, stop (then terminate) and crash reports, whatever the backend
(worker processes on this machine, or Ray tasks).

Every job has an ``owner`` (a person's workspace id, the dashboard's ``"local"`` workspace
without sign-in, or ``None`` for the command line and tests). Which queued job starts next is the
runner's ``queue``'s choice: :class:`~nn.services.jobs.fair.FairQueue`, turns across owners with a
cap on each person's running jobs (one owner alone is served first come first served).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from nn.services.control import JobControl
from nn.services.jobs.fair import DEFAULT_JOBS_PER_OWNER, JOBS_PER_OWNER_ENV, FairQueue
from nn.services.jobs.governor import auto_blas_threads
from nn.services.jobs.limits import DEFAULT_JOB_NICE, default_memory_limit
from nn.services.jobs.local import LocalBackend
from nn.services.jobs.ray import RayBackend
from nn.services.jobs.wire import describe_exit, pack_arrays
from nn.services.status import is_final

STOP_GRACE_SECONDS = 10.0
"""How long a cancelled job may take to stop by itself before its worker is terminated."""


Listener = Callable[["Job", dict], Any]


class RemoteControl(JobControl):
    """The server's JobControl of a job: every pause, resume and stop is also sent to the
    worker once one is attached (``attach(send)``); whether the job holds still in its worker
    follows what the worker reports (``report_blocked``)."""

    def __init__(self):
        super().__init__()
        self._send: Callable[[bool, bool], None] | None = None
        self._send_lock = threading.Lock()

    def attach(self, send: Callable[[bool, bool], None] | None) -> None:
        with self._send_lock:
            self._send = send
        self._push()

    def _push(self) -> None:
        with self._send_lock:
            if self._send is not None:
                with contextlib.suppress(OSError):  # the worker is gone: nothing to tell
                    self._send(self.paused, self.stop_requested)

    def pause(self) -> None:
        super().pause()
        self._push()

    def resume(self) -> None:
        super().resume()
        self._push()

    def stop(self, note: str | None = None) -> None:
        super().stop(note)
        self._push()

    def report_blocked(self, value: bool) -> None:
        if value and self.paused:
            self._blocked.set()
        else:
            self._blocked.clear()


@dataclasses.dataclass(eq=False)
class Job:
    """One submitted job, as the server sees it. The runner's threads update the fields; read
    them freely. ``control`` (an ``nn.services.control.JobControl``) pauses, resumes and stops
    the job wherever it runs."""

    id: int
    target: str
    config: dict[str, Any]
    control: Any
    owner: Any = None
    status: str = "queued"
    error: str | None = None
    traceback: str | None = None
    value: Any = None
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    worker: dict[str, Any] = dataclasses.field(default_factory=dict)
    exitcode: int | None = None
    blas_threads: int | None = None
    adaptive_threads: bool = False
    submitted_at: float = dataclasses.field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    last_event: dict[str, Any] | None = None
    _runner: Any = dataclasses.field(default=None, repr=False)
    blob: bytes | None = dataclasses.field(default=None, repr=False)
    _listener: Listener | None = dataclasses.field(default=None, repr=False)
    deadline: float | None = dataclasses.field(default=None, repr=False)
    _done: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return is_final(self.status)

    @property
    def queue_position(self) -> int | None:
        """1 for the next job to start, 2 for the one after...; None once started."""
        return self._runner.queue_position(self) if self._runner is not None else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)

    def pause(self) -> None:
        if not self.done:
            self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        """Ask the job to end after its current step (a queued job is cancelled)."""
        self._runner.cancel(self.id, terminate_after=None)

    def snapshot(self) -> dict[str, Any]:
        """The job's public fields as plain values (no arrays)."""
        return {
            "id": self.id,
            "target": self.target,
            "status": self.status,
            "queue_position": self.queue_position,
            "paused": self.control.paused,
            "stop_requested": self.control.stop_requested,
            "error": self.error,
            "exitcode": self.exitcode,
            "blas_threads": self.blas_threads,
            "adaptive_threads": self.adaptive_threads,
            "worker": dict(self.worker),
        }


def _backend(ray_address: str | None):
    """The backend that starts jobs: Ray tasks at ``ray_address``, else local workers."""
    if not ray_address:
        return LocalBackend()
    return RayBackend(ray_address)


def _env_int(name: str, minimum: int) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text or text.lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number (or 'auto')") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


class JobRunner:
    """Runs jobs in worker processes (or Ray tasks), at most ``max_jobs`` at once, the others
    waiting in ``queue`` (default a :class:`FairQueue` with no cap per owner; any object with its
    methods).

    ``blas_threads``: BLAS threads per job (``None``: in a local worker up to the cores
    divided by the running jobs, adapted by a :class:`BlasGovernor`; in a Ray task
    :func:`auto_blas_threads` from the cores, the running jobs and ``reserved_cores``).
    ``ray_address``: run on that Ray cluster (``"local"``: the Ray instance this process has
    started). ``stop_grace_seconds``: how long
    :meth:`cancel` lets a job stop by itself before its worker is terminated. ``nice``: how
    much lower a local worker's CPU priority is than the server's (default
    :data:`DEFAULT_JOB_NICE`; Ray's workers keep theirs). ``memory_limit``: bytes of address
    space a local worker may map beyond what it maps at its start (default
    :func:`default_memory_limit`, 0: no cap). Ray's workers get no cap: a Ray worker process
    runs task after task and maps Ray's object store, so a cap set by one task would outlive it
    and count Ray's own mappings.

    Listeners are called from the runner's threads, some while it holds its lock: they must not
    wait for other threads.
    """

    def __init__(
        self,
        max_jobs: int | None = None,
        *,
        blas_threads: int | None = None,
        reserved_cores: int | None = None,
        ray_address: str | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        nice: int | None = None,
        memory_limit: int | None = None,
        queue: Any = None,
    ):
        self.cores = os.cpu_count() or 1
        self.max_jobs = int(max_jobs) if max_jobs is not None else self.cores
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, not {self.max_jobs}")
        if blas_threads is not None and int(blas_threads) < 1:
            raise ValueError(f"blas_threads must be at least 1, not {blas_threads}")
        self.blas_threads = blas_threads
        self.reserved_cores = (
            int(reserved_cores) if reserved_cores is not None else (1 if self.cores > 1 else 0)
        )
        self.stop_grace_seconds = float(stop_grace_seconds)
        self.nice = DEFAULT_JOB_NICE if nice is None else int(nice)
        if not 0 <= self.nice <= 19:
            raise ValueError(f"nice must be between 0 and 19, not {self.nice}")
        self.memory_limit = default_memory_limit() if memory_limit is None else int(memory_limit)
        if self.memory_limit < 0:
            raise ValueError(f"memory_limit must be 0 (no cap) or more, not {self.memory_limit}")
        self.ray_address = ray_address
        self._backend = _backend(ray_address)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._queue = queue if queue is not None else FairQueue(jobs_per_owner=None)
        self._running: dict[int, Job] = {}
        self._closed = False

    @classmethod
    def from_environment(cls) -> JobRunner:
        """A runner set by ``NN_MAX_JOBS``, ``NN_JOB_BLAS_THREADS``, ``NN_JOB_RESERVED_CORES``,
        ``NN_JOB_NICE``, ``NN_JOB_MEMORY_BYTES``, ``NN_RAY_ADDRESS`` and ``NN_JOBS_PER_USER``
        (running jobs per signed-in person, default 1) (``ValueError`` naming
        the variable when one is malformed)."""
        return cls(
            _env_int("NN_MAX_JOBS", 1),
            blas_threads=_env_int("NN_JOB_BLAS_THREADS", 1),
            reserved_cores=_env_int("NN_JOB_RESERVED_CORES", 0),
            nice=_env_int("NN_JOB_NICE", 0),
            memory_limit=_env_int("NN_JOB_MEMORY_BYTES", 0),
            ray_address=os.environ.get("NN_RAY_ADDRESS", "").strip() or None,
            queue=FairQueue(_env_int(JOBS_PER_OWNER_ENV, 1) or DEFAULT_JOBS_PER_OWNER),
        )

    @property
    def backend(self) -> str:
        """``"local"`` (worker processes) or ``"ray"``."""
        return self._backend.name

    def new_control(self) -> RemoteControl:
        """A ``JobControl`` that can drive a job of this runner (pass it to :meth:`submit`)."""
        return RemoteControl()

    # ------------------------------------------------------------------ public
    def submit(
        self,
        target: str | Callable,
        config: Mapping[str, Any] | None = None,
        *,
        arrays: Mapping[str, Any] | None = None,
        owner: Any = None,
        listener: Listener | None = None,
        control: Any = None,
    ) -> Job:
        """Queue a job; it starts at once while fewer than ``max_jobs`` run. ``listener(job,
        message)`` hears ``{"type": "status", "status": ..., "position": ...}`` on every change
        of status or place in the queue, ``{"type": "started", "pid": ...}`` from the worker and
        ``{"type": "event", "event": ...}`` for what the job emits. ``control``: from
        :meth:`new_control` (default: a new one). ``ValueError`` when the config is not
        JSON-able."""
        try:
            config = json.loads(json.dumps(dict(config or {})))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a job's config must be JSON-able: {exc}") from None
        if callable(target):
            target = f"{target.__module__}:{target.__qualname__}"
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is shut down")
            job = Job(next(self._ids), str(target), config, control or self.new_control(), owner)
            job._runner, job.blob, job._listener = self, pack_arrays(arrays), listener
            self._jobs[job.id] = job
            self._queue.push(job)
            self._schedule()
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: Any = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def queue_position(self, job: Job) -> int | None:
        with self._lock:
            order = self._queue.order()
            return order.index(job) + 1 if job in order else None

    def waits_for_own_job(self, job: Job) -> bool:
        """Whether a queued ``job`` waits because its owner already runs as many jobs as one
        person may (rather than for a free slot)."""
        with self._lock:
            capped = getattr(self._queue, "capped", None)
            return (
                job.status == "queued"
                and capped is not None
                and capped(job.owner, list(self._running.values()))
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue)}

    def cancel(self, job_id: int, *, terminate_after: float | None = -1.0) -> None:
        """End a job: a queued one is dropped (``"cancelled"``); a running one is asked to stop,
        and its worker terminated if it has not ended ``terminate_after`` seconds later
        (default ``stop_grace_seconds``; ``None``: never). Calling it again, or for an ended or
        unknown job, changes nothing."""
        if terminate_after is not None and terminate_after < 0:
            terminate_after = self.stop_grace_seconds
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.done:
                return
            job.control.stop()
            if self._queue.remove(job):
                self._finish(job, "cancelled", error=None)
                return
            if terminate_after is not None:
                deadline = time.monotonic() + terminate_after
                job.deadline = deadline if job.deadline is None else min(job.deadline, deadline)

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every job and wait until they have ended (workers that do not stop within
        ``stop_grace_seconds`` are terminated)."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
            for job in reversed(jobs):  # the queued first, so that none starts meanwhile
                self.cancel(job.id)
        for job in jobs:
            job.wait(timeout)

    # ------------------------------------------------------------------ internals
    def _threads_for_next(self) -> tuple[int, bool]:
        """The next job's BLAS threads and whether a :class:`BlasGovernor` adapts them: a set
        count as it is; else, in a local worker, up to the cores shared by the running jobs,
        adapted; on Ray, :func:`auto_blas_threads`."""
        if self.blas_threads is not None:
            return int(self.blas_threads), False
        running = len(self._running) + 1
        if self.backend == "local":
            return max(1, self.cores // running), True
        return auto_blas_threads(self.cores, running, self.reserved_cores), False

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_jobs and not self._closed:
                job = self._queue.pop(list(self._running.values()))
                if job is None:  # every waiting job's owner runs as many as allowed
                    break
                job.blas_threads, job.adaptive_threads = self._threads_for_next()
                self._running[job.id] = job
                job.status = "running"
                job.started_at = time.time()
                try:
                    self._backend.start(self, job)
                except Exception as exc:  # noqa: BLE001 - the job fails, the server goes on
                    self._finish(job, "failed", error=f"The worker could not start: {exc}")
                    continue
                self._notify(job, {"type": "status", "status": "running", "position": None})
            for position, queued in enumerate(self._queue.order(), 1):
                self._notify(queued, {"type": "status", "status": "queued", "position": position})

    def _notify(self, job: Job, message: dict) -> None:
        if job._listener is None:
            return
        with contextlib.suppress(Exception):  # a listener's fault never stops the runner
            job._listener(job, message)

    def handle(self, job: Job, message: dict) -> None:
        """A message from the job's worker (not its last one)."""
        if message.get("type") == "started":
            job.worker = {k: v for k, v in message.items() if k != "type"}
        elif message.get("type") == "blocked":
            job.control.report_blocked(bool(message.get("value")))
            return
        elif message.get("type") == "events":  # emit_often's events, sent together
            for event in message.get("events") or []:
                job.last_event = event
                self._notify(job, {"type": "event", "event": event})
            return
        elif message.get("type") == "event":
            job.last_event = message.get("event")
        self._notify(job, message)

    def _finish(self, job: Job, status: str, *, error: str | None, **fields: Any) -> None:
        with self._lock:
            if job.done:
                return
            for name, value in fields.items():
                setattr(job, name, value)
            job.error = error
            job.status = status
            job.finished_at = time.time()
            job.blob = None
            self._running.pop(job.id, None)
        job._done.set()
        self._notify(job, {"type": "status", "status": status, "error": error})
        self._schedule()

    def complete(self, job: Job, outcome: dict, exitcode: int | None) -> None:
        """End a started job from its worker's last message (``outcome``, empty if none)."""
        kind = outcome.get("type")
        if kind == "result":
            job.worker.update(outcome.get("worker") or {})
            self._finish(
                job,
                "stopped" if job.control.stop_requested else "finished",
                error=None,
                value=outcome.get("value"),
                arrays=outcome.get("arrays") or {},
                exitcode=exitcode,
            )
        elif kind == "error":
            self._finish(
                job,
                "failed",
                error=outcome["error"],
                traceback=outcome.get("traceback"),
                exitcode=exitcode,
            )
        else:
            error = outcome.get("error") or describe_exit(exitcode)
            self._finish(job, "failed", error=error, exitcode=exitcode)
