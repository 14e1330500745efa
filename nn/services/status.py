"""The one vocabulary of statuses, for a job in the runner, a job on the dashboard, and a run or
search in the run store; each of them uses a part of it.

    queued       waiting in the runner's queue for a free worker
    preparing    started, loading its data (a dashboard job, before its first batch)
    running      training (a recorded run: not ended yet)
    finished     ended by itself: its epochs, early stopping, its search's budget
    stopped      ended early on request (Stop, Ctrl-C), keeping what it learnt
    diverged     the loss went to infinity: the model keeps its last good epoch
    failed       ended by an error: an exception, a crash or a killed worker
    cancelled    ended before it did anything (left the queue; a search cancelled on request)
    timeout      a search whose time ran out
    interrupted  a recorded run whose process ended without saying how (found later)
"""

from __future__ import annotations

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "RUNNER_STATUSES",
    "RUN_STATUSES",
    "STATUSES",
    "is_final",
]

STATUSES: tuple[str, ...] = (
    "queued",
    "preparing",
    "running",
    "finished",
    "stopped",
    "diverged",
    "failed",
    "cancelled",
    "timeout",
    "interrupted",
)
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "preparing", "running")
"""A job with one of these has not ended."""
FINAL_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)

RUNNER_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "finished",
    "stopped",
    "failed",
    "cancelled",
)
"""What ``nn.services.jobs.Job.status`` can be: the runner knows a worker's outcome, not how the
training inside it ended (its value says that)."""
RUN_STATUSES: tuple[str, ...] = (
    "running",
    "finished",
    "stopped",
    "diverged",
    "failed",
    "interrupted",
)
"""What a run or search in ``nn.services.runs.RunStore`` can be."""


def is_final(status: str | None) -> bool:
    """Whether a job or run with this status has ended."""
    return status in FINAL_STATUSES
