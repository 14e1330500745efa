"""The job functions the dashboard submits (:data:`nn.services.jobs.context.JOB_KINDS`), each a
``nn.services`` job run in a worker, and what the server makes of their values."""

from __future__ import annotations

import dataclasses
from typing import Any

from nn.core.state import from_state, to_state
from nn.search.results import SearchResult, Trial
from nn.services.finetune import run_finetune
from nn.services.jobs.context import JobContext
from nn.services.jobs.runner import Job
from nn.services.runs import run_status
from nn.services.training import TrainingJob, run_training_job
from nn.services.tuning import SearchJob, run_search_job


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
    TrainingJob.to_dict(), "continue": a model's ``to_state`` settings or None}`` (then
    ``ctx.arrays`` hold its arrays and training goes on from there). Emits every stage of the
    job as ``{"kind": "stage", "stage": ..., "info": ...}`` and every ``TrainingEvent`` as a
    dict; returns the outcome (``status``, ``message``, ``run_id``, ``metrics``,
    ``save_record``, the accuracies, ``model``: the fitted model's settings) and the model's
    arrays."""
    job = TrainingJob.from_dict(ctx.config["job"])
    previous = ctx.config.get("continue")
    model = from_state(previous, ctx.arrays) if previous else None
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
        "save_record": None if outcome.save_record is None else outcome.save_record.to_dict(),
    }
    if outcome.result is None:
        return value, None
    result = outcome.result
    value.update(val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy)
    meta, arrays = to_state(result.model)
    value["model"] = meta
    return value, arrays


def search_job(ctx: JobContext) -> dict[str, Any]:
    """``nn.services.tuning.run_search_job`` in a worker: ``ctx.config["job"]`` is a
    ``SearchJob.to_dict()``; emits every ``SearchEvent`` and stage as ``train_job`` does and
    returns the result's ``to_dict()`` with every trial."""
    result = run_search_job(
        SearchJob.from_dict(ctx.config["job"]),
        on_event=lambda event: ctx.emit(dataclasses.asdict(event)),
        listener=lambda stage, info: ctx.emit({"kind": "stage", "stage": stage, "info": info}),
        control=ctx.control,
    )
    return result.to_dict()


def finetune_job(ctx: JobContext) -> dict[str, Any]:
    """``nn.services.finetune.run_finetune`` in a worker. ``ctx.config``: ``{"base": the saved
    model's path, "name": the new model's name, "models_dir", "settings", "runs_db"}``;
    ``ctx.arrays``: the drawings ``x`` and their digits ``y``. Emits ``started`` and every
    ``TrainingEvent`` as ``train_job`` does; returns the status, where the new model was
    saved, the run and the scores before and after."""
    config = ctx.config
    ctx.emit({"kind": "stage", "stage": "started", "info": {}})
    result, saved, run_id = run_finetune(
        config["base"],
        config["name"],
        ctx.arrays["x"],
        ctx.arrays["y"],
        models_dir=config["models_dir"],
        settings=config.get("settings"),
        runs_path=config.get("runs_db"),
        on_event=lambda event: _emit_training_event(ctx, event),
        control=ctx.control,
        listener=lambda stage, info: ctx.emit({"kind": "stage", "stage": stage, "info": info}),
    )
    return {
        "status": run_status(result.stop_reason, stop_requested=ctx.control.stop_requested),
        "saved": None if saved is None else str(saved),
        "run_id": run_id,
        "result": {
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
    }


def search_result_from_job(job: Job):
    """The ``nn.search.SearchResult`` a search job sent back."""
    value = dict(job.value)
    value.pop("best_params", None)
    value["trials"] = [Trial(**trial) for trial in value["trials"]]
    return SearchResult(**value)


def model_from_job(job: Job):
    """The fitted ``NeuralNetwork`` a training job sent back (``None`` when there is none)."""
    meta = job.value.get("model") if isinstance(job.value, dict) else None
    if not meta or not job.arrays:
        return None
    return from_state(meta, job.arrays)
