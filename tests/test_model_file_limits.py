"""Model files against the product's limits: sizes checked before anything is allocated, every
metadata type checked, weights that are finite floats, read_metadata agreeing with load_model."""

from __future__ import annotations

import io
import json
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nn.io.model_files as P
import nn.io.npz as NPZ
from nn.core.limits import MAX_PARAMETERS
from nn.core.network import NeuralNetwork
from nn.core.state import to_state
from nn.io.model_files import ModelFileError

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct


def _fit():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 6), dtype=np.uint8)
    y = rng.integers(0, 3, size=40)
    return NeuralNetwork(hidden_layers=(4,), epochs=1, batch_size=8, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def model():
    return _fit()


class _Call:
    """Pickles as ``func(*args)``: how a crafted file makes the unpickler call a global."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _export(model, tmp_path, name="m"):
    path = P.export_pickle(model, tmp_path / f"{name}.pkl")
    with open(path, "rb") as f:
        payload = pickle.load(f)
    return path, payload


def _rewrite_npz(src: Path, dst: Path, *, meta=None, replace=None) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    m = json.loads(str(arrays.pop("__meta__")))
    if meta:
        meta(m)
    for key, arr in (replace or {}).items():
        arrays[key] = arr
        m["array_manifest"][key] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
    np.savez(dst, __meta__=np.array(json.dumps(m)), **arrays)
    return dst


def _peak_bytes(func) -> int:
    tracemalloc.start()
    try:
        func()
    finally:
        _size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# ------------------------------------------------------------------ sizes before allocation
@pytest.mark.parametrize(
    "array,match",
    [
        (_Call(np.ndarray, (784, 2_000_000), "<f4"), "refuses to call numpy.ndarray"),
        (_Call(_reconstruct, np.ndarray, (300_000_000,), "O"), "refuses dtype"),
        (_Call(_reconstruct, np.ndarray, (3e8,), "b"), "not whole numbers"),
        (_Call(_reconstruct, np.ndarray, (300_000_000,), "f8"), "at most 20,000,000 parameters"),
    ],
    ids=["ndarray-call", "object-dtype", "float-shape", "huge-shape"],
)
def test_pickle_sizes_are_refused_before_numpy_allocates(tmp_path, model, array, match):
    _path, payload = _export(model, tmp_path)
    payload["arrays"]["layer0.dense.weight"] = array
    data = pickle.dumps(payload, protocol=4)
    assert len(data) < 10_000
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(data)

    def load():
        with pytest.raises(ModelFileError, match=match):
            P.load_model(evil)
        with pytest.raises(ModelFileError, match=match):
            P.load_model_bytes(data, "evil.pkl")

    assert _peak_bytes(load) < 5_000_000  # the arrays asked for take 2.4 GB and more


def test_pickle_build_state_must_match_its_bytes(tmp_path, model):
    _path, payload = _export(model, tmp_path)
    data = pickle.dumps(payload, protocol=4)
    # layer0.dense.weight is (6, 4) float32: its BUILD state says shape (6, 4); claim (6, 4000000)
    assert b"K\x06K\x04\x86" in data
    evil = tmp_path / "build.pkl"
    evil.write_bytes(data.replace(b"K\x06K\x04\x86", b"K\x06J\x00\x09\x3d\x00\x86", 1))
    with pytest.raises(ModelFileError, match=r"needs \d+ bytes but holds 96"):
        P.load_model(evil)


def _npz_with_header(tmp_path, model, shape, compress=False) -> Path:
    """A saved model whose layer0.dense.weight member claims ``shape`` in its .npy header (its
    data short)."""
    src = P.save_model(model, tmp_path / "src.npz")
    dst = tmp_path / "claims.npz"
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", method) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "layer0.dense.weight.npy":
                head = io.BytesIO()
                header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(head, header)
                data = head.getvalue() + b"\0" * 1024
            zout.writestr(info.filename, data)
    return dst


def test_npz_header_is_checked_before_the_data_is_read(tmp_path, model, monkeypatch):
    path = _npz_with_header(tmp_path, model, (784, 280_000))
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(
        np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k)
    )
    with pytest.raises(ModelFileError, match="at most 20,000,000 parameters") as err:
        P.load_model(path)
    assert "claims.npz" in str(err.value) and reads == []
    with pytest.raises(ModelFileError, match="at most 20,000,000 parameters"):
        P.read_metadata(path)


def test_npz_that_expands_past_the_limit_is_refused(tmp_path, model, monkeypatch):
    # a few KB of deflated zeros that expand to a model above the (lowered) limit
    monkeypatch.setattr(NPZ, "MAX_ARRAY_ELEMENTS", 200_000)
    monkeypatch.setattr(NPZ, "MAX_ARRAY_BYTES", 1_600_000)
    src = P.save_model(model, tmp_path / "src.npz")
    big = np.zeros((6, 250_000), np.float32)
    dst = _rewrite_npz(src, tmp_path / "expands.npz", replace={"layer0.dense.weight": big})
    packed = tmp_path / "packed.npz"
    with zipfile.ZipFile(dst) as zin, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    assert packed.stat().st_size < 100_000
    with pytest.raises(ModelFileError, match=r"array 'layer0\.dense\.weight' of shape"):
        P.load_model_bytes(packed.read_bytes(), "packed.npz")


def test_layer_sizes_above_the_parameter_limit_are_refused(tmp_path, model):
    src = P.save_model(model, tmp_path / "src.npz")
    path = _rewrite_npz(
        src, tmp_path / "layers.npz", meta=lambda m: m.update(layer_sizes=[784, 30_000, 10])
    )
    with pytest.raises(ModelFileError, match="23,850,010 parameters; .* at most"):
        P.read_metadata(path)


def test_file_larger_than_any_model_is_refused_before_reading(tmp_path, model, monkeypatch):
    path = P.save_model(model, tmp_path / "m.npz")
    pkl = P.export_pickle(model, tmp_path / "m.pkl")
    monkeypatch.setattr(NPZ, "MAX_UNCOMPRESSED_BYTES", 100)
    for p in (path, pkl):
        with pytest.raises(ModelFileError, match="a model file of this product is at most 100"):
            P.load_model(p)


def test_limits_derive_from_the_parameter_limit():
    assert NPZ.MAX_ARRAY_ELEMENTS == MAX_PARAMETERS * 3
    assert NPZ.MAX_UNCOMPRESSED_BYTES == MAX_PARAMETERS * 3 * 8 + NPZ.MAX_META_BYTES


# ------------------------------------------------------------------ metadata types
BAD_FIELDS = [
    ("params", "x", "'params'"),
    ("params", [1, 2], "'params'"),
    ("layer_sizes", "6-4-3", "'layer_sizes'"),
    ("layer_sizes", [6, -4, 3], "'layer_sizes'"),
    ("layer_sizes", [6.0, 4, 3], "'layer_sizes'"),
    ("classes", 3, "'classes'"),
    ("classes", [[0], [1], [2]], "'classes'"),
    ("classes", [], "0 classes"),
    ("classes", [1, 1, 1], "3 classes \\(1 distinct\\)"),
    ("n_features_in", "6", "'n_features_in'"),
    ("n_iter", -1, "'n_iter'"),
    ("n_iter", "x", "'n_iter'"),
    ("history", [1, 2], "'history'"),
    ("history", {"loss": 3}, "'history.loss'"),
    ("optimizer", "adam", "'optimizer'"),
    ("metrics", [0.9], "'metrics'"),
    ("name", 5, "'name'"),
    ("notes", {"a": 1}, "'notes'"),
    ("n_parameters", "many", "'n_parameters'"),
    ("best_val_accuracy", "high", "'best_val_accuracy'"),
    ("stop_reason", 3, "'stop_reason'"),
    ("classes_dtype", 7, "'classes_dtype'"),
]


@pytest.mark.parametrize(
    "key,value,match", BAD_FIELDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_FIELDS]
)
@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_wrong_metadata_types_are_model_file_errors(tmp_path, model, key, value, match, fmt):
    src = P.save_model(model, tmp_path / "src.npz")
    path = _rewrite_npz(src, tmp_path / "bad.npz", meta=lambda m: m.update({key: value}))
    if fmt == "pkl":
        _p, payload = _export(model, tmp_path)
        payload["meta"][key] = value
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=4))
    for load in (P.load_model, P.read_metadata):
        with pytest.raises(ModelFileError, match=match) as err:
            load(path)
        assert f"bad.{fmt}" in str(err.value)


def test_a_crash_in_from_state_is_still_a_model_file_error(tmp_path, model, monkeypatch):
    path = P.save_model(model, tmp_path / "m.npz")

    def broken(state, arrays):
        raise AttributeError("'str' object has no attribute 'items'")

    monkeypatch.setattr(P, "from_state", broken)
    with pytest.raises(ModelFileError, match="inconsistent: a field is missing"):
        P.load_model(path)


# ------------------------------------------------------------------ weight values
BAD_WEIGHTS = {
    "nan": lambda w: np.where(np.arange(w.size).reshape(w.shape) == 0, np.nan, w).astype(w.dtype),
    "inf": lambda w: np.full_like(w, np.inf),
    "int": lambda w: np.zeros(w.shape, np.int64),
    "complex": lambda w: w.astype(np.complex64),
    "text": lambda w: np.full(w.shape, "0.5"),
    "bool": lambda w: np.ones(w.shape, bool),
    "float16": lambda w: w.astype(np.float16),
}


@pytest.mark.parametrize("kind", sorted(BAD_WEIGHTS))
@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_weights_that_are_not_finite_floats_are_refused(tmp_path, model, kind, fmt):
    src = P.save_model(model, tmp_path / "src.npz")
    bad = BAD_WEIGHTS[kind](model.coefs_[0])
    path = _rewrite_npz(src, tmp_path / "w.npz", replace={"layer0.dense.weight": bad})
    if fmt == "pkl":
        _p, payload = _export(model, tmp_path)
        payload["arrays"]["layer0.dense.weight"] = bad
        payload["meta"]["array_manifest"]["layer0.dense.weight"]["dtype"] = bad.dtype.str
        path = tmp_path / "w.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=4))
    match = "NaN or infinite" if kind in ("nan", "inf") else "weights are float32 or float64"
    with pytest.raises(ModelFileError, match=rf"array 'layer0\.dense\.weight' .*{match}"):
        P.load_model(path)
    with pytest.raises(ModelFileError, match=match):
        P.load_model_bytes(path.read_bytes(), path.name)
    with pytest.raises(ModelFileError, match=match):
        P.read_metadata(path, check_arrays=True)


def test_nan_optimizer_state_is_refused(tmp_path, model):
    src = P.save_model(model, tmp_path / "src.npz")
    opt = next(k for k in to_state(model)[1] if k.startswith("opt."))
    state = np.full_like(to_state(model)[1][opt], np.nan)
    path = _rewrite_npz(src, tmp_path / "opt.npz", replace={opt: state})
    with pytest.raises(ModelFileError, match=f"'{opt}' holds NaN"):
        P.load_model(path)


# ------------------------------------------------------------------ read_metadata vs load_model
def test_read_metadata_with_check_arrays_agrees_with_load_model(tmp_path, model):
    good = P.save_model(model, tmp_path / "good.npz")
    assert P.read_metadata(good, check_arrays=True) == P.read_metadata(good)
    nan = _rewrite_npz(
        good,
        tmp_path / "nan.npz",
        replace={"layer0.dense.weight": np.full_like(model.coefs_[0], np.nan)},
    )
    assert P.read_metadata(nan)["name"] == "good"  # the cheap read sees headers only
    with pytest.raises(ModelFileError, match="NaN"):
        P.read_metadata(nan, check_arrays=True)


# ------------------------------------------------------------------ messages
@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(1).bytes(4096),
        b"PK\x03\x04" + np.random.default_rng(2).bytes(4096),
        b"\x93NUMPY" + np.random.default_rng(3).bytes(100),
    ],
    ids=["random", "zip-magic", "npy-magic"],
)
def test_random_bytes_named_npz_never_suggest_allow_pickle(tmp_path, content):
    path = tmp_path / "random.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as err:
        P.load_model(path)
    assert "allow_pickle" not in str(err.value) and "random.npz" in str(err.value)


def test_zip_member_that_is_not_an_npy_array(tmp_path):
    path = tmp_path / "notnpy.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__meta__.npy", b"just some text, not an array")
    with pytest.raises(ModelFileError, match="unreadable .npy header") as err:
        P.load_model(path)
    assert "allow_pickle" not in str(err.value)


def test_layer_sizes_that_disagree_with_the_arrays_are_refused(tmp_path, model):
    src = P.save_model(model, tmp_path / "src.npz")
    sizes = list(model.layer_sizes_)
    path = _rewrite_npz(src, tmp_path / "lie.npz", meta=lambda m: m.update(layer_sizes=sizes[:-1]))
    with pytest.raises(ModelFileError, match="metadata says layers"):
        P.load_model(path)
    with pytest.raises(ModelFileError, match="metadata says layers"):
        P.read_metadata(path, check_arrays=True)
