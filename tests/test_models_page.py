"""The Models page under AppTest: table, make active, delete with confirmation, downloads,
uploads (a good one saved, corrupt and malicious ones refused with nothing written), compare."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from nn.io.model_files import export_pickle, load_model, save_model

PAGE = "pages/models.py"


@pytest.fixture
def open_models(env, open_app):
    return lambda: open_app(PAGE)


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())


@pytest.fixture
def two_models(env, tiny_model):
    save_model(tiny_model(0), env / "default.npz", metrics={"test_accuracy": 0.9})
    save_model(
        tiny_model(1, hidden=(16, 8), epochs=3), env / "second.npz", metrics={"test_accuracy": 0.5}
    )
    return env


def test_empty_folder(env, texts, open_models):
    at = open_models()
    assert "No trained model yet" in texts(at.info)
    assert at.file_uploader(key="model_upload_0") is not None


def test_table_and_widgets(two_models, open_models):
    at = open_models()
    df = at.dataframe[0].value
    assert set(df["name"]) == {"default", "second"}
    assert "784-16-8-10" in set(df["layers"])
    for key in ("load_model", "delete_model"):
        assert at.button(key=key) is not None
    keys = [d.key for d in at.get("download_button")]
    assert keys == [
        "download_npz",
        "download_pkl",
        "download_onnx",
        "download_html",
        "download_numpy",
    ]
    assert at.multiselect(key="compare_models").value == ["default"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["default"]


@pytest.fixture
def downloads(monkeypatch):
    """The bytes of every download button the page makes, by the file name it offers."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    made: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename is not None and isinstance(path_or_data, bytes):
            made[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return made


def test_onnx_and_html_downloads_are_the_exports(two_models, downloads, open_models):
    at = open_models()
    onnx_button = at.get("download_button")[2]
    html_button = at.get("download_button")[3]
    assert (onnx_button.proto.label, html_button.proto.label) == (
        "Download .onnx",
        "Download .html",
    )
    assert not onnx_button.proto.disabled and not html_button.proto.disabled
    model = load_model(two_models / "default.npz")
    page = downloads["default.html"].decode("utf-8")
    assert page.startswith("<!doctype html>") and "predictPixels" in page
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(downloads["default.onnx"])
    x = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    np.testing.assert_allclose(
        session.run(None, {"pixels": x})[0], model.predict_proba(x), atol=1e-5
    )


def test_onnx_button_says_how_to_install_the_extra(two_models, monkeypatch, texts, open_models):
    monkeypatch.setitem(sys.modules, "onnx", None)  # "import onnx" raises ImportError
    at = open_models()
    assert not at.exception
    onnx_button = at.get("download_button")[2]
    assert onnx_button.proto.disabled
    assert "requirements-export.txt" in onnx_button.proto.help
    assert "requirements-export.txt" in texts(at.caption)
    assert not at.get("download_button")[3].proto.disabled  # HTML needs no extra


def test_make_active_and_compare(two_models, open_models):
    at = open_models()
    at.selectbox(key="models_pick").set_value("second").run()
    at.button(key="load_model").click().run()
    assert not at.exception
    assert at.session_state["active_model_name"] == "second"
    at.multiselect(key="compare_models").set_value(["default", "second"]).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(t["name"] for t in spec["data"]) == ["default", "second"]
    assert len(spec["data"][0]["x"]) in (2, 3)


def test_delete_needs_confirmation(two_models, open_models):
    at = open_models()
    at.selectbox(key="models_pick").set_value("second").run()
    assert at.button(key="delete_model").disabled
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete_model").click().run()
    assert not at.exception
    assert sorted(p.name for p in two_models.iterdir()) == ["default.npz"]


def test_upload_good_model(env, tiny_model, texts, open_models):
    save_model(tiny_model(0), env / "default.npz")
    model = tiny_model(2, hidden=(12,))
    tmp = env.parent / "elsewhere"
    tmp.mkdir()
    export_pickle(model, tmp / "x.pkl")
    data = (tmp / "x.pkl").read_bytes()
    at = open_models()
    at.file_uploader(key="model_upload_0").set_value(
        ("My Upload.pkl", data, "application/octet-stream")
    ).run()
    assert not at.exception
    assert "Valid model: 784-12-10" in texts(at.success)
    assert at.text_input(key="upload_name").value == "My_Upload"
    at.button(key="save_upload").click().run()
    assert not at.exception
    saved = env / "My_Upload.npz"
    assert saved.is_file()
    assert load_model(saved).layer_sizes_ == [784, 12, 10]
    assert at.session_state["active_model_name"] == "My_Upload"
    # the uploader is emptied (a new key), Manage follows the new model
    assert at.file_uploader(key="model_upload_1").value is None
    assert "save_upload" not in [b.key for b in at.button]
    assert at.selectbox(key="models_pick").value == "My_Upload"
    # saved without metrics: "—", not "None"
    df = at.dataframe[0].value
    assert df.set_index("name").loc["My_Upload", "test accuracy"] == "—"


def test_compare_without_history_shows_a_message(env, tiny_model, texts, open_models):
    model = tiny_model(0)
    model.history_ = {}
    save_model(model, env / "bare.npz")
    at = open_models()
    assert not at.get("plotly_chart")
    assert "Nothing to plot" in texts(at.info)


def test_upload_existing_name_needs_overwrite(two_models, texts, open_models):
    data = (two_models / "second.npz").read_bytes()
    before = listing(two_models)
    at = open_models()
    at.file_uploader(key="model_upload_0").set_value(
        ("default.npz", data, "application/octet-stream")
    ).run()
    at.button(key="save_upload").click().run()
    assert "tick *Overwrite*" in texts(at.warning)
    assert listing(two_models) == before
    at.checkbox(key="upload_overwrite").check().run()
    at.button(key="save_upload").click().run()
    assert load_model(two_models / "default.npz").layer_sizes_ == [784, 16, 8, 10]


@pytest.mark.parametrize(
    "name,data",
    [
        ("corrupt.npz", b"PK\x03\x04" + os.urandom(200)),
        ("random.npz", os.urandom(500)),
        ("truncated.pkl", b"\x80\x04\x95"),
        ("wrong.txt.npz", b"hello world"),
    ],
)
def test_corrupt_upload_refused_nothing_written(two_models, texts, open_models, name, data):
    before = listing(two_models)
    at = open_models()
    at.file_uploader(key="model_upload_0").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception
    assert "refused and nothing was saved" in texts(at.error)
    assert "save_upload" not in [b.key for b in at.button]
    assert listing(two_models) == before


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused(two_models, tmp_path, texts, open_models):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"format_version": 1, "meta": {}, "arrays": {"x": _Evil(str(marker))}})
    before = listing(two_models)
    at = open_models()
    at.file_uploader(key="model_upload_0").set_value(
        ("evil.pkl", payload, "application/octet-stream")
    ).run()
    assert not at.exception
    assert "refused and nothing was saved" in texts(at.error)
    assert not marker.exists()
    assert listing(two_models) == before
