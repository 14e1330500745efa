"""Tests for nn.persistence: round trips, metadata, atomic writes, corrupt and malicious files."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nn.io.model_files as P
import nn.io.models_folder as F
from nn.core.inputs import NotFittedError
from nn.core.network import NeuralNetwork
from nn.core.params import json_params
from nn.io.model_files import ModelFileError

FORMATS = ("npz", "pkl")


# ------------------------------------------------------------------------------ fixtures
def _data(classes, n=48, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    y = np.asarray(classes)[rng.integers(0, len(classes), size=n)]
    return X, y


def _fit(classes=(0, 1, 2), **kw):
    X, y = _data(classes)
    params = dict(hidden_layers=(8,), epochs=2, batch_size=16, random_state=0)
    params.update(kw)
    return NeuralNetwork(**params).fit(X, y), X


@pytest.fixture
def fitted():  # function-scoped: save_model sets model.metadata_ (0.02 s to fit)
    return _fit()


@pytest.fixture
def clock(monkeypatch):
    """Deterministic, increasing timestamps for created/saved."""
    times = iter(f"2024-01-01T00:00:{s:02d}+00:00" for s in range(60))
    monkeypatch.setattr(P, "_utcnow", lambda: next(times))


def _saved(model, tmp_path, fmt="npz", name="m", **kw):
    return P.save_model(model, tmp_path / f"{name}.{fmt}", **kw)


def _rewrite_npz(src: Path, dst: Path, *, meta=None, drop=(), replace=None, extra=None):
    """Copy a saved npz, optionally editing the metadata or the arrays."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    m = json.loads(str(arrays.pop("__meta__")))
    if meta:
        meta(m)
    for k in drop:
        arrays.pop(k)
    arrays.update(replace or {})
    arrays.update(extra or {})
    np.savez(dst, __meta__=np.array(json.dumps(m)), **arrays)
    return dst


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("classes", [(0, 1, 2), ("cat", "dog"), (3, 7, 9, 11)])
def test_round_trip_is_exact(tmp_path, fmt, classes):
    model, X = _fit(classes, hidden_layers=(8, 5), activation=["tanh", "relu"])
    path = P.save_model(model, tmp_path / f"model.{fmt}")
    assert path == tmp_path / f"model.{fmt}" and path.exists()
    loaded = P.load_model(path)
    assert isinstance(loaded, NeuralNetwork)
    assert np.array_equal(model.predict_proba(X), loaded.predict_proba(X))
    assert np.array_equal(model.predict(X), loaded.predict(X))
    assert json_params(loaded.get_params()) == json_params(model.get_params())
    assert loaded.classes_.tolist() == model.classes_.tolist()
    assert loaded.history_ == model.history_
    assert loaded.n_iter_ == model.n_iter_ and loaded.stop_reason_ == model.stop_reason_
    assert loaded.n_features_in_ == model.n_features_in_
    for a, b in zip(
        model.coefs_ + model.intercepts_, loaded.coefs_ + loaded.intercepts_, strict=True
    ):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # optimizer state survives, so warm-started training can continue
    s1, a1 = model.optimizer_.state_dict()
    s2, a2 = loaded.optimizer_.state_dict()
    assert s1 == s2 and a1.keys() == a2.keys()
    assert all(np.array_equal(a1[k], a2[k]) for k in a1)


def test_formats_agree_and_metadata_stored(tmp_path, fitted, clock):
    model, X = fitted
    p1 = P.save_model(
        model, tmp_path / "a.npz", name="Alpha", metrics={"test_accuracy": 0.5}, notes="first"
    )
    p2 = P.save_model(model, tmp_path / "a.pkl", name="Alpha", metrics={"test_accuracy": 0.5})
    m1, m2 = P.read_metadata(p1), P.read_metadata(p2)
    for m in (m1, m2):
        assert m["format_version"] == P.FORMAT_VERSION and m["library"] == "nn"
        assert m["name"] == "Alpha"
        assert m["metrics"] == {"test_accuracy": 0.5}
        assert m["architecture"] == {
            "layer_sizes": [12, 8, 3],
            "activations": ["relu", "softmax"],
            "stack": "D8-D3",
        }
        assert m["n_parameters"] == model.n_parameters_
        assert m["params"] == json_params(model.get_params())
        assert m["classes"] == [0, 1, 2]
        assert m["history"]["loss"] == model.history_["loss"]
    assert m1["notes"] == "first"
    assert P.load_model(p1).metadata_["name"] == "Alpha"
    assert np.array_equal(P.load_model(p1).predict_proba(X), P.load_model(p2).predict_proba(X))


