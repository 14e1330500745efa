"""What training reports: the ``TrainingEvent`` a ``fit`` callback receives and the keys of a
fitted model's ``history_`` (why it stopped is its ``stop_reason_``: "completed",
"early_stopping", "callback" or "diverged")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EPOCH_KEYS = (
    "epoch",
    "loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)
"""The per-epoch lists of ``history_`` (one value per finished epoch)."""
HISTORY_KEYS = (*EPOCH_KEYS, "batch_loss")
"""Every list of ``history_``: the per-epoch ones and ``batch_loss``, one value per batch."""


@dataclass(frozen=True)
class TrainingEvent:
    """What a training callback receives after every batch (``kind="batch"``) and epoch
    (``kind="epoch"``). ``epoch`` counts from 1 over the model's whole life (continued training
    counts on); validation fields are ``None`` when there is no validation set or mid-epoch.
    When training diverges, one ``kind="diverged"`` event comes before the last good weights are
    restored (``batch`` and ``loss`` say where and how; ``train_accuracy`` is NaN)."""

    kind: str
    epoch: int
    epochs: int
    batch: int
    n_batches: int
    loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    samples_per_second: float
    elapsed: float


Callback = Callable[[TrainingEvent], Any]
