"""The training worker directly: pause, resume, stop, captured exceptions, divergence."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nn.data import MNIST
from ui.worker import TrainingWorker


@pytest.fixture(scope="module")
def tiny_mnist():
    """A synthetic MNIST-shaped set (fast, no file I/O): 10 separable classes."""
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 60, (n, 784)).astype(np.uint8)
        for c in range(10):
            x[y == c, c * 70 : (c + 1) * 70] = 255
        return x, y.astype(np.int64)

    x_tr, y_tr = part(1200)
    x_te, y_te = part(200)
    return MNIST(x_tr, y_tr, x_te, y_te)


def _wait(cond, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _worker(data, tmp_path, **model):
    kwargs = {"hidden_layers": [16], "epochs": 2, "batch_size": 50, "random_state": 0}
    kwargs.update(model)
    return TrainingWorker(
        kwargs, {"split": "standard", "seed": 0}, data, runs_path=str(tmp_path / "runs.sqlite")
    )


def test_finishes_and_records(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path)
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert snap["history"]["epoch"] == [1, 2]
    assert snap["test_accuracy"] > 0.5 and snap["val_accuracy"] is not None
    assert len(snap["batch_loss"]) == len(snap["batch_ema"]) == len(snap["batch_steps"]) > 0
    assert snap["progress"] == 1.0
    from nn.services.runs import RunStore

    run = RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"])
    assert run.status == "finished" and run.epochs_done == 2
    assert run.history["epoch"] == [1, 2]
    assert all(s > 0 for s in run.history["seconds"])  # each epoch's own duration
    assert snap["run_errors"] == []


@pytest.mark.filterwarnings("ignore:run 1. could not record epoch:RuntimeWarning")
def test_database_errors_are_noted_and_training_goes_on(tiny_mnist, tmp_path, monkeypatch):
    import sqlite3

    from nn.services.runs import RunStore

    def broken(self, *args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(RunStore, "log_epoch", broken)
    w = _worker(tiny_mnist, tmp_path)
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert w.model.n_iter_ == 2
    assert snap["run_errors"] == ["OperationalError: database is locked"] * 2


def test_pause_blocks_resume_continues_stop_stops(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, epochs=200)
    w.start()
    assert _wait(lambda: w.snapshot()["batch"] >= 2)
    w.pause()
    time.sleep(0.3)  # let the current batch finish and block
    before = w.snapshot()
    time.sleep(0.5)
    after = w.snapshot()
    assert after["paused"] and w.is_alive()
    assert (after["epoch"], after["batch"]) == (before["epoch"], before["batch"])
    w.resume()
    assert _wait(
        lambda: (w.snapshot()["epoch"], w.snapshot()["batch"]) != (after["epoch"], after["batch"])
    )
    w.stop()
    w.join(30)
    snap = w.snapshot()
    assert not w.is_alive()
    assert snap["status"] == "stopped" and snap["stop_reason"] == "callback"
    assert snap["epoch"] < 200


def test_stop_while_paused(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, epochs=200)
    w.start()
    assert _wait(lambda: w.snapshot()["batch"] >= 1)
    w.pause()
    time.sleep(0.2)
    w.stop()
    w.join(10)
    assert not w.is_alive() and w.snapshot()["status"] == "stopped"


def test_exception_is_captured(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, batch_size=100_000)  # larger than the data
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "failed"
    assert "batch_size" in snap["error"] and "Traceback" in snap["traceback"]
    from nn.services.runs import RunStore

    assert RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"]).status == "failed"


def test_diverging_config_reports_diverged(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, optimizer="sgd", learning_rate=1e10)
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "diverged"
    assert "learning rate" in snap["stop_message"]
    from nn.services.runs import RunStore

    assert RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"]).status == "diverged"


def test_continue_training_counts_on(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, epochs=1)
    w.start()
    w.join(30)
    w2 = TrainingWorker(
        {"hidden_layers": [16], "epochs": 2, "batch_size": 50},
        {"split": "standard", "seed": 0},
        tiny_mnist,
        model=w.model,
        record_run=False,
    )
    w2.start()
    w2.join(30)
    snap = w2.snapshot()
    assert snap["status"] == "finished", snap["error"]
    assert w2.model.n_iter_ == 3 and snap["epochs"] == 3
