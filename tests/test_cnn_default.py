"""A convolutional network as the saved model ``default`` (what ``saved_models/default.npz`` holds
when a CNN preset is shipped): every page opens on it, and Draw, Predictions and Evaluate read
with it."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from test_draw_page import prediction_text

from nn.data.drawn import drawn_digits
from nn.data.preprocess import preprocess_drawing
from nn.io.model_files import save_model

COMPACT = "C6k3s2same-BN-P2-C8k3-A2s1-D16-BN-D10"  # conftest.CNN_LAYERS and the output
PAGES = [
    "pages/overview.py",
    "pages/train.py",
    "pages/draw.py",
    "pages/inside.py",
    "pages/predictions.py",
    "pages/evaluate.py",
    "pages/models.py",
    "pages/data.py",
    "pages/runs.py",
    "pages/tune.py",
    "pages/mine.py",
]


@pytest.fixture
def cnn_default(env, cnn_model):
    save_model(cnn_model, env / "default.npz", name="default", metrics={"test_accuracy": 0.9})
    return cnn_model


def test_every_page_opens_with_a_cnn_as_the_default_model(cnn_default, open_app):
    at = open_app()
    assert at.sidebar.selectbox(key="sidebar_model").value == "default"
    assert COMPACT in at.sidebar.markdown[0].value
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])


def test_draw_reads_a_drawn_digit_with_the_cnn_default(cnn_default, open_app, inject_drawing):
    at = open_app("pages/draw.py")
    assert at.selectbox(key="draw_model_select").value == "default"
    canvases, _ = drawn_digits(1)
    inject_drawing(at, Image.fromarray(canvases[7]))
    text = prediction_text(at)
    assert re.match(r"#*\s*Prediction: \d, \d+% sure", text), text
    expected = int(cnn_default.predict(preprocess_drawing(canvases[7]).x[None])[0])
    assert text.lstrip("# ").startswith(f"Prediction: {expected}"), text
    assert any("<h3>Feature maps</h3>" in h.value for h in at.html)
