"""Pages with a convolutional model: Evaluate shows the first convolution's filters, Models shows
the stack in compact form, Runs shows a stack run's layers compactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nn.io.model_files import save_model
from nn.io.models_folder import list_models
from ui.tune import _layers_cell

APP = str(Path(__file__).resolve().parent.parent / "app.py")
COMPACT = "C6k3s2same-BN-P2-C8k3-A2s1-D16-BN-D10"  # conftest.CNN_LAYERS and the output


@pytest.fixture(scope="module")
def cnn_dir(cnn_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn_pages")
    save_model(cnn_model, folder / "cnn.npz")
    return folder


@pytest.fixture
def app(cnn_dir, monkeypatch):
    monkeypatch.setenv("NN_MODELS_DIR", str(cnn_dir))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    return at


def test_evaluate_shows_the_first_convolution_filters(app):
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    figs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    filters = [
        f for f in figs if "filters of the first convolution" in str(f["layout"].get("title"))
    ]
    assert filters, [f["layout"].get("title") for f in figs]
    z = filters[0]["data"][0]["z"]
    # 6 filters of 3x3 in one row of 6: 3 rows, 6 * 4 - 1 columns
    assert len(z) == 3 and len(z[0]) == 23
    assert any(f">{COMPACT}<" in h.proto.body for h in app.get("html"))  # the architecture


def test_models_page_shows_the_stack_compactly(app, cnn_dir):
    assert list_models(cnn_dir)[0]["stack"][-1] == {"type": "dense", "units": 10}
    app.switch_page("pages/models.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert COMPACT in set(table["layers"])


def test_runs_show_a_stack_compactly():
    stack = [
        {"type": "conv2d", "filters": 32, "kernel": 3},
        {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "dense", "units": 128},
    ]
    assert _layers_cell([128], stack) == "C32k3-P2-D128"
    assert _layers_cell([256, 128], None) == "256-128"
