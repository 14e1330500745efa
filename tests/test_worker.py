"""The dashboard's training as a job of the runner (``ui.session_jobs``): a worker process, its
messages folded into the snapshot when it is read; pause, resume, stop, failures, divergence,
the run record, the owner's board and its idle limits."""

from __future__ import annotations

import os
import time

import pytest

from nn.services.jobs import JobRunner
from nn.services.runs import RunStore
from ui.live import PAUSED_SECONDS, STATUS_SECONDS, status_poll_seconds
from ui.session_jobs import JobBoard, start_training

WAIT = 120
DATA = {"split": "standard", "seed": 0, "train_size": 600}


@pytest.fixture(scope="module")
def runner():
    runner = JobRunner(max_jobs=2, blas_threads=1)
    yield runner
    runner.shutdown(timeout=WAIT)


def _train(runner, tmp_path, board=None, owner="someone", **model):
    runs_path = str(model.pop("runs_path", tmp_path / "runs.sqlite"))
    kwargs = {"hidden_layers": [16], "epochs": 2, "batch_size": 50, "random_state": 0}
    kwargs.update(model)
    return start_training(board or JobBoard(), runner, owner, kwargs, DATA, runs_path=runs_path)


def _wait_for(job, predicate, what: str):
    """Read the job's snapshot until ``predicate`` holds (the runner's threads fill it)."""
    end = time.monotonic() + WAIT
    while not predicate(job.snapshot()) and time.monotonic() < end:
        job.runner_job.wait(0.05)
    snap = job.snapshot()
    assert predicate(snap), f"no {what} within {WAIT} s: {snap['status']}"
    return snap


def test_finishes_and_records_in_a_worker_process(runner, tmp_path):
    job = _train(runner, tmp_path)
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert job.runner_job.worker["pid"] != os.getpid() and job.runner_job.owner == "someone"
    assert snap["history"]["epoch"] == [1, 2]
    assert snap["test_accuracy"] > 0.3 and snap["val_accuracy"] is not None
    assert len(snap["batch_loss"]) == len(snap["batch_ema"]) == len(snap["batch_steps"]) > 0
    assert snap["progress"] == 1.0 and snap["inside"]["epochs"]
    assert job.result.n_iter_ == 2
    run = RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"])
    assert run.status == "finished" and run.epochs_done == 2
    assert run.history["epoch"] == [1, 2]
    assert all(s > 0 for s in run.history["seconds"])  # each epoch's own duration
    assert snap["run_errors"] == []


def test_a_run_database_that_cannot_be_opened_is_noted_and_the_model_is_kept(runner, tmp_path):
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is no database" * 100)
    job = _train(runner, tmp_path, runs_path=broken)
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert job.result is not None and job.result.n_iter_ == 2
    assert snap["run_id"] is None and len(snap["run_errors"]) == 1


def test_pause_blocks_resume_continues_stop_stops(runner, tmp_path):
    job = _train(runner, tmp_path, epochs=300)
    _wait_for(job, lambda s: s["batches_seen"] >= 2, "two batches")
    job.pause()
    assert job.control._blocked.wait(WAIT)  # blocked between two batches in its worker
    before = job.snapshot()
    assert job.control._blocked.wait(0)  # still blocked
    after = job.snapshot()
    assert after["paused"] and after["alive"] and not job.done
    assert after["batches_seen"] == before["batches_seen"]
    job.resume()
    _wait_for(job, lambda s: s["batches_seen"] > after["batches_seen"], "one more batch")
    job.stop()
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "stopped" and snap["stop_reason"] == "callback"
    assert snap["epoch"] < 300 and job.result is not None


def test_stop_while_paused(runner, tmp_path):
    job = _train(runner, tmp_path, epochs=300)
    _wait_for(job, lambda s: s["batches_seen"] >= 1, "a batch")
    job.pause()
    assert job.control._blocked.wait(WAIT)
    job.stop()
    assert job.wait(WAIT) and job.snapshot()["status"] == "stopped"


