"""Draw page under AppTest: a drawing injected through the canvas' session state gives a
prediction; a blank canvas shows the invitation; clearing gives a fresh canvas. What a stroke
changes is drawn as ``st.html`` blocks: ``html_text`` reads their text, ``figures`` their
pictures' captions."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nn.core.network import NeuralNetwork
from nn.data.preprocess import preprocess_drawing
from nn.io.model_files import save_model

PAGE = "pages/draw.py"


@pytest.fixture(scope="module")
def trained(small_model):
    model, data = small_model
    return model, data


@pytest.fixture
def app(small_env, open_app):
    return open_app(PAGE)


def _walk(node):
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield child
            yield from _walk(child)


def html_text(body: str) -> str:
    """The text of an HTML block: tags dropped (a line break for each closing one)."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</(h\d|p|div|figcaption)>", "\n", body)))


def figures(at) -> list[str]:
    """The captions of the pictures in the page's HTML blocks, in order."""
    bodies = "".join(h.value for h in at.html)
    return [html.unescape(c) for c in re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", bodies)]


def headings(at) -> list[str]:
    bodies = "".join(h.value for h in at.html)
    return [html.unescape(c) for c in re.findall(r"<h3[^>]*>(.*?)</h3>", bodies)]


def prediction_text(at) -> str:
    """The text inside ``st.container(key="prediction")``."""
    for node in _walk(at.main):
        if type(node).__name__ == "Block" and str(getattr(node.proto, "id", "")).endswith(
            "prediction"
        ):
            return "\n".join(
                html_text(c.value) if type(c).__name__ == "Html" else str(c.value)
                for c in _walk(node)
                if hasattr(c, "value")
            ).strip()
    raise AssertionError("no prediction container on the page")


def upscaled(x784: np.ndarray) -> Image.Image:
    return Image.fromarray(x784.reshape(28, 28)).resize((280, 280), Image.Resampling.BILINEAR)


def test_page_runs_with_main_widgets(app):
    assert app.title[0].value == "Draw a digit"
    assert app.selectbox(key="draw_model_select").value == "small"
    assert app.button(key="draw_clear") is not None
    # the canvas is an unknown (component) element
    assert any(type(n).__name__ == "UnknownElement" for n in _walk(app.main))


def test_blank_canvas_shows_invitation_without_digits(app):
    text = prediction_text(app)
    assert "Draw a digit" in text
    assert "Prediction" not in text
    assert not re.search(r"\d", text)


def test_upscaled_test_digit_is_predicted_as_its_label(app, trained, inject_drawing):
    model, data = trained
    # The first test digit the small model classifies confidently through the same
    # preprocessing as the canvas (the test is about the page's wiring, not the model's skill).
    for i in range(200):
        x = data.x_test[i]
        result = preprocess_drawing(np.asarray(upscaled(x).convert("RGBA")))
        p = model.predict_proba(result.x[None])[0]
        if p.argmax() == data.y_test[i] and p.max() > 0.9:
            break
    label = int(data.y_test[i])
    inject_drawing(app, upscaled(data.x_test[i]))
    text = prediction_text(app)
    assert text.lstrip("# ").startswith(f"Prediction: {label}"), text
    first_number = re.search(r"\d+", text).group()
    assert first_number == str(label)
    assert "% sure" in text
    # the canvas is the one component; the rest is HTML
    assert sum(type(n).__name__ == "UnknownElement" for n in _walk(app.main)) == 1
    bodies = "".join(h.value for h in app.html)
    assert "How sure the network is" in bodies
    # every class's bar, the predicted one's percentage on it
    assert all(f"digit {d}: " in bodies for d in range(10))
    # the three preprocessing steps, the last one being the 28x28 the network sees, the hidden
    # layer's activation strip and the attribution map
    captions = figures(app)
    assert len(captions) == 5 and bodies.count("<img ") == 5
    assert captions[2] == "3. centred: the input (28x28)"
    assert captions[3].startswith("hidden layer 1 (32 units, ")
    assert captions[4] == f"Saliency for {label}"
    assert headings(app) == [
        f"Prediction: {label}, " + text.split(", ", 1)[1].split("\n")[0],
        "What the network sees",
        "Hidden-layer activations for this drawing",
        f"Which pixels made it a {label}",
    ]


def test_drawn_one_gives_a_prediction(app, inject_drawing):
    img = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(img).line([(140, 40), (140, 240)], fill="white", width=22)
    inject_drawing(app, img)
    text = prediction_text(app)
    assert re.match(r"#*\s*Prediction: \d, \d+% sure", text), text


def test_blank_drawing_data_keeps_the_invitation(app, inject_drawing):
    inject_drawing(app, Image.new("RGB", (280, 280), "black"))
    assert "Prediction" not in prediction_text(app)


def test_clear_empties_the_same_canvas(app, trained, inject_drawing):
    """Clear empties the canvas in place (the same element, a new generation of its initial
    drawing) rather than mounting a new one; until the browser sends the empty drawing, the
    cleared one reads as none, and the next stroke is predicted."""
    _, data = trained
    inject_drawing(app, upscaled(data.x_test[0]))
    assert "Prediction" in prediction_text(app)
    app.button(key="draw_clear").click().run()
    assert not app.exception
    assert app.session_state["draw_canvas_counter"] == 1
    # the canvas still holds the cleared drawing (AppTest's browser sends nothing)
    assert app.session_state["draw_canvas"]["drawing"]["data"]
    assert "Prediction" not in prediction_text(app)
    inject_drawing(app, upscaled(data.x_test[1]))  # the next stroke, on the same canvas
    assert "Prediction" in prediction_text(app)


def test_no_model_says_so(env, open_app):
    at = open_app(PAGE)
    assert any("No trained model" in i.value for i in at.info)


def test_model_picker_defaults_to_the_active_model_and_switches(
    trained, env, open_app, inject_drawing
):
    model, data = trained
    save_model(model, env / "default.npz")
    other = NeuralNetwork(hidden_layers=(16, 8), epochs=1, random_state=1)
    other.fit(data.x_train[:1000], data.y_train[:1000])
    save_model(other, env / "other.npz")
    at = open_app(PAGE)
    box = at.selectbox(key="draw_model_select")
    assert box.value == "default"
    assert set(box.options) == {"default", "other"}
    box.select("other").run()
    assert not at.exception
    inject_drawing(at, upscaled(data.x_test[0]))
    assert prediction_text(at).lstrip("# ").startswith("Prediction: ")
    # two hidden layers: a strip each
    strips = [c for c in figures(at) if c.startswith("hidden layer ")]
    assert [c.split(" (")[0] for c in strips] == ["hidden layer 1", "hidden layer 2"]
    assert "(16 units, " in strips[0] and "(8 units, " in strips[1]


def test_probability_bars_highlight_the_prediction():
    from ui.drawing import BAR_COLOR, BAR_HEIGHT_PX, PRED_COLOR, probability_html

    proba = np.array([0.1, 0.7, 0.2])
    body = probability_html(proba, ["a", "b", "<c>"], noun="class")
    bars = re.findall(r"height:(\d+)px;background:(#\w+)", body)
    assert bars == [
        (str(round(0.1 * BAR_HEIGHT_PX)), BAR_COLOR),
        (str(round(0.7 * BAR_HEIGHT_PX)), PRED_COLOR),
        (str(round(0.2 * BAR_HEIGHT_PX)), BAR_COLOR),
    ]
    assert 'title="class b: 70.00%"' in body and "&lt;c&gt;" in body and "<c>" not in body
    assert ">70%</span>" in body


def test_true_digit_follows_the_prediction_until_picked(app, trained, inject_drawing):
    model, data = trained
    readings = {}
    for i in range(200):  # two test digits the model reads as different digits
        result = preprocess_drawing(np.asarray(upscaled(data.x_test[i]).convert("RGBA")))
        readings.setdefault(int(model.predict(result.x[None])[0]), i)
        if len(readings) == 2:
            break
    (first, i), (second, j) = readings.items()
    inject_drawing(app, upscaled(data.x_test[i]))
    choice = app.segmented_control(key="draw_true_digit_0")
    assert choice.value == first
    picked = (first + 1) % 10
    choice.set_value(picked).run()
    assert app.segmented_control(key="draw_true_digit_0").value == picked  # kept on a rerun
    inject_drawing(app, upscaled(data.x_test[j]))  # read differently: the new prediction
    assert app.segmented_control(key="draw_true_digit_0").value == second
