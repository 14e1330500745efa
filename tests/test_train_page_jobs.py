"""The Train page's trainings in the server's job runner (worker processes): a queued training
shows its place, a killed worker shows as a failed training while the page goes on, a training
belongs to its owner and outlives the session that started it, a stopped queued one leaves the
queue."""

from __future__ import annotations

import json
import os
import signal
import time

import job_functions
import pytest
from apptest_support import APP, APPTEST_SESSION_ID
from streamlit.runtime.caching.cache_resource_api import clear_session_cache
from streamlit.testing.v1 import AppTest
from test_train_page import small_form, wait_finished

from nn.services.jobs import JobRunner
from ui.session_jobs import JobBoard, start_training
from ui.state import job_runner

PAGE = "pages/train.py"
WAIT = 120


@pytest.fixture
def open_train(env, open_app):
    return lambda: open_app(PAGE)


def _wait_for_a_batch(job) -> None:
    end = time.monotonic() + WAIT
    while job.snapshot()["batch"] == 0 and time.monotonic() < end:
        job.wait(0.1)
    assert job.snapshot()["batch"] > 0, "no batch trained in time"


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
    # no clock running and no images counted while it waits; the chart says it waits, in its
    # batch panel (not "no batches yet" over a panel's title)
    line = texts(at.caption)
    assert "elapsed" not in line and "counting the images" not in line
    assert "starts by itself when its turn comes" in line
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    (note,) = chart["layout"]["annotations"][-1:]
    assert note["text"] == "waiting for a free worker: place 1 in the queue"
    assert note["yref"] == "y3 domain"
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


def _owners_training(runner, board, owner, tmp_path, epochs):
    return start_training(
        board,
        runner,
        owner,
        {"hidden_layers": [16], "epochs": epochs, "batch_size": 50, "random_state": 0},
        {"train_size": 300},
        runs_path=str(tmp_path / "runs.sqlite"),
    )


def test_a_queued_training_stopped_leaves_the_queue(one_slot_runner, tmp_path):
    runner, board = one_slot_runner, JobBoard()
    running = _owners_training(runner, board, "first", tmp_path, epochs=500)
    queued = _owners_training(runner, board, "second", tmp_path, epochs=500)
    assert queued.snapshot()["status"] == "queued" and queued.snapshot()["queue_position"] == 1
    assert queued.runner_job.owner == "second"
    queued.stop()
    queued.stop()  # again: nothing more happens
    running.stop()
    assert running.wait(WAIT) and queued.wait(WAIT)
    assert running.snapshot()["status"] == "stopped"
    assert running.runner_job.status == "stopped"
    assert queued.snapshot()["status"] == "stopped"
    assert queued.snapshot()["stop_message"] == "Stopped while waiting in the queue."
    assert queued.runner_job.status == "cancelled"
    assert runner.counts() == {"running": 0, "queued": 0}


def test_a_training_outlives_its_session_and_another_session_controls_it(
    open_train, texts, started_jobs
):
    """A new session (a reload, another tab) of the same person finds the running training on
    the Train page, with its form, and stops it; ending the first session stops nothing."""
    at = open_train()
    small_form(at, epochs=300)
    at.button(key="start_training").click().run()
    (job,) = started_jobs
    _wait_for_a_batch(job)
    clear_session_cache(APPTEST_SESSION_ID)  # the tab is gone: its session's resources too
    assert not job.done and not job.stop_requested
    again = AppTest.from_file(APP, default_timeout=60)
    again.run()
    again.switch_page(PAGE).run()
    assert not again.exception
    assert "Training — epoch" in again.get("progress")[0].proto.text
    assert again.number_input(key="tf_epochs").value == 300  # the training's own form
    assert again.button(key="start_training").disabled
    again.button(key="stop_training").click().run()
    assert job.wait(WAIT)
    again.run()
    assert "Stopped" in again.get("progress")[0].proto.text
    assert again.button(key="save_model") is not None  # its model waits to be saved
