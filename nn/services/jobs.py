"""Jobs in worker processes: a runner with a cap on concurrent jobs, a FIFO queue, pause, resume,
stop and crash reports, on this machine or on a Ray cluster.

    from nn.services.jobs import JobRunner
    runner = JobRunner(max_jobs=2)
    settings = TrainingJob(model={"hidden_layers": [32], "epochs": 2}, data={"train_size": 500})
    job = runner.submit("train", {"job": settings.to_dict()}, listener=print)
    job.pause(); job.resume(); job.stop()      # only set events the worker checks
    job.wait(); job.status, job.error, job.value, model_from_job(job)
    runner.cancel(job.id)                      # idempotent: dequeue, or stop (then terminate)

A job is a function ``fn(ctx) -> value`` or ``-> (value, arrays)`` run in its own process:
``value`` is JSON-able, ``arrays`` maps names to NumPy arrays. ``ctx.config`` and ``ctx.arrays``
hold what was submitted, ``ctx.emit(payload)`` streams a JSON-able dict back (training jobs send
``TrainingEvent``s as dicts), ``ctx.check()`` blocks while the job is paused and returns True
once a stop was asked for. Jobs are named by :data:`JOB_KINDS` or ``"module:function"``.

Between the server and a worker only JSON and ``.npz`` bytes (``allow_pickle=False``) travel:
a model comes back as ``to_state()`` settings and named arrays, never as a pickled object.

Local workers start with multiprocessing's ``spawn`` (a fresh interpreter: no threads inherited
from the web server). The worker never imports Streamlit: ``spawn`` is told not to import the
server's main module in it (``bin/streamlit`` or a page). The BLAS thread variables are set for
the new interpreter, so they hold before it imports NumPy.

Pause, resume and stop travel over the same pipe, as messages the worker applies to its own
events: no lock is shared between the processes (a ``multiprocessing.Event`` holds one, which a
worker killed at the wrong moment leaves taken, hanging whoever reads the event next).

A worker that crashes, raises (``MemoryError`` included) or is killed ends its job as
``"failed"`` with a message naming the exception, the exit code or the signal; the server and the
other jobs go on.

Settings (arguments of :class:`JobRunner`, or the environment for :func:`default_runner`):
    ``NN_MAX_JOBS``            jobs running at once (default: the number of cores); the others
                               wait in a FIFO queue and know their place in it.
    ``NN_JOB_BLAS_THREADS``    BLAS threads of each job (default ``auto``: a local worker gets
                               up to the cores shared by the running jobs, set between batches
                               by a :class:`BlasGovernor` from how busy the other processes
                               keep the cores; a Ray task :func:`auto_blas_threads`).
    ``NN_JOB_RESERVED_CORES``  cores :func:`auto_blas_threads` (Ray tasks) leaves to the
                               server and the browser (default 1 on two cores or more).
    ``NN_JOB_NICE``            how much lower than the server's a local worker's CPU priority is
                               (``nice`` increment, default :data:`DEFAULT_JOB_NICE`; 0 keeps
                               it equal), so that pages answer while jobs fill the cores.
    ``NN_JOB_MEMORY_BYTES``    address space a local worker may add to what it has mapped when it
                               starts (``RLIMIT_AS``): an allocation past it is a
                               ``MemoryError`` in the worker, reported as the job's failure,
                               instead of the kernel's OOM killer choosing a process (default
                               :func:`default_memory_limit`; 0: no cap).
    ``NN_RAY_ADDRESS``         a Ray cluster's address (``auto``, ``ray://host:10001``,
                               ``host:6379``): jobs run there as Ray tasks instead.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import io
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait as wait_ready
from typing import Any

__all__ = [
    "FINAL_STATUSES",
    "JOB_KINDS",
    "Job",
    "JobContext",
    "JobRunner",
    "auto_blas_threads",
    "default_runner",
    "model_from_job",
    "search_job",
    "search_result_from_job",
    "train_job",
]

JOB_KINDS: dict[str, str] = {
    "train": "nn.services.jobs:train_job",
    "search": "nn.services.jobs:search_job",
}
"""Job names the dashboard submits, and the functions that run them."""

STATUSES = ("queued", "running", "finished", "stopped", "failed", "cancelled")
FINAL_STATUSES = ("finished", "stopped", "failed", "cancelled")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
STOP_GRACE_SECONDS = 10.0
"""How long a cancelled job may take to stop by itself before its worker is terminated."""
DEFAULT_JOB_NICE = 10
"""A local worker's ``nice`` increment over the server's: the server and the browser win the
cores whenever they want them, the jobs take the rest (bench/dashboard_overhead.py)."""
EMIT_SECONDS = 0.2
"""How long a local worker holds back the events of ``emit_often`` (a training's batches, 400
a second for the ``fast`` preset) before sending them together."""
PAUSE_POLL_SECONDS = 1.0
"""While paused, a worker wakes this often to see whether its server is still there."""

Listener = Callable[["Job", dict], Any]


# --------------------------------------------------------------------------- wire format
def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def _decode(data: bytes) -> dict[str, Any]:
    return json.loads(data.decode())


def pack_arrays(arrays: Mapping[str, Any] | None) -> bytes | None:
    """Named arrays as ``.npz`` bytes (``None`` for none)."""
    if not arrays:
        return None
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **{name: np.asarray(a) for name, a in arrays.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes | None) -> dict[str, Any]:
    """``pack_arrays``'s bytes back as a dict of arrays (object arrays refused)."""
    if not blob:
        return {}
    import numpy as np

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "The worker process ended without an exit code."
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (out of memory, or killed by the system or a user)" if name == "SIGKILL" else ""
        return f"The worker process was killed by {name} (signal {-exitcode}){why}."
    return f"The worker process exited with code {exitcode} before reporting a result."