def test_meta_is_a_plain_unicode_array(tmp_path, fitted):
    path = _saved(fitted[0], tmp_path)
    with np.load(path, allow_pickle=False) as npz:  # would raise on object arrays
        meta = npz["__meta__"]
        assert meta.dtype.kind == "U" and meta.ndim == 0
        assert json.loads(str(meta))["name"] == "m"
        assert {
            "layer0.dense.weight",
            "layer0.dense.bias",
            "layer2.dense.weight",
            "layer2.dense.bias",
        } <= set(npz.files)
    with zipfile.ZipFile(path) as zf:  # uncompressed by design
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_created_is_kept_on_resave_and_saved_updates(tmp_path, fitted, clock):
    path = _saved(fitted[0], tmp_path, name="m", metrics={"test_accuracy": 0.9}, notes="hello")
    first = P.read_metadata(path)
    loaded = P.load_model(path)
    assert loaded.metadata_["created"] == first["created"]
    assert loaded.metadata_["metrics"] == {"test_accuracy": 0.9}
    again = P.save_model(loaded, tmp_path / "copy.npz")
    meta = P.read_metadata(again)
    assert meta["created"] == first["created"]
    assert meta["saved"] > first["saved"]
    assert meta["name"] == "copy"  # default name: the file stem
    assert meta["metrics"] == {"test_accuracy": 0.9} and meta["notes"] == "hello"
    # trained further: the old metrics no longer describe these weights
    loaded.set_params(warm_start=True, epochs=1)
    X, y = _data((0, 1, 2))
    loaded.fit(X, y)
    assert loaded.n_iter_ == fitted[0].n_iter_ + 1
    meta = P.read_metadata(P.save_model(loaded, tmp_path / "more.npz"))
    assert meta["metrics"] == {} and meta["created"] == first["created"]
    assert meta["n_iter"] == loaded.n_iter_


def test_read_metadata_does_not_build_the_model(tmp_path, fitted, monkeypatch):
    path = _saved(fitted[0], tmp_path)

    def boom(state, arrays):
        raise AssertionError("read_metadata must not build a model")

    monkeypatch.setattr(P, "from_state", boom)
    assert P.read_metadata(path)["name"] == "m"


def test_save_paths(tmp_path, fitted):
    model = fitted[0]
    assert P.save_model(model, tmp_path / "noext") == tmp_path / "noext.npz"
    assert P.save_model(model, tmp_path / "m.pkl") == tmp_path / "m.pkl"
    assert P.load_model(tmp_path / "m.pkl").n_iter_ == model.n_iter_
    with pytest.raises(ValueError, match="unsupported extension"):
        P.save_model(model, tmp_path / "m.h5")
    with pytest.raises(ValueError, match=".pkl"):
        P.export_pickle(model, tmp_path / "m.npz")
    with pytest.raises(NotFittedError, match="not fitted"):
        P.save_model(NeuralNetwork(), tmp_path / "unfitted.npz")
    assert not (tmp_path / "unfitted.npz").exists()


def test_nn_package_exports_load_model():
    import nn

    assert nn.load_model is P.load_model


