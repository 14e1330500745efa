"""Hostile targets and sources of files: what ``export`` may replace, what ``data add``
accepts and how it writes, and what an interrupted save or add leaves for the next start to
clean; each refusal a message and exit 2, nothing replaced that was not asked for."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cli_support import call

from nn.io.model_files import save_model


@pytest.fixture
def models(tmp_path, tiny_model, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    save_model(tiny_model(), folder / "tiny.npz")
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "sets"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.chdir(tmp_path)
    return folder


# ------------------------------------------------------------------ 6: export -o
def test_export_does_not_replace_a_model_a_fifo_or_a_link(models, tmp_path):
    model_bytes = (models / "tiny.npz").read_bytes()
    code, out, err = call("export", "tiny", "--format", "html", "-o", str(models / "tiny.npz"))
    assert code == 2 and "a html export is written to a file ending in .html or .htm" in err
    assert (models / "tiny.npz").read_bytes() == model_bytes
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    code, out, err = call("export", "tiny", "--format", "html", "-o", str(fifo), "--overwrite")
    assert code == 2 and "is not a regular file" in err, err
    assert fifo.is_fifo()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link.html").symlink_to(victim)
    code, out, err = call("export", "tiny", "--format", "html", "-o", "link.html", "--overwrite")
    assert code == 2 and "is not a regular file" in err and victim.read_text() == "keep"
    assert (tmp_path / "link.html").is_symlink()


def test_export_replaces_an_existing_file_only_with_overwrite(models, tmp_path):
    target = tmp_path / "reader.html"
    target.write_text("mine")
    code, out, err = call("export", "tiny", "--format", "html", "-o", str(target))
    assert code == 2 and "exists already; give --overwrite" in err and target.read_text() == "mine"
    (tmp_path / "tiny.html").write_text("mine")
    code, out, err = call("export", "tiny", "--format", "html")
    assert code == 2 and "exists already" in err
    code, out, err = call("export", "tiny", "--format", "html", "-o", str(target), "--overwrite")
    assert code == 0 and target.read_text(encoding="utf-8").startswith("<!doctype html>"), err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_export_to_a_device_is_refused(models):
    code, out, err = call("export", "tiny", "--format", "html", "-o", "/dev/full", "--overwrite")
    assert code == 2 and "ending in .html or .htm" in err, err
    assert not os.path.isfile("/dev/full")


# ------------------------------------------------------------------ 7: untrainable sets
def _npz(path, y_train, y_test=None, shape=(4, 4)):
    rng = np.random.default_rng(0)
    y_train = np.asarray(y_train, dtype=np.int64)
    x_train = rng.integers(0, 256, (len(y_train), *shape), dtype=np.uint8)
    if y_test is None:  # no test part: the add makes one
        np.savez(path, x=x_train, y=y_train)
        return path
    y_test = np.asarray(y_test, dtype=np.int64)
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=rng.integers(0, 256, (len(y_test), *shape), dtype=np.uint8),
        y_test=y_test,
    )
    return path


@pytest.mark.parametrize(
    "y_train,y_test,classes,message",
    [
        ([5] * 20, [5] * 4, None, "every training image is of class '5' (label 5)"),
        ([255] * 20, None, None, "every training image is of class '255'"),
        ([0, 1] * 10, [0, 1, 2], None, "the test part holds class(es) '2'"),
        (list(range(1000)) * 1, None, None, "classes have fewer than 2 training images"),
        ([0, 1] * 10, [0, 1], "a,b,c", "1 of 3 classes have fewer than 2 training images ('c')"),
    ],
    ids=["one-label", "all-255", "test-only-class", "one-image-per-class", "extra-names"],
)
def test_data_add_refuses_sets_that_cannot_be_trained(
    models, tmp_path, y_train, y_test, classes, message
):
    source = _npz(tmp_path / "set.npz", y_train, y_test)
    flags = ["--classes", classes] if classes else []
    code, out, err = call("data", "add", str(source), "--name", "bad", *flags)
    assert code == 2 and message in err, err
    assert not (tmp_path / "sets").exists() or not list((tmp_path / "sets").iterdir())


def test_idx_labels_all_255_are_refused_at_add(models, tmp_path):
    from datasets_synthetic import write_idx

    x = np.zeros((20, 4, 4), dtype=np.uint8)
    write_idx(tmp_path / "idx", x, np.full(20, 255))
    code, out, err = call("data", "add", str(tmp_path / "idx"), "--name", "bad")
    assert code == 2 and "every training image is of class '255'" in err, err


# ------------------------------------------------------------------ 9: one name, two adds
def test_two_adds_of_one_name_do_not_both_succeed(models, tmp_path, monkeypatch):
    import nn.data.registry as R

    first = _npz(tmp_path / "first.npz", [0, 1] * 10)
    second = _npz(tmp_path / "second.npz", [1, 0] * 12)
    write_set = R._write_set
    raced = []

    def write_then_race(tmp, arrays, info):  # the other add finishes while this one writes
        write_set(tmp, arrays, info)
        if not raced:
            raced.append(None)
            raced.append(R.add_set(second, "same"))

    monkeypatch.setattr(R, "_write_set", write_then_race)
    with pytest.raises(R.DataError, match="was added meanwhile"):
        R.add_set(first, "same")
    assert R.get_info("same").sha256 == raced[1].sha256  # the second add's set stays
    assert [p.name for p in (tmp_path / "sets").iterdir()] == ["same"]


# ------------------------------------------------------------------ 11: leftovers
def test_a_killed_adds_folder_is_removed_at_the_next_listing_and_named(models, tmp_path):
    import fcntl

    sets = tmp_path / "sets"
    dead = sets / ".adding-big.k1l2"
    dead.mkdir(parents=True)
    (dead / "arrays.npz").write_bytes(b"\0" * 100_000)
    busy = sets / ".adding-busy.x9y8"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an add still working in it
        code, out, err = call("data", "list")
    finally:
        os.close(fd)
    assert code == 0 and f"removed {dead} (97.7 KB), left by an add" in out, out
    assert not dead.exists() and busy.exists()


# ------------------------------------------------------------------ 10: --data before --layers
def test_a_stack_is_checked_against_the_sets_images_not_mnists(models, tmp_path):
    from datasets_synthetic import COLOUR_SHAPE, make_images, write_npz

    x, y = make_images(80, COLOUR_SHAPE, 4, seed=3)
    write_npz(tmp_path / "colour.npz", x, y, 20)
    assert call("data", "add", str(tmp_path / "colour.npz"), "--name", "colour")[0] == 0
    flags = ["--epochs", "1", "--train-size", "40", "--batch-size", "20", "--no-save", "-q"]
    code, out, err = call("train", "--data", "colour", "--layers", "conv8k30,relu", *flags)
    assert code == 0, err  # 32x32 images take a 30x30 kernel; 28x28 ones would not
    code, out, err = call("train", "--data", "colour", "--layers", "conv8k33,relu", *flags)
    assert code == 2 and "does not fit colour (32x32x3 images, 4 classes)" in err, err


# ------------------------------------------------------------------ 8: a BOM before a CSV
def test_a_bom_before_a_header_less_csv_keeps_row_one(models, tmp_path):
    from nn.data.datasets import load_dataset

    rows = [f"{k % 2}," + ",".join(str((k * 7 + i) % 256) for i in range(16)) for k in range(10)]
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    data = load_dataset(path, any_shape=True)
    assert len(data.y) == 10 and data.x[0, 1] == 1 and data.x[1, 0] == 7  # row 1 kept


# ------------------------------------------------------------------ caps on training's numbers
@pytest.mark.parametrize(
    "flags,message",
    [
        (["--epochs", "1000000000"], "epochs=1000000000 is not allowed: use a whole number in"),
        (["--split-seed", str(10**23)], f"--split-seed {10**23}: use a whole number from 0 to"),
    ],
)
def test_train_refuses_numbers_beyond_the_limits(models, flags, message):
    code, out, err = call("train", "--no-save", *flags)
    assert code == 2 and message in err, err


# ------------------------------------------------------------------ 11: killed saves, full disks
def test_a_save_killed_midway_leaves_a_temp_file_the_next_listing_removes(models, tmp_path):
    import signal
    import subprocess
    import sys

    from nn.io.models_folder import list_models

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from nn.io.npz import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'x' * 100_000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        "atomic_write(Path(sys.argv[1]), write)\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(models / "big.npz")],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        (tmp,) = [p for p in models.iterdir() if p.name.startswith(".big.npz.")]
        list_models(models)
        assert tmp.exists()  # a save at work is left alone
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert tmp.exists() and tmp.name.endswith(".tmp")
    rows = list_models(models)
    assert not tmp.exists() and [r["stem"] for r in rows] == ["tiny"]


def test_mine_export_on_a_full_disk_names_the_file_and_leaves_nothing(
    models, tmp_path, monkeypatch
):
    import errno

    monkeypatch.setenv("NN_MINE_DB", str(tmp_path / "mine.sqlite"))
    np.savez(tmp_path / "good.npz", x=np.full((4, 784), 9, np.uint8), y=np.array([1, 1, 5, 0]))
    assert call("mine", "import", str(tmp_path / "good.npz"))[0] == 0

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("nn.io.npz.os.fsync", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = call("mine", "export", str(out_dir / "x.npz"))
    assert code == 2 and f"{out_dir / 'x.npz'}: No space left on device" in err, err
    assert list(out_dir.iterdir()) == []


def test_mine_import_of_a_device_says_what_it_is(models, tmp_path, monkeypatch):
    monkeypatch.setenv("NN_MINE_DB", str(tmp_path / "mine.sqlite"))
    code, out, err = call("mine", "import", "/dev/zero")
    assert code == 2 and "/dev/zero: not a regular file" in err and "no such file" not in err
    code, out, err = call("mine", "import", str(tmp_path))
    assert code == 2 and "not a regular file" in err


def test_runs_limit_beyond_the_database_is_refused(models):
    code, out, err = call("runs", "--limit", str(10**23))
    assert code == 2 and "use 0 (all) to 1,000,000" in err and "OverflowError" not in err, err


@pytest.mark.parametrize("name", ["x\ny", "x\ty", "x\x00y"])
def test_names_with_control_characters_are_refused_not_rewritten(models, tmp_path, name):
    from nn.data.registry import sanitize_set_name
    from nn.io.models_folder import sanitize_model_name

    with pytest.raises(ValueError, match="line break, tab or other control character"):
        sanitize_set_name(name)
    with pytest.raises(ValueError, match="line break, tab or other control character"):
        sanitize_model_name(name)
    assert sanitize_set_name("My Set") == "my-set" and sanitize_model_name("my net") == "my_net"


# ------------------------------------------------------------------ pipes and devices as inputs
@pytest.mark.parametrize("suffix", [".npz", ".npy", ".csv", "-idx3-ubyte"])
def test_a_pipe_given_as_data_is_refused_not_read(models, tmp_path, suffix):
    fifo = tmp_path / f"data{suffix}"
    os.mkfifo(fifo)  # reading it would block until someone writes
    code, out, err = call("train", "--data", str(fifo), "--epochs", "1", "--no-save")
    assert code == 2 and "not a regular file" in err, err
    code, out, err = call("data", "add", str(fifo), "--name", "pipe")
    assert code == 2 and "not a regular file" in err, err


def test_a_pipe_given_as_an_image_is_refused_not_read(models, tmp_path):
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    code, out, err = call("predict", "tiny", str(fifo), "--json")
    assert "not a regular file" in err, err


def test_a_csv_that_is_not_numbers_is_described_in_its_own_terms(models, tmp_path):
    path = tmp_path / "words.csv"
    path.write_text("0,1,2,3\n1,2,c,4\n")
    code, out, err = call("data", "add", str(path), "--name", "words")
    assert code == 2 and "line 2 of the data, column 3: 'c' is not a number" in err, err
    assert "could not convert" not in err and "float32" not in err


def test_empty_names_are_refused_not_replaced_by_a_default(models):
    code, out, err = call("train", "--name", "", "--epochs", "1", "--no-save")
    assert code == 2 and "--name is empty" in err, err
    code, out, err = call("--workspace", "", "info", "tiny")
    assert code == 2 and "is not a workspace id" in err, err


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--learning-rate", "1_0"], "'1_0' is not a number"),
        (["--learning-rate", "١"], "'١' is not a number"),
        (["--epochs", "١٠"], "'١٠' is not a whole number"),
        (["--epochs", "9" * 5000], "is not a whole number"),
        (["--hidden-layers", "1_6"], "'1_6' is not a whole number"),
    ],
)
def test_number_flags_read_plain_ascii_numbers(models, flags, needle):
    code, out, err = call("train", "--no-save", *flags)
    assert code == 2 and needle in err and "set_int_max_str_digits" not in err, err


def test_a_save_that_must_not_replace_does_not_even_when_raced(models, tmp_path, tiny_model):
    import nn.io.model_files as MF
    from nn.io.models_folder import SaveRecord, save_named

    target = models / "new.npz"
    write = MF.atomic_write

    def raced(path, fn, *, replace=True):  # another save takes the name meanwhile
        target.write_bytes(b"theirs")
        return write(path, fn, replace=replace)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MF, "atomic_write", raced)
        with pytest.raises(ValueError, match="a model called 'new' exists already"):
            save_named(tiny_model(), target, "new", SaveRecord(metrics={}), overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert not [p for p in models.iterdir() if p.name.endswith(".tmp")]
    assert save_named(
        tiny_model(), models / "other.npz", "other", SaveRecord(metrics={}), overwrite=False
    )
