"""Turns across people in the job queue, and the cap on one person's running jobs: the policy
with given submission orders, then real worker processes. No test waits on the clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import job_functions
import pytest

from nn.services.jobs import FairQueue, JobRunner

WAIT = 300


@dataclass(eq=False)
class FakeJob:
    owner: object
    name: str


def _drain(queue: FairQueue, running=()) -> list[str]:
    out = []
    while len(queue):
        job = queue.pop(running)
        if job is None:
            break
        out.append(job.name)
    return out


def test_ten_jobs_of_one_person_do_not_starve_another():
    queue = FairQueue(jobs_per_owner=None)
    for i in range(10):
        queue.push(FakeJob("alice", f"a{i}"))
    queue.push(FakeJob("bob", "b0"))
    queue.push(FakeJob("carol", "c0"))
    queue.push(FakeJob("bob", "b1"))
    assert [j.name for j in queue.order()][:6] == ["a0", "b0", "c0", "a1", "b1", "a2"]
    assert _drain(queue)[:6] == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_person_served_recently_waits_for_the_others():
    queue = FairQueue(jobs_per_owner=None)
    queue.push(FakeJob("alice", "a0"))
    assert queue.pop().name == "a0"  # alice was just served
    queue.push(FakeJob("alice", "a1"))
    queue.push(FakeJob("bob", "b0"))
    assert [j.name for j in queue.order()] == ["b0", "a1"]
    assert queue.pop().name == "b0"


def test_one_owner_alone_is_first_come_first_served():
    queue = FairQueue(jobs_per_owner=None)
    for i in range(5):
        queue.push(FakeJob(None, str(i)))
    assert [j.name for j in queue.order()] == list("01234")
    assert _drain(queue) == list("01234")


def test_the_cap_holds_a_persons_second_job_back():
    queue = FairQueue(jobs_per_owner=1)
    running = [FakeJob("alice", "a-running")]
    queue.push(FakeJob("alice", "a1"))
    assert queue.capped("alice", running)
    assert queue.pop(running) is None  # nothing may start
    queue.push(FakeJob("bob", "b0"))
    assert queue.pop(running).name == "b0"
    assert len(queue) == 1


@pytest.mark.parametrize("owner", [None, "local"])
def test_the_command_line_and_the_local_workspace_have_no_cap(owner):
    queue = FairQueue(jobs_per_owner=1)
    running = [FakeJob(owner, "x")]
    queue.push(FakeJob(owner, "y"))
    assert queue.pop(running).name == "y"


def test_remove_keeps_the_turns():
    queue = FairQueue(jobs_per_owner=None)
    a0, a1, b0 = FakeJob("a", "a0"), FakeJob("a", "a1"), FakeJob("b", "b0")
    for job in (a0, a1, b0):
        queue.push(job)
    assert queue.remove(a0) and not queue.remove(a0)
    assert [j.name for j in queue.order()] == ["a1", "b0"]
    assert queue.remove(b0) and [j.name for j in queue.order()] == ["a1"]


def test_bad_cap_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        FairQueue(jobs_per_owner=0)


def test_runner_from_environment_reads_the_cap(monkeypatch):
    monkeypatch.setenv("NN_JOBS_PER_USER", "0")
    with pytest.raises(ValueError, match="NN_JOBS_PER_USER must be at least 1"):
        JobRunner.from_environment()


class Started:
    """Records the order in which jobs report from their workers."""

    def __init__(self):
        self.order: list[str] = []
        self._changed = threading.Condition()

    def listener(self, name):
        def hear(job, message):
            if message.get("type") == "event":
                with self._changed:
                    self.order.append(name)
                    self._changed.notify_all()

        return hear

    def wait_for(self, n):
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.order) >= n, WAIT), self.order


def test_workers_start_in_turns_and_one_person_runs_one_job():
    runner = JobRunner(max_jobs=2, blas_threads=1, queue=FairQueue(jobs_per_owner=1))
    started = Started()
    try:
        submit = lambda owner, name: runner.submit(  # noqa: E731
            job_functions.hold_until_stopped, owner=owner, listener=started.listener(name)
        )
        alice = [submit("alice", f"a{i}") for i in range(3)]
        bob = submit("bob", "b0")
        started.wait_for(2)
        assert sorted(started.order) == ["a0", "b0"]  # alice's second waits for her first
        assert alice[1].status == "queued" and runner.waits_for_own_job(alice[1])
        carol = submit("carol", "c0")
        assert [j.id for j in runner.jobs() if j.status == "queued"] == [
            alice[1].id,
            alice[2].id,
            carol.id,
        ]
        assert carol.queue_position == 1  # carol's first job goes before alice's second
        bob.stop()
        started.wait_for(3)
        assert started.order[2] == "c0"
        assert alice[1].status == "queued" and runner.waits_for_own_job(alice[1])
        alice[0].stop()
        started.wait_for(4)
        assert started.order[3] == "a1"
    finally:
        runner.shutdown(timeout=WAIT)
