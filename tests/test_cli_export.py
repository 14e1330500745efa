"""``python -m nn export``: ONNX and HTML files, and exit code 2 with a message for an unknown
model, an unsupported layer, a missing folder and the missing export extra."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from nn.cli.main import main
from nn.io.model_files import save_model
from nn.io.plan import ExportError


@pytest.fixture
def models(tmp_path, small_model, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    save_model(small_model[0], folder / "small.npz")
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def test_onnx_export_runs_in_onnxruntime(models, small_model, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", "small", "--format", "onnx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    target = tmp_path / "small.onnx"
    assert report["path"] == str(target) and report["bytes"] == target.stat().st_size
    model, data = small_model
    x = data.x_test[:500].astype(np.float32) / np.float32(255.0)
    session = ort.InferenceSession(target.read_bytes())
    probabilities = session.run(None, {"pixels": x})[0]
    assert np.abs(probabilities - model.predict_proba(x)).max() < 1e-5


def test_html_export_to_a_named_file(models, tmp_path, capsys):
    target = tmp_path / "out" / "reader.html"
    target.parent.mkdir()
    assert main(["export", str(models / "small.npz"), "--format", "html", "-o", str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "predictPixels" in page


def test_missing_extra_says_how_to_install_and_writes_nothing(
    models, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "onnx", None)  # "import onnx" raises ImportError
    assert main(["export", "small", "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "pip install -r requirements-export.txt" in err and "Traceback" not in err
    assert not (tmp_path / "small.onnx").exists()


def test_unsupported_layer_is_exit_code_2(models, tmp_path, monkeypatch, capsys):
    def refuse(layer):
        raise ExportError("a 'attention' layer cannot be exported: supported are dense, ...")

    monkeypatch.setattr("nn.io.plan._layer_step", refuse)
    assert main(["export", "small", "--format", "html"]) == 2
    assert "layer 0: a 'attention' layer cannot be exported" in capsys.readouterr().err
    assert not (tmp_path / "small.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "nosuch", "--format", "html"], "no saved model of that name"),
        (["export", "small", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["export", "small"], "the following arguments are required: --format"),
        (["export", "small", "--format", "html", "-o", "missing/x.html"], "does not exist"),
    ],
)
def test_bad_input_is_exit_code_2(models, args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err
