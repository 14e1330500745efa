"""Fine-tuning on the user's drawings as a background job of the dashboard (never calls Streamlit).

``FinetuneJob(model_path, new_name, x, y, mnist, models_dir=..., settings=...)`` runs
``nn.services.finetune.run_finetune`` (the job ``python -m nn finetune`` runs) in a thread: it
saves the new model and records the run. The page polls ``snapshot()`` as the Train page polls
its worker; ``pause()``, ``resume()`` and ``stop()`` come from :class:`ui.jobs.BackgroundJob`.

``finetune_slot()`` holds the session's job between reruns (one per browser tab; closing the tab
stops it).

Statuses: ``preparing`` -> ``running`` -> ``finished`` | ``stopped`` | ``diverged`` | ``failed``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import streamlit as st

from ui.jobs import BackgroundJob

FINAL_STATUSES = ("finished", "stopped", "diverged", "failed")
MAX_BATCH_POINTS = 800
EMA_SMOOTHING = 0.98


class FinetuneJob(BackgroundJob):
    """Fine-tune one saved model on MNIST plus the user's drawings in a daemon thread."""

    FINAL_STATUSES = FINAL_STATUSES

    def __init__(
        self,
        model_path: str | os.PathLike,
        new_name: str,
        x_user: np.ndarray,
        y_user: np.ndarray,
        mnist: Any,
        *,
        models_dir: str | os.PathLike,
        settings: dict | None = None,
        runs_path: str | None = None,
    ):
        super().__init__(
            "nn-finetune",
            {
                "base": os.fspath(model_path),
                "name": new_name,
                "epoch": 0,
                "epochs": 0,
                "batch": 0,
                "n_batches": 0,
                "progress": 0.0,
                "batch_steps": [],
                "batch_loss": [],
                "batch_ema": [],
                "held_out_accuracy": [],
                "result": None,
                "saved": None,
                "run_id": None,
            },
        )
        self.model_path = model_path
        self.new_name = new_name
        self.x_user, self.y_user = x_user, y_user
        self.mnist = mnist
        self.models_dir = models_dir
        self.settings = dict(settings or {})
        self.runs_path = runs_path
        self._first_epoch: int | None = None
        self._ema = 0.0
        self._ema_weight = 0.0
        self._stride = 1
        self._count = 0

    def work(self) -> None:
        from nn.services.finetune import run_finetune
        from nn.services.runs import run_status

        self._mark_started()
        self._set(status="running")
        result, saved, run_id = run_finetune(
            self.model_path,
            self.new_name,
            self.x_user,
            self.y_user,
            models_dir=self.models_dir,
            mnist=self.mnist,
            settings=self.settings,
            runs_path=self.runs_path,
            on_event=self._on_event,
            control=self.control,
        )
        self._set(
            status=run_status(result.stop_reason, stop_requested=self.control.stop_requested),
            saved=None if saved is None else str(saved),
            run_id=run_id,
            paused=False,
            progress=1.0 if saved is not None else self._state["progress"],
            elapsed=self._active_seconds(),
            result={
                "held_out_before": result.held_out_before,
                "held_out_after": result.held_out_after,
                "mnist_before": result.mnist_before,
                "mnist_after": result.mnist_after,
                "n_user_train": result.n_user_train,
                "n_user_held_out": result.n_user_held_out,
                "repeats": result.repeats,
                "n_mnist_train": result.n_mnist_train,
                "warnings": list(result.warnings),
            },
        )

    def _on_event(self, event) -> None:
        with self._lock:
            state = self._state
            if self._first_epoch is None:
                self._first_epoch = int(event.epoch) - 1
            n_epochs = max(1, int(event.epochs) - self._first_epoch)
            done = event.epoch - 1 - self._first_epoch + event.batch / max(event.n_batches, 1)
            if event.kind == "epoch":
                done = event.epoch - self._first_epoch
                state["held_out_accuracy"].append(event.val_accuracy)
            else:
                self._add_batch(state, event)
            state.update(
                epoch=int(event.epoch),
                epochs=int(event.epochs),
                batch=int(event.batch),
                n_batches=int(event.n_batches),
                progress=min(1.0, max(0.0, done / n_epochs)),
            )

    def _add_batch(self, state: dict[str, Any], event) -> None:
        self._count += 1
        loss = float(event.loss)
        if np.isfinite(loss):
            self._ema = EMA_SMOOTHING * self._ema + (1 - EMA_SMOOTHING) * loss
            self._ema_weight = EMA_SMOOTHING * self._ema_weight + (1 - EMA_SMOOTHING)
        if self._count % self._stride:
            return
        state["batch_steps"].append(round(event.epoch - 1 + event.batch / event.n_batches, 5))
        state["batch_loss"].append(loss)
        state["batch_ema"].append(self._ema / self._ema_weight if self._ema_weight else None)
        if len(state["batch_loss"]) > MAX_BATCH_POINTS:
            for key in ("batch_steps", "batch_loss", "batch_ema"):
                state[key] = state[key][1::2]
            self._stride *= 2


class FinetuneSlot:
    """Holds the session's fine-tuning job between reruns."""

    def __init__(self) -> None:
        self.job: FinetuneJob | None = None

    def running(self) -> bool:
        return self.job is not None and self.job.is_alive()


def _release(slot: FinetuneSlot) -> None:
    if slot.job is not None:
        slot.job.stop()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def finetune_slot() -> FinetuneSlot:
    """The session's fine-tuning slot (one per browser tab)."""
    return FinetuneSlot()