# ------------------------------------------------------------------------------ atomic writes
@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_leaves_old_file_untouched(tmp_path, fitted, monkeypatch, fmt):
    model = fitted[0]
    path = _saved(model, tmp_path, fmt)
    before = path.read_bytes()

    def half_write_then_fail(*args, **kwargs):
        f = args[0] if fmt == "npz" else args[1]  # np.savez(file, ...) / pickle.dump(obj, file)
        f.write(b"PK\x03\x04 partial garbage")
        raise RuntimeError("disk full (simulated)")

    if fmt == "npz":
        monkeypatch.setattr(np, "savez", half_write_then_fail)
    else:
        monkeypatch.setattr(pickle, "dump", half_write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        P.save_model(model, path, name="other")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temp file left behind


def test_failing_to_state_writes_nothing(tmp_path, fitted, monkeypatch):
    model = fitted[0]
    path = _saved(model, tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(P, "to_state", lambda m: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        P.save_model(model, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]


# ------------------------------------------------------------------------------ malicious pickles
class _Exploit:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payload(meta_extra=None, arrays_extra=None):
    return {
        "format_version": 1,
        "meta": {"name": "evil", **(meta_extra or {})},
        "arrays": {"coef_0": np.zeros((2, 2), np.float32), **(arrays_extra or {})},
    }


def test_pickle_cannot_run_os_system(tmp_path):
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Exploit(os.system, f"touch '{target}'"), protocol=4))
    with pytest.raises(ModelFileError, match=r"refuses global '(os|posix|nt)\.system'") as err:
        P.load_model(evil)
    assert "evil.pkl" in str(err.value)
    assert not target.exists()
    with pytest.raises(ModelFileError, match="refuses global"):
        P.read_metadata(evil)
    with pytest.raises(ModelFileError, match="refuses global"):
        P.load_model_bytes(evil.read_bytes(), "evil.pkl")
    assert not target.exists()
    # control: the payload is live -- an ordinary unpickler really would run it
    pickle.loads(evil.read_bytes())
    assert target.exists()


def test_pickle_cannot_exec_even_nested_inside_a_valid_payload(tmp_path):
    target = tmp_path / "pwned2"
    code = f"open({str(target)!r}, 'w').close()"
    evil = tmp_path / "nested.pkl"
    evil.write_bytes(pickle.dumps(_payload({"x": _Exploit(builtins.exec, code)}), protocol=4))
    with pytest.raises(ModelFileError, match="refuses global 'builtins.exec'"):
        P.load_model(evil)
    assert not target.exists()


@pytest.mark.parametrize("func", [np.load, np.save, np.testing.assert_equal, np.fromfile])
def test_pickle_refuses_globals_smuggled_through_numpy(tmp_path, func):
    evil = tmp_path / "numpy_smuggle.pkl"
    evil.write_bytes(pickle.dumps(_payload({"x": _Exploit(func, str(tmp_path / "f"))}), protocol=4))
    with pytest.raises(ModelFileError, match=f"refuses global 'numpy.*{func.__name__}'"):
        P.load_model(evil)


def test_pickle_refuses_dotted_attribute_lookup(tmp_path):
    # STACK_GLOBAL 'numpy' 'ndarray.tofile' -- protocol 4 resolves dotted names by default
    evil = tmp_path / "dotted.pkl"
    evil.write_bytes(b"\x80\x04\x8c\x05numpy\x8c\x0endarray.tofile\x93.")
    with pytest.raises(ModelFileError, match="refuses global 'numpy.ndarray.tofile'"):
        P.load_model(evil)


def test_pickle_refuses_object_dtype_and_subclasses(tmp_path):
    evil = tmp_path / "objects.pkl"
    evil.write_bytes(
        pickle.dumps(_payload(arrays_extra={"o": np.array([1, "a"], dtype=object)}), protocol=4)
    )
    with pytest.raises(ModelFileError, match="refuses dtype"):
        P.load_model(evil)
    evil.write_bytes(
        pickle.dumps(_payload(arrays_extra={"m": np.ma.masked_array([1.0, 2.0])}), protocol=4)
    )
    with pytest.raises(ModelFileError, match="refuses global"):
        P.load_model(evil)
    rec = np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])
    evil.write_bytes(pickle.dumps(_payload(arrays_extra={"r": rec}), protocol=4))
    with pytest.raises(ModelFileError, match="refuses dtype"):
        P.load_model(evil)


