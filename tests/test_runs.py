"""The SQLite run store (nn.services.runs)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nn.services.recorder import RunRecorder
from nn.services.runs import (
    ENV_VAR,
    FINAL_STATUSES,
    ORDER_BY_FIELDS,
    SCHEMA_VERSION,
    STATUSES,
    RunStore,
    RunStoreError,
    default_runs_path,
    run_status,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def _event(kind="epoch", epoch=1, elapsed=1.0, **kw):
    fields = dict(
        kind=kind,
        epoch=epoch,
        epochs=5,
        batch=0,
        n_batches=10,
        loss=0.5,
        train_accuracy=0.8,
        val_loss=0.6,
        val_accuracy=0.75,
        learning_rate=0.1,
        samples_per_second=1000.0,
        elapsed=elapsed,
    )
    fields.update(kw)
    return SimpleNamespace(**fields)


def _integrity(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


# --- paths and schema --------------------------------------------------------------------------


def test_default_path_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_runs_path() == Path("runs.sqlite")
    target = tmp_path / "sub" / "mine.sqlite"
    monkeypatch.setenv(ENV_VAR, str(target))
    assert default_runs_path() == target
    store = RunStore()
    assert store.path == target.resolve() and target.exists()


def test_memory_path_rejected():
    with pytest.raises(ValueError, match="file"):
        RunStore(":memory:")


def test_schema_version_wal_and_newer_version_rejected(store, tmp_path):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "epochs", "searches"} <= tables
    conn.close()
    RunStore(store.path)  # reopening an existing store is fine

    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RunStoreError, match="schema version"):
        RunStore(newer)


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip(store):
    config = {
        "hidden_layer_sizes": [128, 64],
        "activation": "relu",
        "learning_rate": 0.05,
        "optimizer": {"name": "adam", "beta1": 0.9},
        "batch_size": 64,
        "early_stopping": True,
    }
    run_id = store.start_run(config, name="adam-wide", source="dashboard", seed=7)
    run = store.get_run(run_id)
    assert run.status == "running" and run.epochs_done == 0 and run.finished_at is None
    assert run.pid == os.getpid() and run.hostname

    history = {
        "epoch": [1, 2, 3],
        "loss": [0.9, 0.5, 0.3],
        "train_accuracy": [0.7, 0.85, 0.9],
        "val_loss": [1.0, 0.6, 0.4],
        "val_accuracy": [0.68, 0.8, 0.88],
        "learning_rate": [0.05, 0.04, 0.03],
        "seconds": [1.5, 1.4, 1.6],
    }
    for i, epoch in enumerate(history["epoch"]):
        store.log_epoch(run_id, epoch, **{k: v[i] for k, v in history.items() if k != "epoch"})
    metrics = {"test_accuracy": 0.91, "val_accuracy": 0.88, "train_accuracy": 0.9, "loss": 0.3}
    store.finish_run(
        run_id, "finished", metrics=metrics, model_path="saved_models/a.npz", message="ok"
    )

    run = store.get_run(run_id)
    assert run.config == config
    assert run.history == history
    assert run.metrics == metrics
    assert (run.name, run.source, run.seed, run.status) == ("adam-wide", "dashboard", 7, "finished")
    assert run.model_path == "saved_models/a.npz" and run.message == "ok"
    assert run.epochs_done == 3
    assert run.finished_at >= run.started_at and run.duration_seconds >= 0
    assert run.summary()["test_accuracy"] == 0.91
    assert store.get_history(run_id) == history


def test_numpy_values_and_non_finite(store):
    config = {
        "sizes": np.array([32, 16]),
        "lr": np.float32(0.5),
        "n": np.int64(3),
        "flag": np.bool_(True),
        "path": Path("x/y"),
    }
    run_id = store.start_run(config, seed=np.int64(3))
    store.log_epoch(run_id, np.int64(1), loss=np.float32(0.25), val_accuracy=np.float64(0.5))
    store.log_epoch(run_id, 2, loss=float("nan"))
    store.finish_run(run_id, "diverged", metrics={"loss": float("inf"), "acc": np.float32(0.5)})
    run = store.get_run(run_id)
    assert run.config == {"sizes": [32, 16], "lr": 0.5, "n": 3, "flag": True, "path": "x/y"}
    assert run.seed == 3
    assert run.history["loss"] == [0.25, None]
    assert run.metrics == {"loss": None, "acc": 0.5}
    with pytest.raises(TypeError, match="JSON"):
        store.start_run({"bad": object()})


def test_log_epoch_upserts_and_validates(store):
    run_id = store.start_run({})
    store.log_epoch(run_id, 1, loss=0.5)
    store.log_epoch(run_id, 1, val_accuracy=0.7)  # merges into the same row
    store.log_epoch(run_id, 1, loss=0.4)  # overwrites
    run = store.get_run(run_id)
    assert run.history["epoch"] == [1] and run.epochs_done == 1
    assert run.history["loss"] == [0.4] and run.history["val_accuracy"] == [0.7]
    with pytest.raises(ValueError, match="unknown field"):
        store.log_epoch(run_id, 2, accuracy=0.5)
    with pytest.raises(ValueError, match="loss"):
        store.log_epoch(run_id, 2, loss="high")
    with pytest.raises(KeyError):
        store.log_epoch(run_id + 100, 1, loss=0.1)


def test_invalid_status_and_source_rejected(store):
    run_id = store.start_run({})
    with pytest.raises(ValueError, match="status must be one of"):
        store.finish_run(run_id, "done")
    with pytest.raises(ValueError, match="running"):
        store.finish_run(run_id, "running")  # not a final status
    with pytest.raises(ValueError, match="source must be one of"):
        store.start_run({}, source="notebook")
    with pytest.raises(KeyError):
        store.finish_run(run_id + 1, "finished")
    with pytest.raises(KeyError):
        store.get_run(run_id + 1)
    assert set(FINAL_STATUSES) == set(STATUSES) - {"running"}
    assert store.get_run(run_id).status == "running"


# --- listing -----------------------------------------------------------------------------------


def _populate(store):
    ids = {}
    specs = [
        ("a", "cli", "finished", 0.90),
        ("b", "dashboard", "finished", 0.95),
        ("c", "cli", "failed", None),
        ("d", "tune", "stopped", 0.80),
        ("e", "dashboard", "running", None),
    ]
    for name, source, status, acc in specs:
        ids[name] = store.start_run({"name": name}, name=name, source=source)
        if status != "running":
            store.finish_run(
                ids[name], status, metrics={} if acc is None else {"test_accuracy": acc}
            )
    return ids


def test_list_filtering_and_ordering(store):
    ids = _populate(store)
    names = lambda runs: [r.name for r in runs]  # noqa: E731

    assert names(store.list_runs()) == ["e", "d", "c", "b", "a"]  # newest first
    assert names(store.list_runs(descending=False)) == ["a", "b", "c", "d", "e"]
    assert names(store.list_runs(status="finished")) == ["b", "a"]
    assert names(store.list_runs(status=["failed", "stopped"])) == ["d", "c"]
    assert names(store.list_runs(source="dashboard")) == ["e", "b"]
    assert names(store.list_runs(source="cli", status="finished")) == ["a"]
    assert names(store.list_runs(limit=2)) == ["e", "d"]
    assert store.list_runs(limit=0) == []
    # metric ordering: runs without the metric come last either way
    assert names(store.list_runs(order_by="test_accuracy"))[:3] == ["b", "a", "d"]
    assert names(store.list_runs(order_by="test_accuracy", descending=False))[:3] == ["d", "a", "b"]
    assert names(store.list_runs(order_by="name", descending=False)) == list("abcde")
    assert store.list_runs()[0].history == {}
    assert store.list_runs(with_history=True)[0].history["epoch"] == []
    assert ids["a"] < ids["e"]


def test_invalid_order_by_rejected(store):
    _populate(store)
    for bad in ["started_at; DROP TABLE runs", "config", "", "id DESC"]:
        with pytest.raises(ValueError, match="order_by must be one of"):
            store.list_runs(order_by=bad)
    with pytest.raises(ValueError, match="status must be one of"):
        store.list_runs(status="done")
    with pytest.raises(ValueError, match="source must be one of"):
        store.list_runs(source="x' OR 1=1 --")
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(limit=-1)
    assert "started_at" in ORDER_BY_FIELDS and len(store.list_runs()) == 5


def test_searches(store):
    search_id = store.start_search({"learning_rate": [0.01, 0.1]}, name="lr sweep")
    r1 = store.start_run({"learning_rate": 0.01}, source="tune", search_id=search_id)
    r2 = store.start_run({"learning_rate": 0.1}, source="tune", search_id=search_id)
    store.start_run({}, source="cli")
    store.finish_run(r1, "finished", metrics={"val_accuracy": 0.9})
    store.finish_run(r2, "finished", metrics={"val_accuracy": 0.8})
    trials = store.list_runs(search_id=search_id, order_by="val_accuracy")
    assert [r.id for r in trials] == [r1, r2]
    store.finish_search(search_id, best_run_id=trials[0].id)
    search = next(s for s in store.list_searches() if s.id == search_id)
    assert (search.status, search.best_run_id, search.name) == ("finished", r1, "lr sweep")
    assert search.space == {"learning_rate": [0.01, 0.1]}
    assert [s.id for s in store.list_searches()] == [search_id]
    with pytest.raises(ValueError):
        store.finish_search(search_id, "bogus")


# --- recorder and status -----------------------------------------------------------------------


def test_recorder_writes_epochs_only(store):
    rec = RunRecorder(store.path)
    run_id = rec.start_run({"lr": 0.1}, name="t", source="cli", seed=1)
    for epoch in (1, 2, 3):
        for batch in range(5):
            assert rec.log_event(run_id, _event("batch", epoch=epoch, batch=batch)) is None
        rec.log_event(run_id, _event("epoch", epoch=epoch, elapsed=2.0 * epoch, loss=1.0 / epoch))
    assert store.get_run(run_id).status == "running"
    store.finish_run(run_id, "finished", metrics={"test_accuracy": np.float64(0.93)})
    run = store.get_run(run_id)
    assert run.status == "finished" and run.epochs_done == 3
    assert run.history["epoch"] == [1, 2, 3]
    assert run.history["loss"] == [1.0, 0.5, 1.0 / 3]
    assert run.history["seconds"] == [2.0, 2.0, 2.0]  # per-epoch, from cumulative elapsed
    assert run.metrics == {"test_accuracy": 0.93}
    assert rec.errors == []


@pytest.mark.parametrize("broken", ["folder", "garbage"])
def test_a_failing_database_is_noted_and_never_raised(tmp_path, broken):
    """The one rule: whatever is wrong with the database, the recorder notes it (listener,
    errors) and every call returns instead of raising."""
    path = tmp_path / "runs.sqlite"
    if broken == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"this is no database" * 100)
    heard = []
    rec = RunRecorder(path, listener=lambda stage, info: heard.append((stage, info["message"])))
    run_id = rec.start_run({}, name="t", source="cli")
    rec.log_event(run_id, _event("epoch", epoch=1, elapsed=1.0))
    rec.finish_run(run_id, "finished", metrics={"test_accuracy": 0.9})
    record = rec.search_record()
    assert record("search_started", {"search": {}, "name": "s"}) is None
    assert run_id is None and rec.path is None and len(rec.errors) == 1
    assert heard == [("run_error", rec.errors[0])] and str(path) in rec.errors[0]


def test_run_status():
    assert run_status("completed") == run_status("early_stopping") == "finished"
    assert run_status(None) == "finished"
    assert run_status("callback") == "stopped"
    assert run_status("diverged") == "diverged"
    assert run_status("completed", stop_requested=True) == "stopped"
    assert run_status("completed", failed=True) == "failed"


# --- crashes ------------------------------------------------------------------------------------

_CHILD_PRELUDE = """
import os, sys, time
from nn.services.runs import RunStore
store = RunStore(sys.argv[1])
run_id = store.start_run({"lr": 0.1}, name="crash", seed=1)
store.log_epoch(run_id, 1, loss=0.9, val_accuracy=0.5)
store.log_epoch(run_id, 2, loss=0.7, val_accuracy=0.6)
print(run_id, flush=True)
"""


def _check_crashed_run(path, run_id, min_epochs=2):
    assert _integrity(path) == "ok"
    store = RunStore(path)
    run = store.get_run(run_id)
    assert run.status == "running"
    assert store.list_runs(status="running")[0].id == run_id
    assert store.mark_interrupted() == [run_id]
    run = store.get_run(run_id)
    assert run.status == "interrupted" and "ended without finishing" in run.message
    assert run.history["epoch"][:2] == [1, 2] and run.history["loss"][:2] == [0.9, 0.7]
    assert len(run.history["epoch"]) >= min_epochs
    assert run.history["epoch"] == list(range(1, len(run.history["epoch"]) + 1))
    assert run.epochs_done == len(run.history["epoch"])
    assert store.mark_interrupted() == []  # idempotent
    # the store is still writable after the crash
    other = store.start_run({})
    store.finish_run(other, "finished")
    assert _integrity(path) == "ok"


def test_crash_with_os_exit_leaves_run_running(tmp_path):
    path = tmp_path / "runs.sqlite"
    code = _CHILD_PRELUDE + "os._exit(1)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    _check_crashed_run(path, int(proc.stdout.split()[0]))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_inside_write_loop(tmp_path):
    path = tmp_path / "runs.sqlite"
    code = _CHILD_PRELUDE + textwrap.dedent("""
        epoch = 3
        while True:
            store.log_epoch(run_id, epoch, loss=0.5, val_accuracy=0.7)
            store.update_run(run_id, metrics={"last_epoch": epoch})
            if epoch == 20:
                print("looping", flush=True)
            epoch += 1
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=tmp_path,
    )
    try:
        run_id = int(proc.stdout.readline().split()[0])
        assert proc.stdout.readline().strip() == "looping"  # many write transactions done
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    _check_crashed_run(path, run_id, min_epochs=3)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_inside_open_transaction_rolls_back(tmp_path):
    path = tmp_path / "runs.sqlite"
    code = _CHILD_PRELUDE + textwrap.dedent("""
        import signal, sqlite3
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO epochs (run_id, epoch, loss) VALUES (?, 3, 0.1)", (run_id,))
        conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (run_id,))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _check_crashed_run(path, int(proc.stdout.split()[0]))
    assert RunStore(path).get_run(int(proc.stdout.split()[0])).history["epoch"] == [1, 2]


def test_mark_interrupted_spares_live_and_foreign_runs(store):
    mine = store.start_run({})  # this process: alive
    foreign = store.start_run({})
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE runs SET hostname = 'elsewhere', pid = 1 WHERE id = ?", (foreign,))
    conn.close()
    assert store.mark_interrupted() == []
    assert store.get_run(mine).status == "running"
    assert store.get_run(foreign).status == "running"


# --- concurrency --------------------------------------------------------------------------------


def test_concurrent_writer_and_reader_threads(store):
    n_epochs = 40
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def writer():
        try:
            rec = RunRecorder(store.path)
            run_id = rec.start_run({"worker": True}, name=None, source="dashboard")
            for epoch in range(1, n_epochs + 1):
                rec.log_event(run_id, _event("batch", epoch=epoch))
                rec.log_event(run_id, _event("epoch", epoch=epoch, elapsed=float(epoch)))
            store.finish_run(run_id, "finished")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader():
        try:
            last = 0
            while True:
                finished = done.is_set()  # one more pass after the writer is done
                for run in store.list_runs(with_history=True):
                    # one snapshot: the row and its history agree, and progress never goes back
                    assert len(run.history["epoch"]) == run.epochs_done >= last
                    last = run.epochs_done
                    seen.append(last)
                    assert store.get_run(run.id).epochs_done >= last
                if finished:
                    break
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=writer),
        threading.Thread(target=reader),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert seen, "the readers never saw the run"
    run = store.list_runs()[0]
    assert run.status == "finished" and run.epochs_done == n_epochs
    assert store.get_run(run.id).history["epoch"] == list(range(1, n_epochs + 1))
    assert _integrity(store.path) == "ok"


def test_concurrent_writer_threads(store):
    errors: list[BaseException] = []

    def work(i):
        try:
            for _ in range(3):
                run_id = store.start_run({"i": i})
                for epoch in range(1, 6):
                    store.log_epoch(run_id, epoch, loss=float(i))
                store.finish_run(run_id, "finished")
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    runs = store.list_runs(with_history=True)
    assert len(runs) == 12 and all(r.status == "finished" and r.epochs_done == 5 for r in runs)
    assert all(r.history["loss"] == [float(r.config["i"])] * 5 for r in runs)
