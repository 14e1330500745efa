"""The drawings store (nn.services.mine): round trip, crashes mid-write, refused imports, and the
drawn-digits fixture (nn.data.drawn)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nn.data import DataError, ImageSet, load_dataset
from nn.data.drawn import drawn_digits, drawn_inputs
from nn.data.preprocess import preprocess_drawing
from nn.services.mine import (
    MineStore,
    MineStoreError,
    default_mine_path,
    load_drawings,
    png_bytes,
)

REPO = Path(__file__).resolve().parent.parent


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


@pytest.fixture
def store(tmp_path):
    return MineStore(tmp_path / "mine.sqlite")


def test_default_path_sits_beside_the_run_database(tmp_path, monkeypatch):
    monkeypatch.delenv("NN_MINE_DB", raising=False)
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "db" / "runs.sqlite"))
    assert default_mine_path() == tmp_path / "db" / "mine.sqlite"
    monkeypatch.setenv("NN_MINE_DB", str(tmp_path / "other.sqlite"))
    assert default_mine_path() == tmp_path / "other.sqlite"


def test_round_trip_keeps_every_field(store):
    canvas = png_bytes(np.zeros((280, 280, 4), dtype=np.uint8))
    first = store.add(_image(0), 3, canvas_png=canvas, model_name="default", predicted=5)
    second = store.add(_image(1).reshape(784), 7)
    got = store.get(first)
    assert got.label == 3 and got.predicted == 5 and got.model_name == "default"
    assert got.canvas_png == canvas and got.source == "draw"
    np.testing.assert_array_equal(got.image, _image(0))
    assert got.created_at.endswith("+00:00")  # UTC, ISO 8601
    assert [d.id for d in store.list()] == [first, second]
    assert store.list()[0].canvas_png is None  # listing leaves the PNG out
    assert [d.id for d in store.list(label=7)] == [second]
    assert store.counts() == {**dict.fromkeys(range(10), 0), 3: 1, 7: 1}

    before = store.version()
    store.relabel(first, 8)
    assert store.get(first).label == 8
    assert store.version() != before
    assert store.delete(second) is True
    assert store.delete(second) is False
    assert store.count() == 1
    with pytest.raises(KeyError):
        store.get(second)
    with pytest.raises(KeyError):
        store.relabel(second, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((28, 28), np.float32), "label": 1}, "uint8"),
        ({"image": np.zeros((20, 20), np.uint8), "label": 1}, "28x28"),
        ({"image": np.zeros((28, 28), np.uint8), "label": 10}, "digit 0-9"),
        ({"image": np.zeros((28, 28), np.uint8), "label": True}, "digit 0-9"),
        ({"image": np.zeros((28, 28), np.uint8), "label": 1, "predicted": -1}, "predicted"),
        ({"image": np.zeros((28, 28), np.uint8), "label": 1, "canvas_png": b"GIF89a"}, "PNG"),
    ],
)
def test_bad_drawings_are_refused(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        store.add(**kwargs)
    assert store.count() == 0


def test_export_is_read_by_load_dataset_and_imports_back(store, tmp_path):
    for i in range(5):
        store.add(_image(i), i % 3)
    target = tmp_path / "mine.npz"
    store.export_npz(target)
    data = load_dataset(target)
    assert isinstance(data, ImageSet)
    assert data.x.dtype == np.uint8 and data.x.shape == (5, 784)
    np.testing.assert_array_equal(data.y, [0, 1, 2, 0, 1])

    other = MineStore(tmp_path / "other.sqlite")
    ids = other.import_file(target)
    assert len(ids) == 5 and other.counts()[0] == 2
    x, y, _ = other.arrays()
    np.testing.assert_array_equal(x, data.x)
    assert all(d.source == "import" for d in other.list())
    x2, y2 = load_drawings(target)
    np.testing.assert_array_equal(y2, y)
    x3, y3 = load_drawings(tmp_path / "other.sqlite")
    np.testing.assert_array_equal(x3, x)


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 20, 20), np.uint8), "y": np.zeros(3, np.int64)}, "784 pixels"),
        ({"x": np.zeros((3, 784), np.uint8), "y": np.array([1, 2, 12])}, "outside 0-9"),
        ({"x": np.zeros((3, 784), np.uint8)}, "no labels"),
        ({"x": np.zeros((3, 784), np.uint8), "y": np.zeros(2, np.int64)}, "3 images but 2"),
        ({"images": np.zeros((3, 784), np.uint8)}, "missing keys"),
    ],
)
def test_a_bad_import_is_refused_and_writes_nothing(store, tmp_path, arrays, message):
    store.add(_image(0), 4)
    bad = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as caught:
        store.import_file(bad)
    assert "bad.npz" in str(caught.value)
    assert store.count() == 1


def test_an_import_over_the_size_cap_is_refused_before_reading(store, tmp_path, monkeypatch):
    import nn.services.mine as mine

    path = _npz(tmp_path / "big.npz", x=np.zeros((100, 784), np.uint8), y=np.zeros(100, int))
    monkeypatch.setattr(mine, "MAX_IMPORT_BYTES", 10_000)
    with pytest.raises(DataError, match="at most"):
        store.import_file(path)
    with pytest.raises(DataError, match="upload.npz: .*at most"):
        store.import_bytes(b"\0" * 20_000, "upload.npz")
    assert store.count() == 0


def test_an_upload_with_a_bad_file_names_the_upload(store):
    with pytest.raises(DataError, match="^digits.npz: not a readable"):
        store.import_bytes(b"not a zip", "digits.npz")
    assert store.count() == 0


def test_an_error_inside_an_import_rolls_all_of_it_back(store, monkeypatch):
    store.add(_image(0), 1)
    x = np.zeros((6, 784), np.uint8)
    y = np.arange(6)
    original = np.ascontiguousarray
    calls = {"n": 0}

    def failing(a, *args, **kwargs):  # the fourth row's bytes never come
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk on fire")
        return original(a, *args, **kwargs)

    monkeypatch.setattr("nn.services.mine.np.ascontiguousarray", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.add_many(x, y)
    monkeypatch.undo()
    assert store.count() == 1


_KILL_MID_IMPORT = """
import os, sqlite3, sys
import numpy as np
from nn.services.mine import MineStore

