"""Overview page under AppTest: runs with and without a model, links to the pages, shows the data
set at a glance (counts per digit, sample grid, mean images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nn.data import load_mnist

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def models_dir(small_model_dir):
    return small_model_dir


def overview(monkeypatch, folder) -> AppTest:
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    at.switch_page("pages/overview.py").run()  # also reached from another page
    assert not at.exception
    return at


def test_overview_is_the_default_page(monkeypatch, models_dir):
    monkeypatch.setenv("NN_MODELS_DIR", str(models_dir))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value.startswith("A neural network from scratch")


def test_overview_explains_and_links(monkeypatch, models_dir):
    at = overview(monkeypatch, models_dir)
    links = at.get("page_link")
    targets = " ".join(str(link.proto.page) for link in links)
    for page in ("train", "draw", "predictions", "evaluate", "models"):
        assert page in targets
    assert any("Active model: **small**" in c.value for c in at.caption)


def test_dataset_at_a_glance(monkeypatch, models_dir):
    at = overview(monkeypatch, models_dir)
    data = load_mnist()
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Training images"] == "60,000"
    assert metrics["Test images"] == "10,000"
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    train = next(t for t in fig["data"] if t["name"] == "train")
    test = next(t for t in fig["data"] if t["name"] == "test")
    assert train["y"] == np.bincount(data.y_train, minlength=10).tolist()
    assert test["y"] == np.bincount(data.y_test, minlength=10).tolist()
    assert len(at.image) == 2  # the mean images and the samples, each one picture


def test_overview_without_a_model(monkeypatch, tmp_path):
    at = overview(monkeypatch, tmp_path)
    assert any("No trained model yet" in c.value for c in at.caption)
