"""Hostile and clumsy input through the data loaders, the image reader and the command line:
a clear message and exit 2, nothing allocated before a size was checked, the rest still done."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_support import call
from PIL import Image

import nn.data.datasets as datasets
import nn.data.idx as D
import nn.data.preprocess as PP
import nn.io.model_files as P
from nn.core.network import NeuralNetwork
from nn.data.arrays import DataError
from nn.data.datasets import load_dataset
from nn.data.idx import read_idx
from nn.data.preprocess import load_image_file

EXIT_USAGE = 2


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A tiny 784-input model, saved."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(60, 784), dtype=np.uint8)
    y = rng.integers(0, 10, size=60)
    y[:10] = np.arange(10)
    model = NeuralNetwork(hidden_layers=(8,), epochs=1, batch_size=20, random_state=0).fit(X, y)
    return P.save_model(model, tmp_path_factory.mktemp("m") / "tiny.npz")


def _edited(src: Path, dst: Path, meta=None, replace=None) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    m = json.loads(str(arrays.pop("__meta__")))
    if meta:
        meta(m)
    arrays.update(replace or {})
    np.savez(dst, __meta__=np.array(json.dumps(m)), **arrays)
    return dst


# ------------------------------------------------------------------ CLI: bad model files
@pytest.mark.parametrize("command", ["info", "evaluate"])
def test_bad_metadata_value_exits_2_with_a_message(model_file, tmp_path, command):
    bad = _edited(model_file, tmp_path / "params.npz", meta=lambda m: m.update(params="x"))
    code, out, err = call(command, str(bad))
    assert code == EXIT_USAGE, err
    assert "params.npz: metadata field 'params'" in err and "Traceback" not in err


def test_info_refuses_what_load_model_refuses(model_file, tmp_path):
    with np.load(model_file) as npz:
        coef = npz["layer0.dense.weight"]
    nan = _edited(
        model_file,
        tmp_path / "nan.npz",
        replace={"layer0.dense.weight": np.full_like(coef, np.nan)},
    )
    code, out, err = call("info", str(nan))
    assert code == EXIT_USAGE and "NaN or infinite" in err
    code, out, err = call("info", str(model_file))
    assert code == 0 and "tiny" in out


# ------------------------------------------------------------------ images
def _png(path: Path, size=(56, 56), value=0) -> Path:
    Image.new("L", size, value).save(path)
    return path


def test_decompression_bomb_is_refused_per_file_and_the_others_are_processed(
    model_file, tmp_path, monkeypatch
):
    bomb = _png(tmp_path / "bomb.png", size=(400, 400))
    digit = Image.new("L", (56, 56), 0)
    digit.paste(255, (24, 8, 32, 48))
    digit.save(tmp_path / "one.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # Pillow's error at 2x: 100,000
    code, out, err = call("predict", str(model_file), str(bomb), str(tmp_path / "one.png"))
    assert code == EXIT_USAGE
    assert "bomb.png" in err and "too many pixels" in err and "Traceback" not in err
    assert "one.png" in out and "error" not in out.split("one.png")[1].splitlines()[0]


def test_pillow_bomb_warning_is_a_refusal_too(tmp_path, monkeypatch):
    path = _png(tmp_path / "warn.png", size=(300, 300))  # 90,000 px: above 1x, below 2x
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)
    with pytest.raises(ValueError, match="warn.png.*too many pixels"):
        load_image_file(path)


def test_image_above_the_product_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    path = _png(tmp_path / "big.png", size=(200, 100))
    monkeypatch.setattr(PP, "MAX_IMAGE_PIXELS", 19_999)
    with pytest.raises(ValueError, match=r"big.png.*200x100 pixels; images of at most 19,999"):
        load_image_file(path)
    monkeypatch.setattr(PP, "MAX_IMAGE_PIXELS", 20_000)
    assert load_image_file(path).blank


# ------------------------------------------------------------------ datasets
def _idx_header(n: int, rows=28, cols=28) -> bytes:
    return (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, rows, cols))


def test_gzip_idx_promising_more_than_a_dataset_is_refused_before_decompressing(
    tmp_path, monkeypatch
):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(_idx_header(3_000_000))  # 2.3 GB promised
        f.write(b"\0" * 1000)
    reads = []
    real = D.read_exactly
    monkeypatch.setattr(D, "read_exactly", lambda f, n, *a: reads.append(n) or real(f, n, *a))
    with pytest.raises(DataError, match=r"promises shape \(3000000, 28, 28\).*at most 300,000"):
        read_idx(path)
    assert max(reads) <= 12  # only the header was read


def test_gzip_idx_is_streamed_within_the_promised_size(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "_READ_CHUNK", 4096)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(_idx_header(100) + b"\1" * (100 * 784))
    assert read_idx(path).shape == (100, 28, 28)
    with gzip.open(path, "wb") as f:
        f.write(_idx_header(100) + b"\1" * (50 * 784))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_npy_whose_header_promises_too_much_is_refused_unread(tmp_path):
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)}
        )
        f.write(b"\0" * 64)
    with pytest.raises(DataError, match=r"x.npy: the header promises shape \(10000000000,\)"):
        load_dataset(path)


def test_npz_dataset_member_is_checked_from_its_header(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            head, {"descr": "|u1", "fortran_order": False, "shape": (5_000_000, 784)}
        )
        zf.writestr("x.npy", head.getvalue() + b"\0" * 100)
    with pytest.raises(DataError, match=r"bomb.npz\[x\]: the header promises"):
        load_dataset(path)


@pytest.mark.parametrize(
    "content", [b"", b"random bytes, no zip", b"PK\x03\x04" + bytes(range(256)) * 4]
)
def test_bad_npz_dataset_never_suggests_allow_pickle(tmp_path, content):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert "allow_pickle" not in str(err.value) and "data.npz" in str(err.value)


def test_csv_larger_than_the_cap_is_refused_while_streaming(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_CSV_BYTES", 10_000)
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(",".join(["0"] * 785) + "\n")
        f.write("1" * 1_000_000)
    with pytest.raises(DataError, match="big.csv.gz: the CSV holds more than 10,000 bytes"):
        load_dataset(path)


def test_train_refuses_a_gzip_bomb_dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, header in (
        ("train-images-idx3-ubyte.gz", _idx_header(3_000_000)),
        ("train-labels-idx1-ubyte.gz", (2049).to_bytes(4, "big") + (3_000_000).to_bytes(4, "big")),
    ):
        with gzip.open(folder / name, "wb") as f:
            f.write(header)
    code, out, err = call("train", "--data", str(folder), "--no-save", "--epochs", "1")
    assert code == EXIT_USAGE and "promises shape" in err and "Traceback" not in err


# ------------------------------------------------------------------ run database
def test_database_errors_name_the_database_file(tmp_path):
    import sqlite3

    from nn.services.runs import RunStore

    path = tmp_path / "not-a-db.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError, match=r"not-a-db.sqlite: file is not a database"):
        RunStore(path)
    code, out, err = call("runs", "--runs-db", str(path))
    assert code == EXIT_USAGE and "not-a-db.sqlite" in err and "Traceback" not in err


def test_run_seed_is_bounded_by_max_seed(tmp_path):
    from nn.core.limits import MAX_SEED
    from nn.services.runs import RunStore

    store = RunStore(tmp_path / "r.sqlite")
    assert store.get_run(store.start_run({}, seed=MAX_SEED)).seed == MAX_SEED
    for seed in (MAX_SEED + 1, 10**23, -1):
        with pytest.raises(ValueError, match=f"seed must be a whole number from 0 to {MAX_SEED}"):
            store.start_run({}, seed=seed)


def test_interrupted_search_message_says_search(tmp_path, monkeypatch):
    from nn.services.runs import RunStore

    store = RunStore(tmp_path / "r.sqlite")
    search_id = store.start_search({}, name="s")
    with store._write() as conn:
        conn.execute("UPDATE searches SET pid = 999999999 WHERE id = ?", (search_id,))
    store.mark_interrupted()
    message = next(s for s in store.list_searches() if s.id == search_id).message
    assert "without finishing the search " in message and "searche" not in message


# ------------------------------------------------------------------ train: refused before training
@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: the refusal comes from the plan."""
    import nn.cli.train as T

    def refuse(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(T, "run_training_job", refuse)


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--hidden-layers", "1000000000"], r"795,000,000,010 parameters; the limit is 20,000,000"),
        (["--hidden-layers", "100000", "100000"], r"10,079,600,010 parameters"),
        (["--seed", "-1"], r"--seed -1: use a whole number from 0 to 4294967295"),
        (["--seed", "99999999999999999999999"], r"--seed 99999999999999999999999: use"),
        (["--out", "/dev/null"], r"--out /dev/null: is not a regular file"),
        (["--models-dir", "/proc"], r"--models-dir /proc: cannot save models there"),
    ],
    ids=["huge-layer", "two-huge-layers", "seed-negative", "seed-huge", "dev-null", "proc"],
)
def test_train_refuses_before_training(tmp_path, no_training, flags, match):
    code, out, err = call("train", "--runs-db", str(tmp_path / "r.sqlite"), *flags)
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    assert re.search(match, err), err
    assert not (tmp_path / "r.sqlite").exists()


