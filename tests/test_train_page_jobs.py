"""The Train page's trainings in the server's job runner (worker processes): a queued training
shows its place, a killed worker shows as a failed training while the page goes on, closing the
session stops its job (and a queued one leaves the queue)."""

from __future__ import annotations

import os
import signal
import time

import job_functions
import pytest
from test_train_page import small_form, wait_finished

from nn.services.jobs import JobRunner
from ui.state import TrainingSlot, _release_slot, job_runner
from ui.worker import TrainingWorker

PAGE = "pages/train.py"
WAIT = 120


@pytest.fixture
def open_train(env, open_app):
    return lambda: open_app(PAGE)


def _wait_for_a_batch(worker) -> None:
    end = time.monotonic() + WAIT
    while worker.snapshot()["batch"] == 0 and time.monotonic() < end:
        worker.join(0.1)
    assert worker.snapshot()["batch"] > 0, "no batch trained in time"


def _holders(runner, n):
    """Fill ``n`` of the runner's slots with jobs that wait until stopped."""
    jobs = [runner.submit(job_functions.hold_until_stopped) for _ in range(n)]
    for job in jobs:
        end = time.time() + WAIT
        while job.last_event is None and time.time() < end:
            job.wait(0.1)
        assert job.last_event == {"kind": "holding"}
    return jobs


def _training_job(runner):
    jobs = [j for j in runner.jobs() if not j.done and j.target == "train"]
    assert len(jobs) == 1
    return jobs[0]


def test_a_queued_training_shows_its_place_then_runs(open_train, texts, started_jobs):
    at = open_train()
    runner = job_runner()  # the server's runner (cached across the test's script runs)
    holders = _holders(runner, runner.max_jobs - runner.counts()["running"])
    small_form(at, epochs=2)
    at.button(key="start_training").click().run()
    progress = at.get("progress")[0].proto.text
    assert "Waiting for a free worker: place 1 in the queue" in progress
    assert _training_job(runner).queue_position == 1
    for job in holders:
        job.stop()
    wait_finished(at, started_jobs[-1])
    assert "Training finished" in texts(at.success)


def test_a_killed_worker_is_a_failed_training_and_the_page_goes_on(open_train, texts, started_jobs):
    at = open_train()
    small_form(at, epochs=300)
    at.button(key="start_training").click().run()
    _wait_for_a_batch(started_jobs[-1])
    job = _training_job(job_runner())
    os.kill(job.worker["pid"], signal.SIGKILL)
    wait_finished(at, started_jobs[-1])
    assert not at.exception
    errors = texts(at.error)
    assert "Training failed" in errors and "SIGKILL" in errors
    small_form(at, epochs=2)  # the page trains again
    at.button(key="start_training").click().run()
    assert len(started_jobs) == 2
    wait_finished(at, started_jobs[-1])
    assert "Training finished" in texts(at.success)


@pytest.fixture
def one_slot_runner():
    runner = JobRunner(max_jobs=1, blas_threads=1)
    yield runner
    runner.shutdown(timeout=WAIT)


def _session_worker(runner, tmp_path, epochs):
    worker = TrainingWorker(
        {"hidden_layers": [16], "epochs": epochs, "batch_size": 50, "random_state": 0},
        {"train_size": 300},
        None,
        runs_path=str(tmp_path / "runs.sqlite"),
        runner=runner,
    )
    slot = TrainingSlot()
    slot.worker = worker
    worker.start()
    return slot, worker


def test_closing_the_session_stops_its_job_and_leaves_the_queue(one_slot_runner, tmp_path):
    runner = one_slot_runner
    running_slot, running = _session_worker(runner, tmp_path, epochs=500)
    end = time.time() + WAIT
    while running.snapshot()["batch"] == 0 and time.time() < end:
        running.join(0.1)
    queued_slot, queued = _session_worker(runner, tmp_path, epochs=500)
    while queued.snapshot()["status"] != "queued" and time.time() < end:
        queued.join(0.1)
    assert queued.snapshot()["queue_position"] == 1
    _release_slot(queued_slot)  # Streamlit calls this when the tab closes
    _release_slot(running_slot)
    _release_slot(running_slot)  # again: nothing more happens
    running.join(WAIT)
    queued.join(WAIT)
    assert running.snapshot()["status"] == "stopped"
    assert running.runner_job.status == "stopped"
    assert queued.snapshot()["status"] == "stopped"
    assert queued.snapshot()["stop_message"] == "Stopped while waiting in the queue."
    assert queued.runner_job.status == "cancelled"
    assert runner.counts() == {"running": 0, "queued": 0}
