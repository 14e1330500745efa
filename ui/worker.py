"""The background training thread of a dashboard session. It never calls Streamlit.

``TrainingWorker(model_kwargs, data_kwargs, data)`` builds the split (``nn.data.split_dataset``),
the ``NeuralNetwork`` and calls ``fit`` with a callback that records every batch and epoch under a
lock. The page reads ``snapshot()`` (a dict of plain values and list copies) from a polling
fragment; buttons call ``pause()``, ``resume()`` and ``stop()``, which only set events.

- While paused, the callback blocks on a ``threading.Event`` (no progress, no CPU).
- ``stop()`` makes the callback return True: the engine stops after the current batch
  (``stop_reason_ == "callback"``); the model keeps its weights and is scored on the test part.
- Any exception is captured (``status == "failed"``, ``error``, ``traceback`` in the snapshot).
- The run is recorded in ``nn.runs.RunStore`` (``$NN_RUNS_DB`` or ``./runs.sqlite``), its epochs
  through ``nn.runs.RunRecorder`` as on the command line; a database problem never stops
  training (it is kept in ``run_errors``).

Statuses: ``preparing`` -> ``running`` -> ``finished`` | ``stopped`` | ``diverged`` | ``failed``.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

# Batch-loss points kept (older ones are thinned 2:1 beyond this): a chart is ~700 px wide, and
# every point is re-sent and redrawn on each poll.
MAX_BATCH_POINTS = 800
EMA_SMOOTHING = 0.98
FINAL_STATUSES = ("finished", "stopped", "diverged", "failed")
_STATUS_OF_STOP_REASON = {
    "completed": "finished",
    "early_stopping": "finished",
    "callback": "stopped",
    "diverged": "diverged",
}
_HISTORY_KEYS = (
    "epoch",
    "loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)


class TrainingWorker(threading.Thread):
    """Train one model in a daemon thread.

    Parameters
        model_kwargs: ``NeuralNetwork`` keyword arguments (``epochs`` included).
        data_kwargs: ``split_dataset`` settings: ``split`` (scheme), ``seed``, ``val_fraction``,
            ``test_fraction``, ``train_size`` (None = all).
        data: an ``nn.data.MNIST`` (or a zero-argument callable returning one, called in the
            thread).
        train_limit: cap on the number of training images (``$NN_TRAIN_LIMIT``), applied on top
            of ``train_size``.
        model: continue training this fitted model (``warm_start``) instead of a new one; the
            split is rebuilt from ``data_kwargs`` so use the same settings.
        record_run: record in ``nn.runs.RunStore`` (path ``runs_path`` or the default).
        run_name: the name recorded with the run.
    """

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
    ):
        super().__init__(name="nn-training", daemon=True)
        self.model_kwargs = dict(model_kwargs)
        self.data_kwargs = dict(data_kwargs or {})
        self._data = data
        self.train_limit = train_limit
        self.model = model
        self.record_run = record_run
        self.runs_path = runs_path
        self.run_name = run_name
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._resume_event = threading.Event()
        self._resume_event.set()  # set = not paused
        self._paused_seconds = 0.0
        self._pause_started: float | None = None
        self._started_at: float | None = None
        self._first_epoch = 0
        self._n_epochs = int(self.model_kwargs.get("epochs", 1) or 1)
        self._state: dict[str, Any] = {
            "status": "preparing",
            "paused": False,
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
            "history": {k: [] for k in _HISTORY_KEYS},
            "batch_steps": [],
            "batch_loss": [],
            "batch_ema": [],
            "error": None,
            "traceback": None,
            "stop_reason": None,
            "stop_message": "",
            "test_accuracy": None,
            "val_accuracy": None,
            "run_id": None,
            "run_errors": [],
            "n_train": None,
            "n_val": None,
            "n_test": None,
            "message": "",
        }
        self._ema = 0.0
        self._ema_weight = 0.0
        self._stride = 1  # keep every stride-th batch once thinned
        self._batch_counter = 0

    # ------------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        with self._lock:
            if self._resume_event.is_set() and self._state["status"] not in FINAL_STATUSES:
                self._resume_event.clear()
                self._pause_started = time.perf_counter()
                self._state["paused"] = True

    def resume(self) -> None:
        with self._lock:
            if self._pause_started is not None:
                self._paused_seconds += time.perf_counter() - self._pause_started
                self._pause_started = None
            self._state["paused"] = False
            self._resume_event.set()

    def stop(self) -> None:
        self._stop_event.set()
        self.resume()  # a paused worker must wake up to stop

    @property
    def paused(self) -> bool:
        return not self._resume_event.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    @property
    def done(self) -> bool:
        return self._state["status"] in FINAL_STATUSES

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the progress (plain values, list copies): safe to read anywhere."""
        with self._lock:
            snap = dict(self._state)
            snap["history"] = {k: list(v) for k, v in self._state["history"].items()}
            for key in ("batch_steps", "batch_loss", "batch_ema", "run_errors"):
                snap[key] = list(self._state[key])
            snap["alive"] = self.is_alive()
            snap["elapsed"] = self._active_seconds() if self._started_at else 0.0
        return snap

    # ------------------------------------------------------------------ thread body
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

    def run(self) -> None:  # noqa: C901 - one linear story
        store = run_id = None
        try:
            split = self._split()
            model = self._make_model()
            if self.record_run:
                store, run_id = self._start_run(model)
            if self._stop_event.is_set():
                self._set(
                    status="stopped",
                    stop_reason="callback",
                    stop_message="Stopped before training started.",
                )
                self._finish_run(store, run_id, "stopped", "Stopped before training started.")
                return
            self._first_epoch = (
                int(getattr(model, "n_iter_", 0) or 0) if self.model is not None else 0
            )
            self._started_at = time.perf_counter()
            self._set(
                status="running", epochs=self._first_epoch + self._n_epochs, epoch=self._first_epoch
            )
            recorder = self._epoch_logger(store, run_id)
            model.fit(
                split.x_train,
                split.y_train,
                split.x_val,
                split.y_val,
                callback=lambda event: self._callback(event, recorder),
            )
            self.model = model
            test_acc = float(model.score(split.x_test, split.y_test)) if len(split.y_test) else None
            hist = getattr(model, "history_", {}) or {}
            vals = [v for v in hist.get("val_accuracy", []) if v is not None]
            val_acc = float(vals[-1]) if vals else None
            if model.early_stopping and getattr(model, "best_val_accuracy_", None) is not None:
                val_acc = float(model.best_val_accuracy_)
            status = _STATUS_OF_STOP_REASON.get(model.stop_reason_ or "completed", "finished")
            self._set(
                status=status,
                stop_reason=model.stop_reason_,
                stop_message=model.stop_message_ or "",
                test_accuracy=test_acc,
                val_accuracy=val_acc,
                paused=False,
                history={k: list(hist.get(k, [])) for k in _HISTORY_KEYS},
                progress=1.0 if status == "finished" else self._state["progress"],
                eta_seconds=0.0,
            )
            self._finish_run(
                store,
                run_id,
                status,
                model.stop_message_ or None,
                {"test_accuracy": test_acc, "val_accuracy": val_acc},
            )
        except BaseException as exc:  # noqa: BLE001 - captured and shown, never lost
            self._set(
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
                paused=False,
            )
            self._finish_run(store, run_id, "failed", f"{type(exc).__name__}: {exc}")

    def _split(self):
        from nn.data import MNIST
        from nn.services.training import make_split

        data = self._data() if callable(self._data) else self._data
        if not isinstance(data, MNIST) and type(data).__name__ == "MNIST":
            # a cached MNIST made before Streamlit's watcher reloaded nn.data: same fields
            data = MNIST(*data)
        kwargs = dict(self.data_kwargs)
        if self.train_limit:
            size = kwargs.get("train_size")
            kwargs["train_size"] = (
                min(int(size), self.train_limit) if size else int(self.train_limit)
            )
        try:
            split = make_split(kwargs, mnist=data)
        except ValueError as exc:
            if self.train_limit and "train_size" in str(exc):  # limit above the part: no cap
                split = make_split({**kwargs, "train_size": None}, mnist=data)
            else:
                raise
        self._set(
            n_train=int(len(split.y_train)),
            n_val=int(len(split.y_val)),
            n_test=int(len(split.y_test)),
        )
        return split

    def _make_model(self):
        if self.model is not None:
            model = self.model
            model.set_params(warm_start=True, epochs=self._n_epochs)
            return model
        from nn.core.network import NeuralNetwork

        return NeuralNetwork(**self.model_kwargs)

    # ------------------------------------------------------------------ the callback
    def _callback(self, event, recorder: Callable | None) -> bool:
        now_active = self._active_seconds()
        with self._lock:
            st = self._state
            done_epochs = (event.epoch - 1 - self._first_epoch) + event.batch / max(
                event.n_batches, 1
            )
            if event.kind == "epoch":
                done_epochs = event.epoch - self._first_epoch
                hist = st["history"]
                for key, value in (
                    ("epoch", event.epoch),
                    ("loss", event.loss),
                    ("train_accuracy", event.train_accuracy),
                    ("val_loss", event.val_loss),
                    ("val_accuracy", event.val_accuracy),
                    ("learning_rate", event.learning_rate),
                ):
                    hist[key].append(value)
                hist["seconds"].append(None)
            else:
                self._batch_counter += 1
                loss = float(event.loss)
                if np.isfinite(loss):
                    self._ema = EMA_SMOOTHING * self._ema + (1 - EMA_SMOOTHING) * loss
                    self._ema_weight = EMA_SMOOTHING * self._ema_weight + (1 - EMA_SMOOTHING)
                if self._batch_counter % self._stride == 0:
                    st["batch_steps"].append(
                        round(event.epoch - 1 + event.batch / max(event.n_batches, 1), 5)
                    )
                    st["batch_loss"].append(loss)
                    st["batch_ema"].append(
                        self._ema / self._ema_weight if self._ema_weight else None
                    )
                    if len(st["batch_loss"]) > MAX_BATCH_POINTS:
                        for key in ("batch_steps", "batch_loss", "batch_ema"):
                            st[key] = st[key][1::2]
                        self._stride *= 2
            progress = min(1.0, max(0.0, done_epochs / self._n_epochs))
            st.update(
                epoch=event.epoch,
                epochs=event.epochs,
                batch=event.batch,
                n_batches=event.n_batches,
                loss=float(event.loss),
                learning_rate=float(event.learning_rate),
                progress=progress,
            )
            if now_active > 0 and progress > 0:
                n_train = st["n_train"] or 0
                st["images_per_second"] = done_epochs * n_train / now_active
                st["eta_seconds"] = now_active * (1 - progress) / progress
        if event.kind == "epoch" and recorder is not None:
            recorder(event)
        # block here while paused; stop wakes us up
        while not self._resume_event.wait(0.5):
            if self._stop_event.is_set():
                break
        return self._stop_event.is_set()

    # ------------------------------------------------------------------ run store
    def _start_run(self, model):
        try:
            from nn.services.runs import RunStore
        except ImportError:
            return None, None
        try:
            store = RunStore(self.runs_path) if self.runs_path else RunStore()
            config = {
                "model": model.get_params(),
                "data": self.data_kwargs,
                "train_limit": self.train_limit,
                "continued": self.model is not None,
            }
            run_id = store.start_run(
                config,
                name=self.run_name,
                source="dashboard",
                seed=self.model_kwargs.get("random_state"),
            )
            self._set(run_id=run_id)
            return store, run_id
        except Exception as exc:  # noqa: BLE001 - a database problem never stops training
            self._note_run_error(exc)
            return None, None

    def _epoch_logger(self, store, run_id):
        """Epoch events to the run store through ``nn.runs.RunRecorder`` (as the command line
        records them); a database problem is noted in the state, never stops training."""
        if store is None or run_id is None:
            return None
        from nn.services.runs import RunRecorder

        recorder = RunRecorder(store, run_id)

        def log(event) -> None:
            seen = len(recorder.errors)
            try:
                recorder.callback(event)  # keeps SQLite errors in recorder.errors
            except Exception as exc:  # noqa: BLE001
                self._note_run_error(exc)
            for exc in recorder.errors[seen:]:
                self._note_run_error(exc)

        return log

    def _finish_run(
        self, store, run_id, status: str, message: str | None, metrics: dict | None = None
    ) -> None:
        if store is None or run_id is None:
            return
        try:
            store.finish_run(
                run_id,
                status,
                metrics={k: v for k, v in (metrics or {}).items() if v is not None},
                message=message,
            )
        except Exception as exc:  # noqa: BLE001
            self._note_run_error(exc)

    def _note_run_error(self, exc: BaseException) -> None:
        with self._lock:
            self._state["run_errors"].append(f"{type(exc).__name__}: {exc}")

    def set_model_path(self, path: str) -> None:
        """Record where the trained model was saved (after Save on the Train page)."""
        run_id = self._state.get("run_id")
        if not run_id:
            return
        try:
            from nn.services.runs import RunStore

            store = RunStore(self.runs_path) if self.runs_path else RunStore()
            store.update_run(run_id, model_path=str(path))
        except Exception as exc:  # noqa: BLE001
            self._note_run_error(exc)
