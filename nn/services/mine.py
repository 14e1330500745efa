"""The user's own drawn digits ("My digits"), kept in an embedded SQLite database.

A kept drawing holds the raw canvas as PNG bytes, the 28x28 ``uint8`` image the network saw,
its true label (0-9), the date (UTC, ISO 8601), and the name of the model used and the digit it
predicted at the time. Imported rows have no canvas PNG and no model.

Where the database lives
    :func:`default_mine_path`: the file named by ``NN_MINE_DB`` if that is set and non-empty,
    else ``mine.sqlite`` in the folder of the run database (:func:`nn.services.runs.
    default_runs_path`, i.e. beside ``$NN_RUNS_DB`` or ``./runs.sqlite``).

    It is a file of its own rather than a table in the run database because the two have
    separate lives: the run store versions its file with ``PRAGMA user_version`` and refuses
    versions it does not know, so a second schema in the same file would have to share that one
    number; and the drawings are the user's data, worth keeping (and copying) when the run
    history is thrown away, and the other way round.

Durability
    Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error), so
    a process that dies while keeping a drawing loses that drawing only; an import writes all its
    rows in one transaction, so it lands whole or not at all. The journal is WAL (readers never
    block the writer). A connection is opened per call, so one :class:`MineStore` may be shared
    by threads. Database faults raise :class:`MineStoreError` naming the file.

Schema version 1 (``PRAGMA user_version``)::

    drawings(id, label, image BLOB(784), canvas_png BLOB, created_at TEXT, model_name TEXT,
             predicted INTEGER, source TEXT)

Exchange format
    :meth:`MineStore.export_npz` writes ``x`` (uint8 ``(n, 784)``) and ``y`` (int64 ``(n,)``),
    the single-part layout :func:`nn.data.load_dataset` reads. :meth:`MineStore.import_file`
    reads any labelled single-part file through ``load_dataset`` (so it is validated like every
    data file), after checking its size against :data:`MAX_IMPORT_BYTES`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nn.data.arrays import N_CLASSES, N_PIXELS, DataError, ImageSet
from nn.data.datasets import load_dataset
from nn.io.npz import atomic_write
from nn.services.runs import default_runs_path
from nn.services.transactions import read_transaction, write_transaction

__all__ = [
    "ENV_VAR",
    "DEFAULT_FILENAME",
    "MAX_CANVAS_PNG_BYTES",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_IMAGES",
    "SCHEMA_VERSION",
    "SOURCES",
    "Drawing",
    "MineStore",
    "MineStoreError",
    "default_mine_path",
    "load_drawings",
    "read_import_file",
    "png_bytes",
]

ENV_VAR = "NN_MINE_DB"
"""Environment variable naming the drawings database file."""

DEFAULT_FILENAME = "mine.sqlite"
SCHEMA_VERSION = 1

SOURCES: tuple[str, ...] = ("draw", "import")
"""Where a kept drawing came from: the Draw page's canvas, or an imported file."""

MAX_CANVAS_PNG_BYTES = 4 * 1024 * 1024
"""Largest canvas PNG kept with a drawing (a 280x280 canvas is a few kB)."""

MAX_IMPORT_BYTES = 50 * 1024 * 1024
"""Largest file :meth:`MineStore.import_file` reads, on disk and (for ``.npz``) uncompressed."""

MAX_IMPORT_IMAGES = 70_000
"""Most images one import may add."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drawings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    label       INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    image       BLOB NOT NULL CHECK (length(image) = 784),
    canvas_png  BLOB,
    created_at  TEXT NOT NULL,
    model_name  TEXT,
    predicted   INTEGER CHECK (predicted IS NULL OR predicted BETWEEN 0 AND 9),
    source      TEXT NOT NULL DEFAULT 'draw'
);
CREATE INDEX IF NOT EXISTS drawings_label ON drawings(label);
"""

_COLUMNS = "id, label, image, created_at, model_name, predicted, source"


class MineStoreError(RuntimeError):
    """The drawings database cannot be used; the message names the file."""


