"""The How it computes page (/maths) under AppTest: a test image, a kept drawing and the Draw
page's drawing as input; a unit's numbers; steps that lower the loss; units switched off and
the edited network saved; and the Models page's NumPy program download."""

from __future__ import annotations

import copy
import io
import re
import zipfile

import numpy as np
import pytest

from nn.core.maths import Trace
from nn.io.model_files import load_model, save_model
from nn.services.maths import edited_accuracy
from ui.maths_session import DRAWING_KEY, sample_indices

PAGE = "pages/maths.py"


@pytest.fixture
def cnn_env(env, cnn_model):
    save_model(cnn_model, env / "cnn.npz")
    return env


def _html(at) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


def _losses(at) -> list[float]:
    spans = re.findall(r"class='maths-loss'>([^<]+)<", _html(at))
    return [float(s.replace("−", "-")) for s in spans]


def test_a_test_image_and_a_units_numbers(cnn_env, cnn_model, open_app):
    at = open_app(PAGE)
    assert at.title[0].value.endswith("How it computes")
    assert at.radio(key="maths_source").options == ["A test image", "A kept drawing"]
    layers = at.selectbox(key="maths_layer").options
    assert layers[0].startswith("0 conv2d") and layers[-1].endswith("(output)")
    html = _html(at)
    assert "z = Σ w·x + b" in html and "backpropagation is right" in html
    assert "dL/dz = p − onehot" in html and "Loss = −log p[" in html
    assert "|dL/d output|" in html  # the gradient's way back, layer by layer
    at.number_input(key="maths_test_index").set_value(5).run()
    at.selectbox(key="maths_layer").set_value(layers[0]).run()
    assert not at.exception
    assert at.get("plotly_chart"), "a convolution's feature map to click on"
    at.number_input(key="maths_unit_0").set_value(3).run()
    html = _html(at)
    assert "inputs x" in html and "dL/dw" in html and "backpropagation is right" in html
    shown = at.session_state["maths_trace"][1]
    z = Trace(cnn_model.stack_, shown.x, shown.label).unit(0, 3)["z"]
    assert f"<b>{z:.4g}</b>".replace("-", "−") in html  # the engine's own z, written in
    at.slider(key="maths_temperature").set_value(3.0).run()
    assert not at.exception and "/ 3)" in _html(at)


def test_three_steps_lower_the_loss_and_reset_forgets_them(cnn_env, open_app):
    at = open_app(PAGE)
    at.select_slider(key="maths_lr").set_value(0.1).run()
    for _ in range(3):
        at.button(key="maths_step").click().run()
        assert not at.exception
    losses = _losses(at)
    assert len(losses) == 4 and losses[0] > losses[1] > losses[2] > losses[3]
    assert at.button(key="maths_step").label == "Another step"
    at.button(key="maths_reset").click().run()
    assert _losses(at) == [] and at.button(key="maths_step").label == "Take a step"


def test_units_off_accuracy_and_saving(cnn_env, cnn_model, open_app):
    at = open_app(PAGE)
    output = at.selectbox(key="maths_edit_layer").options[-1]  # "11 dense (10 units)"
    at.selectbox(key="maths_edit_layer").set_value(output).run()
    at.multiselect(key=f"maths_edit_units_{output.split()[0]}").set_value([0, 1]).run()
    at.button(key="maths_edit_apply").click().run()
    assert not at.exception
    assert "Edited (2)" in " ".join(c.value for c in at.caption)
    at.selectbox(key="maths_edit_layer").set_value(
        at.selectbox(key="maths_edit_layer").options[0]
    ).run()
    at.button(key="maths_edit_all").click().run()  # every filter of the first convolution off
    (changed,) = at.session_state["maths_edits"].values()
    data_x, data_y = _test_set()
    rows = sample_indices(len(data_y))
    expected, predicted = edited_accuracy(cnn_model, changed, data_x[rows], data_y[rows])
    assert len(set(predicted.tolist())) == 1  # nothing reaches past the first layer
    assert at.metric[0].value == f"{expected:.1%}"
    at.button(key="maths_full").click().run()
    assert at.metric[1].value == f"{edited_accuracy(cnn_model, changed, data_x, data_y)[0]:.2%}"
    at.text_input(key="maths_name").set_value("cnn-off").run()
    at.button(key="maths_save").click().run()
    assert not at.exception and at.success
    saved = load_model(cnn_env / "cnn-off.npz")
    assert "layer 0 unit 5 off" in saved.metadata_["notes"]
    assert len(set(saved.predict(data_x[:50]).tolist())) == 1
    at.button(key="maths_save").click().run()  # the name is taken now
    assert "exists already" in at.error[0].value