# --------------------------------------------------------------------------- the worker's side
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


class _ReportedEvent(threading.Event):
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


class _LocalContext(JobContext):
    """A worker's context. Controls come from the server over the pipe (``{"type": "control",
    "paused", "stopped"}``) and drive the worker's own events: no lock is shared between the
    processes, so a worker killed at any moment cannot leave one held. The end of the pipe
    (the server is gone) stops the job."""

    def __init__(self, config, arrays, conn, paused: bool, stopped: bool):
        from nn.services.control import JobControl

        stop, resume = threading.Event(), threading.Event()
        blocked = _ReportedEvent(lambda value: self.send({"type": "blocked", "value": value}))
        super().__init__(config, arrays, JobControl(stop, resume, blocked), stop)
        self._conn = conn
        self._send_lock = threading.Lock()
        self._orphaned = False
        self._held: list[dict[str, Any]] = []  # events of emit_often not sent yet
        self._held_since = 0.0
        self.governor: BlasGovernor | None = None  # set by the worker when its threads adapt
        self._apply(paused, stopped)
        threading.Thread(target=self._read_controls, daemon=True, name="nn-job-controls").start()

    def _apply(self, paused: bool, stopped: bool) -> None:
        if stopped:
            self.control.stop()
        elif paused:
            self.control.pause()
        else:
            self.control.resume()

    def _read_controls(self) -> None:
        while True:
            try:
                message = _decode(self._conn.recv_bytes())
            except (EOFError, OSError, ValueError):  # the server is gone
                self._orphaned = True
                self.control.stop()
                return
            if message.get("type") == "control":
                self._apply(bool(message.get("paused")), bool(message.get("stopped")))

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
                self._conn.send_bytes(_encode({"type": "events", "events": held}))
            if message is not None:
                self._conn.send_bytes(_encode(message))
                if blob is not None:
                    self._conn.send_bytes(blob)
        except OSError:  # the server is gone (BrokenPipeError): stop quietly
            self._orphaned = True
            self.control.stop()


def _resolve(target: str) -> Callable[[JobContext], Any]:
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


def _run_job(target: str, ctx: JobContext) -> tuple[Any, bytes | None]:
    out = _resolve(target)(ctx)
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


