"""Run tracking: every training run recorded in an embedded SQLite database.

A run row holds the configuration, seed, per-epoch history, final metrics, duration, the saved
model's path (if any) and a status out of :data:`STATUSES`. Hyperparameter searches get a row in
``searches`` and their trials point at it through ``runs.search_id``.

Where the database lives
    ``RunStore()`` uses :func:`default_runs_path`: the file named by the environment variable
    ``NN_RUNS_DB`` if it is set and non-empty, else ``runs.sqlite`` in the current working
    directory. ``RunStore(path)`` uses ``path``. Parent folders are created on demand.
    :data:`DEFAULT_RUNS_PATH` is the same choice made once, at import time.

Durability and concurrency
    * Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error), so
      a process that dies mid-run leaves whole epochs behind, never half a row or a corrupt file.
      Its run stays ``running``; :meth:`RunStore.mark_interrupted` (called by the CLI and the
      dashboard at start) turns runs whose process is gone into ``interrupted``.
    * The journal is WAL, so readers (the dashboard) never block the writer (a training thread)
      and vice versa; ``busy_timeout`` makes concurrent writers wait instead of failing.
    * A connection is opened per call and closed afterwards. That is cheap at these rates (a few
      writes per epoch) and sidesteps sqlite3's one-connection-per-thread rule entirely, so one
      ``RunStore`` may be shared by any number of threads. Because of that, ``":memory:"`` is
      not accepted: use a temporary file.

Values
    Configs and metrics are stored as strict JSON. NumPy scalars and arrays are converted to
    Python numbers and lists, paths to strings, and non-finite floats (NaN, +-inf, e.g. the loss
    of a diverged run) to ``null``. In the ``epochs`` table NaN is stored as NULL too (SQLite has
    no NaN), so it reads back as ``None``. Timestamps are Unix seconds (``time.time()``).

Schema version 2 (``PRAGMA user_version``)::

    searches(id, name, status, space JSON, started_at, finished_at, best_run_id, message,
             pid, hostname)
    runs(id, name, source, status, config JSON, seed, started_at, finished_at, duration_seconds,
         epochs_done, metrics JSON, model_path, message, search_id, pid, hostname, dataset)
    epochs(run_id, epoch, loss, train_accuracy, val_loss, val_accuracy, learning_rate, seconds,
           PRIMARY KEY (run_id, epoch))

``runs.dataset`` names the data set a run trained on (a set of ``nn.data.registry``, ``mnist``
for the bundled MNIST, or the path of a data file). Version 1 lacks the column: opening such a
database adds it (``ALTER TABLE``; its runs read back as ``mnist``, the only set they could use)
and sets the version to 2.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from nn.core.events import EPOCH_KEYS
from nn.core.limits import MAX_SEED
from nn.services.run_records import (
    HISTORY_KEYS,
    MNIST_DATASET,
    RUN_COLUMNS,
    SEARCH_COLUMNS,
    Run,
    Search,
    check_status,
    dumps,
    empty_history,
    integer_value,
    json_value,
    loads,
    pid_alive,
    real_value,
    run_dataset,
    run_from_row,
    search_from_row,
)
from nn.services.status import RUN_STATUSES
from nn.services.transactions import read_transaction, write_transaction

__all__ = [
    "DEFAULT_RUNS_PATH",
    "ENV_VAR",
    "EPOCH_FIELDS",
    "FINAL_STATUSES",
    "ORDER_BY_FIELDS",
    "SCHEMA_VERSION",
    "SOURCES",
    "STATUSES",
    "Run",
    "RunStore",
    "RunStoreError",
    "Search",
    "default_runs_path",
    "run_status",
]

ENV_VAR = "NN_RUNS_DB"
"""Environment variable naming the run database file (overrides ``./runs.sqlite``)."""

DEFAULT_FILENAME = "runs.sqlite"

SCHEMA_VERSION = 2


STATUSES: tuple[str, ...] = RUN_STATUSES
"""Every status a run (or search) can have (``nn.services.status``)."""

FINAL_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s != "running")
"""Statuses accepted by :meth:`RunStore.finish_run`."""

SOURCES: tuple[str, ...] = ("cli", "dashboard", "tune", "finetune")

EPOCH_FIELDS: tuple[str, ...] = tuple(k for k in EPOCH_KEYS if k != "epoch")
"""Per-epoch values accepted by :meth:`RunStore.log_epoch` (all optional)."""


_METRIC_KEYS = ("test_accuracy", "val_accuracy", "train_accuracy", "loss", "val_loss")

# order_by name -> SQL expression. Only these strings are ever put into SQL text.
_ORDER_COLUMNS: dict[str, str] = {
    "id": "id",
    "name": "name",
    "source": "source",
    "status": "status",
    "seed": "seed",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "duration_seconds": "duration_seconds",
    "epochs_done": "epochs_done",
    "dataset": f"COALESCE(dataset, '{MNIST_DATASET}')",
    **{key: f"json_extract(metrics, '$.{key}')" for key in _METRIC_KEYS},
}
ORDER_BY_FIELDS: tuple[str, ...] = tuple(_ORDER_COLUMNS)
"""Accepted values of ``list_runs(order_by=...)``; the metric names sort by ``metrics[name]``."""

# how NeuralNetwork.stop_reason_ maps to a run status
_STOP_REASON_STATUS = {
    "completed": "finished",
    "early_stopping": "finished",
    "callback": "stopped",
    "diverged": "diverged",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT,
    status      TEXT NOT NULL,
    space       TEXT NOT NULL DEFAULT '{}',
    started_at  REAL NOT NULL,
    finished_at REAL,
    best_run_id INTEGER,
    message     TEXT,
    pid         INTEGER,
    hostname    TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT,
    source           TEXT NOT NULL,
    status           TEXT NOT NULL,
    config           TEXT NOT NULL DEFAULT '{}',
    seed             INTEGER,
    started_at       REAL NOT NULL,
    finished_at      REAL,
    duration_seconds REAL,
    epochs_done      INTEGER NOT NULL DEFAULT 0,
    metrics          TEXT NOT NULL DEFAULT '{}',
    model_path       TEXT,
    message          TEXT,
    search_id        INTEGER REFERENCES searches(id) ON DELETE SET NULL,
    pid              INTEGER,
    hostname         TEXT,
    dataset          TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch          INTEGER NOT NULL,
    loss           REAL,
    train_accuracy REAL,
    val_loss       REAL,
    val_accuracy   REAL,
    learning_rate  REAL,
    seconds        REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_started_at ON runs(started_at);
CREATE INDEX IF NOT EXISTS runs_search_id ON runs(search_id);
"""

