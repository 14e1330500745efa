"""The background training thread of a dashboard session. It never calls Streamlit.

``TrainingWorker(model_kwargs, data_kwargs, data)`` runs ``nn.services.training``'s training job
(the one ``python -m nn train`` runs) in a thread and keeps every batch and epoch in its state.
The page reads ``snapshot()`` from a polling fragment; buttons call ``pause()``, ``resume()`` and
``stop()`` (see :class:`ui.jobs.BackgroundJob`).

- While paused, the job blocks between two batches (no progress, no CPU).
- ``stop()`` makes the engine stop after the current batch (``stop_reason_ == "callback"``);
  the model keeps its weights and is scored on the test part.
- The run is recorded in the run store; a database problem never stops training (it is kept in
  ``run_errors``).
- ``inside`` holds the ``nn.core.probe`` record of the layers, one entry per epoch (continued
  training appends to the record of the model it continues, when the layers are the same).

With ``runner`` (an ``nn.services.jobs.JobRunner``) the training runs in a worker process of
that runner (``nn.services.jobs.train_job``, which loads its data itself: ``data`` is not used)
and waits in its queue while the runner is full (``queued``, ``queue_position``).

Statuses: [``queued`` ->] ``preparing`` -> ``running`` -> ``finished`` | ``stopped`` |
``diverged`` | ``failed``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.events import EPOCH_KEYS, TrainingEvent
from nn.core.probe import append_epoch, empty_record
from nn.core.state import to_state
from nn.io.models_folder import SaveRecord
from nn.services.training import TrainingJob, check_model_kwargs, run_training_job
from ui.jobs import BackgroundJob

# Batch-loss points kept (older ones are thinned 2:1 beyond this): a chart is ~700 px wide, and
# every point is re-sent and redrawn on each poll.
MAX_BATCH_POINTS = 800
EMA_SMOOTHING = 0.98
FINAL_STATUSES = ("finished", "stopped", "diverged", "failed")


class TrainingWorker(BackgroundJob):
    """Train one model in a daemon thread.

    Parameters
        model_kwargs: ``NeuralNetwork`` keyword arguments (``epochs`` included).
        data_kwargs: split settings (``nn.services.training.DATA_DEFAULTS`` keys).
        data: an ``nn.data.MNIST`` (or a zero-argument callable returning one, called in the
            thread).
        train_limit: cap on the number of training images (``$NN_TRAIN_LIMIT``), applied on top
            of ``train_size``.
        model: continue training this fitted model (``warm_start``) instead of a new one; the
            split is rebuilt from ``data_kwargs`` so use the same settings.
        record_run: record in the run store (path ``runs_path`` or the default).
        run_name: the name recorded with the run.
        inside: the probe record of ``model`` (continued training appends to it).
        runner: train in a worker process of this ``nn.services.jobs.JobRunner`` (None: in
            this thread).
    """

    FINAL_STATUSES = FINAL_STATUSES

    def __init__(
        self,
        model_kwargs: dict,
        data_kwargs: dict | None,
        data: Any,
        *,
        train_limit: int | None = None,
        model: Any = None,
        record_run: bool = True,
        runs_path: str | None = None,
        run_name: str | None = None,
        inside: dict | None = None,
        runner: Any = None,
    ):
        super().__init__(
            "nn-training",
            {
                "epoch": 0,
                "epochs": 0,
                "batch": 0,
                "n_batches": 0,
                "progress": 0.0,
                "loss": None,
                "learning_rate": None,
                "images_per_second": None,
                "eta_seconds": None,
                "elapsed": 0.0,
                "history": {k: [] for k in EPOCH_KEYS},
                "batches_seen": 0,  # batches told so far: the batch chart changed when it did
                "batch_steps": [],
                "batch_loss": [],
                "batch_ema": [],
                "stop_reason": None,
                "stop_message": "",
                "test_accuracy": None,
                "val_accuracy": None,
                "last_val_accuracy": None,  # the last epoch's, while training
                "run_id": None,
                "run_errors": [],
                "n_train": None,
                "n_val": None,
                "n_test": None,
                "message": "",
                "inside": None,
            },
            runner,
        )
        self._previous_inside = copy.deepcopy(inside) if inside else None
        self.job = TrainingJob(
            model=dict(model_kwargs),
            data=dict(data_kwargs or {}),
            name=run_name,
            source="dashboard",
            record=record_run,
            runs_db=runs_path,
            train_limit=train_limit,
        )
        self._data = data
        self.model = model
        # what the model file records when Save is pressed (nn.io.models_folder.SaveRecord)
        self.save_record: SaveRecord | None = None
        self._first_epoch = 0
        self._n_epochs = int(self.job.model.get("epochs", 1) or 1)
        self._ema = 0.0
        self._ema_weight = 0.0
        self._stride = 1  # keep every stride-th batch once thinned
        self._batch_counter = 0

    # ------------------------------------------------------------------ thread body
    def work(self) -> None:
        if self.runner is not None:
            self._work_in_worker()
            return
        from nn.data import MNIST

        data = self._data() if callable(self._data) else self._data
        if not isinstance(data, MNIST) and type(data).__name__ == "MNIST":
            # an MNIST cached before Streamlit's watcher reloaded nn.data: same fields
            data = MNIST(*data)
        outcome = run_training_job(
            self.job,
            data=data,
            model=self.model,
            on_event=self._on_event,
            listener=self._listen,
            control=self.control,
        )
        if outcome.result is None:  # stopped before the first batch
            self._set(
                status="stopped",
                stop_reason="callback",
                stop_message=outcome.message,
                elapsed=self._active_seconds(),
            )
            return
        result = outcome.result
        model = self.model = result.model
        self._keep_save_record(outcome.save_record)
        hist = getattr(model, "history_", {}) or {}
        self._set(
            status=outcome.status,
            stop_reason=model.stop_reason_,
            stop_message=model.stop_message_ or "",
            test_accuracy=result.test_accuracy,
            val_accuracy=result.val_accuracy,
            paused=False,
            history={k: list(hist.get(k, [])) for k in EPOCH_KEYS},
            progress=1.0 if outcome.status == "finished" else self._state["progress"],
            eta_seconds=0.0,
            elapsed=self._active_seconds(),
        )

    def _work_in_worker(self) -> None:
        """Train in the runner's worker; the model comes back as settings and arrays."""
        from nn.services.jobs import model_from_job

        if self.model is None:
            check_model_kwargs(self.job.model)  # refused here, before a worker starts
        config: dict[str, Any] = {"job": self.job.to_dict(), "continue": None}
        arrays = None
        if self.model is not None:
            config["continue"], arrays = to_state(self.model)
        job = self.run_in_worker("train", config, arrays)
        if job is None:
            return
        value = job.value
        model = model_from_job(job)
        if model is None:  # stopped before the first batch
            self._set(
                status="stopped",
                stop_reason="callback",
                stop_message=value["message"],
                elapsed=self._active_seconds(),
            )
            return
        self.model = model
        self._keep_save_record(SaveRecord.from_dict(value["save_record"]))
        hist = getattr(model, "history_", {}) or {}
        self._set(
            status=value["status"],
            stop_reason=model.stop_reason_,
            stop_message=model.stop_message_ or "",
            test_accuracy=value.get("test_accuracy"),
            val_accuracy=value.get("val_accuracy"),
            paused=False,
            history={k: list(hist.get(k, [])) for k in EPOCH_KEYS},
            progress=1.0 if value["status"] == "finished" else self._state["progress"],
            eta_seconds=0.0,
            elapsed=self._active_seconds(),
        )

    def _keep_save_record(self, record: SaveRecord) -> None:
        """The job's record for the model file, with the layers' record of every round of
        training this session (continued training appends to the model's earlier record)."""
        self.save_record = dataclasses.replace(record, inside=self._state["inside"])

    def worker_event(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "stage":
            self._listen(event["stage"], event["info"])
        elif event.get("kind") in ("batch", "epoch"):
            self._on_event(TrainingEvent(**event))

    def _listen(self, stage: str, info: dict[str, Any]) -> None:
        if stage == "prepared":
            self._set(n_train=info["n_train"], n_val=info["n_val"], n_test=info["n_test"])
        elif stage == "started":
            self._first_epoch = info["first_epoch"]
            self._mark_started()
            self._set(
                status="running",
                run_id=info["run_id"],
                epochs=self._first_epoch + self._n_epochs,
                epoch=self._first_epoch,
            )
        elif stage == "run_error":
            with self._lock:
                self._state["run_errors"].append(info["message"])
        elif stage == "inside_start":
            previous = self._previous_inside
            same = previous is not None and previous.get("layers") == info.get("layers")
            self._set(inside=previous if same else empty_record(info))
        elif stage == "inside_epoch":
            with self._lock:
                if self._state["inside"] is not None:
                    append_epoch(self._state["inside"], info)

    # ------------------------------------------------------------------ the callback
    def _on_event(self, event) -> None:
        now_active = self._active_seconds()
        with self._lock:
            state = self._state
            done_epochs = (event.epoch - 1 - self._first_epoch) + event.batch / max(
                event.n_batches, 1
            )
            if event.kind == "epoch":
                done_epochs = event.epoch - self._first_epoch
                self._add_epoch(state["history"], event)
                state["last_val_accuracy"] = event.val_accuracy
            else:
                self._add_batch(state, event)
            progress = min(1.0, max(0.0, done_epochs / self._n_epochs))
            state.update(
                epoch=event.epoch,
                epochs=event.epochs,
                batch=event.batch,
                n_batches=event.n_batches,
                loss=float(event.loss),
                learning_rate=float(event.learning_rate),
                progress=progress,
            )
            if now_active > 0 and progress > 0:
                state["images_per_second"] = done_epochs * (state["n_train"] or 0) / now_active
                state["eta_seconds"] = now_active * (1 - progress) / progress

    @staticmethod
    def _add_epoch(history: dict[str, list], event) -> None:
        for key, value in (
            ("epoch", event.epoch),
            ("loss", event.loss),
            ("train_accuracy", event.train_accuracy),
            ("val_loss", event.val_loss),
            ("val_accuracy", event.val_accuracy),
            ("learning_rate", event.learning_rate),
        ):
            history[key].append(value)
        history["seconds"].append(None)

    def _add_batch(self, state: dict[str, Any], event) -> None:
        self._batch_counter += 1
        state["batches_seen"] = self._batch_counter
        loss = float(event.loss)
        if np.isfinite(loss):
            self._ema = EMA_SMOOTHING * self._ema + (1 - EMA_SMOOTHING) * loss
            self._ema_weight = EMA_SMOOTHING * self._ema_weight + (1 - EMA_SMOOTHING)
        if self._batch_counter % self._stride:
            return
        state["batch_steps"].append(
            round(event.epoch - 1 + event.batch / max(event.n_batches, 1), 5)
        )
        state["batch_loss"].append(loss)
        state["batch_ema"].append(self._ema / self._ema_weight if self._ema_weight else None)
        if len(state["batch_loss"]) > MAX_BATCH_POINTS:
            for key in ("batch_steps", "batch_loss", "batch_ema"):
                state[key] = state[key][1::2]
            self._stride *= 2

    # ------------------------------------------------------------------ after training
    def set_model_path(self, path: str) -> None:
        """Record where the trained model was saved (after Save on the Train page); the run
        takes the model's name, so that the Runs page finds it by that name."""
        from nn.services.runs import RunStore

        run_id = self._state.get("run_id")
        if not run_id:
            return
        try:
            store = RunStore(self.job.runs_db) if self.job.runs_db else RunStore()
            store.update_run(run_id, model_path=str(path), name=Path(path).stem)
        except Exception as exc:  # noqa: BLE001 - a database problem is shown, never raised
            with self._lock:
                self._state["run_errors"].append(f"{type(exc).__name__}: {exc}")