def test_pickle_refuses_tampered_dtype_and_build_states(tmp_path):
    # A float dtype whose pickled state claims "holds object pointers" (flags) would make
    # NumPy treat raw file bytes as PyObject* -- refuse before NumPy applies it.
    data = pickle.dumps(_payload(arrays_extra={"i": np.full(2, 0x4141414141414141)}), protocol=4)
    plain_flags = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    assert plain_flags in data
    evil = tmp_path / "flags.pkl"
    evil.write_bytes(data.replace(plain_flags, b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x3ft"))
    with pytest.raises(ModelFileError, match="tampered state for dtype"):
        P.load_model(evil)
    evil.write_bytes(b"\x80\x04}\x94}\x94b.")  # BUILD on a plain dict
    with pytest.raises(ModelFileError, match="refuses to set the state of a dict"):
        P.load_model(evil)


def test_pickle_refuses_extension_codes_and_whole_model_objects(tmp_path, fitted):
    evil = tmp_path / "ext.pkl"
    evil.write_bytes(b"\x80\x04\x82\x01.")  # EXT1 1: served from copyreg's global cache
    with pytest.raises(ModelFileError, match="refuses opcode EXT1"):
        P.load_model(evil)
    whole = tmp_path / "whole_model.pkl"  # how a naive design would save: pickle the object
    whole.write_bytes(pickle.dumps(fitted[0], protocol=4))
    with pytest.raises(ModelFileError, match="refuses global 'nn.core.network.NeuralNetwork'"):
        P.load_model(whole)


def test_pickle_protocol_5_in_band_is_readable_and_old_protocols_refused(tmp_path, fitted):
    model, X = fitted
    path = _saved(model, tmp_path, "pkl")
    payload = pickle.loads(path.read_bytes())  # our own file: plain dict + arrays
    p5 = tmp_path / "p5.pkl"
    p5.write_bytes(pickle.dumps(payload, protocol=5))
    assert np.array_equal(P.load_model(p5).predict_proba(X), model.predict_proba(X))
    p2 = tmp_path / "p2.pkl"
    p2.write_bytes(pickle.dumps(payload, protocol=2))  # needs _codecs.encode for bytes
    with pytest.raises(ModelFileError, match="refuses global '_codecs.encode'"):
        P.load_model(p2)
    bufs = []
    oob = tmp_path / "oob.pkl"
    oob.write_bytes(pickle.dumps(payload, protocol=5, buffer_callback=bufs.append))
    with pytest.raises(ModelFileError, match="NEXT_BUFFER"):
        P.load_model(oob)


def test_pickle_wrong_structure(tmp_path):
    p = tmp_path / "list.pkl"
    p.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(ModelFileError, match="does not hold a model export"):
        P.load_model(p)
    p.write_bytes(pickle.dumps({**_payload(), "format_version": 99}, protocol=4))
    with pytest.raises(ModelFileError, match="newer version"):
        P.load_model(p)


# ------------------------------------------------------------------------------ corrupt files
def test_truncated_files(tmp_path, fitted):
    for fmt in FORMATS:
        path = _saved(fitted[0], tmp_path, fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelFileError, match="truncated or corrupt") as err:
            P.load_model(path)
        assert path.name in str(err.value)
        with pytest.raises(ModelFileError):
            P.read_metadata(path)


def test_corrupted_member_is_detected(tmp_path, fitted):
    path = _saved(fitted[0], tmp_path)
    data = bytearray(path.read_bytes())
    i = data.index(b"layer2.dense.weight.npy")
    data[i + 200] ^= 0xFF  # flip a byte inside the stored member: CRC check fails
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="m.npz"):
        P.load_model(path)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("random.npz", bytes(range(256)) * 4, "unrecognised content"),
        ("random.pkl", b"hello world, not a pickle", "not a pickle"),
        ("empty.npz", b"", "empty"),
        ("empty.pkl", b"", "empty"),
        ("array.npz", None, "bare .npy"),
        ("model.h5", b"\x89HDF\r\n", "unsupported file type '.h5'"),
        ("noext", b"PK\x03\x04", "unsupported file type"),
    ],
)
def test_unreadable_content(tmp_path, name, content, match):
    path = tmp_path / name
    if content is None:
        np.save(tmp_path / "array.npy", np.zeros(3))
        (tmp_path / "array.npy").rename(path)
    else:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=match) as err:
        P.load_model(path)
    assert name in str(err.value)