def test_train_refuses_a_plain_file_as_models_dir(tmp_path, no_training):
    plain = tmp_path / "plain"
    plain.write_text("x")
    code, out, err = call("train", "--models-dir", str(plain), "--runs-db", str(tmp_path / "r"))
    assert code == EXIT_USAGE and "it is a file, not a folder" in err


def test_out_folder_receives_the_model_inside_it(tmp_path, monkeypatch):
    from nn.cli.train import add_arguments, train_plan

    folder = tmp_path / "existing"
    folder.mkdir()
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    job = train_plan(parser.parse_args(["--out", str(folder), "--name", "mine"]))
    assert job.save_path == str(folder.resolve() / "mine.npz")
    assert not (tmp_path / "existing.npz").exists()


def test_train_refuses_a_network_whose_training_memory_is_above_the_limit(
    tmp_path, no_training, monkeypatch
):
    from nn.core import limits

    monkeypatch.setattr(limits, "MAX_TRAINING_BYTES", 1_000_000)
    code, out, err = call("train", "--runs-db", str(tmp_path / "r"), "--hidden-layers", "512")
    assert code == EXIT_USAGE
    assert "hidden_layers: training this network needs about" in err and "the limit is" in err


# ------------------------------------------------------------------ cases kept from the probe
def _zip(path: Path, members, method=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _symlink(path: Path, target) -> Path:
    os.symlink(target, path)
    return path


MODEL_CASES = {
    "dangling-symlink": lambda d, good: _symlink(d / "x.npz", d / "nowhere.npz"),
    "symlink-loop": lambda d, good: _symlink(d / "x.npz", d / "x.npz"),
    "symlink-dev-zero": lambda d, good: _symlink(d / "x.npz", "/dev/zero"),
    "directory": lambda d, good: (d / "x.npz").mkdir() or d / "x.npz",
    "cut-100": lambda d, good: _write(d / "x.npz", good.read_bytes()[:100]),
    "cut-half": lambda d, good: _write(d / "x.npz", good.read_bytes()[: good.stat().st_size // 2]),
    "cut-tail": lambda d, good: _write(d / "x.npz", good.read_bytes()[:-10]),
    "empty-zip": lambda d, good: _zip(d / "x.npz", []),
    "duplicate-members": lambda d, good: _zip(
        d / "x.npz", [("__meta__.npy", b"a"), ("__meta__.npy", b"b")]
    ),
    "too-many-members": lambda d, good: _zip(
        d / "x.npz", [(f"a{i}.npy", b"") for i in range(10_001)]
    ),
    "deep-pickle": lambda d, good: _write(d / "x.pkl", b"\x80\x04" + b"]" * 100_000 + b"."),
    "bytes8-claims-2**60": lambda d, good: _write(
        d / "x.pkl", b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"xx."
    ),
    "protocol-0": lambda d, good: _write(d / "x.pkl", b"(dp0\n."),
    "wrong-extension": lambda d, good: _write(d / "x.txt", good.read_bytes()),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the crafted zip, when written
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_probe_model_files_get_a_clean_message(model_file, tmp_path, case):
    path = MODEL_CASES[case](tmp_path, model_file)
    with pytest.raises((ValueError, OSError)) as err:
        P.load_model(path)
    assert "allow_pickle" not in str(err.value)
    for command in ("info", "evaluate"):
        code, out, stderr = call(command, str(path))
        assert code == EXIT_USAGE and "Traceback" not in stderr and "error" in stderr, stderr


def _idx(magic: int, dims, payload: bytes = b"") -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload


DATA_CASES = {
    "csv-one-long-line": ("x.csv", b"1," * 2_000_000 + b"1\n"),
    "csv-latin1": ("x.csv", "é,".encode("latin-1") * 785),
    "csv-ragged": ("x.csv", (",".join(["0"] * 785) + "\n1,2\n").encode()),
    "csv-nan": ("x.csv", ("1," + ",".join(["nan"] * 784) + "\n").encode()),
    "csv-header-only": ("x.csv", ("label," + ",".join(f"p{i}" for i in range(784))).encode()),
    "idx-4gb-dims": ("x-idx3-ubyte", _idx(2051, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))),
    "idx-two-bytes": ("x-idx3-ubyte", b"\0\0"),
    "idx-10x10-images": ("x-idx3-ubyte", _idx(2051, (2, 10, 10), b"\0" * 200)),
    "npy-random": ("x.npy", bytes(range(256))),
    "npy-complex": ("x.npy", b""),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_probe_data_files_get_a_clean_message(tmp_path, case):
    name, content = DATA_CASES[case]
    path = tmp_path / name
    if case == "npy-complex":
        np.save(path, np.zeros((3, 784), complex))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert name in str(err.value) and "allow_pickle" not in str(err.value)
    code, out, stderr = call(
        "train", "--data", str(path), "--no-save", "--runs-db", str(tmp_path / "r")
    )
    assert code == EXIT_USAGE and "Traceback" not in stderr


def test_probe_png_whose_header_promises_too_many_pixels(tmp_path):
    import struct

    head = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + head
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    png += struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    path = _write(tmp_path / "huge.png", png)
    with pytest.raises(ValueError, match="huge.png"):
        load_image_file(path)