store = MineStore(sys.argv[1])
store.add(np.full((28, 28), 7, np.uint8), 7)
store.add(np.full((28, 28), 8, np.uint8), 8)
real_connect = sqlite3.connect

def connect(*args, **kwargs):
    conn = real_connect(*args, **kwargs)
    inserts = []

    def trace(statement):
        if statement.startswith("INSERT"):
            inserts.append(statement)
            if len(inserts) == 3:  # two rows written, inside the open transaction
                os._exit(9)

    conn.set_trace_callback(trace)
    return conn

sqlite3.connect = connect
store.add_many(np.zeros((5, 784), np.uint8), np.arange(5))
print("not killed")
"""


def test_a_process_killed_mid_import_leaves_only_complete_drawings(tmp_path):
    path = tmp_path / "mine.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILL_MID_IMPORT), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 9, done.stderr
    assert "not killed" not in done.stdout
    store = MineStore(path)
    assert [d.label for d in store.list()] == [7, 8]
    x, _, _ = store.arrays()
    np.testing.assert_array_equal(x[0], 7)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_database_errors_name_the_file(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite, just some text" * 100)
    with pytest.raises(MineStoreError, match="junk.sqlite"):
        MineStore(path)
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(MineStoreError, match="newer.sqlite.*version 99"):
        MineStore(newer)


def test_drawn_digits_are_deterministic_varied_and_readable():
    canvases, labels = drawn_digits(3, seed=1)
    again, _ = drawn_digits(3, seed=1)
    other, _ = drawn_digits(3, seed=2)
    assert canvases.shape == (30, 280, 280, 4) and canvases.dtype == np.uint8
    np.testing.assert_array_equal(canvases, again)
    assert not np.array_equal(canvases, other)
    np.testing.assert_array_equal(labels, np.tile(np.arange(10), 3))
    assert (canvases[..., 3] == 255).all()  # opaque, like the page's canvas
    assert not np.array_equal(canvases[0], canvases[10])  # two zeros differ
    for canvas in canvases:
        assert not preprocess_drawing(canvas).blank
    x, y = drawn_inputs(3, seed=1)
    assert x.shape == (30, 784) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, labels)


def test_a_gzip_csv_that_would_inflate_past_the_cap_is_refused(store, tmp_path, monkeypatch):
    import gzip

    import nn.services.mine as mine

    path = tmp_path / "digits.csv.gz"
    row = "3," + ",".join(["0"] * 784) + "\n"
    path.write_bytes(gzip.compress((row * 50).encode()))
    monkeypatch.setattr(mine, "MAX_IMPORT_BYTES", 20_000)
    with pytest.raises(DataError, match="uncompressed"):
        store.import_file(path)
    monkeypatch.setattr(mine, "MAX_IMPORT_BYTES", 10**6)
    assert len(store.import_file(path)) == 50
