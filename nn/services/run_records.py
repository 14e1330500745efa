"""What the run store holds, read back (:class:`Run`, :class:`Search`), and how values are
stored: strict JSON for configs and metrics (NumPy scalars and arrays as numbers and lists, paths
as strings, non-finite floats as ``null``), checked numbers for the REAL and INTEGER columns."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from nn.core.events import EPOCH_KEYS

MNIST_DATASET = "mnist"
"""``runs.dataset`` of a run on the bundled MNIST (and of every run recorded before version 2)."""

HISTORY_KEYS: tuple[str, ...] = EPOCH_KEYS
"""The lists of a run's ``history`` (``nn.core.events.EPOCH_KEYS``)."""


# ---------------------------------------------------------------------------------------------
# value conversion


def json_value(obj: Any) -> Any:
    """Recursively turn ``obj`` into strict-JSON-able Python values (see module docstring)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_value(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # numpy (without importing it): scalars have .item(), arrays .tolist()
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return json_value(obj.tolist())
    if hasattr(obj, "item") and hasattr(obj, "dtype"):
        return json_value(obj.item())
    if hasattr(obj, "get_config") and callable(obj.get_config):
        return json_value(obj.get_config())
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON: {obj!r}")


def _json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook; ``json_value`` has already handled everything it can."""
    return json_value(obj)


def dumps(obj: Any) -> str:
    return json.dumps(json_value(obj), default=_json_default, allow_nan=False, sort_keys=True)


def loads(text: str | None) -> dict:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def real_value(value: Any, name: str) -> float | None:
    """A number for a REAL column (NumPy scalars included); None stays None."""
    if value is None:
        return None
    if hasattr(value, "item") and hasattr(value, "dtype"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def integer_value(value: Any, name: str, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if hasattr(value, "item") and hasattr(value, "dtype"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def check_status(status: str, allowed: Sequence[str], what: str = "status") -> str:
    if status not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}; got {status!r}")
    return status


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` (on this host) is still running; zombies count as dead."""
    if not pid or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    try:  # a killed but not yet reaped child still answers signal 0
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------------------------------
# records


@dataclasses.dataclass
class Run:
    """One training run as read back from the store.

    ``history`` is a dict of equal-length lists keyed by :data:`HISTORY_KEYS` (``epoch``, ``loss``,
    ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate``, ``seconds``), ordered by
    epoch, with ``None`` where a value was not logged. It is ``{}`` when the run was listed
    without ``with_history=True``.
    """

    id: int
    name: str | None
    source: str
    status: str
    config: dict
    seed: int | None
    started_at: float
    finished_at: float | None
    duration_seconds: float | None
    epochs_done: int
    metrics: dict
    model_path: str | None
    message: str | None
    search_id: int | None
    pid: int | None
    hostname: str | None
    history: dict[str, list] = dataclasses.field(default_factory=dict)
    dataset: str = MNIST_DATASET

    @property
    def label(self) -> str:
        """Short unique label, e.g. ``"#12 adam-wide"``."""
        return f"#{self.id} {self.name}" if self.name else f"#{self.id}"

    def summary(self) -> dict[str, Any]:
        """A flat row for tables: run columns plus ``metrics`` entries (no config, no history)."""
        row = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "seed": self.seed,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "epochs_done": self.epochs_done,
            "dataset": self.dataset,
        }
        for key, value in self.metrics.items():
            row.setdefault(key, value)
        row["model_path"] = self.model_path
        row["search_id"] = self.search_id
        row["message"] = self.message
        return row


@dataclasses.dataclass
class Search:
    """One hyperparameter search; its trials are the runs with ``search_id == id``."""

    id: int
    name: str | None
    status: str
    space: dict
    started_at: float
    finished_at: float | None
    best_run_id: int | None
    message: str | None
    pid: int | None
    hostname: str | None


RUN_COLUMNS = (
    "id, name, source, status, config, seed, started_at, finished_at, duration_seconds, "
    "epochs_done, metrics, model_path, message, search_id, pid, hostname, dataset"
)
SEARCH_COLUMNS = (
    "id, name, status, space, started_at, finished_at, best_run_id, message, pid, hostname"
)


def run_from_row(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        name=row["name"],
        source=row["source"],
        status=row["status"],
        config=loads(row["config"]),
        seed=row["seed"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_seconds=row["duration_seconds"],
        epochs_done=row["epochs_done"],
        metrics=loads(row["metrics"]),
        model_path=row["model_path"],
        message=row["message"],
        search_id=row["search_id"],
        pid=row["pid"],
        hostname=row["hostname"],
        dataset=row["dataset"] or MNIST_DATASET,
    )


def run_dataset(config: Mapping[str, Any], dataset: str | None) -> str:
    """``dataset``, else the set or data file of ``config["data"]``, else ``mnist``."""
    if dataset is not None:
        return str(dataset)
    data = config.get("data")
    if isinstance(data, Mapping):
        for key in ("set", "path"):
            if data.get(key):
                return str(data[key])
    return MNIST_DATASET


def search_from_row(row: sqlite3.Row) -> Search:
    return Search(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        space=loads(row["space"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        best_run_id=row["best_run_id"],
        message=row["message"],
        pid=row["pid"],
        hostname=row["hostname"],
    )


def empty_history() -> dict[str, list]:
    return {key: [] for key in HISTORY_KEYS}
