"""The Layer map and Evaluate's "not sure" section on data sets other than MNIST (AppTest, on the
28x28 greyscale set of 3 classes and the 32x32x3 colour set of test_data_pages): the map names
the set's classes and shows its 50 test images, a colour set's images included; robustness,
made for MNIST's digits, is left out."""

from __future__ import annotations

import pytest
import test_data_pages
from test_data_pages import COLOUR_CLASSES, GREY_CLASSES, open_app, texts

env = test_data_pages.env  # the data folder and models of test_data_pages, as fixtures
folders = test_data_pages.folders


@pytest.mark.parametrize(
    "data_set, model",
    [("grey3", "grey3-cnn"), ("colour", "colour-dense"), ("colour", "colour-cnn")],
)
def test_the_map_of_a_sets_model(env, data_set, model):
    at = open_app("pages/map.py", data_set, model)
    assert not at.exception, at.exception
    assert at.selectbox(key="map_model").value == model
    assert at.number_input(key="map_images").value == 50  # the set's whole test part
    assert f"50 test images of {data_set}" in texts(at.caption)
    names = GREY_CLASSES if data_set == "grey3" else COLOUR_CLASSES
    picked = at.selectbox(key="map_pick")
    assert any(f"true {name}," in option for option in picked.options for name in names)
    at.selectbox(key="map_layer").set_value(0).run()
    assert not at.exception


def test_evaluate_on_a_set_has_the_coverage_curve_but_no_robustness(env):
    at = open_app("pages/evaluate.py", "grey3", "grey3-dense")
    assert not at.exception
    headers = [s.value for s in at.subheader]
    assert any("I'm not sure" in h for h in headers)
    assert not any(h.startswith("Robustness") for h in headers)
