"""The dashboard's jobs: a training, a search and a fine-tuning are each a job of the server's
runner (``nn.services.jobs.JobRunner``) in a worker process, held for the person who started it.

:class:`SessionJob` has no thread of its own and never calls Streamlit. The runner's threads put
the worker's messages in its inbox; :meth:`SessionJob.snapshot` folds them into the job's state
when a page polls (a ``ui.job_folds.Fold`` per kind says how). Pause, resume and stop go
straight to the runner's job.

A job belongs to its owner (``ui.state.current_owner()``: the local workspace today, a signed-in
person's once workspaces exist), not to a browser tab: the :class:`JobBoard` holds one job per
owner and kind, so a reload, or another tab of the same person, finds the same job, shows it and
controls it, and a finished training's model waits there to be saved. Closing a tab stops
nothing. A job left alone ends by its own epochs, or by the board's two limits (read from the
environment, see :meth:`JobBoard.from_environment`):

    ``NN_JOB_IDLE_MINUTES``   a paused job that no page has polled for this long is stopped
                              (default 30; an open page polls a paused job every
                              ``ui.live.PAUSED_SECONDS``); it keeps what it learnt, as Stop does.
    ``NN_JOB_RESULT_HOURS``   an ended job (a model not saved yet included) leaves the board this
                              long after it ended (default 24).

The board applies them whenever a page looks a job up.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nn.core.state import to_state
from nn.io.models_folder import SaveRecord, save_named
from nn.services.runs import RunStore
from nn.services.status import is_final
from nn.services.training import TrainingJob, check_model_kwargs
from nn.services.tuning import SearchJob
from ui.job_folds import FinetuneFold, Fold, SearchFold, TrainingFold

IDLE_MINUTES = 30.0
RESULT_HOURS = 24.0
STOPPED_IN_QUEUE = "Stopped while waiting in the queue."


# ------------------------------------------------------------------------------ the job
_IDS = itertools.count(1)


def queue_text(snap: Mapping[str, Any]) -> str:
    """Why a queued job waits, and its place: for a free worker, or for the person's own other
    job (one job at a time per person, ``NN_JOBS_PER_USER``)."""
    place = snap.get("queue_position") or 1
    if snap.get("waits_for_own_job"):
        return (
            f"waiting for your other job to end (each person runs one at a time): place {place} "
            "in the queue"
        )
    return f"waiting for a free worker: place {place} in the queue"


class SessionJob:
    """One dashboard job of ``kind`` (``train``, ``search``, ``finetune``) for ``owner``, run by
    ``runner``; ``form``: the settings it was started from, as the page shows them.

    ``start(config, arrays, check=...)`` submits it (``check()`` first: an exception there is
    the job's failure, before any worker starts). ``snapshot()`` is a consistent copy of its
    state plus ``alive``, ``stop_requested`` and, until it ends, ``elapsed`` (seconds of work,
    pauses left out). ``result`` holds what it made once it ended (a training's model, a
    search's ``SearchResult``)."""

    def __init__(self, kind: str, fold: Fold, runner: Any, owner: Any, form: Any = None):
        self.id = next(_IDS)
        self.kind, self.fold, self.runner, self.owner = kind, fold, runner, owner
        self.form = copy.deepcopy(form)
        self.control = runner.new_control()
        self.runner_job: Any = None
        self.config: dict[str, Any] = {}
        self.result: Any = None
        self.stop_note: str | None = None  # why the board stopped it, shown with the outcome
        self.saved_as: str | None = None  # the model name a training was saved under
        self.polled_at = time.time()
        self._inbox: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.RLock()
        self._ended = False
        self._state: dict[str, Any] = {
            "status": "preparing",
            "paused": False,
            "error": None,
            "traceback": None,
            "queue_position": None,
            "run_errors": [],
            **fold.initial(),
        }
        self._started_at: float | None = None
        self._paused_seconds = 0.0
        self._pause_started: float | None = None

    # ------------------------------------------------------------------ start
    def start(
        self,
        config: Mapping[str, Any],
        arrays: Mapping[str, Any] | None = None,
        *,
        check: Callable[[], Any] | None = None,
    ) -> SessionJob:
        """Submit the job to the runner (``check()`` first; its exception fails the job)."""
        try:
            if check is not None:
                check()
        except Exception as exc:  # noqa: BLE001 - shown on the page as the job's failure
            with self._lock:
                self._ended = True
                self._state.update(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
            return self
        self.config = dict(config)
        self.runner_job = self.runner.submit(
            self.kind,
            dict(config),
            arrays=arrays,
            owner=self.owner,
            listener=self._hear,
            control=self.control,
        )
        return self

    def _hear(self, job: Any, message: dict[str, Any]) -> None:
        """The runner's listener: called from its threads (some holding its lock), so it only
        queues the message."""
        self._inbox.append(message)

    # ------------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        with self._lock:
            if not self.control.paused and not self.done:
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

    def stop(self, note: str | None = None) -> None:
        """Ask the job to stop; a paused job wakes up to stop, a queued one leaves the queue."""
        self.resume()
        if note is not None:
            self.stop_note = note
        self.control.stop(note)
        if self.runner_job is not None:
            self.runner.cancel(self.runner_job.id, terminate_after=None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended (True) or ``timeout`` passed (False)."""
        if self.runner_job is not None:
            self.runner_job.wait(timeout)
        with self._lock:
            self._fold()
        return self.done

    @property
    def paused(self) -> bool:
        return self.control.paused

    @property
    def stop_requested(self) -> bool:
        return self.control.stop_requested

    @property
    def done(self) -> bool:
        """Whether the job has ended (its worker has, or it failed before one started)."""
        return self.runner_job.done if self.runner_job is not None else self._ended

    @property
    def ended_at(self) -> float | None:
        """When the job ended (``time.time()``), None while it runs."""
        if self.runner_job is not None:
            return self.runner_job.finished_at
        return self.polled_at if self._ended else None

    # ------------------------------------------------------------------ the state
    def snapshot(self, without: tuple[str, ...] = ()) -> dict[str, Any]:
        """The state with the messages that arrived folded in. ``without``: keys left out (a
        view that polls skips what it does not show, such as a training's ``inside`` record,
        instead of copying it on every poll)."""
        with self._lock:
            self.polled_at = time.time()
            self._fold()
            snap = copy.deepcopy({k: v for k, v in self._state.items() if k not in without})
            if not is_final(snap["status"]):
                snap["elapsed"] = self._active_seconds()
        snap["alive"] = not self.done
        snap["stop_requested"] = self.control.stop_requested
        if snap["status"] == "queued" and self.runner_job is not None:
            snap["waits_for_own_job"] = self.runner.waits_for_own_job(self.runner_job)
        return snap

    def note_run_error(self, text: str) -> None:
        """A run-store problem met after the job (e.g. recording where its model was saved)."""
        with self._lock:
            self._state.setdefault("run_errors", []).append(text)

    def _active_seconds(self) -> float:
        if self._started_at is None:
            return 0.0
        paused = self._paused_seconds
        if self._pause_started is not None:
            paused += time.perf_counter() - self._pause_started
        return max(0.0, time.perf_counter() - self._started_at - paused)

    def _fold(self) -> None:
        """Under the lock: apply the messages received, then the outcome once the job ended
        (a job that has ended has queued all its messages already)."""
        job = self.runner_job
        ended = job is not None and job.done
        while self._inbox:
            self._apply(self._inbox.popleft())
        if ended and not self._ended:
            self._ended = True
            self._finish(job)

    def _apply(self, message: dict[str, Any]) -> None:
        state, kind = self._state, message.get("type")
        if kind == "status" and message.get("status") == "queued":
            state.update(status="queued", queue_position=message.get("position"))
        elif kind == "status" and message.get("status") == "running":
            state.update(status="preparing", queue_position=None)
            self._started_at = time.perf_counter()
        elif kind == "event":
            event = message["event"]
            if event.get("kind") == "stage" and event["stage"] == "run_error":
                self.fold.run_error(state, event["info"]["message"])
            elif event.get("kind") == "stage":
                if event["stage"] == self.fold.start_stage:
                    self._started_at = time.perf_counter()
                self.fold.stage(state, event["stage"], event["info"])
            else:
                self.fold.event(state, event, self._active_seconds())

    def _finish(self, job: Any) -> None:
        state = self._state
        state["elapsed"] = self._active_seconds()
        if job.status == "cancelled":
            state.update(status=self.fold.stopped_status, stop_message=STOPPED_IN_QUEUE)
        elif job.status == "failed":
            state.update(status="failed", error=job.error, traceback=job.traceback or "")
        else:
            self.result = self.fold.outcome(state, job)
        if state.get("status") == "stopped" and self.stop_note:
            state["stop_message"] = f"{self.stop_note[0].upper()}{self.stop_note[1:]}."
        state.update(paused=False, queue_position=None)
        self._pause_started = None


# ------------------------------------------------------------------------------ the board
def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, not {text}")
    return value


class JobBoard:
    """Every owner's dashboard jobs, one per owner and kind, shared by the server's sessions.

    ``idle_seconds``: a paused job that nobody has polled for this long is stopped.
    ``result_seconds``: an ended job leaves the board this long after it ended."""

    def __init__(
        self,
        idle_seconds: float = IDLE_MINUTES * 60,
        result_seconds: float = RESULT_HOURS * 3600,
        clock: Callable[[], float] = time.time,
    ):
        self.idle_seconds = float(idle_seconds)
        self.result_seconds = float(result_seconds)
        self._clock = clock
        self._jobs: dict[tuple[Any, str], SessionJob] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> JobBoard:
        """A board with ``NN_JOB_IDLE_MINUTES`` and ``NN_JOB_RESULT_HOURS`` (``ValueError``
        naming the variable when one is not a positive number)."""
        return cls(
            _env_number("NN_JOB_IDLE_MINUTES", IDLE_MINUTES) * 60,
            _env_number("NN_JOB_RESULT_HOURS", RESULT_HOURS) * 3600,
        )

    def get(self, owner: Any, kind: str) -> SessionJob | None:
        """The owner's job of this kind (running, or ended and kept), after the limits."""
        self.sweep()
        with self._lock:
            return self._jobs.get((owner, kind))

    def put(self, job: SessionJob) -> SessionJob:
        """Make ``job`` its owner's job of its kind; one still running there is stopped."""
        with self._lock:
            old = self._jobs.get((job.owner, job.kind))
            self._jobs[(job.owner, job.kind)] = job
        if old is not None and not old.done:
            old.stop()
        return job

    def sweep(self) -> None:
        """Stop the paused jobs nobody watches; drop the ended jobs kept long enough."""
        now = self._clock()
        with self._lock:
            jobs = list(self._jobs.items())
        for key, job in jobs:
            if not job.done and job.paused and now - job.polled_at > self.idle_seconds:
                minutes = self.idle_seconds / 60
                job.stop(f"stopped after {minutes:g} minutes paused with no page open")
            ended = job.ended_at
            if job.done and ended is not None and now - ended > self.result_seconds:
                with self._lock:
                    if self._jobs.get(key) is job:
                        del self._jobs[key]

    def clear(self) -> None:
        """Stop every job and forget them all (their workers end; a test's clean slate)."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.stop()


# ------------------------------------------------------------------------------ starting jobs
def start_training(
    board: JobBoard,
    runner: Any,
    owner: Any,
    model_kwargs: Mapping[str, Any],
    data_kwargs: Mapping[str, Any] | None,
    *,
    train_limit: int | None = None,
    model: Any = None,
    run_name: str | None = None,
    inside: dict | None = None,
    runs_path: str | None = None,
    record: bool = True,
    form: Any = None,
) -> SessionJob:
    """Train in a worker (``nn.services.jobs.bodies.train_job``) as ``owner``'s training: a new
    model with ``model_kwargs`` on ``data_kwargs``, or ``model`` trained on (then ``inside`` is
    its probe record, which the new epochs extend). The settings are checked before a worker
    starts. A training the owner had running is stopped."""
    settings = TrainingJob(
        model=dict(model_kwargs),
        data=dict(data_kwargs or {}),
        name=run_name,
        source="dashboard",
        record=record,
        runs_db=runs_path,
        train_limit=train_limit,
    )
    fold = TrainingFold(int(settings.model.get("epochs", 1) or 1), inside)
    job = board.put(SessionJob("train", fold, runner, owner, form))
    config: dict[str, Any] = {"job": settings.to_dict(), "continue": None}
    arrays = None
    if model is not None:
        config["continue"], arrays = to_state(model)
    check = None if model is not None else (lambda: check_model_kwargs(settings.model))
    return job.start(config, arrays, check=check)


def start_search(
    board: JobBoard,
    runner: Any,
    owner: Any,
    settings: SearchJob,
    form: Any = None,
) -> SessionJob:
    """Search in a worker (``nn.services.jobs.bodies.search_job``) as ``owner``'s search; one
    the owner had running is stopped."""
    job = board.put(SessionJob("search", SearchFold(settings.space), runner, owner, form))
    return job.start({"job": settings.to_dict()})


def start_finetune(
    board: JobBoard,
    runner: Any,
    owner: Any,
    base_path: str | os.PathLike,
    name: str,
    x: Any,
    y: Any,
    *,
    models_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    runs_path: str | None = None,
) -> SessionJob:
    """Fine-tune the model at ``base_path`` on MNIST plus the drawings ``x``, ``y`` in a worker
    (``nn.services.jobs.bodies.finetune_job``), saved as ``name`` in ``models_dir``."""
    fold = FinetuneFold(os.fspath(base_path), name)
    job = board.put(SessionJob("finetune", fold, runner, owner))
    config = {
        "base": os.fspath(base_path),
        "name": name,
        "models_dir": os.fspath(models_dir),
        "settings": dict(settings),
        "runs_db": runs_path,
    }
    return job.start(config, {"x": x, "y": y})


def save_training(job: SessionJob, path: str | os.PathLike, name: str) -> Path:
    """Save a training's model to ``path`` as ``name``, with the job's record for the model
    file (``nn.io.models_folder.SaveRecord``: its metrics, notes and data set, and the layers'
    record of every round of training this job continued); the run takes the model's path and
    name (so the Runs page finds it by that name). A database problem is noted in the job's
    ``run_errors``, never raised."""
    snap = job.snapshot(without=("history",))
    record = dataclasses.replace(
        SaveRecord.from_dict(snap.get("save_record") or {}), inside=snap.get("inside")
    )
    path = save_named(job.result, path, name, record)
    job.saved_as = name
    run_id = snap.get("run_id")
    if not run_id:
        return path
    runs_db = (job.config.get("job") or {}).get("runs_db")
    try:
        store = RunStore(runs_db) if runs_db else RunStore()
        store.update_run(run_id, model_path=os.fspath(path), name=Path(path).stem)
    except Exception as exc:  # noqa: BLE001 - a database problem is shown, never raised
        job.note_run_error(f"{type(exc).__name__}: {exc}")
    return path


def run_errors_text(errors: list[str]) -> str | None:
    """What a page says when the run database failed during a job (``nn.services.recorder``'s
    rule): a warning, never a failed job."""
    if not errors:
        return None
    return (
        "The run database failed, so this job is not (or only partly) recorded on the Runs "
        "page; the job itself and what it trained are not affected. " + "; ".join(errors)
    )
