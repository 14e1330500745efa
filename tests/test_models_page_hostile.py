"""The Models page's upload under hostile names and contents (AppTest): a message, the
uploader still there, nothing written; the accuracy shown is measured, not the file's claim."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nn import NeuralNetwork
from nn.io.model_files import save_model

PAGE = "pages/models.py"


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 784)).astype(np.uint8)
    y = np.arange(200) % 10
    model = NeuralNetwork(hidden_layers=[8], epochs=1, batch_size=50, random_state=0).fit(x, y)
    path = tmp_path_factory.mktemp("up") / "up.npz"
    return save_model(model, path, metrics={"test_accuracy": 0.99}).read_bytes()


@pytest.fixture
def upload(env, open_app):
    """``upload(name, data)``: the Models page after an upload of ``data`` as ``name``."""

    def upload_file(name: str, data: bytes) -> AppTest:
        at = open_app(PAGE)
        at.file_uploader(key="model_upload_0").set_value((name, data, "application/octet-stream"))
        return at.run()

    return upload_file


@pytest.mark.parametrize(
    "name,shown",
    [("a\0b.npz", "U+0000"), ("bad\x07.npz", "U+0007"), ("../x.npz", "'/'"), ("a\\b.npz", "\\\\")],
    ids=["nul", "bell", "slash", "backslash"],
)
def test_unsafe_upload_names_get_a_message_and_the_uploader_stays(
    env, model_bytes, texts, upload, name, shown
):
    at = upload(name, model_bytes)
    assert not at.exception, [e.value for e in at.exception]
    message = texts(at.error)
    assert "refused" in message and "control characters or path separators" in message
    assert shown in message
    assert at.file_uploader(key="model_upload_0") is not None
    assert list(env.iterdir()) == []


def test_wrong_extension_is_refused_by_the_loader(env, model_bytes, texts, upload):
    at = upload("model.txt", model_bytes)
    assert not at.exception
    assert "unsupported file type '.txt'" in texts(at.error)


def test_naming_rules_keep_their_underscores(env, model_bytes, texts, upload):
    at = upload("up.npz", model_bytes)
    at.text_input(key="upload_name").set_value("bad name!").run()
    message = texts(at.error)
    assert "'-', '\\_' and '.'" in message  # escaped: Markdown shows '_', not ''
    assert "(spaces become '\\_')" in message


def test_upload_shows_the_measured_accuracy_and_the_files_claim(env, model_bytes, texts, upload):
    at = upload("up.npz", model_bytes)
    assert not at.exception
    message = texts(at.success)
    assert "measured here on the MNIST test set" in message
    assert "the file claims 99.00%" in message  # a random 784-8-10 model is far from 99%