def test_mislabelled_extension_is_explained(tmp_path, fitted):
    npz = _saved(fitted[0], tmp_path, "npz")
    pkl = _saved(fitted[0], tmp_path, "pkl")
    fake_pkl, fake_npz = npz.rename(tmp_path / "x.pkl"), pkl.rename(tmp_path / "y.npz")
    with pytest.raises(ModelFileError, match=r"x.pkl: named .pkl but the content is an .npz"):
        P.load_model(fake_pkl)
    with pytest.raises(ModelFileError, match=r"y.npz: named .npz but the content is a pickle"):
        P.load_model(fake_npz)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        P.load_model(tmp_path / "nope.npz")


def test_npz_without_meta(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, coef_0=np.zeros((2, 2)))
    with pytest.raises(ModelFileError, match="plain.npz: npz archive has no '__meta__'"):
        P.load_model(path)
    with pytest.raises(ModelFileError, match="__meta__"):
        P.read_metadata(path)


def test_npz_with_object_array_is_refused(tmp_path, fitted):
    src = _saved(fitted[0], tmp_path)
    obj = np.array([{"x": 1}, None], dtype=object)
    path = _rewrite_npz(src, tmp_path / "obj.npz", replace={"coef_0": obj})
    with pytest.raises(ModelFileError, match="obj.npz: array 'coef_0' holds pickled Python"):
        P.load_model(path)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: m.update(format_version=P.FORMAT_VERSION + 1), "made by a newer version"),
        (lambda m: m.pop("format_version"), "format_version"),
        (lambda m: m.update(library="sklearn"), "library 'sklearn'"),
        (lambda m: m.pop("array_manifest"), "array_manifest"),
        (lambda m: m["state_keys"].append("ghost"), "missing model field 'ghost'"),
    ],
)
def test_bad_metadata(tmp_path, fitted, edit, match):
    src = _saved(fitted[0], tmp_path)
    path = _rewrite_npz(src, tmp_path / "bad.npz", meta=edit)
    with pytest.raises(ModelFileError, match=match) as err:
        P.load_model(path)
    assert "bad.npz" in str(err.value)


def test_meta_not_json(tmp_path):
    path = tmp_path / "badjson.npz"
    np.savez(path, __meta__=np.array("{not json"))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        P.read_metadata(path)
    np.savez(path, __meta__=np.array("[1, 2]"))
    with pytest.raises(ModelFileError, match="not a JSON object"):
        P.read_metadata(path)


def test_missing_array_and_shape_mismatch(tmp_path, fitted):
    src = _saved(fitted[0], tmp_path)
    missing = _rewrite_npz(src, tmp_path / "missing.npz", drop=["layer2.dense.weight"])
    with pytest.raises(ModelFileError, match="missing.npz: missing arrays: layer2.dense.weight"):
        P.load_model(missing)
    with pytest.raises(ModelFileError, match="missing arrays"):
        P.read_metadata(missing)
    wrong = _rewrite_npz(
        src, tmp_path / "shape.npz", replace={"layer0.dense.weight": np.zeros((3, 3), np.float32)}
    )
    with pytest.raises(ModelFileError, match=r"'layer0.dense.weight' has shape \(3, 3\)"):
        P.load_model(wrong)

    def lie(m):  # manifest agrees with the bad array, so from_state must catch it
        m["array_manifest"]["layer0.dense.weight"]["shape"] = [3, 3]

    inconsistent = _rewrite_npz(
        src,
        tmp_path / "lie.npz",
        meta=lie,
        replace={"layer0.dense.weight": np.zeros((3, 3), np.float32)},
    )
    with pytest.raises(ModelFileError, match="lie.npz: model state is inconsistent"):
        P.load_model(inconsistent)


# ------------------------------------------------------------------------------ names and folders
@pytest.mark.parametrize(
    "raw,expected",
    [
        ("mnist", "mnist"),
        ("  my model  v2 ", "my_model_v2"),
        ("relu-256.128_adam", "relu-256.128_adam"),
        ("best.npz", "best"),
        ("best.PKL", "best"),
        ("x" * 64, "x" * 64),
    ],
)
def test_sanitize_good(raw, expected):
    assert F.sanitize_model_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "../evil",
        "a/b",
        "a\\b",
        "",
        "   ",
        ".hidden",
        "x" * 65,
        "x" * 100,
        "a..b",
        "dot.",
        "CON",
        "nul.txt",
        "com1",
        "naïve",
        "a*b",
        "semi;colon",
        "tab\x00null",
        ".npz",
        None,
    ],
)
def test_sanitize_bad(raw):
    with pytest.raises(ValueError, match="letters, digits"):
        F.sanitize_model_name(raw)


