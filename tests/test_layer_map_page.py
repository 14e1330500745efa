"""Layer map page (/map) under AppTest: the map of the chosen model and layer, its numbers, the
layer and method controls and one image in detail."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core.projection import last_hidden_layer
from nn.services.layer_map import layer_map


@pytest.fixture
def app(small_env, open_app):
    return open_app("pages/map.py")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_map_of_the_last_hidden_layer(app, small_model):
    model, data = small_model
    assert app.selectbox(key="map_model").value == "small"
    assert app.selectbox(key="map_layer").value == last_hidden_layer(model.layers_)
    assert app.number_input(key="map_images").value == 2000
    expected = layer_map(model, data.x_test, data.y_test, images=2000)
    assert _metric(app, "5-NN vote recovers") == f"{expected.agreement:.1%}"
    wrong = int(np.sum(expected.labels != expected.predicted))
    assert _metric(app, "Mistakes (crosses)") == f"{wrong:,}"
    # the first mistake is shown in detail until a point is clicked
    first_wrong = int(np.flatnonzero(expected.labels != expected.predicted)[0])
    assert app.selectbox(key="map_pick").value == first_wrong
    assert any("Hover a point" in c.value for c in app.caption)


def test_changing_layer_and_images(app, small_model):
    model, data = small_model
    app.selectbox(key="map_layer").set_value(0)
    app.number_input(key="map_images").set_value(300)
    app.run()
    assert not app.exception
    expected = layer_map(model, data.x_test, data.y_test, layer=0, images=300)
    assert _metric(app, "5-NN vote recovers") == f"{expected.agreement:.1%}"
    assert any("300 test images" in c.value and "layer 0 dense" in c.value for c in app.caption)


def _titles(at) -> list[str]:
    return [
        str(json.loads(c.proto.spec)["layout"].get("title", {}).get("text"))
        for c in at.get("plotly_chart")
    ]


def test_picking_an_image_shows_its_probabilities(app, small_model):
    app.selectbox(key="map_pick").set_value(7).run()
    assert not app.exception
    true = int(small_model[1].y_test[7])
    assert f"Probabilities for #7 (true digit {true}, outlined)" in _titles(app)
    # a click on the map picks the image too: tests/browser/test_browser_layer_map.py