def _worker_facts() -> dict[str, Any]:
    from nn.core import blas

    return {
        "pid": os.getpid(),
        "blas_threads": blas.get_threads(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "address_space_limit": _address_space_limit(),
        "imports_streamlit": any(
            m == "streamlit" or m.startswith("streamlit.") for m in sys.modules
        ),
    }


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
    from nn.core.limits import MAX_TRAINING_BYTES

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


def _local_worker(
    target, config, blob, conn, paused, stopped, nice=0, memory=0, adapt=False
) -> None:
    """The worker process's body: run the job, report its value or its exception. ``adapt``:
    a :class:`BlasGovernor` sets the BLAS threads between batches, up to those it started
    with."""
    lower_priority(nice)
    limit_address_space(memory)
    ctx = _LocalContext(config, {}, conn, paused, stopped)
    try:
        ctx.arrays = unpack_arrays(blob)
        facts = _worker_facts()
        # the governor reads the machine's load from /proc/stat (Linux); elsewhere the job
        # keeps the threads it started with
        if adapt and (facts["blas_threads"] or 1) > 1 and os.path.exists("/proc/stat"):
            ctx.governor = BlasGovernor(facts["blas_threads"])
        ctx.send({"type": "started", **facts, "adaptive_threads": ctx.governor is not None})
        value, out_blob = _run_job(target, ctx)
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


# --------------------------------------------------------------------------- the server's side
def _remote_control_class():
    from nn.services.control import JobControl

    class RemoteControl(JobControl):
        """The server's JobControl of a job: every pause, resume and stop is also sent to the
        worker once one is attached (``attach(send)``); ``wait_until_blocked`` follows what
        the worker reports."""

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

    return RemoteControl


def new_control():
    """A JobControl for a job of a :class:`JobRunner` (its events stay in this process)."""
    return _remote_control_class()()


@dataclasses.dataclass(eq=False)
class Job:
    """One submitted job, as the server sees it. The runner's threads update the fields; read
    them freely. ``control`` (an ``nn.services.control.JobControl``) pauses, resumes and stops
    the job wherever it runs; ``control.wait_until_blocked()`` returns once a paused job holds
    still in its worker."""

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
    _blob: bytes | None = dataclasses.field(default=None, repr=False)
    _listener: Listener | None = dataclasses.field(default=None, repr=False)
    _deadline: float | None = dataclasses.field(default=None, repr=False)
    _done: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

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


_START_LOCK = threading.Lock()


_WORKER_PREFIX = "nn-job-"
_PREPARATION_LOCK = threading.Lock()


def _install_worker_preparation() -> None:
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


@contextlib.contextmanager
def _thread_variables(threads: int | None):
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


def auto_blas_threads(cores: int, running: int, reserved: int) -> int:
    """BLAS threads of a job when ``running`` jobs (this one included) share ``cores``, of which
    ``reserved`` are left to the server and the browser: at least one each.

    The count of a Ray task, which runs on a cluster's node beside other tasks; a local
    worker's threads follow the machine's load instead (:class:`BlasGovernor`)."""
    return max(1, (cores - reserved) // max(1, running))


def _busy_seconds() -> tuple[float, float]:
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
        from nn.core import blas

        self._blas = blas
        self.max_threads = max(1, int(max_threads))
        self._read = read or _busy_seconds
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


class JobRunner:
    """Runs jobs in worker processes (or Ray tasks), at most ``max_jobs`` at once, the others
    waiting in a FIFO queue.

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
        self._backend = _RayBackend(ray_address) if ray_address else _LocalBackend()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: dict[int, Job] = {}
        self._closed = False

    @classmethod
    def from_environment(cls) -> JobRunner:
        """A runner set by ``NN_MAX_JOBS``, ``NN_JOB_BLAS_THREADS``, ``NN_JOB_RESERVED_CORES``,
        ``NN_JOB_NICE``, ``NN_JOB_MEMORY_BYTES`` and ``NN_RAY_ADDRESS`` (``ValueError`` naming
        the variable when one is malformed)."""
        return cls(
            _env_int("NN_MAX_JOBS", 1),
            blas_threads=_env_int("NN_JOB_BLAS_THREADS", 1),
            reserved_cores=_env_int("NN_JOB_RESERVED_CORES", 0),
            nice=_env_int("NN_JOB_NICE", 0),
            memory_limit=_env_int("NN_JOB_MEMORY_BYTES", 0),
            ray_address=os.environ.get("NN_RAY_ADDRESS", "").strip() or None,
        )

    @property
    def backend(self) -> str:
        """``"local"`` (worker processes) or ``"ray"``."""
        return self._backend.name

    def new_control(self):
        """A ``JobControl`` that can drive a job of this runner (pass it to :meth:`submit`)."""
        return new_control()

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
            job._runner, job._blob, job._listener = self, pack_arrays(arrays), listener
            self._jobs[job.id] = job
            self._queue.append(job)
            self._schedule()
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: Any = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def queue_position(self, job: Job) -> int | None:
        with self._lock:
            try:
                return self._queue.index(job) + 1
            except ValueError:
                return None

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
            if job in self._queue:
                self._queue.remove(job)
                self._finish(job, "cancelled", error=None)
                return
            if terminate_after is not None:
                deadline = time.monotonic() + terminate_after
                job._deadline = deadline if job._deadline is None else min(job._deadline, deadline)

    def cancel_owner(self, owner: Any) -> None:
        """Cancel every job of ``owner`` (for example a closed browser session)."""
        for job in self.jobs(owner):
            self.cancel(job.id)

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
                job = self._queue.popleft()
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
            for position, queued in enumerate(self._queue, 1):
                self._notify(queued, {"type": "status", "status": "queued", "position": position})

    def _notify(self, job: Job, message: dict) -> None:
        if job._listener is None:
            return
        with contextlib.suppress(Exception):  # a listener's fault never stops the runner
            job._listener(job, message)

    def _handle(self, job: Job, message: dict) -> None:
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
            job._blob = None
            self._running.pop(job.id, None)
        job._done.set()
        self._notify(job, {"type": "status", "status": status, "error": error})
        self._schedule()

    def _complete(self, job: Job, outcome: dict, exitcode: int | None) -> None:
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
            error = outcome.get("error") or _describe_exit(exitcode)
            self._finish(job, "failed", error=error, exitcode=exitcode)


class _LocalBackend:
    name = "local"

    def __init__(self):
        self._ctx = multiprocessing.get_context("spawn")
        _install_worker_preparation()

    def start(self, runner: JobRunner, job: Job) -> None:
        control = job.control
        conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_local_worker,
            args=(
                job.target,
                job.config,
                job._blob,
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
        with _thread_variables(job.blas_threads):
            process.start()
        child_conn.close()
        control.attach(
            lambda paused, stopped: conn.send_bytes(
                _encode({"type": "control", "paused": paused, "stopped": stopped})
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
        message = _decode(conn.recv_bytes())
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
                    runner._handle(job, message)
                continue
            if process.sentinel in ready:
                break
            if job._deadline is not None and time.monotonic() >= job._deadline:
                if not terminated:
                    process.terminate()
                    terminated = True
                    job._deadline = time.monotonic() + 5.0  # then SIGKILL
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
        runner._complete(job, outcome, process.exitcode)


# --------------------------------------------------------------------------- Ray
class _RayChannel:
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


class _RayContext(JobContext):
    """A task's context: local events mirrored from the channel actor every ``POLL_SECONDS``
    by a thread that also sends the buffered messages."""

    POLL_SECONDS = 0.2

    def __init__(self, config, arrays, channel):
        from nn.services.control import JobControl

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
            self._buffer.append(_encode(message))

    def flush(self) -> None:
        import ray

        with self._lock:
            batch, self._buffer = self._buffer, []
        paused, stopped = ray.get(
            self._channel.report.remote(batch, self.control._blocked.is_set())
        )
        if stopped:
            self.control.stop()
        elif paused:
            self.control.pause()
        else:
            self.control.resume()

    def _relay(self) -> None:
        while not self._closed.wait(self.POLL_SECONDS):
            with contextlib.suppress(Exception):  # the server is gone: the task ends anyway
                self.flush()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.flush()


def _ray_worker(target: str, config: dict, blob: bytes | None, channel) -> tuple:
    """A Ray task's body: as ``_local_worker``, through the channel actor."""
    ctx = _RayContext(config, {}, channel)
    try:
        ctx.arrays = unpack_arrays(blob)
        ctx.send({"type": "started", **_worker_facts()})
        value, out_blob = _run_job(target, ctx)
        return ("result", json.dumps(value), out_blob)
    except BaseException as exc:  # noqa: BLE001 - reported to the server, never lost
        return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        ctx.close()


class _RayBackend:
    name = "ray"

    def __init__(self, address: str):
        import ray

        if address != "local" and not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        if not ray.is_initialized():
            raise RuntimeError("Ray is not running here: start it or set NN_RAY_ADDRESS")
        self._ray = ray
        self._channel_actor = ray.remote(num_cpus=0)(_RayChannel)
        self._task = ray.remote(max_retries=0)(_ray_worker)

    def start(self, runner: JobRunner, job: Job) -> None:
        channel = self._channel_actor.remote()
        env = {name: str(job.blas_threads) for name in THREAD_VARIABLES}
        ref = self._task.options(num_cpus=1, runtime_env={"env_vars": env}).remote(
            job.target, job.config, job._blob, channel
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
            runner._handle(job, _decode(data))
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
            if job._deadline is not None and time.monotonic() >= job._deadline and not cancelled:
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
        runner._complete(job, outcome, None)


# --------------------------------------------------------------------------- one per server
_DEFAULT: JobRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> JobRunner:
    """The server's runner (:meth:`JobRunner.from_environment`), made on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = JobRunner.from_environment()
        return _DEFAULT


# --------------------------------------------------------------------------- jobs
def _emit_training_event(ctx: JobContext, event: Any) -> None:
    """A ``TrainingEvent`` as a dict (its fields are plain numbers): batches through
    ``emit_often``, epochs and divergences at once."""
    payload = dict(vars(event))
    if event.kind == "batch":
        ctx.emit_often(payload)
    else:
        ctx.emit(payload)


def train_job(ctx: JobContext) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``nn.services.training.run_training_job`` in a worker. ``ctx.config``: ``{"job":
    TrainingJob.to_dict(), "continue": a model's to_state() settings or None}`` (then
    ``ctx.arrays`` hold its arrays and training goes on from there). Emits every stage of the
    job as ``{"kind": "stage", "stage": ..., "info": ...}`` and every ``TrainingEvent`` as a
    dict; returns the outcome (``status``, ``message``, ``run_id``, ``metrics``, the
    accuracies, ``model``: the fitted model's settings) and the model's arrays."""
    from nn.core.network import NeuralNetwork
    from nn.services.training import TrainingJob, run_training_job

    job = TrainingJob.from_dict(ctx.config["job"])
    previous = ctx.config.get("continue")
    model = NeuralNetwork.from_state(previous, ctx.arrays) if previous else None
    outcome = run_training_job(
        job,
        model=model,
        on_event=lambda event: _emit_training_event(ctx, event),
        listener=lambda stage, info: ctx.emit({"kind": "stage", "stage": stage, "info": info}),
        control=ctx.control,
    )
    value: dict[str, Any] = {
        "status": outcome.status,
        "message": outcome.message,
        "data": outcome.data,
        "run_id": outcome.run_id,
        "runs_db": outcome.runs_db,
        "model_path": None if outcome.model_path is None else str(outcome.model_path),
        "replaced": outcome.replaced,
        "run_errors": list(outcome.run_errors),
        "metrics": outcome.metrics(),
        "model": None,
        "inside": outcome.inside,
    }
    if outcome.result is None:
        return value, None
    result = outcome.result
    value.update(val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy)
    meta, arrays = result.model.to_state()
    value["model"] = meta
    return value, arrays


def search_job(ctx: JobContext) -> dict[str, Any]:
    """``nn.services.tuning.run_search_job`` in a worker: ``ctx.config["job"]`` is a
    ``SearchJob.to_dict()``; emits every ``SearchEvent`` and stage as ``train_job`` does and
    returns the result's ``to_dict()`` with every trial."""
    from nn.services.tuning import SearchJob, run_search_job

    result = run_search_job(
        SearchJob.from_dict(ctx.config["job"]),
        on_event=lambda event: ctx.emit(dataclasses.asdict(event)),
        listener=lambda stage, info: ctx.emit({"kind": "stage", "stage": stage, "info": info}),
        control=ctx.control,
    )
    return result.to_dict()


def search_result_from_job(job: Job):
    """The ``nn.search.SearchResult`` a search job sent back."""
    from nn.search.engine import SearchResult, Trial

    value = dict(job.value)
    value.pop("best_params", None)
    value["trials"] = [Trial(**trial) for trial in value["trials"]]
    return SearchResult(**value)


def model_from_job(job: Job):
    """The fitted ``NeuralNetwork`` a training job sent back (``None`` when there is none)."""
    from nn.core.network import NeuralNetwork

    meta = job.value.get("model") if isinstance(job.value, dict) else None
    if not meta or not job.arrays:
        return None
    return NeuralNetwork.from_state(meta, job.arrays)