def _test_set():
    from nn.services.maths import mnist_test_set

    return mnist_test_set()


def test_the_drawing_from_draw_and_a_kept_drawing(cnn_env, open_app, inject_drawing):
    from PIL import Image, ImageDraw

    from ui.mine import store

    at = open_app("pages/draw.py")
    img = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(img).line([(140, 40), (140, 240)], fill="white", width=22)
    inject_drawing(at, img)
    assert at.session_state[DRAWING_KEY].shape == (784,)
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.radio(key="maths_source").value == "Your drawing from Draw"
    assert "your drawing" in _html(at)
    at.selectbox(key="maths_true_digit").set_value(7).run()
    assert "true digit 7" in _html(at)
    at.radio(key="maths_source").set_value("A kept drawing").run()
    assert "No kept drawings yet" in at.info[0].value
    image = (np.arange(784).reshape(28, 28) % 251).astype(np.uint8)
    store().add(image, label=4)
    at.run()
    assert not at.exception and "true digit 4" in _html(at)


def test_a_dense_model_shows_the_digit_weights(env, small_model, open_app):
    save_model(small_model[0], env / "dense.npz")
    at = open_app(PAGE)
    at.selectbox(key="maths_layer").set_value(at.selectbox(key="maths_layer").options[0]).run()
    html = _html(at)
    assert not at.exception and "weights w: red" in html and "w·x: what each adds" in html
    assert "data:image/svg+xml;base64," in html  # the activation's curve, as a picture
    assert not at.get("plotly_chart")  # no feature map for a dense layer


def test_the_models_page_offers_the_numpy_program(cnn_env, open_app, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    made: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if filename is not None and isinstance(path_or_data, bytes):
            made[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = open_app("pages/models.py")
    button = at.get("download_button")[-1]
    assert button.proto.label == "Download NumPy program" and not button.proto.disabled
    with zipfile.ZipFile(io.BytesIO(made["cnn.zip"])) as archive:
        source = archive.read("reader/reader.py").decode()
    assert "def conv2d(" in source and "import numpy as np" in source


def test_another_model_in_the_sidebar_starts_the_page_again(cnn_env, small_model, open_app):
    save_model(small_model[0], cnn_env / "dense.npz")
    at = open_app(PAGE, session_state={"active_model_name": "dense"})
    at.selectbox(key="maths_layer").set_value(at.selectbox(key="maths_layer").options[0]).run()
    at.number_input(key="maths_unit_0").set_value(20).run()  # of 32 units
    at.multiselect(key="maths_edit_units_0").set_value([20, 31]).run()
    assert not at.exception
    at.session_state["active_model_name"] = "cnn"  # as the sidebar's model switch does
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="maths_layer").options[0].startswith("0 conv2d")
    at.selectbox(key="maths_layer").set_value(at.selectbox(key="maths_layer").options[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert 0 <= at.number_input(key="maths_unit_0").value < 6  # the CNN's first layer: 6 maps
    assert at.multiselect(key="maths_edit_units_0").value == []


def test_a_model_of_another_data_set_is_explained_away(env, small_model, open_app):
    record = {
        "name": "letters",
        "sha256": "0" * 64,
        "image_shape": [28, 28, 1],
        "class_names": [f"letter {c}" for c in "abcdefghij"],
    }
    # a copy: saving records the data set on the model object, and small_model is shared
    save_model(copy.deepcopy(small_model[0]), env / "letters.npz", dataset=record)
    at = open_app(PAGE, session_state={"active_model_name": "letters"})
    assert not at.exception
    assert "not an MNIST model" in at.info[0].value and "trained on letters" in at.info[0].value
    assert not at.get("html")  # nothing computed for it
