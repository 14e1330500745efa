"""Turns across owners: the queue policy that keeps one person's ten jobs from starving another's
one, and caps how many jobs one person runs at once.

The next job to start is the oldest waiting job of the owner who was served longest ago (an
owner never served comes first, in the order their first job arrived), among the owners running
fewer than ``jobs_per_owner`` jobs. So with three people queueing, jobs start A, B, C, A, B, C...
whatever order they were submitted in. Owners in ``exempt`` (the command line's ``None`` and the
dashboard's ``"local"`` workspace, the single user of a server without sign-in) have no cap.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import Any

JOBS_PER_OWNER_ENV = "NN_JOBS_PER_USER"
DEFAULT_JOBS_PER_OWNER = 1
UNCAPPED_OWNERS = frozenset({None, "local"})


class FairQueue:
    """Round-robin across owners, with at most ``jobs_per_owner`` running jobs per owner
    (``None``: no cap). The runner calls its methods under its lock; ``pop(running)`` returns
    ``None`` when every waiting job's owner is at the cap."""

    def __init__(
        self, jobs_per_owner: int | None = DEFAULT_JOBS_PER_OWNER, exempt=UNCAPPED_OWNERS
    ) -> None:
        if jobs_per_owner is not None and jobs_per_owner < 1:
            raise ValueError(f"jobs per owner must be at least 1, not {jobs_per_owner}")
        self.jobs_per_owner = jobs_per_owner
        self.exempt = frozenset(exempt)
        self._waiting: dict[Any, collections.deque] = {}
        self._served: dict[Any, int] = {}  # owner -> turn of their last start
        self._turns = itertools.count(1)
        self._arrived = itertools.count()
        self._first_arrival: dict[Any, int] = {}

    def push(self, job) -> None:
        owner = job.owner
        if owner not in self._waiting:
            self._waiting[owner] = collections.deque()
            self._first_arrival[owner] = next(self._arrived)
        self._waiting[owner].append(job)

    def _rank(self, owner: Any, served: dict[Any, int]) -> tuple[int, int]:
        return served.get(owner, 0), self._first_arrival[owner]

    def capped(self, owner: Any, running: Iterable) -> bool:
        """Whether ``owner`` runs as many jobs as the cap allows."""
        if self.jobs_per_owner is None or owner in self.exempt:
            return False
        return sum(1 for job in running if job.owner == owner) >= self.jobs_per_owner

    def pop(self, running: Iterable = ()) -> Any:
        """The job to start next, or ``None`` when every waiting owner is at the cap."""
        running = list(running)
        owners = [o for o in self._waiting if not self.capped(o, running)]
        if not owners:
            return None
        owner = min(owners, key=lambda o: self._rank(o, self._served))
        self._served[owner] = next(self._turns)
        return self._take(owner)

    def _take(self, owner: Any):
        jobs = self._waiting[owner]
        job = jobs.popleft()
        if not jobs:
            del self._waiting[owner]
            del self._first_arrival[owner]
        return job

    def remove(self, job) -> bool:
        jobs = self._waiting.get(job.owner)
        if not jobs or job not in jobs:
            return False
        jobs.remove(job)
        if not jobs:
            del self._waiting[job.owner]
            del self._first_arrival[job.owner]
        return True

    def order(self) -> list:
        """The waiting jobs in the order they would start if every slot freed at once and no
        cap held: turns across owners, each owner's jobs oldest first."""
        served = dict(self._served)
        waiting = {owner: list(jobs) for owner, jobs in self._waiting.items()}
        turn = max(served.values(), default=0)
        out = []
        while waiting:
            owner = min(waiting, key=lambda o: self._rank(o, served))
            out.append(waiting[owner].pop(0))
            if not waiting[owner]:
                del waiting[owner]
            turn += 1
            served[owner] = turn
        return out

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._waiting.values())
