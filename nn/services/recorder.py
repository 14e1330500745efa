"""The one recorder of jobs in the run store: a training's run, a fine-tuning's run, and a search
with its trials (through :meth:`RunRecorder.search_record`, the search engine's ``record``).

The rule for database errors, the same for every job: **a failing run database never fails a job and
never loses what it trained.** Whatever goes wrong with the database (it cannot be opened, is not a
database, is locked, full, or of a newer version), the error is kept in :attr:`RunRecorder.errors`,
told to the job's listener as a ``run_error`` stage (warned as a ``RuntimeWarning`` when there is no
listener), and the job goes on: the run is recorded partly or not at all, and the model is saved as
it would have been. The dashboard shows the errors under the job, as a warning; the command line
prints ``warning: run database: ...`` on stderr and exits as the job did. Reading the runs (the Runs
page, ``python -m nn runs``) is no job: there an unusable database is an error that names its file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from nn.core.network import NeuralNetwork
from nn.core.params import json_params
from nn.services.run_records import HISTORY_KEYS
from nn.services.runs import RunStore

__all__ = ["RunRecorder"]

Listener = Callable[[str, dict[str, Any]], Any]

# a trial's status (nn.search.results.TRIAL_STATUSES) as its run's
_TRIAL_RUN_STATUS = {
    "finished": "finished",
    "pruned": "stopped",
    "cancelled": "stopped",
    "failed": "failed",
    "diverged": "diverged",
}


class RunRecorder:
    """Records one job in the run store at ``runs_db`` (None: the default store, see
    ``nn.services.runs.default_runs_path``); ``record=False``: nothing is recorded.
    ``listener(stage, info)`` hears ``run_error`` with ``{"message": ...}`` for every database error
    (without one, a ``RuntimeWarning`` says it) (see the module docstring for the rule). Every
    method returns ``None`` instead of an id when the database failed."""

    def __init__(
        self,
        runs_db: str | os.PathLike | None = None,
        *,
        record: bool = True,
        listener: Listener | None = None,
    ):
        self.listener = listener
        self.errors: list[str] = []
        self.store: RunStore | None = None
        self._last_elapsed: dict[int, float] = {}  # run id -> the last epoch's elapsed seconds
        if record:
            self.store = self._do(lambda: RunStore(runs_db) if runs_db else RunStore())
            if self.store is not None:  # runs of processes that are gone
                self._do(self.store.mark_interrupted)

    @property
    def path(self) -> str | None:
        """The database file, or None when nothing is recorded."""
        return None if self.store is None else str(self.store.path)

    def _do(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``write(*args, **kwargs)``; a database error is noted, never raised."""
        try:
            return write(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the rule: a database never fails a job
            text = f"{type(exc).__name__}: {exc}"
            self.errors.append(text)
            if self.listener is None:
                warnings.warn(f"run database: {text}", RuntimeWarning, stacklevel=3)
            else:
                self.listener("run_error", {"message": text})
            return None

    # ------------------------------------------------------------------ one run
    def start_run(
        self,
        config: Mapping[str, Any],
        *,
        name: str | None,
        source: str,
        seed: int | None = None,
        dataset: str | None = None,
        search_id: int | None = None,
    ) -> int | None:
        """A new ``running`` run; its id (None: not recorded)."""
        if self.store is None:
            return None
        return self._do(
            self.store.start_run,
            dict(config),
            name=name,
            source=source,
            seed=seed,
            dataset=dataset,
            search_id=search_id,
        )

    def log_event(self, run_id: int | None, event: Any) -> None:
        """A ``TrainingEvent`` of the run: an ``epoch`` event is written (its ``seconds`` the
        epoch's own, from the difference of consecutive events' cumulative ``elapsed``; the
        first epoch, or a restart, takes ``elapsed``), other kinds are not."""
        if self.store is None or run_id is None or getattr(event, "kind", None) != "epoch":
            return
        elapsed = getattr(event, "elapsed", None)
        seconds = None
        if elapsed is not None:
            previous = self._last_elapsed.get(run_id)
            restarted = previous is None or elapsed < previous
            seconds = elapsed if restarted else elapsed - previous
            self._last_elapsed[run_id] = elapsed
        values = {key: getattr(event, key, None) for key in HISTORY_KEYS if key != "epoch"}
        self._do(self.store.log_epoch, run_id, event.epoch, **{**values, "seconds": seconds})

    def log_history(self, run_id: int | None, history: Mapping[str, list]) -> None:
        """Epochs given as a ``history_`` dict of lists (a search's trial)."""
        if self.store is None or run_id is None:
            return
        for i, epoch in enumerate(history.get("epoch", [])):
            values = {
                key: history[key][i]
                for key in HISTORY_KEYS
                if key != "epoch" and i < len(history.get(key, []))
            }
            self._do(self.store.log_epoch, run_id, int(epoch), **values)

    def finish_run(
        self,
        run_id: int | None,
        status: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        model_path: str | os.PathLike | None = None,
        message: str | None = None,
    ) -> None:
        """Close the run with a final status (``nn.services.status.RUN_STATUSES``)."""
        if self.store is None or run_id is None:
            return
        self._do(
            self.store.finish_run,
            run_id,
            status,
            metrics={k: v for k, v in dict(metrics or {}).items() if v is not None},
            model_path=model_path,
            message=None if message is None else str(message)[:2000],
        )

    def update_run(self, run_id: int | None, **fields: Any) -> None:
        """Change a run after it ended (``RunStore.update_run``: name, metrics, model path)."""
        if self.store is not None and run_id is not None:
            self._do(self.store.update_run, run_id, **fields)

    # ------------------------------------------------------------------ a search
    def search_record(self) -> Callable[[str, dict[str, Any]], Any]:
        """The search engine's ``record`` callback (``nn.search.engine.Record``): the search
        as a row of ``searches`` and every trial as a run (``source="tune"``, ``search_id``,
        config ``{"model": every NeuralNetwork setting, "data": the search's data settings,
        "search": {"search_id", "trial", "params"}}``) with its epochs."""
        search: dict[str, Any] = {"data": {}}

        def record(kind: str, info: dict[str, Any]) -> Any:
            if self.store is None:
                return None
            if kind == "search_started":
                search["data"] = dict(info["search"].get("data") or {})
                return self._do(self.store.start_search, info["search"], name=info["name"])
            if kind == "trial_started":
                return self._start_trial(info["trial"], info["search_id"], info["name"], search)
            if kind == "trial_epochs":
                self.log_history(info["trial"].run_id, info["history"])
            elif kind == "trial_finished":
                self._finish_trial(info["trial"])
            elif kind == "search_finished":
                best = info["best"]
                self._do(
                    self.store.finish_search,
                    info["search_id"],
                    info["status"],
                    best_run_id=None if best is None else best.run_id,
                    message=info["message"],
                )
            return None

        return record

    def _start_trial(self, trial: Any, search_id: int | None, name: str, search: dict) -> Any:
        config = {
            "model": json_params(NeuralNetwork(**trial.config).get_params()),
            "data": search["data"],
            "search": {"search_id": search_id, "trial": trial.index, "params": trial.params},
        }
        seed = trial.config.get("random_state")
        return self.start_run(config, name=name, source="tune", seed=seed, search_id=search_id)

    def _finish_trial(self, trial: Any) -> None:
        status = _TRIAL_RUN_STATUS.get(trial.status, "finished")
        metrics = {
            "train_accuracy": (trial.history.get("train_accuracy") or [None])[-1],
            "loss": (trial.history.get("loss") or [None])[-1],
            "val_loss": (trial.history.get("val_loss") or [None])[-1],
            "val_accuracy": trial.val_accuracy,
            "epochs": trial.epochs,
            "trial": trial.index,
            "train_seconds": round(trial.seconds, 3),
        }
        message = trial.message or None
        if trial.status == "pruned":
            message = f"pruned by successive halving after {trial.epochs} epoch(s)"
        self.finish_run(trial.run_id, status, metrics=metrics, message=message)
