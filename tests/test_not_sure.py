"""\"Not sure\" below a model's saved confidence threshold: on the Draw page (AppTest) and in
the HTML export's page (its JavaScript, run in Chromium by tests/browser/test_html_export.py)."""

from __future__ import annotations

import copy
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_draw_page import prediction_text

from nn.core.confidence import threshold_record
from nn.data.preprocess import preprocess_drawing
from nn.io.html_export import html_page
from nn.io.models_folder import save_threshold


def _one() -> Image.Image:
    img = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(img).line([(140, 40), (140, 240)], fill="white", width=22)
    return img


@pytest.fixture
def own_models(small_env, small_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "models-thresholds"
    folder.mkdir()
    shutil.copy2(small_model_dir / "small.npz", folder / "small.npz")
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    return folder


def _confidence(model) -> float:
    result = preprocess_drawing(np.asarray(_one().convert("RGBA")))
    return float(model.predict_proba(result.x[None])[0].max())


def test_draw_says_not_sure_below_the_saved_threshold(
    own_models, open_app, inject_drawing, small_model
):
    confidence = _confidence(small_model[0])
    save_threshold(own_models / "small.npz", threshold_record(min(1.0, confidence + 0.01)))
    at = open_app("pages/draw.py")
    inject_drawing(at, _one())
    text = prediction_text(at)
    assert text.startswith("Not sure"), text
    assert re.search(r"Best guess: \d \(\d+%\)", text) and "answers from" in text, text
    # a threshold below the drawing's confidence: the digit is named
    save_threshold(own_models / "small.npz", threshold_record(max(0.0, confidence - 0.01)))
    at = open_app("pages/draw.py")
    inject_drawing(at, _one())
    assert re.match(r"#*\s*Prediction: \d, \d+% sure", prediction_text(at))


def _page_model(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="model-data">(.*?)</script>', page, re.S)
    assert found, "no model data in the page"
    return json.loads(found.group(1))


def test_html_export_carries_the_threshold(small_model, tmp_path):
    model = copy.deepcopy(small_model[0])
    model.metadata_ = {}
    assert _page_model(html_page(model))["threshold"] is None
    model.metadata_ = {"confidence_threshold": threshold_record(0.8)}
    page = html_page(model)
    assert _page_model(page)["threshold"] == 0.8
    assert "only when at least 80% sure" in page
    assert "Not sure (best guess" in page  # the script's text (run in tests/browser)
