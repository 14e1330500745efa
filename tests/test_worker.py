"""The training worker directly: pause, resume, stop, captured exceptions, divergence."""

from __future__ import annotations

import threading

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


class BatchCounter:
    """Counts a worker's batch events; ``wait_for(n)`` blocks until n batches have run."""

    def __init__(self, worker):
        self._seen = 0
        self._changed = threading.Condition()
        forward = worker._on_event

        def on_event(event):
            forward(event)
            if event.kind == "batch":
                with self._changed:
                    self._seen += 1
                    self._changed.notify_all()

        worker._on_event = on_event

    @property
    def seen(self) -> int:
        with self._changed:
            return self._seen

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._seen >= n, timeout)


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
    batches = BatchCounter(w)
    w.start()
    assert batches.wait_for(2)
    w.pause()
    assert w.wait_until_paused(30)  # blocked between two batches
    before, seen = w.snapshot(), batches.seen
    assert w.wait_until_paused(0)  # still blocked
    after = w.snapshot()
    assert after["paused"] and w.is_alive() and batches.seen == seen
    assert (after["epoch"], after["batch"]) == (before["epoch"], before["batch"])
    w.resume()
    assert batches.wait_for(seen + 1)
    w.stop()
    w.join(30)
    snap = w.snapshot()
    assert not w.is_alive()
    assert snap["status"] == "stopped" and snap["stop_reason"] == "callback"
    assert snap["epoch"] < 200


def test_stop_while_paused(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, epochs=200)
    batches = BatchCounter(w)
    w.start()
    assert batches.wait_for(1)
    w.pause()
    assert w.wait_until_paused(30)
    w.stop()
    w.join(10)
    assert not w.is_alive() and w.snapshot()["status"] == "stopped"


def test_bad_settings_are_captured_before_a_run_is_recorded(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path, batch_size=100_000)  # larger than the data
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "failed" and snap["run_id"] is None
    assert "batch_size" in snap["error"] and "Traceback" in snap["traceback"]
    assert not (tmp_path / "runs.sqlite").exists()


def test_exception_during_training_is_captured_and_recorded(tiny_mnist, tmp_path):
    w = _worker(tiny_mnist, tmp_path)

    def broken(event):
        raise RuntimeError("boom")

    w._on_event = broken
    w.start()
    w.join(30)
    snap = w.snapshot()
    assert snap["status"] == "failed"
    assert "boom" in snap["error"] and "Traceback" in snap["traceback"]
    from nn.services.runs import RunStore

    run = RunStore(tmp_path / "runs.sqlite").get_run(snap["run_id"])
    assert run.status == "failed" and "boom" in run.message


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
