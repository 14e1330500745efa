"""The bookkeeping of one call of ``NeuralNetwork.fit``'s loop (the loop itself is the
estimator's): where the run is, the last good and the best weights, early stopping's patience,
the divergence rule, the events a callback receives, the messages that say why training
stopped, and the stratified hold-out early stopping validates on."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core.events import TrainingEvent

DIVERGENCE_FACTOR = 100.0
"""A batch loss above this many times max(ln(classes), the fit's first batch loss) diverged."""


@dataclass
class FitRun:
    """The state of one call of ``fit``'s loop, shared by its named steps. Epochs count from 0
    here and from 1 in what a person reads."""

    batch_size: int
    first_epoch: int
    last_epoch: int
    n_batches: int
    safe: tuple
    """The snapshot of the last good weights (the end of the last finished epoch)."""
    best: tuple | None = None
    best_score: float | None = None
    waited: int = 0
    loss_limit: float = math.inf
    start: float = 0.0
    epoch_start: float = 0.0

    def __post_init__(self) -> None:
        self.start = time.perf_counter()

    def event(
        self,
        kind: str,
        epoch: int,
        batch: int,
        loss: float,
        accuracy: float,
        lr: float,
        speed: float,
        val_loss: float | None = None,
        val_accuracy: float | None = None,
    ) -> TrainingEvent:
        """The ``TrainingEvent`` after ``batch`` (from 1) of ``epoch``."""
        return TrainingEvent(
            kind=kind,
            epoch=epoch + 1,
            epochs=self.last_epoch,
            batch=batch,
            n_batches=self.n_batches,
            loss=loss,
            train_accuracy=accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            learning_rate=lr,
            samples_per_second=speed,
            elapsed=time.perf_counter() - self.start,
        )

    def diverges(self, loss: float, n_classes: int) -> bool:
        """Whether a batch loss diverged: not finite, or above ``DIVERGENCE_FACTOR`` times
        max(ln(classes), the run's first finite batch loss)."""
        if self.loss_limit == math.inf and math.isfinite(loss):
            self.loss_limit = DIVERGENCE_FACTOR * max(math.log(n_classes), loss)
        return not (math.isfinite(loss) and loss <= self.loss_limit)

    def patience_ran_out(self, score: float, min_delta: float, patience: int) -> bool:
        """Early stopping's count after an epoch scoring ``score`` (lower is better): an
        improvement of more than ``min_delta`` keeps the epoch's weights as the best and starts
        the count again; whether ``patience`` epochs went by without one."""
        if self.best_score is None or score < self.best_score - min_delta:
            self.best_score, self.waited, self.best = score, 0, self.safe
            return False
        self.waited += 1
        return self.waited >= patience


def diverged_message(epoch: int, batch: int, loss: float, lr: float, kept: int, lr0: float) -> str:
    """Why training stopped at ``batch`` of ``epoch`` (both from 0), keeping the weights of
    epoch ``kept`` (0: the initial ones), and what to try."""
    weights = f"the weights from the end of epoch {kept}" if kept else "the initial weights"
    return (
        f"Training diverged in epoch {epoch + 1}, batch {batch + 1}: the loss became {loss} "
        f"at learning rate {lr:.3g}; {weights} were kept. Try a lower learning rate (for "
        f"example {lr0 / 10:.3g}), gradient clipping (clip_norm), or a different initialisation."
    )


def early_stopping_message(epoch: int, monitor: str, patience: int, waited: int) -> str:
    return (
        f"Early stopping after epoch {epoch + 1}: {monitor} did not improve for {patience} "
        f"epochs; restored the best weights (epoch {epoch + 1 - waited})."
    )


def hold_out(
    X: Any, y_idx: np.ndarray, n_classes: int, fraction: float, rng: np.random.Generator
) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """``(X, y, X_val, y_val)``: ``fraction`` of every class held out for validation, the
    rows drawn from ``rng``; ``ValueError`` when that leaves either part empty."""
    order = rng.permutation(X.shape[0])
    val = []
    for c in range(n_classes):
        members = order[y_idx[order] == c]
        val.append(members[: int(round(len(members) * fraction))])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(X.shape[0], bool)
    mask[val_idx] = False
    if not val_idx.size or mask.sum() == 0:
        raise ValueError("Too few samples to hold out a validation set for early stopping.")
    return X[mask], y_idx[mask], X[val_idx], y_idx[val_idx]
