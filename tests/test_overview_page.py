"""Overview page under AppTest: runs with and without a model, links to the pages, shows the data
set at a glance (counts per digit, sample grid, mean images)."""

from __future__ import annotations

import json

import numpy as np

from nn.data import load_mnist

PAGE = "pages/overview.py"  # opened by switching to it, as from another page


def test_overview_is_the_default_page(small_env, open_app):
    at = open_app()
    assert at.title[0].value.startswith("A neural network from scratch")


def test_overview_explains_and_links(small_env, open_app):
    at = open_app(PAGE)
    links = at.get("page_link")
    targets = " ".join(str(link.proto.page) for link in links)
    for page in ("train", "draw", "predictions", "evaluate", "models"):
        assert page in targets
    assert any("Active model: **small**" in c.value for c in at.caption)


def test_dataset_at_a_glance(small_env, open_app):
    at = open_app(PAGE)
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


def test_overview_without_a_model(env, open_app):
    at = open_app(PAGE)
    assert any("No trained model yet" in c.value for c in at.caption)
