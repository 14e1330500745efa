"""Evaluate's "not sure" and robustness sections under AppTest: the coverage curve of the
active model, a threshold saved with the model file, robustness of two models on one chart and
the worst images of a level."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nn.core.confidence import coverage_curve, threshold_value
from nn.data.corruptions import CORRUPTIONS
from nn.io.model_files import read_metadata
from nn.services.robustness import robustness

PAGE = "pages/evaluate.py"


@pytest.fixture
def models(small_env, tmp_path, monkeypatch, small_model_dir):
    """A models folder of its own (the test saves thresholds) with two copies of the small
    model."""
    folder = tmp_path / "own-models"
    folder.mkdir()
    shutil.copy2(small_model_dir / "small.npz", folder / "small.npz")
    shutil.copy2(small_model_dir / "small.npz", folder / "twin.npz")
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def app(models, open_app):
    return open_app(PAGE, session_state={"active_model_name": "small"})


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _figure(at, key: str) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.key)
    return json.loads(chart.proto.spec)


def test_coverage_curve_and_saving_a_threshold(app, models, small_model):
    model, data = small_model
    proba = model.predict_proba(data.x_test)
    confidence = proba.max(axis=1)
    right = model.predict(data.x_test) == data.y_test
    assert app.slider(key="eval_threshold_value").value == pytest.approx(0.9)
    (t, coverage, accuracy) = coverage_curve(confidence, right, [0.9])[0]
    assert _metric(app, "Answered") == f"{coverage:.1%}"
    assert _metric(app, "Accuracy when answered") == f"{accuracy:.2%}"
    figure = _figure(app, "eval_coverage")
    assert figure["data"][0]["y"][0] == 1.0  # everything answered at threshold 0
    app.slider(key="eval_threshold_value").set_value(0.75).run()
    app.button(key="eval_save_threshold").click().run()
    assert not app.exception
    meta = read_metadata(models / "small.npz")
    assert threshold_value(meta) == pytest.approx(0.75)
    expected = coverage_curve(confidence, right, [0.75])[0]
    assert meta["confidence_threshold"]["coverage"] == pytest.approx(expected[1])
    assert threshold_value(read_metadata(models / "twin.npz")) is None
    assert any("**0.75**" in c.value for c in app.caption)
    app.button(key="eval_remove_threshold").click().run()
    assert threshold_value(read_metadata(models / "small.npz")) is None


def test_robustness_of_two_models_and_their_worst_images(app, small_model):
    model, data = small_model
    assert app.multiselect(key="rob_models").value == ["small"]
    app.multiselect(key="rob_models").set_value(["small", "twin"])
    app.number_input(key="rob_images").set_value(100)
    app.run()
    app.button(key="rob_measure").click().run()
    assert not app.exception
    figure = _figure(app, "rob_chart")
    names = {trace["name"] for trace in figure["data"]}
    assert names == {"small", "twin"}
    assert len(figure["data"]) == 2 * len(CORRUPTIONS)
    expected = robustness(model, data.x_test, data.y_test, images=100)
    noise = next(t for t in figure["data"] if t["name"] == "small")
    assert noise["y"] == pytest.approx([acc for _, acc in expected.curves["noise"]])
    app.selectbox(key="rob_pick_name").set_value("blur").run()
    app.selectbox(key="rob_pick_level").set_value(2.0).run()
    accuracy = dict(expected.curves["blur"])[2.0]
    assert any(
        f"blur at 2 (blur std (px)): accuracy **{accuracy:.1%}**" in m.value for m in app.markdown
    )
    assert any("The 12 images it gave the lowest probability" in m.value for m in app.markdown)
    worst = expected.worst["blur"][CORRUPTIONS["blur"].levels.index(2.0)]
    assert worst.true_probability == sorted(worst.true_probability)
    assert np.all(np.asarray(worst.true_probability) <= 1)
