"""How each kind of dashboard job folds its worker's messages into its state: a
:class:`TrainingFold`, a :class:`SearchFold` and a :class:`FinetuneFold` (``ui.session_jobs``
applies them when a page polls). Events arrive as the JSON dicts the worker emitted and are
decoded here, once."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

from nn.core.events import EPOCH_KEYS, TrainingEvent
from nn.core.probe import append_epoch, empty_record
from nn.search.results import SearchEvent
from nn.services.jobs import model_from_job, search_result_from_job

MAX_BATCH_POINTS = 800
"""Batch-loss points kept (older ones are thinned 2:1 beyond this): a chart is ~700 px wide, and
every point is re-sent and redrawn on each poll."""
EMA_SMOOTHING = 0.98


class BatchCurve:
    """The batch-loss curve of a training: every batch's loss and its moving average, thinned
    2:1 whenever it grows past :data:`MAX_BATCH_POINTS`."""

    def __init__(self) -> None:
        self._ema = self._weight = 0.0
        self._stride = 1
        self.count = 0

    def add(self, state: dict[str, Any], event: TrainingEvent) -> None:
        self.count += 1
        loss = float(event.loss)
        if math.isfinite(loss):
            self._ema = EMA_SMOOTHING * self._ema + (1 - EMA_SMOOTHING) * loss
            self._weight = EMA_SMOOTHING * self._weight + (1 - EMA_SMOOTHING)
        if self.count % self._stride:
            return
        state["batch_steps"].append(
            round(event.epoch - 1 + event.batch / max(event.n_batches, 1), 5)
        )
        state["batch_loss"].append(loss)
        state["batch_ema"].append(self._ema / self._weight if self._weight else None)
        if len(state["batch_loss"]) > MAX_BATCH_POINTS:
            for key in ("batch_steps", "batch_loss", "batch_ema"):
                state[key] = state[key][1::2]
            self._stride *= 2


def _curve_fields() -> dict[str, list]:
    return {"batch_steps": [], "batch_loss": [], "batch_ema": []}


class Fold:
    """How one kind of job's messages change its state. ``stopped_status``: the status of a job
    stopped before it started; ``start_stage``: the stage from which its time counts (None:
    from the worker's start)."""

    stopped_status = "stopped"
    start_stage: str | None = None

    def initial(self) -> dict[str, Any]:
        return {}

    def stage(self, state: dict[str, Any], stage: str, info: dict[str, Any]) -> None:
        """A stage of the job (``{"kind": "stage"}`` events)."""

    def run_error(self, state: dict[str, Any], message: str) -> None:
        """A run-database error the job met and went on past (``nn.services.recorder``)."""
        state.setdefault("run_errors", []).append(message)

    def event(self, state: dict[str, Any], payload: dict[str, Any], elapsed: float) -> None:
        """Any other event the job emitted (decoded here, once)."""

    def outcome(self, state: dict[str, Any], job: Any) -> Any:
        """The runner's job ended with a value: set the final state, return the result kept
        with the session job (a model, a search result, or None)."""
        return None


class TrainingFold(Fold):
    """A training's progress, curves, inside record and outcome (``nn.services.jobs.bodies.
    train_job``). ``epochs``: how many this run trains; ``inside``: the probe record of the
    model it continues (continued training appends to it when the layers are the same)."""

    start_stage = "started"

    def __init__(self, epochs: int, inside: dict | None = None):
        self.n_epochs = max(1, int(epochs))
        self.previous_inside = copy.deepcopy(inside) if inside else None
        self.first_epoch = 0
        self.curve = BatchCurve()

    def initial(self) -> dict[str, Any]:
        return {
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
            **_curve_fields(),
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
            "save_record": None,  # what the model file records (nn.io.models_folder.SaveRecord)
        }

    def stage(self, state, stage, info):
        if stage == "prepared":
            state.update(n_train=info["n_train"], n_val=info["n_val"], n_test=info["n_test"])
        elif stage == "started":
            self.first_epoch = info["first_epoch"]
            state.update(
                status="running",
                run_id=info["run_id"],
                epochs=self.first_epoch + self.n_epochs,
                epoch=self.first_epoch,
            )
        elif stage == "inside_start":
            previous = self.previous_inside
            same = previous is not None and previous.get("layers") == info.get("layers")
            state["inside"] = previous if same else empty_record(info)
        elif stage == "inside_epoch" and state["inside"] is not None:
            append_epoch(state["inside"], info)

    def event(self, state, payload, elapsed):
        event = TrainingEvent(**payload)
        if event.kind not in ("batch", "epoch"):
            return
        done = (event.epoch - 1 - self.first_epoch) + event.batch / max(event.n_batches, 1)
        if event.kind == "epoch":
            done = event.epoch - self.first_epoch
            for key in EPOCH_KEYS:
                state["history"][key].append(getattr(event, key, None))
            state["last_val_accuracy"] = event.val_accuracy
        else:
            self.curve.add(state, event)
            state["batches_seen"] = self.curve.count
        progress = min(1.0, max(0.0, done / self.n_epochs))
        state.update(
            epoch=event.epoch,
            epochs=event.epochs,
            batch=event.batch,
            n_batches=event.n_batches,
            loss=float(event.loss),
            learning_rate=float(event.learning_rate),
            progress=progress,
        )
        if elapsed > 0 and progress > 0:
            state["images_per_second"] = done * (state["n_train"] or 0) / elapsed
            state["eta_seconds"] = elapsed * (1 - progress) / progress

    def outcome(self, state, job):
        value = job.value
        model = model_from_job(job)
        if model is None:  # stopped before the first batch
            state.update(status="stopped", stop_reason="callback", stop_message=value["message"])
            return None
        hist = getattr(model, "history_", {}) or {}
        state.update(
            status=value["status"],
            stop_reason=model.stop_reason_,
            stop_message=model.stop_message_ or "",
            test_accuracy=value.get("test_accuracy"),
            val_accuracy=value.get("val_accuracy"),
            history={k: list(hist.get(k, [])) for k in EPOCH_KEYS},
            progress=1.0 if value["status"] == "finished" else state["progress"],
            eta_seconds=0.0,
            save_record=value.get("save_record"),
        )
        return model


class SearchFold(Fold):
    """A search's trials, rungs and best (``nn.services.jobs.bodies.search_job``)."""

    stopped_status = "cancelled"

    def __init__(self, space: dict[str, Any]):
        self.space = space

    def initial(self) -> dict[str, Any]:
        return {
            "space": copy.deepcopy(self.space),
            "trials": [],
            "rung": 0,
            "n_rungs": 1,
            "n_trials": 0,
            "best_val_accuracy": None,
            "best_trial": None,
            "best_config": None,
            "search_id": None,
            "message": "",
            "elapsed": 0.0,
            "n_train": None,
            "n_val": None,
            "current": None,
        }

    def stage(self, state, stage, info):
        if stage == "prepared":
            state.update(status="running", n_train=info["n_train"], n_val=info["n_val"])

    def event(self, state, payload, elapsed):
        event = SearchEvent(**payload)
        state.update(
            trials=event.trials,
            rung=event.rung,
            n_rungs=event.n_rungs,
            n_trials=event.n_trials,
            best_val_accuracy=event.best_val_accuracy,
        )
        if event.kind == "trial_started" and event.trial is not None:
            state["current"] = {"index": event.trial["index"], "epoch": None}
        elif event.kind == "trial_epoch" and event.trial is not None:
            state["current"] = {"index": event.trial["index"], "epoch": event.epoch}

    def outcome(self, state, job):
        result = search_result_from_job(job)
        state.update(
            status=result.status,
            trials=[t.to_dict() for t in result.trials],
            best_val_accuracy=result.best_val_accuracy,
            best_trial=result.best_trial,
            best_config=result.best_config,
            search_id=result.search_id,
            message=result.message,
            elapsed=result.seconds,
            current=None,
        )
        return result


class FinetuneFold(Fold):
    """A fine-tuning's progress, batch-loss curve and scores (``nn.services.jobs.bodies.
    finetune_job``); it counts its own epochs from 1."""

    def __init__(self, base: str, name: str):
        self.base, self.name = base, name
        self.first_epoch: int | None = None
        self.curve = BatchCurve()

    def initial(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "name": self.name,
            "epoch": 0,
            "epochs": 0,
            "batch": 0,
            "n_batches": 0,
            "progress": 0.0,
            **_curve_fields(),
            "held_out_accuracy": [],
            "elapsed": 0.0,
            "eta_seconds": None,
            "result": None,
            "saved": None,
            "run_id": None,
        }

    def stage(self, state, stage, info):
        if stage == "started":
            state["status"] = "running"

    def event(self, state, payload, elapsed):
        event = TrainingEvent(**payload)
        if event.kind not in ("batch", "epoch"):
            return
        if self.first_epoch is None:
            self.first_epoch = int(event.epoch) - 1
        n_epochs = max(1, int(event.epochs) - self.first_epoch)
        done = event.epoch - 1 - self.first_epoch + event.batch / max(event.n_batches, 1)
        if event.kind == "epoch":
            done = event.epoch - self.first_epoch
            state["held_out_accuracy"].append(event.val_accuracy)
        else:  # its own epochs on the chart too (from 0, not the model's 25th)
            self.curve.add(state, dataclasses.replace(event, epoch=event.epoch - self.first_epoch))
        state.update(
            epoch=int(event.epoch) - self.first_epoch,
            epochs=n_epochs,
            batch=int(event.batch),
            n_batches=int(event.n_batches),
            progress=min(1.0, max(0.0, done / n_epochs)),
            elapsed=elapsed,
        )
        if elapsed > 0 and state["progress"] > 0:
            p = state["progress"]
            state["eta_seconds"] = elapsed * (1 - p) / p

    def outcome(self, state, job):
        value = job.value
        state.update(
            status=value["status"],
            saved=value["saved"],
            run_id=value["run_id"],
            result=value["result"],
            progress=1.0 if value["saved"] is not None else state["progress"],
        )
        return None
