"""What a search reports: its :class:`Trial`s, the :class:`SearchResult` and the
:class:`SearchEvent`s its callback receives."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["TRIAL_STATUSES", "SearchEvent", "SearchResult", "Trial"]

TRIAL_STATUSES = ("running", "finished", "diverged", "pruned", "failed", "cancelled")


@dataclasses.dataclass
class Trial:
    """One trial of a search. ``params`` are the searched values, ``config`` the full
    ``NeuralNetwork`` keyword arguments (``epochs`` = the budget ``epochs_per_trial``; the
    epochs it actually trained, fewer when pruned, are ``epochs``)."""

    index: int
    params: dict
    config: dict
    status: str = "running"
    val_accuracy: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    rung: int = 0
    run_id: int | None = None
    stop_reason: str | None = None
    message: str = ""
    history: dict = dataclasses.field(default_factory=dict)

    def to_dict(self, history: bool = False) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not history:
            out.pop("history")
        return out


@dataclasses.dataclass
class SearchResult:
    trials: list[Trial]
    best_config: dict | None
    best_val_accuracy: float | None
    best_trial: int | None
    status: str  # "finished", "cancelled", "timeout"
    search_id: int | None
    space: dict
    strategy: str
    seconds: float
    message: str = ""

    @property
    def best_params(self) -> dict | None:
        return None if self.best_trial is None else dict(self.trials[self.best_trial].params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "search_id": self.search_id,
            "strategy": self.strategy,
            "space": self.space,
            "seconds": round(self.seconds, 3),
            "best_trial": self.best_trial,
            "best_val_accuracy": self.best_val_accuracy,
            "best_params": self.best_params,
            "best_config": self.best_config,
            "message": self.message,
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclasses.dataclass
class SearchEvent:
    """What ``run_search``'s callback receives; a truthy return cancels the search.

    ``kind``: ``search_started``, ``trial_started``, ``trial_epoch`` (only when trials run in
    this process, ``n_jobs=1``; cancelling there stops the running trial too),
    ``trial_finished`` (after each rung: ``trial.status`` is ``running`` when it may go on),
    ``rung_finished``, ``search_finished``. ``trials`` is a snapshot of every trial as dicts.
    """

    kind: str
    trial: dict | None
    trials: list[dict]
    rung: int
    n_rungs: int
    n_trials: int
    elapsed: float
    best_val_accuracy: float | None
    epoch: int | None = None
    val_accuracy: float | None = None
    message: str = ""
