"""Learning-rate schedules with optional linear warm-up.

Warm-up and cosine move smoothly per batch; step, exponential and inverse-time change once per
epoch, as they are usually defined: inverse-time is ``lr0 / (1 + decay * epoch)``, step multiplies
by ``gamma`` every ``step_size`` epochs, exponential by ``gamma`` every epoch.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine")


def learning_rate(
    schedule: str,
    lr0: float,
    epoch: int,
    total_epochs: int,
    progress: float = 0.0,
    *,
    decay: float = 0.0,
    step_size: int = 10,
    gamma: float = 0.5,
    warmup_epochs: float = 0.0,
    min_lr: float = 0.0,
) -> float:
    """The learning rate in epoch ``epoch`` (0-based) of ``total_epochs``.

    ``progress`` in (0, 1] is the fraction of the current epoch done once this batch is applied; it
    moves warm-up and cosine smoothly per batch. Step, exponential and inverse-time use the whole
    epoch only.
    """
    t = epoch + progress
    if warmup_epochs > 0 and t < warmup_epochs:
        return lr0 * t / warmup_epochs
    if schedule == "constant":
        return lr0
    if schedule == "step":
        return lr0 * gamma ** (epoch // step_size)
    if schedule == "exponential":
        return lr0 * gamma**epoch
    if schedule == "inverse_time":
        return lr0 / (1.0 + decay * epoch)
    if schedule == "cosine":
        span = max(total_epochs - warmup_epochs, 1e-12)
        done = min(max((t - warmup_epochs) / span, 0.0), 1.0)
        return min_lr + 0.5 * (lr0 - min_lr) * (1.0 + math.cos(math.pi * done))
    raise ValueError(f"schedule={schedule!r} is not allowed: choose one of {', '.join(SCHEDULES)}.")
