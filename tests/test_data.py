"""Tests for nn.data: IDX/CSV/npz/npy loading, validation messages, bundled MNIST, splits."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from nn.data import (
    MNIST,
    MNIST_DIR,
    SPLITS,
    DataError,
    ImageSet,
    Split,
    find_idx_pair,
    load_dataset,
    load_mnist,
    read_idx,
    split_dataset,
)

RNG = np.random.default_rng(1234)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Serialise a uint8 array as IDX (optionally with a forged magic number)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False, magic: int | None = None) -> Path:
    data = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def tiny(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = np.arange(n, dtype=np.uint8) % 10
    return x, y


def write_idx_folder(
    folder: Path, spelling: str = "-", gz: bool = False, test: bool = True
) -> tuple:
    folder.mkdir(exist_ok=True)
    ext = ".gz" if gz else ""
    parts = {"train": tiny(30), "t10k": tiny(10)} if test else {"train": tiny(30)}
    for kind, (x, y) in parts.items():
        write_idx(folder / f"{kind}-images{spelling}idx3-ubyte{ext}", x, gz)
        write_idx(folder / f"{kind}-labels{spelling}idx1-ubyte{ext}", y, gz)
    return parts


# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    x, y = tiny()
    # a gzip file without .gz extension is still detected by its magic bytes
    xi = read_idx(write_idx(tmp_path / "imgs", x, gz))
    yi = read_idx(write_idx(tmp_path / "labs", y, gz), kind="labels")
    assert xi.shape == (20, 28, 28) and xi.dtype == np.uint8 and not xi.flags.writeable
    np.testing.assert_array_equal(xi, x)
    np.testing.assert_array_equal(yi, y)


@pytest.mark.parametrize("spelling", ["-", "."])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_both_spellings(tmp_path: Path, spelling: str, gz: bool) -> None:
    parts = write_idx_folder(tmp_path / "d", spelling, gz)
    images, labels = find_idx_pair(tmp_path / "d", "train")
    assert images.name.startswith("train-images") and labels.name.startswith("train-labels")
    data = load_dataset(tmp_path / "d")
    assert isinstance(data, MNIST)
    np.testing.assert_array_equal(data.x_train, parts["train"][0].reshape(30, 784))
    np.testing.assert_array_equal(data.y_test, parts["t10k"][1])
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.x_train.shape == (30, 784) and not data.y_train.flags.writeable


def test_idx_folder_train_only_gives_imageset(tmp_path: Path) -> None:
    write_idx_folder(tmp_path / "d", test=False)
    data = load_dataset(tmp_path / "d")
    assert isinstance(data, ImageSet) and data.x.shape == (30, 784) and len(data.y) == 30


def test_find_idx_pair_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no t10k images IDX file"):
        find_idx_pair(tmp_path, "test")


def test_wrong_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.idx3-ubyte", tiny()[0], magic=2050)
    with pytest.raises(
        DataError,
        match=r"x\.idx3-ubyte: wrong magic number 2050, expected 2051 for an IDX image file",
    ):
        read_idx(path, kind="images")
    with pytest.raises(DataError, match="wrong magic number 2050"):
        read_idx(path)


def test_truncated(tmp_path: Path) -> None:
    path = tmp_path / "x.idx3-ubyte"
    path.write_bytes(idx_bytes(tiny()[0])[:-5])
    with pytest.raises(DataError, match=r"x\.idx3-ubyte: truncated"):
        read_idx(path)
    path.write_bytes(idx_bytes(tiny()[0])[:10])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(tiny()[0]))[:-20])
    with pytest.raises(DataError, match=r"x\.idx3-ubyte\.gz: (corrupt or truncated|truncated)"):
        read_idx(path)


def test_extra_bytes(tmp_path: Path) -> None:
    path = tmp_path / "y.idx1-ubyte"
    path.write_bytes(idx_bytes(tiny()[1]) + b"\x00\x01\x02")
    with pytest.raises(DataError, match=r"y\.idx1-ubyte: 3 unexpected extra bytes"):
        read_idx(path)


def test_idx_labels_outside_range(tmp_path: Path) -> None:
    write_idx_folder(tmp_path / "d", test=False)
    y = tiny(30)[1].copy()
    y[7] = 12
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", y)
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte: label 12 at index 7 is outside 0-9"
    ):
        load_dataset(tmp_path / "d")


def test_idx_shapes_disagree(tmp_path: Path) -> None:
    write_idx_folder(tmp_path / "d", test=False)
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", tiny(29)[1])
    with pytest.raises(DataError, match="30 images but 29 labels"):
        load_dataset(tmp_path / "d")


def test_idx_wrong_image_size(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match="wrong image size: expected 784 pixels"):
        load_dataset(path)


def test_idx_pair_paths(tmp_path: Path) -> None:
    x, y = tiny()
    data = load_dataset(
        (write_idx(tmp_path / "a-idx3-ubyte", x), write_idx(tmp_path / "b-idx1-ubyte", y))
    )
    assert isinstance(data, ImageSet) and data.x.shape == (20, 784)


# ---------------------------------------------------------------------------- CSV


def write_csv(path: Path, rows: list[list], header: bool = True, label: bool = True) -> Path:
    lines = []
    if header:
        lines.append(",".join((["label"] if label else []) + [f"pixel{i}" for i in range(784)]))
    lines += [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_rows(n: int = 5, label: bool = True) -> list[list]:
    x, y = tiny(n)
    return [([int(y[i])] if label else []) + x[i].ravel().tolist() for i in range(n)]


def test_csv_good(tmp_path: Path) -> None:
    rows = csv_rows()
    data = load_dataset(write_csv(tmp_path / "train.csv", rows))
    assert isinstance(data, ImageSet)
    assert data.x.dtype == np.uint8 and data.x.shape == (5, 784) and data.y.dtype == np.int64
    np.testing.assert_array_equal(data.x, np.array(rows)[:, 1:])
    np.testing.assert_array_equal(data.y, np.array(rows)[:, 0])


def test_csv_unlabeled_and_headerless(tmp_path: Path) -> None:
    data = load_dataset(write_csv(tmp_path / "test.csv", csv_rows(label=False), label=False))
    assert data.y is None and data.x.shape == (5, 784)
    data = load_dataset(write_csv(tmp_path / "nohead.csv", csv_rows(), header=False))
    assert data.y is not None and data.x.shape == (5, 784)


def test_csv_bad(tmp_path: Path) -> None:
    rows = csv_rows()
    rows[2] = rows[2][:-1]
    with pytest.raises(DataError, match=r"short\.csv: malformed CSV.*column"):
        load_dataset(write_csv(tmp_path / "short.csv", rows))
    rows = csv_rows()
    rows[1][10] = 300
    with pytest.raises(DataError, match=r"pixel\.csv.*pixel value 300 is outside 0-255"):
        load_dataset(write_csv(tmp_path / "pixel.csv", rows))
    rows = csv_rows()
    rows[3][0] = 11
    with pytest.raises(DataError, match=r"label\.csv.*label 11 at index 3 is outside 0-9"):
        load_dataset(write_csv(tmp_path / "label.csv", rows))
    rows = csv_rows()
    rows[0][5] = "abc"
    with pytest.raises(DataError, match=r"text\.csv: malformed CSV.*abc"):
        load_dataset(write_csv(tmp_path / "text.csv", rows))
    (tmp_path / "narrow.csv").write_text("label,a,b\n1,2,3\n")
    with pytest.raises(DataError, match=r"narrow\.csv: the header has 3 columns"):
        load_dataset(tmp_path / "narrow.csv")


# ---------------------------------------------------------------------------- npz / npy


def test_npz_good(tmp_path: Path) -> None:
    x, y = tiny()
    path = tmp_path / "d.npz"
    # (n, 28, 28) uint8 for train, (n, 784) floats in [0, 1] for test
    np.savez(
        path, x_train=x, y_train=y, x_test=x.reshape(20, 784) / 255.0, y_test=y.astype(np.int32)
    )
    data = load_dataset(path)
    assert (
        isinstance(data, MNIST)
        and data.x_train.shape == (20, 784)
        and data.x_test.dtype == np.uint8
    )
    np.testing.assert_array_equal(data.x_test, x.reshape(20, 784))
    assert data.y_test.dtype == np.int64


def test_npz_object_array_refused(tmp_path: Path) -> None:
    x, y = tiny()
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([x, "payload"], dtype=object), y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match=r"evil\.npz\[x_train\]: not a plain numeric array"):
        load_dataset(path)


def test_npz_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=tiny()[0])
    with pytest.raises(DataError, match=r"partial\.npz: missing keys y_train, x_test, y_test"):
        load_dataset(path)


def test_npz_bad_float_pixels(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, x=np.full((2, 784), 3.5), y=np.zeros(2, int))
    with pytest.raises(
        DataError, match=r"f\.npz\[x\]: pixel values must be integers 0-255 or floats in \[0, 1\]"
    ):
        load_dataset(path)


def test_npy_pairs(tmp_path: Path) -> None:
    x, y = tiny()
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x_train.npy", x)
    np.save(folder / "y_train.npy", y)
    data = load_dataset(folder)
    assert isinstance(data, ImageSet) and data.x.shape == (20, 784)
    np.save(folder / "x_test.npy", x[:5].reshape(5, 784))
    np.save(folder / "y_test.npy", y[:5])
    assert isinstance(load_dataset(folder), MNIST)
    pair = load_dataset((folder / "x_train.npy", folder / "y_train.npy"))
    np.testing.assert_array_equal(pair.y, y)
    np.save(folder / "y_bad.npy", y[:7])
    with pytest.raises(DataError, match="20 images but 7 labels"):
        load_dataset((folder / "x_train.npy", folder / "y_bad.npy"))


def test_unsupported_and_missing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(tmp_path / "a.txt")
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="no dataset found"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------------------- bundled MNIST


@pytest.fixture(scope="module")
def mnist() -> MNIST:
    return load_mnist()  # verify=True: checks the SHA-256 of every decompressed file


def test_bundled_mnist(mnist: MNIST) -> None:
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    for x in (mnist.x_train, mnist.x_test):
        assert x.dtype == np.uint8 and x.flags.c_contiguous and not x.flags.writeable
    for y in (mnist.y_train, mnist.y_test):
        assert y.dtype == np.int64 and not y.flags.writeable
        assert set(np.unique(y)) == set(range(10))
    with pytest.raises(ValueError):
        mnist.x_train[0, 0] = 1


def test_corrupted_copy_fails_checksum(tmp_path: Path) -> None:
    for path in MNIST_DIR.glob("*.gz"):
        shutil.copy(path, tmp_path / path.name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8 + 100] = (raw[8 + 100] + 1) % 10  # label 100 changed: valid IDX, not the official file
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 checksum mismatch"):
        load_mnist(tmp_path)
    assert load_mnist(tmp_path, verify=False).y_test[100] == raw[8 + 100]


# ---------------------------------------------------------------------------- splits


def assert_stratified(y_part: np.ndarray, y_pool: np.ndarray) -> None:
    ideal = np.bincount(y_pool, minlength=10) * len(y_part) / len(y_pool)
    assert np.all(np.abs(np.bincount(y_part, minlength=10) - ideal) < 1)


def test_split_sizes_and_stratification(mnist: MNIST) -> None:
    pool = np.concatenate([mnist.y_train, mnist.y_test])
    std = split_dataset(mnist, "standard", seed=0)
    assert isinstance(std, Split)
    assert [len(a) for a in std] == [50000, 50000, 10000, 10000, 10000, 10000]
    assert std.x_test is mnist.x_test
    assert_stratified(std.y_train, mnist.y_train)
    assert_stratified(std.y_val, mnist.y_train)
    s80 = split_dataset(mnist, "80:10:10", seed=0)
    assert [len(a) for a in s80] == [56000, 56000, 7000, 7000, 7000, 7000]
    for y in (s80.y_train, s80.y_val, s80.y_test):
        assert_stratified(y, pool)
    custom = split_dataset(mnist, "custom", seed=0, val_fraction=0.15, test_fraction=0.05)
    assert [len(custom.y_train), len(custom.y_val), len(custom.y_test)] == [56000, 10500, 3500]
    assert_stratified(custom.y_test, pool)
    small = split_dataset(mnist, "standard", seed=0, train_size=1000)
    assert len(small.y_train) == 1000
    assert_stratified(small.y_train, std.y_train)
    np.testing.assert_array_equal(small.y_val, std.y_val)  # val does not depend on train_size
    assert SPLITS == ("standard", "80:10:10", "custom")


def test_split_small_pool_stratified_and_disjoint() -> None:
    """On a small labelled set with unique image rows, check no part overlaps another."""
    n = 997
    y = np.r_[np.arange(10), RNG.integers(0, 10, n - 10)]
    x = np.zeros((n, 784), np.uint8)
    x[:, :2] = np.c_[np.arange(n) // 256, np.arange(n) % 256]  # unique id per image
    data = ImageSet(x, y)
    s = split_dataset(data, "custom", seed=3, val_fraction=0.2, test_fraction=0.3)
    ids = [p[:, 0].astype(int) * 256 + p[:, 1] for p in (s.x_train, s.x_val, s.x_test)]
    assert sum(map(len, ids)) == n and len(np.unique(np.concatenate(ids))) == n
    for part_y in (s.y_train, s.y_val, s.y_test):
        assert_stratified(part_y, y)
    for part_x, part_y in ((s.x_train, s.y_train), (s.x_val, s.y_val)):
        np.testing.assert_array_equal(part_y, y[part_x[:, 0].astype(int) * 256 + part_x[:, 1]])


def test_split_no_overlap_standard(mnist: MNIST) -> None:
    s = split_dataset(mnist, "standard", seed=5, train_size=3000)
    rows_train = {row.tobytes() for row in s.x_train}
    assert not any(row.tobytes() in rows_train for row in s.x_val[:2000])


def test_split_seeds(mnist: MNIST) -> None:
    a = split_dataset(mnist, "80:10:10", seed=7, train_size=500)
    b = split_dataset(mnist, "80:10:10", seed=7, train_size=500)
    c = split_dataset(mnist, "80:10:10", seed=8, train_size=500)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.y_val, c.y_val)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scheme="70:30"), "scheme='70:30' is not allowed"),
        (
            dict(scheme="custom", val_fraction=1.0),
            r"val_fraction=1.0 is outside the allowed range \[0, 1\)",
        ),
        (dict(scheme="custom", test_fraction=-0.1), r"test_fraction=-0.1 is outside"),
        (dict(scheme="custom", val_fraction=0.6, test_fraction=0.4), "must be below 1"),
        (dict(scheme="custom", val_fraction="a"), "val_fraction='a' must be a number"),
        (dict(train_size=0), r"train_size=0 is outside the allowed range 1\.\.88"),
        (dict(seed=-1), "split seed -1: use a whole number from 0 to"),
        (dict(seed=2**70), "split seed 1180591620717411303424: use a whole number"),
    ],
)
def test_split_validation(kwargs: dict, message: str) -> None:
    x, y = tiny(100)
    data = MNIST(
        x.reshape(100, 784), y.astype(np.int64), x[:10].reshape(10, 784), y[:10].astype(np.int64)
    )
    scheme = kwargs.pop("scheme", "80:10:10")
    with pytest.raises(ValueError, match=message):
        split_dataset(data, scheme, **kwargs)


def test_split_standard_needs_test_part() -> None:
    x, y = tiny(50)
    with pytest.raises(ValueError, match="needs separate train and test parts"):
        split_dataset(ImageSet(x.reshape(50, 784), y), "standard")
