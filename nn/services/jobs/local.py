"""Local jobs: each in its own worker process, started with multiprocessing's ``spawn`` (a fresh
interpreter: no threads inherited from the web server) and talking to the server over a pipe.

The worker never imports Streamlit: ``spawn`` is told not to import the server's main module in
it (``bin/streamlit`` or a page). The BLAS thread variables are set for the new interpreter, so
they hold before it imports NumPy.

Pause, resume and stop travel over the same pipe, as messages the worker applies to its own
events: no lock is shared between the processes (a ``multiprocessing.Event`` holds one, which a
worker killed at the wrong moment leaves taken, hanging whoever reads the event next).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import wait as wait_ready
from typing import TYPE_CHECKING, Any

from nn.services.control import JobControl
from nn.services.jobs.context import JobContext, ReportedEvent, run_job, worker_facts
from nn.services.jobs.governor import BlasGovernor
from nn.services.jobs.limits import limit_address_space, lower_priority, thread_variables
from nn.services.jobs.wire import decode, encode, unpack_arrays

if TYPE_CHECKING:  # the runner imports this module
    from nn.services.jobs.runner import Job, JobRunner

EMIT_SECONDS = 0.2
"""How long a local worker holds back the events of ``emit_often`` (a training's batches, 400
a second for the ``fast`` preset) before sending them together."""


class LocalContext(JobContext):
    """A worker's context. Controls come from the server over the pipe (``{"type": "control",
    "paused", "stopped"}``) and drive the worker's own events: no lock is shared between the
    processes, so a worker killed at any moment cannot leave one held. The end of the pipe
    (the server is gone) stops the job."""

    def __init__(self, config, arrays, conn, paused: bool, stopped: bool):
        stop, resume = threading.Event(), threading.Event()
        blocked = ReportedEvent(lambda value: self.send({"type": "blocked", "value": value}))
        super().__init__(config, arrays, JobControl(stop, resume, blocked), stop)
        self._conn = conn
        self._send_lock = threading.Lock()
        self._orphaned = False
        self._held: list[dict[str, Any]] = []  # events of emit_often not sent yet
        self._held_since = 0.0
        self.governor: BlasGovernor | None = None  # set by the worker when its threads adapt
        self.control.apply(paused, stopped)
        threading.Thread(target=self._read_controls, daemon=True, name="nn-job-controls").start()

    def _read_controls(self) -> None:
        while True:
            try:
                message = decode(self._conn.recv_bytes())
            except (EOFError, OSError, ValueError):  # the server is gone
                self._orphaned = True
                self.control.stop()
                return
            if message.get("type") == "control":
                self.control.apply(bool(message.get("paused")), bool(message.get("stopped")))

    def emit_often(self, payload: Mapping[str, Any]) -> None:
        """Held back and sent as one ``{"type": "events"}`` message at most every
        :data:`EMIT_SECONDS` (and before any other message): one pipe message, one wake-up of
        the server's relay thread, per 0.2 s instead of per batch. Called between two batches,
        it is also where the :class:`BlasGovernor` (if any) sets the BLAS thread count."""
        if self.governor is not None:
            self.governor.tick()
        with self._send_lock:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append(dict(payload))
            if time.monotonic() - self._held_since >= EMIT_SECONDS:
                self._write()

    def send(self, message: Mapping[str, Any], blob: bytes | None = None) -> None:
        with self._send_lock:
            self._write(message, blob)

    def _write(self, message: Mapping[str, Any] | None = None, blob: bytes | None = None) -> None:
        """Under the send lock: what ``emit_often`` held back, in order, then ``message`` and
        ``blob``."""
        if self._orphaned:
            return
        try:
            if self._held:
                held, self._held = self._held, []
                self._conn.send_bytes(encode({"type": "events", "events": held}))
            if message is not None:
                self._conn.send_bytes(encode(message))
                if blob is not None:
                    self._conn.send_bytes(blob)
        except OSError:  # the server is gone (BrokenPipeError): stop quietly
            self._orphaned = True
            self.control.stop()


def local_worker(
    target, config, blob, conn, paused, stopped, nice=0, memory=0, adapt=False
) -> None:
    """The worker process's body: run the job, report its value or its exception. ``adapt``:
    a :class:`BlasGovernor` sets the BLAS threads between batches, up to those it started
    with."""
    lower_priority(nice)
    limit_address_space(memory)
    ctx = LocalContext(config, {}, conn, paused, stopped)
    try:
        ctx.arrays = unpack_arrays(blob)
        facts = worker_facts()
        # the governor reads the machine's load from /proc/stat (Linux); elsewhere the job
        # keeps the threads it started with
        if adapt and (facts["blas_threads"] or 1) > 1 and os.path.exists("/proc/stat"):
            ctx.governor = BlasGovernor(facts["blas_threads"])
        ctx.send({"type": "started", **facts, "adaptive_threads": ctx.governor is not None})
        value, out_blob = run_job(target, ctx)
        governor = ctx.governor
        ctx.send(
            {
                "type": "result",
                "value": value,
                "has_arrays": out_blob is not None,
                "worker": {}
                if governor is None
                else {
                    "blas_threads_last": governor.threads,
                    "blas_thread_changes": governor.changes,
                },
            },
            out_blob,
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the server, never lost
        ctx.send(
            {
                "type": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
    finally:
        conn.close()


_WORKER_PREFIX = "nn-job-"
_PREPARATION_LOCK = threading.Lock()


def install_worker_preparation() -> None:
    """Make ``spawn`` leave the server's main module out of this runner's workers.

    ``spawn`` tells a new interpreter to import the parent's ``__main__`` again (by path for a
    script such as ``bin/streamlit``, which imports Streamlit). Streamlit swaps
    ``sys.modules["__main__"]`` for every script run, from many threads, so that module is
    whatever page ran last. The preparation data of processes named ``nn-job-*`` drop the
    main module; every other process is prepared as before."""
    from multiprocessing import spawn

    with _PREPARATION_LOCK:
        if getattr(spawn.get_preparation_data, "_nn_jobs", False):
            return
        original = spawn.get_preparation_data

        def get_preparation_data(name: str) -> dict[str, Any]:
            data = original(name)
            if str(name).startswith(_WORKER_PREFIX):
                data.pop("init_main_from_path", None)
                data.pop("init_main_from_name", None)
            return data

        get_preparation_data._nn_jobs = True
        spawn.get_preparation_data = get_preparation_data


class LocalBackend:
    name = "local"

    def __init__(self):
        self._ctx = multiprocessing.get_context("spawn")
        install_worker_preparation()

    def start(self, runner: JobRunner, job: Job) -> None:
        control = job.control
        conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=local_worker,
            args=(
                job.target,
                job.config,
                job.blob,
                child_conn,
                control.paused,
                control.stop_requested,
                runner.nice,
                runner.memory_limit,
                job.adaptive_threads,
            ),
            name=f"{_WORKER_PREFIX}{job.id}",
            daemon=True,
        )
        with thread_variables(job.blas_threads):
            process.start()
        child_conn.close()
        control.attach(
            lambda paused, stopped: conn.send_bytes(
                encode({"type": "control", "paused": paused, "stopped": stopped})
            )
        )
        threading.Thread(
            target=self._watch,
            args=(runner, job, process, conn),
            daemon=True,
            name=f"nn-job-{job.id}-watch",
        ).start()

    @staticmethod
    def _read(conn) -> dict[str, Any]:
        message = decode(conn.recv_bytes())
        if message.get("type") == "result" and message.get("has_arrays"):
            message["arrays"] = unpack_arrays(conn.recv_bytes())
        return message

    def _watch(self, runner: JobRunner, job: Job, process, conn) -> None:
        """Relay the worker's messages until it exits; terminate it past the job's deadline."""
        outcome: dict[str, Any] = {}
        terminated = killed = False
        while True:
            handles = [process.sentinel] if conn is None else [conn, process.sentinel]
            ready = wait_ready(handles, timeout=0.5)
            if conn is not None and conn in ready:
                try:
                    message = self._read(conn)
                except (EOFError, OSError, ValueError):
                    conn.close()
                    conn = None
                    continue
                if message.get("type") in ("result", "error"):
                    outcome = message
                else:
                    runner.handle(job, message)
                continue
            if process.sentinel in ready:
                break
            if job.deadline is not None and time.monotonic() >= job.deadline:
                if not terminated:
                    process.terminate()
                    terminated = True
                    job.deadline = time.monotonic() + 5.0  # then SIGKILL
                elif not killed:
                    process.kill()
                    killed = True
        process.join()
        job.control.attach(None)
        job.control.report_blocked(False)
        if conn is not None:
            conn.close()
        if terminated and not outcome:
            outcome = {"error": "The job did not stop when asked, so its worker was terminated."}
        runner.complete(job, outcome, process.exitcode)