def test_model_path(tmp_path):
    assert F.model_path(tmp_path, "my model") == tmp_path.resolve() / "my_model.npz"
    assert F.model_path(tmp_path, "m", fmt="pkl").suffix == ".pkl"
    assert F.model_path(tmp_path, "m", fmt=".pkl").suffix == ".pkl"
    with pytest.raises(ValueError):
        F.model_path(tmp_path, "../evil")
    with pytest.raises(ValueError, match="unsupported format"):
        F.model_path(tmp_path, "m", fmt="h5")
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "link.npz").symlink_to(outside / "target.npz")
    with pytest.raises(ValueError, match="escapes"):
        F.model_path(folder, "link")


def test_list_models(tmp_path, fitted, clock):
    model = fitted[0]
    P.save_model(model, tmp_path / "older.npz", metrics={"test_accuracy": 0.25})
    P.save_model(_fit()[0], tmp_path / "newer.pkl", name="Newer")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    (tmp_path / "readme.txt").write_text("not a model")
    (tmp_path / ".older.npz.abc.tmp").write_bytes(b"half written")
    (tmp_path / "subdir.npz").mkdir()
    rows = F.list_models(tmp_path)
    assert [r["name"] for r in rows] == ["Newer", "older", "broken"]
    newer, older, broken = rows
    assert newer["format"] == "pkl" and older["format"] == "npz"
    assert older["test_accuracy"] == 0.25 and newer["test_accuracy"] is None
    assert newer["stem"] == "newer" and older["stem"] == "older"
    assert older["layers"] == [12, 8, 3] and older["activations"] == ["relu", "softmax"]
    assert older["size_bytes"] == (tmp_path / "older.npz").stat().st_size
    assert older["saved"] < newer["saved"] and older["error"] is None
    assert older["path"] == str(tmp_path / "older.npz")
    assert "broken.npz" in broken["error"] and broken["size_bytes"] == len(b"PK\x03\x04 broken")
    assert F.list_models(tmp_path / "does-not-exist") == []


def test_delete_model(tmp_path, fitted):
    P.save_model(fitted[0], F.model_path(tmp_path, "gone"))
    P.save_model(fitted[0], F.model_path(tmp_path, "gone", "pkl"))
    P.save_model(fitted[0], F.model_path(tmp_path, "kept"))
    deleted = F.delete_model(tmp_path, "gone")
    assert sorted(p.name for p in deleted) == ["gone.npz", "gone.pkl"]
    assert os.listdir(tmp_path) == ["kept.npz"]
    with pytest.raises(FileNotFoundError):
        F.delete_model(tmp_path, "gone")
    with pytest.raises(ValueError):
        F.delete_model(tmp_path, "../kept")


# ------------------------------------------------------------------------------ uploads
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_model_bytes(tmp_path, fitted, fmt):
    model, X = fitted
    data = _saved(model, tmp_path, fmt).read_bytes()
    before = sorted(os.listdir(tmp_path))
    loaded = P.load_model_bytes(data, f"upload.{fmt}")
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.metadata_["format"] == fmt
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(ModelFileError, match=r"upload.\w+: upload is \d+ bytes, larger than"):
        P.load_model_bytes(data, f"upload.{fmt}", max_bytes=len(data) - 1)
    with pytest.raises(ModelFileError, match="x.npz: file is empty"):
        P.load_model_bytes(b"", "x.npz")
    with pytest.raises(ModelFileError, match="upload's name contains '/'"):
        P.load_model_bytes(data, "../../x.npz")
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        P.load_model_bytes(data[: len(data) // 2], f"half.{fmt}")


def test_load_model_bytes_refuses_zip_bombs(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__meta__.npy", b"\0" * (3 << 20))  # 3 MB of zeros, a few KB compressed
    data = buf.getvalue()
    assert len(data) < 100_000
    with pytest.raises(ModelFileError, match="expands to"):
        P.load_model_bytes(data, "bomb.npz", max_bytes=100_000)