def default_mine_path() -> Path:
    """``$NN_MINE_DB`` if set and non-empty, else ``mine.sqlite`` beside the run database."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return Path(value).expanduser()
    return default_runs_path().parent / DEFAULT_FILENAME


def _utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (2-D grey or (H, W, 3|4) uint8) encoded as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Drawing:
    """One kept drawing. ``image`` is the (28, 28) uint8 input the network saw; ``canvas_png``
    is only filled by :meth:`MineStore.get` (listing leaves it ``None`` to stay light)."""

    id: int
    label: int
    image: np.ndarray
    created_at: str
    model_name: str | None
    predicted: int | None
    source: str
    canvas_png: bytes | None = None

    @property
    def x(self) -> np.ndarray:
        """The image as one (784,) uint8 row, as in the data sets."""
        return self.image.reshape(N_PIXELS)


def _digit(value, what: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be a digit 0-9, got {value!r}")
    if not 0 <= int(value) < N_CLASSES:
        raise ValueError(f"{what} must be a digit 0-9, got {int(value)}")
    return int(value)


def _image_blob(image) -> bytes:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"the 28x28 image must be uint8 (0-255), got dtype {a.dtype}")
    if a.shape not in ((28, 28), (N_PIXELS,)):
        raise ValueError(f"the image must be 28x28 (or 784 pixels), got shape {a.shape}")
    return np.ascontiguousarray(a).tobytes()


def _drawing(row: sqlite3.Row, with_canvas: bool = False) -> Drawing:
    image = np.frombuffer(row["image"], dtype=np.uint8).reshape(28, 28)
    return Drawing(
        id=int(row["id"]),
        label=int(row["label"]),
        image=image,
        created_at=row["created_at"],
        model_name=row["model_name"],
        predicted=None if row["predicted"] is None else int(row["predicted"]),
        source=row["source"],
        canvas_png=row["canvas_png"] if with_canvas else None,
    )


def _check_npz_size(path: Path) -> None:
    """Refuse an ``.npz`` whose members would decompress beyond :data:`MAX_IMPORT_BYTES`."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    if total > MAX_IMPORT_BYTES:
        raise DataError(
            f"{path}: its arrays hold {total / 2**20:.1f} MB uncompressed; at most "
            f"{MAX_IMPORT_BYTES // 2**20} MB may be imported"
        )