def test_bad_settings_fail_before_a_worker_or_a_run(runner, tmp_path):
    job = _train(runner, tmp_path, learning_rate=-1.0)  # refused before submitting
    snap = job.snapshot()
    assert job.done and job.runner_job is None
    assert snap["status"] == "failed" and "learning_rate" in snap["error"]
    job = _train(runner, tmp_path, batch_size=100_000)  # larger than the data: in the worker
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "failed" and snap["run_id"] is None
    assert "batch_size" in snap["error"] and "Traceback" in snap["traceback"]
    assert not (tmp_path / "runs.sqlite").exists()


def test_diverging_config_reports_diverged(runner, tmp_path):
    job = _train(runner, tmp_path, optimizer="sgd", learning_rate=1e10)
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "diverged"
    assert "learning rate" in snap["stop_message"]
    assert RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"]).status == "diverged"


def test_continue_training_counts_on(runner, tmp_path):
    first = _train(runner, tmp_path, epochs=1)
    assert first.wait(WAIT) and first.result is not None
    job = start_training(
        JobBoard(),
        runner,
        "someone",
        {"hidden_layers": [16], "epochs": 2, "batch_size": 50},
        DATA,
        model=first.result,
        record=False,
    )
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert job.result.n_iter_ == 3 and snap["epochs"] == 3


def test_the_board_keeps_one_job_per_owner_and_applies_its_limits(runner, tmp_path):
    """A new training of the same owner stops the old one; a paused job nobody polls is stopped
    after the idle limit; an ended job leaves the board after the result limit."""
    now = [0.0]
    board = JobBoard(idle_seconds=60, result_seconds=3600, clock=lambda: now[0])
    first = _train(runner, tmp_path, board=board, epochs=300)
    _wait_for(first, lambda s: s["batches_seen"] >= 1, "a batch")
    other = _train(runner, tmp_path, board=board, owner="someone else", epochs=300)
    assert board.get("someone", "train") is first and board.get("someone else", "train") is other
    second = _train(runner, tmp_path, board=board, epochs=300)
    assert first.stop_requested and board.get("someone", "train") is second
    assert first.wait(WAIT) and first.snapshot()["status"] == "stopped"
    other.stop()
    _wait_for(second, lambda s: s["batches_seen"] >= 1, "a batch")
    second.pause()
    now[0] = second.polled_at + 30
    assert board.get("someone", "train") is second and not second.stop_requested
    now[0] = second.polled_at + 61  # paused, and no page has read it for a minute
    board.get("someone", "train")
    assert second.stop_requested
    assert second.wait(WAIT) and second.snapshot()["status"] == "stopped"
    assert "paused with no page open" in second.snapshot()["stop_message"]
    now[0] = second.ended_at + 3599
    assert board.get("someone", "train") is second  # the result waits to be saved
    now[0] = second.ended_at + 3601
    assert board.get("someone", "train") is None


def test_the_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("NN_JOB_IDLE_MINUTES", "5")
    monkeypatch.setenv("NN_JOB_RESULT_HOURS", "0.5")
    board = JobBoard.from_environment()
    assert (board.idle_seconds, board.result_seconds) == (300, 1800)
    monkeypatch.setenv("NN_JOB_IDLE_MINUTES", "soon")
    with pytest.raises(ValueError, match="NN_JOB_IDLE_MINUTES='soon' is not a number"):
        JobBoard.from_environment()
    monkeypatch.setenv("NN_JOB_IDLE_MINUTES", "-1")
    with pytest.raises(ValueError, match="NN_JOB_IDLE_MINUTES must be a positive number"):
        JobBoard.from_environment()


def test_an_open_page_polls_a_paused_job_often_enough_to_keep_it():
    """A paused job on an open page is polled seldom, but well within the idle limit; an ended
    one not at all."""
    assert status_poll_seconds(True, False) == STATUS_SECONDS
    assert status_poll_seconds(True, True) == PAUSED_SECONDS < JobBoard().idle_seconds / 10
    assert status_poll_seconds(False, False) is None