# version -> the statements taking a database of that version to the next one
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE runs ADD COLUMN dataset TEXT",),
}


_ITEM_NAMES = {"runs": "run", "searches": "search"}


class RunStoreError(RuntimeError):
    """The database cannot be used (e.g. written by a newer schema version)."""


def default_runs_path() -> Path:
    """``$NN_RUNS_DB`` if set and non-empty, else ``./runs.sqlite`` (resolved against the cwd)."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else Path(DEFAULT_FILENAME)


DEFAULT_RUNS_PATH: Path = default_runs_path()
"""The default database path as chosen at import time (see :func:`default_runs_path`)."""


def run_status(
    stop_reason: str | None, *, stop_requested: bool = False, failed: bool = False
) -> str:
    """The status of a run that ended: ``failed`` if it raised, ``stopped`` if a stop was asked
    for, else from ``NeuralNetwork.stop_reason_`` (completed and early_stopping -> finished,
    callback -> stopped, diverged -> diverged)."""
    if failed:
        return "failed"
    if stop_requested:
        return "stopped"
    return _STOP_REASON_STATUS.get(stop_reason or "completed", "finished")


# ---------------------------------------------------------------------------------------------
# the store


class RunStore:
    """SQLite-backed record of training runs and searches. Safe to share between threads.

    ``path``: database file; ``None`` -> :func:`default_runs_path`. ``timeout``: seconds a write
    waits for another writer's lock (SQLite ``busy_timeout``) before raising
    ``sqlite3.OperationalError``.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 10.0):
        raw = default_runs_path() if path is None else path
        if str(raw) in ("", ":memory:") or str(raw).startswith("file:"):
            raise ValueError(
                f"RunStore needs a database file path, got {str(raw)!r} (it opens one connection "
                "per call, so an in-memory database would be empty every time; use a temp file)"
            )
        self.path = Path(raw).expanduser().resolve()
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"RunStore path {self.path} is a directory, not a database file")
        self.timeout = float(timeout)
        self.hostname = socket.gethostname()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._initialize()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections and transactions -----------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE.
        # A database error names the database file: the same exception class, the path first.
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            self._raise_naming_file(exc)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # safe (no corruption) in WAL mode
            yield conn
        except sqlite3.Error as exc:
            self._raise_naming_file(exc)
        finally:
            conn.close()

    def _raise_naming_file(self, exc: sqlite3.Error) -> None:
        if str(exc).startswith(str(self.path)):
            raise exc
        named = type(exc)(f"{self.path}: {exc}")
        for attr in ("sqlite_errorcode", "sqlite_errorname"):
            with contextlib.suppress(AttributeError):
                setattr(named, attr, getattr(exc, attr))
        raise named from exc

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return read_transaction(self._connect)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._connect)

    def _initialize(self) -> None:
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RunStoreError(
                    f"{self.path} has run-store schema version {version}; this code knows "
                    f"versions up to {SCHEMA_VERSION} (upgrade the project or use another file)"
                )
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode = WAL")
        if version == SCHEMA_VERSION:
            return
        with self._write() as conn:
            # re-read under the write lock: another process may have created it meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version = SCHEMA_VERSION
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- runs -----------------------------------------------------------------------------------

    def start_run(
        self,
        config: Mapping[str, Any] | None,
        *,
        name: str | None = None,
        source: str = "cli",
        seed: int | None = None,
        search_id: int | None = None,
        dataset: str | None = None,
    ) -> int:
        """Record a new ``running`` run of this process; returns its id. ``dataset`` defaults to
        the set (or data file) in ``config["data"]``, else ``mnist``."""
        check_status(source, SOURCES, "source")
        dataset = run_dataset(dict(config or {}), dataset)
        config_json = dumps(dict(config or {}))
        seed = integer_value(seed, "seed")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
        search_id = integer_value(search_id, "search_id")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (name, source, status, config, seed, started_at, search_id, "
                "pid, hostname, dataset) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    source,
                    config_json,
                    seed,
                    time.time(),
                    search_id,
                    os.getpid(),
                    self.hostname,
                    dataset,
                ),
            )
            return int(cursor.lastrowid)

    def log_epoch(self, run_id: int, epoch: int, **metrics: Any) -> None:
        """Insert or update one epoch's row; only the given fields (see :data:`EPOCH_FIELDS`)
        are written, so calling twice for the same epoch merges. Updates ``epochs_done``."""
        unknown = sorted(set(metrics) - set(EPOCH_FIELDS))
        if unknown:
            raise ValueError(
                f"log_epoch got unknown field(s) {unknown}; allowed: {', '.join(EPOCH_FIELDS)}"
            )
        epoch = integer_value(epoch, "epoch", allow_none=False)
        values = {key: real_value(value, key) for key, value in metrics.items()}
        columns = [key for key in EPOCH_FIELDS if key in values]  # whitelisted names only
        names = ", ".join(["run_id", "epoch", *columns])
        marks = ", ".join("?" * (2 + len(columns)))
        if columns:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
            upsert = f"ON CONFLICT(run_id, epoch) DO UPDATE SET {updates}"
        else:
            upsert = "ON CONFLICT(run_id, epoch) DO NOTHING"
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                f"INSERT INTO epochs ({names}) VALUES ({marks}) {upsert}",
                (run_id, epoch, *(values[c] for c in columns)),
            )
            conn.execute(
                "UPDATE runs SET epochs_done = (SELECT COUNT(*) FROM epochs WHERE run_id = ?) "
                "WHERE id = ?",
                (run_id, run_id),
            )

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        model_path: str | os.PathLike | None = None,
        message: str | None = None,
    ) -> None:
        """Close a run with a final status (one of :data:`FINAL_STATUSES`).

        Sets ``finished_at`` and ``duration_seconds``. ``metrics`` are merged into the stored
        metrics; ``model_path``/``message`` replace the stored value when given. Finishing an
        already finished run again overwrites its status (e.g. finished -> stopped).
        """
        check_status(status, FINAL_STATUSES, "finish_run status")
        now = time.time()
        with self._write() as conn:
            row = self._require_run(conn, run_id)
            merged = loads(row["metrics"])
            merged.update(json_value(dict(metrics or {})))
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, duration_seconds = ?, "
                "metrics = ?, model_path = COALESCE(?, model_path), "
                "message = COALESCE(?, message) WHERE id = ?",
                (
                    status,
                    now,
                    max(0.0, now - row["started_at"]),
                    dumps(merged),
                    None if model_path is None else os.fspath(model_path),
                    message,
                    run_id,
                ),
            )

    def update_run(
        self,
        run_id: int,
        *,
        name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        model_path: str | os.PathLike | None = None,
        message: str | None = None,
    ) -> None:
        """Change a run's name, merge metrics, or set model path/message without finishing it."""
        with self._write() as conn:
            row = self._require_run(conn, run_id)
            merged = loads(row["metrics"])
            merged.update(json_value(dict(metrics or {})))
            conn.execute(
                "UPDATE runs SET name = COALESCE(?, name), metrics = ?, "
                "model_path = COALESCE(?, model_path), message = COALESCE(?, message) "
                "WHERE id = ?",
                (
                    name,
                    dumps(merged),
                    None if model_path is None else os.fspath(model_path),
                    message,
                    run_id,
                ),
            )

    def get_run(self, run_id: int) -> Run:
        """The run with its full history; ``KeyError`` if there is none with that id."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run with id {run_id} in {self.path}")
            run = run_from_row(row)
            run.history = self._histories(conn, [run_id])[run_id]
            return run

    def get_history(self, run_id: int) -> dict[str, list]:
        """Just the per-epoch history (dict of lists) of one run."""
        with self._connect() as conn:
            self._require_run(conn, run_id)
            return self._histories(conn, [run_id])[run_id]

    def list_runs(
        self,
        status: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        search_id: int | None = None,
        order_by: str = "started_at",
        descending: bool = True,
        limit: int | None = None,
        *,
        with_history: bool = False,
        dataset: str | Iterable[str] | None = None,
    ) -> list[Run]:
        """Runs matching all given filters, ordered by ``order_by`` (one of
        :data:`ORDER_BY_FIELDS`; runs without that value come last), ties broken by id.
        ``status``/``source`` may be one value or several. Histories are loaded only with
        ``with_history=True``. ``dataset``: runs on this set (or these sets) only."""
        if order_by not in _ORDER_COLUMNS:
            raise ValueError(
                f"order_by must be one of {', '.join(ORDER_BY_FIELDS)}; got {order_by!r}"
            )
        where, params = [], []
        for column, value, allowed in (("status", status, STATUSES), ("source", source, SOURCES)):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            for v in values:
                check_status(v, allowed, column)
            if not values:
                return []
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if dataset is not None:
            names = [dataset] if isinstance(dataset, str) else [str(d) for d in dataset]
            if not names:
                return []
            where.append(f"COALESCE(dataset, '{MNIST_DATASET}') IN ({', '.join('?' * len(names))})")
            params.extend(names)
        if search_id is not None:
            where.append("search_id = ?")
            params.append(integer_value(search_id, "search_id"))
        expr = _ORDER_COLUMNS[order_by]
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY ({expr}) IS NULL, {expr} {direction}, id {direction}"
        if limit is not None:
            limit = integer_value(limit, "limit", allow_none=False)
            if limit < 0:
                raise ValueError(f"limit must be >= 0 or None, got {limit}")
            sql += " LIMIT ?"
            params.append(limit)
        with self._read() as conn:
            runs = [run_from_row(row) for row in conn.execute(sql, params)]
            if with_history and runs:
                histories = self._histories(conn, [run.id for run in runs])
                for run in runs:
                    run.history = histories[run.id]
        return runs

    def mark_interrupted(self) -> list[int]:
        """Mark ``running`` runs (and searches) of dead processes on this host ``interrupted``.

        A run counts as dead when its recorded pid is no longer alive (``os.kill(pid, 0)``;
        zombies count as dead). Runs recorded on other hosts are left alone, since their
        processes cannot be checked from here. Returns the ids of the runs marked.
        """
        with self._connect() as conn:
            candidates = {
                table: [
                    (row["id"], row["pid"])
                    for row in conn.execute(
                        f"SELECT id, pid FROM {table} WHERE status = 'running' AND "
                        "(hostname = ? OR hostname IS NULL)",
                        (self.hostname,),
                    )
                ]
                for table in ("runs", "searches")
            }
        dead = {
            table: [(i, pid) for i, pid in rows if not pid_alive(pid)]
            for table, rows in candidates.items()
        }
        if not any(dead.values()):
            return []
        marked: list[int] = []
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._write() as conn:
            for table, rows in dead.items():
                for item_id, pid in rows:
                    cursor = conn.execute(
                        f"UPDATE {table} SET status = 'interrupted', message = ? "
                        "WHERE id = ? AND status = 'running'",
                        (
                            f"process {pid} on {self.hostname} ended without finishing the "
                            f"{_ITEM_NAMES[table]} (found at {stamp})",
                            item_id,
                        ),
                    )
                    if table == "runs" and cursor.rowcount:
                        marked.append(item_id)
        return marked

    # -- searches -------------------------------------------------------------------------------

    def start_search(self, space: Mapping[str, Any] | None, *, name: str | None = None) -> int:
        """Record a new ``running`` search over ``space``; returns its id."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO searches (name, status, space, started_at, pid, hostname) "
                "VALUES (?, 'running', ?, ?, ?, ?)",
                (name, dumps(dict(space or {})), time.time(), os.getpid(), self.hostname),
            )
            return int(cursor.lastrowid)

    def finish_search(
        self,
        search_id: int,
        status: str = "finished",
        *,
        best_run_id: int | None = None,
        message: str | None = None,
    ) -> None:
        """Close a search with a final status and (optionally) its best run."""
        check_status(status, FINAL_STATUSES, "finish_search status")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE searches SET status = ?, finished_at = ?, "
                "best_run_id = COALESCE(?, best_run_id), message = COALESCE(?, message) "
                "WHERE id = ?",
                (
                    status,
                    time.time(),
                    integer_value(best_run_id, "best_run_id"),
                    message,
                    search_id,
                ),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no search with id {search_id} in {self.path}")

    def list_searches(self, status: str | None = None, limit: int | None = None) -> list[Search]:
        """Searches, newest first."""
        sql, params = f"SELECT {SEARCH_COLUMNS} FROM searches", []
        if status is not None:
            check_status(status, STATUSES)
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(integer_value(limit, "limit", allow_none=False))
        with self._connect() as conn:
            return [search_from_row(row) for row in conn.execute(sql, params)]

    # -- helpers --------------------------------------------------------------------------------

    def _require_run(self, conn: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        row = conn.execute(
            "SELECT id, started_at, metrics FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id} in {self.path}")
        return row

    @staticmethod
    def _histories(conn: sqlite3.Connection, run_ids: list[int]) -> dict[int, dict[str, list]]:
        histories = {run_id: empty_history() for run_id in run_ids}
        columns = ", ".join(HISTORY_KEYS)
        rows: list[sqlite3.Row] = []
        for start in range(0, len(run_ids), 500):  # stay well under the bound-parameter limit
            chunk = run_ids[start : start + 500]
            rows.extend(
                conn.execute(
                    f"SELECT run_id, {columns} FROM epochs "
                    f"WHERE run_id IN ({', '.join('?' * len(chunk))}) ORDER BY run_id, epoch",
                    chunk,
                )
            )
        for row in rows:
            history = histories.get(row["run_id"])
            if history is not None:
                for key in HISTORY_KEYS:
                    history[key].append(row[key])
        return histories