def _check_gzip_size(path: Path) -> None:
    """Refuse a gzip file whose trailer says it holds more than :data:`MAX_IMPORT_BYTES` (the
    trailer keeps the size modulo 4 GiB; the loaders stop at their own limits beyond that)."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        size = int.from_bytes(f.read(4), "little")
    if size > MAX_IMPORT_BYTES:
        raise DataError(
            f"{path}: holds {size / 2**20:.1f} MB uncompressed; at most "
            f"{MAX_IMPORT_BYTES // 2**20} MB may be imported"
        )


def read_import_file(path: str | os.PathLike) -> ImageSet:
    """A labelled single-part data file, validated by :func:`nn.data.load_dataset` after its size
    is checked. Raises :class:`nn.data.DataError` naming the file and the fault."""
    path = Path(path)
    if not path.is_file():
        what = (
            "not a regular file (a folder, a device or a pipe)" if path.exists() else "no such file"
        )
        raise DataError(f"{path}: {what}; import an .npz, .npy pair, IDX or CSV file")
    size = path.stat().st_size
    if size > MAX_IMPORT_BYTES:
        raise DataError(
            f"{path}: {size / 2**20:.1f} MB; at most {MAX_IMPORT_BYTES // 2**20} MB may be imported"
        )
    if path.name.lower().endswith(".npz"):
        _check_npz_size(path)
    elif path.name.lower().endswith(".gz"):
        _check_gzip_size(path)
    data = load_dataset(path)
    if not isinstance(data, ImageSet):
        raise DataError(
            f"{path}: has separate train and test parts; a set of drawings is one part "
            "(an .npz with x and y, or a labelled CSV)"
        )
    if data.y is None:
        raise DataError(f"{path}: has no labels; every drawing needs its digit (key y)")
    if len(data.x) > MAX_IMPORT_IMAGES:
        raise DataError(
            f"{path}: {len(data.x)} images; at most {MAX_IMPORT_IMAGES} may be imported at once"
        )
    return data


class MineStore:
    """The kept drawings in one SQLite file (``path``; ``None`` -> :func:`default_mine_path`).
    Safe to share between threads."""

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 10.0):
        raw = default_mine_path() if path is None else path
        if str(raw) in ("", ":memory:") or str(raw).startswith("file:"):
            raise ValueError(
                f"MineStore needs a database file path, got {str(raw)!r} (it opens one "
                "connection per call; use a temporary file)"
            )
        self.path = Path(raw).expanduser().resolve()
        if self.path.is_dir():
            raise ValueError(f"{self.path}: is a folder, not a drawings database file")
        self.timeout = float(timeout)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MineStoreError(f"{self.path}: cannot create its folder ({exc})") from None
        self._initialize()

    def __repr__(self) -> str:
        return f"MineStore({str(self.path)!r})"

    # -- connections and transactions -----------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            message = f"{self.path}: cannot open the drawings database ({exc})"
            raise MineStoreError(message) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")  # no corruption in WAL mode
            yield conn
        except sqlite3.Error as exc:
            raise MineStoreError(f"{self.path}: drawings database error: {exc}") from None
        finally:
            conn.close()

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return read_transaction(self._connect)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._connect)

    def _initialize(self) -> None:
        with self._connect() as conn:
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise MineStoreError(
                    f"{self.path}: not a drawings database ({exc}); move it away or set "
                    f"{ENV_VAR} to another file"
                ) from None
            if version > SCHEMA_VERSION:
                raise MineStoreError(
                    f"{self.path}: drawings schema version {version}; this code knows versions "
                    f"up to {SCHEMA_VERSION} (upgrade the project or use another file)"
                )
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode = WAL")
        if version == SCHEMA_VERSION:
            return
        with self._write() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- writing --------------------------------------------------------------------------------

    def add(
        self,
        image,
        label: int,
        *,
        canvas_png: bytes | None = None,
        model_name: str | None = None,
        predicted: int | None = None,
        source: str = "draw",
    ) -> int:
        """Keep one drawing (one transaction); returns its id.

        ``image``: the 28x28 (or 784) uint8 input the network saw; ``canvas_png``: the raw
        canvas as PNG bytes; ``model_name``/``predicted``: the model used and its answer."""
        blob = _image_blob(image)
        label = _digit(label, "label")
        predicted = _digit(predicted, "predicted", allow_none=True)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if canvas_png is not None:
            canvas_png = bytes(canvas_png)
            if len(canvas_png) > MAX_CANVAS_PNG_BYTES:
                raise ValueError(
                    f"the canvas PNG is {len(canvas_png)} bytes; at most "
                    f"{MAX_CANVAS_PNG_BYTES} are kept"
                )
            if not canvas_png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ValueError("canvas_png must be PNG bytes (they start with \\x89PNG)")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO drawings (label, image, canvas_png, created_at, model_name, "
                "predicted, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (label, blob, canvas_png, _utcnow(), model_name, predicted, source),
            )
            return int(cursor.lastrowid)

    def relabel(self, drawing_id: int, label: int) -> None:
        """Give a drawing another true digit. Raises ``KeyError`` if there is no such drawing."""
        label = _digit(label, "label")
        with self._write() as conn:
            done = conn.execute(
                "UPDATE drawings SET label = ? WHERE id = ?", (label, int(drawing_id))
            ).rowcount
        if not done:
            raise KeyError(f"no drawing {drawing_id} in {self.path}")

    def delete(self, drawing_id: int) -> bool:
        """Delete one drawing; ``False`` if there was none with that id."""
        with self._write() as conn:
            return bool(
                conn.execute("DELETE FROM drawings WHERE id = ?", (int(drawing_id),)).rowcount
            )

    def add_many(self, x: np.ndarray, y: np.ndarray, *, source: str = "import") -> list[int]:
        """Add images ``x`` (uint8 ``(n, 784)``) with labels ``y`` in one transaction: all or
        nothing. Returns the new ids."""
        x = np.asarray(x)
        y = np.asarray(y)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise ValueError(f"images must be uint8 (n, 784), got {x.dtype} {x.shape}")
        if y.shape != (len(x),):
            raise ValueError(f"{len(x)} images need {len(x)} labels, got shape {y.shape}")
        labels = [_digit(v, "label") for v in y.tolist()]
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        now = _utcnow()
        ids = []
        with self._write() as conn:
            for row, label in zip(x, labels, strict=True):
                cursor = conn.execute(
                    "INSERT INTO drawings (label, image, created_at, source) VALUES (?, ?, ?, ?)",
                    (label, np.ascontiguousarray(row).tobytes(), now, source),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def import_file(self, path: str | os.PathLike) -> list[int]:
        """Add every drawing of a labelled data file (``.npz`` with ``x``/``y``, CSV, ...; read
        by :func:`read_import_file`). A bad file raises :class:`nn.data.DataError` and nothing
        is written; a good one lands in one transaction. Returns the new ids."""
        data = read_import_file(path)
        return self.add_many(data.x, data.y, source="import")

    def import_bytes(self, data: bytes, filename: str) -> list[int]:
        """:meth:`import_file` for an upload: ``data`` is the file's content, ``filename`` its
        name (the suffix picks the format). The size is checked before anything is written."""
        if len(data) > MAX_IMPORT_BYTES:
            raise DataError(
                f"{filename}: {len(data) / 2**20:.1f} MB; at most "
                f"{MAX_IMPORT_BYTES // 2**20} MB may be imported"
            )
        suffix = "".join(Path(filename).suffixes[-2:]).lower() or ".npz"
        with tempfile.TemporaryDirectory(prefix="nn-mine-import-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                return self.import_file(path)
            except DataError as exc:
                raise DataError(str(exc).replace(str(path), filename)) from None

    # -- reading --------------------------------------------------------------------------------

    def list(self, label: int | None = None) -> list[Drawing]:
        """Kept drawings, oldest first (optionally only those labelled ``label``), without their
        canvas PNGs."""
        with self._read() as conn:
            if label is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM drawings ORDER BY id").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM drawings WHERE label = ? ORDER BY id",
                    (_digit(label, "label"),),
                ).fetchall()
        return [_drawing(row) for row in rows]

    def get(self, drawing_id: int) -> Drawing:
        """One drawing with its canvas PNG. Raises ``KeyError`` if there is none."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, canvas_png FROM drawings WHERE id = ?", (int(drawing_id),)
            ).fetchone()
        if row is None:
            raise KeyError(f"no drawing {drawing_id} in {self.path}")
        return _drawing(row, with_canvas=True)

    def count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM drawings").fetchone()[0])

    def counts(self) -> dict[int, int]:
        """Number of drawings per digit, every digit 0-9 present (zeros included)."""
        counts = dict.fromkeys(range(N_CLASSES), 0)
        with self._read() as conn:
            for label, n in conn.execute("SELECT label, COUNT(*) FROM drawings GROUP BY label"):
                counts[int(label)] = int(n)
        return counts

    def version(self) -> tuple[int, int, int]:
        """``(number of drawings, largest id, sum of label * id)``: changes whenever a drawing is
        added, deleted or relabelled; pages use it as a cache key."""
        with self._read() as conn:
            n, top, labels = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(label * id), 0) FROM drawings"
            ).fetchone()
        return int(n), int(top), int(labels)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x uint8 (n, 784), y int64 (n,), ids int64 (n,))`` of every drawing, oldest first."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, label, image FROM drawings ORDER BY id").fetchall()
        n = len(rows)
        x = np.empty((n, N_PIXELS), dtype=np.uint8)
        for i, row in enumerate(rows):
            x[i] = np.frombuffer(row["image"], dtype=np.uint8)
        y = np.array([row["label"] for row in rows], dtype=np.int64)
        ids = np.array([row["id"] for row in rows], dtype=np.int64)
        return x, y, ids

    def export_npz(self, path: str | os.PathLike | None = None) -> bytes:
        """Every drawing as an ``.npz`` (``x`` uint8 ``(n, 784)``, ``y`` int64) that
        :func:`nn.data.load_dataset` reads; written to ``path`` if given. Returns the bytes."""
        x, y, _ = self.arrays()
        buf = io.BytesIO()
        np.savez_compressed(buf, x=x, y=y)
        data = buf.getvalue()
        if path is not None:
            atomic_write(Path(path), lambda f: f.write(data))
        return data


def load_drawings(source: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """``(x uint8 (n, 784), y int64 (n,))`` from a drawings database (``.sqlite``/``.db``, or
    ``None`` for the default one) or a labelled data file (``.npz`` ...). Raises ``ValueError``
    (:class:`nn.data.DataError`) for a bad file, :class:`MineStoreError` for a bad database."""
    if source is None:
        x, y, _ = MineStore().arrays()
        return x, y
    path = Path(source)
    if path.suffix.lower() in (".sqlite", ".sqlite3", ".db"):
        if not path.is_file():
            raise DataError(f"{path}: no such drawings database")
        x, y, _ = MineStore(path).arrays()
        return x, y
    data = read_import_file(path)
    return np.asarray(data.x), np.asarray(data.y)
