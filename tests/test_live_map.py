"""The live layer map: every frame on one PCA basis, signs kept from epoch to epoch, the budget,
a diverged epoch left out, the record it travels in, a training job's record and the Inside
page's chart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core import live_map
from nn.core.live_map import LiveMap, decode_frames, map_indices
from nn.core.probe import InsideRecorder, append_epoch, empty_record
from nn.core.projection import last_hidden_layer, layer_output, pca
from ui.live_map_chart import live_map_figure


@pytest.fixture
def model(tiny_model):
    return tiny_model(hidden=(12,), epochs=2)


def _nudge(model, seed: int) -> None:
    """Move the first layer's weights, as an epoch of training would."""
    weight = model.layers_[0].params[0]
    weight += np.random.default_rng(seed).normal(0, 0.3, weight.shape).astype(weight.dtype)


def test_frames_share_the_newest_epochs_basis(model, small_model):
    data = small_model[1]
    picks = map_indices(data.y_test, 120)
    x, y = data.x_test[picks], data.y_test[picks]
    live = LiveMap(x, y)
    start = live.start(model)
    layer = last_hidden_layer(model.layers_)
    assert start["layer"] == layer and len(start["labels"]) == len(picks) == 120
    assert np.bincount(start["labels"]).tolist() == [12] * 10
    features, components = [], []
    for epoch in (1, 2, 3):
        _nudge(model, epoch)
        features.append(layer_output(model.layers_, x, layer)[0])
        frames = live.epoch(model, epoch)
        components.append(live._components.copy())
    assert frames["epochs"] == [1, 2, 3]
    points, predicted = decode_frames(frames, 120)
    assert points.shape == (3, 120, 2) and predicted.shape == (3, 120)
    newest = pca(features[-1], 2, reference=components[1])
    for e in range(3):  # every frame is its epoch's outputs on the newest basis
        expected = newest.project(features[e])
        np.testing.assert_allclose(points[e], expected, atol=2e-3 * np.abs(expected).max())
    np.testing.assert_array_equal(predicted[-1], model.predict(x))
    for before, after in zip(components, components[1:], strict=False):
        assert np.all(np.einsum("kd,kd->k", before, after) > 0)  # no axis flips between epochs


def test_a_diverged_epoch_is_left_out(model, small_model):
    data = small_model[1]
    live = LiveMap(data.x_test[:100], data.y_test[:100])
    live.start(model)
    assert live.epoch(model, 1) is not None
    model.layers_[0].params[0][...] = np.nan
    assert live.epoch(model, 1.5) is None
    assert live._epochs == [1]


def test_the_budget_bounds_the_images_and_the_frames(tiny_model, monkeypatch, small_model):
    data = small_model[1]
    wide = tiny_model(hidden=(64,), epochs=1)
    wide.set_params(epochs=400)
    monkeypatch.setattr(live_map, "BUDGET_BYTES", 400 * 64 * 4 * 150)
    start = LiveMap(data.x_test, data.y_test).start(wide)
    assert len(start["labels"]) == 150
    # a budget of 5 epochs of 100 images: the array holds 5 (it cannot double), then
    # every other kept epoch goes, the first and the newest stay
    monkeypatch.setattr(live_map, "BUDGET_BYTES", 5 * 64 * 4 * 100)
    live = LiveMap(data.x_test, data.y_test)
    assert len(live.start(wide)["labels"]) == 100
    for epoch in range(1, 8):
        frames = live.epoch(wide, epoch)
        assert live._store.nbytes <= live_map.BUDGET_BYTES
    assert frames["epochs"] == [1, 3, 5, 6, 7]
    assert decode_frames(frames, 100)[0].shape == (5, 100, 2)


def test_the_recorder_carries_the_map(model, small_model):
    data = small_model[1]
    live = LiveMap(data.x_test[:200], data.y_test[:200])
    recorder = InsideRecorder(data.x_test[:8], data.y_test[:8], live_map=live)
    start = recorder.start(model)
    record = empty_record(json.loads(json.dumps(start)))
    assert record["map"]["layer"] == last_hidden_layer(model.layers_)
    for epoch in (1, 2):
        append_epoch(record, json.loads(json.dumps(recorder.epoch(model, epoch))))
    assert record["map_frames"]["epochs"] == [1, 2]
    figure = live_map_figure(record)
    assert len(figure.frames) == 2 and figure.layout.sliders[0].active == 1
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == ["▶ play", "❚❚"]
    shown = {trace.name for trace in figure.data if trace.showlegend is not False}
    assert shown == {str(c) for c in np.unique(data.y_test[:200])}
    assert all(len(frame.data) == len(shown) for frame in figure.frames)
    assert recorder.epoch(model, 3)["map_frames"]["epochs"] == [1, 2, 3]


def test_a_training_job_records_the_map(tmp_path, small_model):
    from nn.io.model_files import read_metadata
    from nn.services.training import TrainingJob, run_training_job

    data = small_model[1]
    job = TrainingJob(
        model={"hidden_layers": [16], "epochs": 3, "batch_size": 100, "random_state": 0},
        data={"train_size": 2000},
        record=False,
        save_path=str(tmp_path / "job.npz"),
    )
    outcome = run_training_job(job, data=data)
    inside = read_metadata(outcome.model_path)["inside"]
    assert inside["map"]["layer_name"] == "1 relu" and len(inside["map"]["labels"]) == 500
    points, _ = decode_frames(inside["map_frames"], 500)
    assert points.shape == (3, 500, 2)
    assert np.isfinite(points).all() and np.ptp(points[-1], axis=0).min() > 0


def test_the_inside_page_plays_the_map_of_a_training(env, open_app, started_jobs):
    from test_inside_page import figures, train_briefly

    at = open_app("pages/train.py")
    train_briefly(at, started_jobs, epochs=3)
    at.switch_page("pages/inside.py").run()
    assert not at.exception
    assert any(s.value == "The live layer map" for s in at.subheader)
    spec = figures(at)["Layer 1 relu, epochs 1 to 3"]
    assert [f["name"] for f in spec["frames"]] == ["epoch 1", "epoch 2", "epoch 3"]
    assert [s["label"] for s in spec["layout"]["sliders"][0]["steps"]] == ["1", "2", "3"]
    assert spec["layout"]["updatemenus"][0]["buttons"][0]["label"] == "▶ play"
    # x, y travel as binary arrays; the marks are lists (the legend's traces have no point)
    assert sum(len(t["marker"].get("symbol") or []) for t in spec["data"]) == 500


def test_a_record_without_the_map_says_so(small_env, open_app):
    at = open_app("pages/inside.py")
    assert not at.exception
    assert any(s.value == "The live layer map" for s in at.subheader)
    assert any("This record has no live map" in c.value for c in at.caption)


def test_a_click_on_the_robustness_chart_names_model_corruption_and_level():
    from nn.services.robustness import Robustness
    from ui.robustness_view import point_from_selection

    results = {"small": Robustness(test_accuracy=1.0, images=10)}
    event = {"selection": {"points": [{"x": 2.0, "customdata": ["small", "blur"]}]}}
    assert point_from_selection(event, results) == ("small", "blur", 2.0)
    assert point_from_selection({"selection": {"points": []}}, results) is None
    stranger = {"selection": {"points": [{"x": 1, "customdata": ["gone", "blur"]}]}}
    assert point_from_selection(stranger, results) is None
    assert point_from_selection(None, results) is None
