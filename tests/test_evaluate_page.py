"""Evaluate page under AppTest: accuracy, per-digit table, confusion-matrix cell images through the
fallback selectboxes (and through a simulated chart selection), training curves, weights."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nn.core.metrics import confusion_matrix, top_confusions
from nn.core.network import NeuralNetwork
from nn.io.model_files import save_model

PAGE = "pages/evaluate.py"


@pytest.fixture(scope="module")
def trained(small_model):
    model, data = small_model
    return data, model, model.predict(data.x_test)


@pytest.fixture
def app(small_env, open_app):
    return open_app(PAGE)


def cell_summary(at) -> tuple[int, int, str]:
    for md in at.markdown:
        m = re.search(r"\*\*([\d,]+)\*\* test images of a (\d) (.*?)[.(]", md.value)
        if m:
            return int(m.group(1).replace(",", "")), int(m.group(2)), m.group(3)
    raise AssertionError("no cell summary")


def figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_accuracy_and_per_digit_scores(app, trained):
    data, model, pred = trained
    acc = float(np.mean(pred == data.y_test))
    metric = {m.label: m.value for m in app.main.metric}
    assert metric["Test accuracy"] == f"{acc:.2%}"
    assert "Architecture" not in metric  # a metric cuts a long stack off: wrapping text
    assert any(
        "Architecture</div>" in h.proto.body and ">784-32-10<" in h.proto.body
        for h in app.get("html")
    )
    table = app.dataframe[0].value
    assert list(table["digit"]) == list(range(10))
    assert list(table["support"]) == np.bincount(data.y_test, minlength=10).tolist()
    assert {"precision", "recall", "F1"} <= set(table.columns)


def test_charts_are_drawn(app, trained):
    data, model, pred = trained
    figs = figures(app)
    types = [f["data"][0]["type"] for f in figs]
    assert types.count("heatmap") >= 2  # confusion matrix and first-layer weights
    cm_fig = next(
        f for f in figs if f["data"][0]["type"] == "heatmap" and f["data"][0].get("texttemplate")
    )
    # the clickable layer: one invisible marker per cell, x = predicted, y = true
    hits = cm_fig["data"][1]
    assert hits["type"] == "scatter" and len(hits["x"]) == 100
    assert (hits["x"][12], hits["y"][12]) == (2, 1)
    cm = confusion_matrix(data.y_test, pred, 10)
    assert np.array(cm_fig["data"][0]["text"], dtype=int).tolist() == cm.tolist()
    titles = " ".join(str(f["layout"].get("title", {}).get("text", "")) for f in figs)
    assert "First-layer weights of 32 hidden units" in titles
    assert "precision, recall and F1" in titles
    # training curves: loss and accuracy per epoch (2 epochs)
    assert any(
        len(tr.get("x", [])) == 2 for f in figs for tr in f["data"] if tr["type"] == "scatter"
    )


def test_default_cell_is_the_worst_confusion(app, trained):
    data, _, pred = trained
    t, p, count = top_confusions(confusion_matrix(data.y_test, pred, 10), 1)[0]
    assert app.selectbox(key="eval_true").value == t
    assert app.selectbox(key="eval_pred").value == p
    assert cell_summary(app)[:2] == (count, t)


def test_selecting_a_cell_with_the_selectboxes_shows_its_images(app, trained):
    data, _, pred = trained
    app.selectbox(key="eval_true").select(3).run()
    app.selectbox(key="eval_pred").select(3).run()
    assert not app.exception
    n, t, what = cell_summary(app)
    assert (n, t) == (int(((data.y_test == 3) & (pred == 3)).sum()), 3)
    assert what.startswith("correctly recognised")
    assert len(app.image) == 1  # the cell's images, as one picture
    app.selectbox(key="eval_pred").select(5).run()
    n, t, what = cell_summary(app)
    assert (n, t) == (int(((data.y_test == 3) & (pred == 5)).sum()), 3)
    assert what.startswith("predicted as 5")


def test_cell_from_chart_selection():
    """The chart's on_select callback reads the clicked point with this function."""
    from ui.eval_charts import cell_from_selection

    event = {
        "selection": {
            "points": [{"x": 2, "y": 7, "z": 1.3}],
            "point_indices": [],
            "box": [],
            "lasso": [],
        }
    }
    assert cell_from_selection(event) == (7, 2)
    assert cell_from_selection({"selection": {"points": []}}) is None
    assert cell_from_selection(None) is None
    assert cell_from_selection({"selection": {"points": [{"x": 1, "y": 1}, {"x": 4}]}}) == (1, 1)


def test_weights_of_a_model_without_hidden_layers(trained, env, open_app):
    data, _, _ = trained
    model = NeuralNetwork(hidden_layers=(), epochs=1, random_state=0)
    model.fit(data.x_train[:1000], data.y_train[:1000])
    save_model(model, env / "softmax.npz")
    at = open_app(PAGE)
    assert any("no hidden layer" in c.value for c in at.caption)


def test_no_model_says_so(env, open_app):
    at = open_app(PAGE)
    assert any("No trained model" in i.value for i in at.info)
