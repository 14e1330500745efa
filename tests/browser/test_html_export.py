"""The exported HTML digit reader in Chromium, opened from a file:// URL with the network blocked:
``predictPixels`` against ``predict_proba`` on 1,000 test images, and digits drawn with mouse
strokes against the Python preprocessing plus model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nn.core.network import NeuralNetwork
from nn.data import load_mnist
from nn.data.preprocess import preprocess_drawing
from nn.io.export import export_model

pytestmark = pytest.mark.browser

# Mouse strokes on the 280x280 canvas, in canvas pixels: a list of strokes, each a polyline.
DRAWINGS = {
    "one": [[(140, 40), (142, 120), (143, 240)]],
    "seven": [[(70, 60), (210, 60), (170, 140), (130, 240)]],
    "zero": [[(140 + 60 * np.sin(t), 140 - 95 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]],
    "four": [[(170, 40), (80, 170), (220, 170)], [(180, 100), (180, 250)]],
    "two": [
        [(80, 90), (110, 55), (160, 50), (195, 85), (185, 130), (90, 230), (210, 230)],
    ],
}


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def model(mnist):
    net = NeuralNetwork(hidden_layers=(64,), epochs=3, random_state=0)
    return net.fit(mnist.x_train[:10_000], mnist.y_train[:10_000])


@pytest.fixture
def open_reader(chromium, tmp_path):
    """``open_reader(model)``: the model's exported page opened from disk; every non-file
    request is aborted and recorded, and none may have been attempted by the end."""
    contexts = []
    attempted: list[str] = []
    errors: list[str] = []

    def block(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    def open_page(model):
        path = export_model(model, tmp_path / f"reader-{len(contexts)}.html")
        context = chromium.new_context(viewport={"width": 900, "height": 700})
        contexts.append(context)
        context.set_default_timeout(30_000)
        context.route("**/*", block)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.as_uri())
        page.wait_for_function("typeof window.predictPixels === 'function'")
        return page

    yield open_page
    assert errors == [], errors
    assert attempted == [], f"the page tried to fetch {attempted}"
    for context in contexts:
        context.close()


@pytest.fixture(params=["dense", "cnn"])
def net(request, model, cnn_model):
    """Each test runs on the dense network and on the convolutional one."""
    return model if request.param == "dense" else cnn_model


@pytest.fixture
def reader(open_reader, net):
    return open_reader(net)


def test_predict_pixels_agrees_with_predict_proba(reader, net, mnist):
    pixels = mnist.x_test[:1000].astype(np.float32) / np.float32(255.0)
    expected = net.predict_proba(pixels)
    got = np.array(reader.evaluate("rows => rows.map(predictPixels)", pixels.tolist()))
    assert got.shape == (1000, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_predict_pixels_of_the_reference_network(open_reader, reference_cnn, mnist):
    page = open_reader(reference_cnn)
    pixels = mnist.x_test[:1000].astype(np.float32) / np.float32(255.0)
    expected = reference_cnn.predict_proba(pixels)
    got = np.array(page.evaluate("rows => rows.map(predictPixels)", pixels.tolist()))
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def _draw(page, strokes) -> None:
    box = page.locator("#canvas").bounding_box()
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()


def _canvas_rgba(page) -> np.ndarray:
    data = page.evaluate(
        """() => { const c = document.getElementById('canvas');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""
    )
    return np.array(data, dtype=np.uint8).reshape(280, 280, 4)


@pytest.mark.parametrize("name", list(DRAWINGS))
def test_drawn_digit_is_read_as_python_reads_it(reader, net, name):
    strokes = DRAWINGS[name]
    _draw(reader, strokes)
    reader.wait_for_function(
        f"document.getElementById('canvas').dataset.strokes === '{len(strokes)}'"
    )
    rgba = _canvas_rgba(reader)
    result = preprocess_drawing(rgba)
    assert not result.blank
    shown = reader.locator("#prediction").inner_text()
    digit = int(re.search(r"\d+", shown).group())
    assert digit == int(net.predict(result.x[None, :])[0]), shown

    # The page's own preprocessing of those pixels is the Python one, pixel for pixel.
    js_pixels = reader.evaluate(
        """() => { const c = document.getElementById('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
        return Array.from(preprocessImageData(d.data, d.width, d.height).pixels); }"""
    )
    np.testing.assert_array_equal(np.array(js_pixels, dtype=np.float32), result.x)
    bars = reader.locator("#bars .bar")
    assert bars.count() == 10
    proba = net.predict_proba(result.x[None, :])[0]
    best_bar = bars.nth(int(proba.argmax())).locator(".value").inner_text()
    assert float(best_bar.rstrip("%")) == pytest.approx(100 * proba.max(), abs=0.051)


def test_clear_empties_the_canvas_and_the_prediction(open_reader, model):
    reader = open_reader(model)
    _draw(reader, DRAWINGS["one"])
    reader.wait_for_function("document.getElementById('canvas').dataset.strokes === '1'")
    assert re.search(r"\d", reader.locator("#prediction").inner_text())
    reader.locator("#clear").click()
    assert not _canvas_rgba(reader)[..., :3].any()
    assert not re.search(r"\d", reader.locator("#prediction").inner_text())


def test_below_the_saved_threshold_the_page_says_not_sure(open_reader, tiny_model):
    """A network trained on random pixels is never sure of a drawn digit: exported with a
    threshold above its confidence, the page says "Not sure"; without one, it names a digit."""
    from nn.core.confidence import threshold_record

    unsure = tiny_model()
    unsure.metadata_ = {"confidence_threshold": threshold_record(0.9)}
    reader = open_reader(unsure)
    _draw(reader, DRAWINGS["one"])
    reader.wait_for_function("document.getElementById('canvas').dataset.strokes === '1'")
    result = preprocess_drawing(_canvas_rgba(reader))
    proba = unsure.predict_proba(result.x[None, :])[0]
    assert proba.max() < 0.9
    shown = reader.locator("#prediction").inner_text()
    best = int(unsure.classes_[proba.argmax()])
    assert shown == f"Not sure (best guess {best}, {100 * proba.max():.1f} %)", shown
    unsure.metadata_ = {}
    reader = open_reader(unsure)
    _draw(reader, DRAWINGS["one"])
    reader.wait_for_function("document.getElementById('canvas').dataset.strokes === '1'")
    assert reader.locator("#prediction").inner_text().startswith(f"{best} (")
