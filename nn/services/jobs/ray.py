"""Jobs on a Ray cluster (``NN_RAY_ADDRESS``): each a Ray task, with a channel actor between it
and the server (messages one way, controls the other). Ray is imported only here."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nn.services.control import JobControl
from nn.services.jobs.context import JobContext, run_job, worker_facts
from nn.services.jobs.limits import THREAD_VARIABLES
from nn.services.jobs.wire import decode, encode, unpack_arrays

if TYPE_CHECKING:  # the runner imports this module
    from nn.services.jobs.runner import Job, JobRunner


class RayChannel:
    """A Ray actor between the server and one job's task: messages one way, controls the other."""

    def __init__(self):
        self.messages: list[bytes] = []
        self.paused = self.stopped = self.blocked = False

    def report(self, batch: list[bytes], blocked: bool) -> tuple[bool, bool]:
        """The task's side: its messages and whether it holds still; gets the controls."""
        self.messages.extend(batch)
        self.blocked = blocked
        return self.paused, self.stopped

    def exchange(self, paused: bool, stopped: bool) -> tuple[list[bytes], bool]:
        """The server's side: sets the controls, takes the messages and the blocked flag."""
        self.paused, self.stopped = paused, stopped
        out, self.messages = self.messages, []
        return out, self.blocked


class RayContext(JobContext):
    """A task's context: local events mirrored from the channel actor every ``POLL_SECONDS``
    by a thread that also sends the buffered messages."""

    POLL_SECONDS = 0.2

    def __init__(self, config, arrays, channel):
        stop, resume, blocked = threading.Event(), threading.Event(), threading.Event()
        super().__init__(config, arrays, JobControl(stop, resume, blocked), stop)
        self._channel = channel
        self._buffer: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True, name="nn-job-relay")
        self._thread.start()

    def send(self, message: Mapping[str, Any], blob: bytes | None = None) -> None:
        with self._lock:
            self._buffer.append(encode(message))

    def flush(self) -> None:
        import ray

        with self._lock:
            batch, self._buffer = self._buffer, []
        paused, stopped = ray.get(self._channel.report.remote(batch, self.control.blocked))
        self.control.apply(paused, stopped)

    def _relay(self) -> None:
        while not self._closed.wait(self.POLL_SECONDS):
            with contextlib.suppress(Exception):  # the server is gone: the task ends anyway
                self.flush()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.flush()


def ray_worker(target: str, config: dict, blob: bytes | None, channel) -> tuple:
    """A Ray task's body: as ``nn.services.jobs.local.local_worker``, through the channel actor."""
    ctx = RayContext(config, {}, channel)
    try:
        ctx.arrays = unpack_arrays(blob)
        ctx.send({"type": "started", **worker_facts()})
        value, out_blob = run_job(target, ctx)
        return ("result", json.dumps(value), out_blob)
    except BaseException as exc:  # noqa: BLE001 - reported to the server, never lost
        return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        ctx.close()


class RayBackend:
    name = "ray"

    def __init__(self, address: str):
        import ray

        if address != "local" and not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        if not ray.is_initialized():
            raise RuntimeError("Ray is not running here: start it or set NN_RAY_ADDRESS")
        self._ray = ray
        self._channel_actor = ray.remote(num_cpus=0)(RayChannel)
        self._task = ray.remote(max_retries=0)(ray_worker)

    def start(self, runner: JobRunner, job: Job) -> None:
        channel = self._channel_actor.remote()
        env = {name: str(job.blas_threads) for name in THREAD_VARIABLES}
        ref = self._task.options(num_cpus=1, runtime_env={"env_vars": env}).remote(
            job.target, job.config, job.blob, channel
        )
        threading.Thread(
            target=self._watch,
            args=(runner, job, ref, channel),
            daemon=True,
            name=f"nn-job-{job.id}-watch",
        ).start()

    def _exchange(self, runner: JobRunner, job: Job, channel) -> None:
        control = job.control
        messages, blocked = self._ray.get(
            channel.exchange.remote(control.paused, control.stop_requested)
        )
        for data in messages:
            runner.handle(job, decode(data))
        control.report_blocked(blocked)

    def _watch(self, runner: JobRunner, job: Job, ref, channel) -> None:
        ray = self._ray
        cancelled = False
        while True:
            ready, _ = ray.wait([ref], timeout=0.2)
            with contextlib.suppress(Exception):  # the actor is gone: the task says why
                self._exchange(runner, job, channel)
            if ready:
                break
            if job.deadline is not None and time.monotonic() >= job.deadline and not cancelled:
                ray.cancel(ref, force=True)
                cancelled = True
        try:
            kind, first, second = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a crashed, killed or cancelled task
            outcome = {"error": f"The Ray task failed: {type(exc).__name__}: {exc}"}
        else:
            if kind == "result":
                outcome = {"type": "result", "value": json.loads(first)}
                outcome["arrays"] = unpack_arrays(second)
            else:
                outcome = {"type": "error", "error": first, "traceback": second}
        with contextlib.suppress(Exception):
            self._exchange(runner, job, channel)  # the last events, sent as the task ended
            ray.kill(channel)
        job.control.report_blocked(False)
        runner.complete(job, outcome, None)
