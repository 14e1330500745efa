"""Fixtures the tests share.

Models: ``small_model`` (one small trained network per session) and ``small_model_dir`` (a
models folder of each module's own holding it, so tests may add or delete files there);
``reference_cnn`` and ``cnn_model``, convolutional networks for the exporters and the layers.

Pages under ``streamlit.testing.v1.AppTest`` (through ``app.py``, as served):

- ``env``: a test's own models folder, run database and drawings database (``NN_MODELS_DIR``,
  ``NN_RUNS_DB``, ``NN_MINE_DB``) and ``NN_TRAIN_LIMIT=1000``; returns the models folder.
  ``small_env`` points ``NN_MODELS_DIR`` at ``small_model_dir`` instead. ``runs_db`` and
  ``mine_db`` are the two database paths.
- ``open_app(page=None, session_state=None)``: the app run once (with those session-state
  values set first), then switched to ``page``; no exception on the way. The job board (every
  owner's training, search and fine-tuning) starts empty in every test that takes ``open_app``.
- ``texts(elements)``: the values of elements (``at.error``, ``at.info``...) joined in one string.
- ``tiny_model(...)``: a network fitted in milliseconds on random pixels.
- ``inject_drawing(at, image)``: a drawing put on the Draw page's canvas, then a rerun.
- ``started_jobs``: every ``ui.session_jobs.SessionJob`` a page starts during the test, in order,
  so a test waits on the job itself (``wait``, ``control._blocked``) instead of sleeping.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from apptest_support import APP, APP_TIMEOUT, APPTEST_SESSION_ID
from PIL import Image
from streamlit.runtime.caching.cache_resource_api import clear_session_cache
from streamlit.testing.v1 import AppTest

from nn.core.network import NeuralNetwork
from nn.data import load_mnist
from nn.io.model_files import save_model
from ui.session_jobs import SessionJob
from ui.state import job_board

DRAW_CANVAS_KEY = "draw_canvas"


# ------------------------------------------------------------------------------ models
@pytest.fixture(scope="session")
def small_model():
    """``(model, data)``: hidden layer of 32, 2 epochs on the first 5,000 training images (~1 s),
    and the MNIST data set. Treat the model as read-only."""
    data = load_mnist()
    model = NeuralNetwork(hidden_layers=(32,), epochs=2, random_state=0)
    model.fit(data.x_train[:5000], data.y_train[:5000])
    return model, data


@pytest.fixture(scope="module")
def small_model_dir(small_model, tmp_path_factory):
    """A fresh models folder for this module with ``small_model`` saved as ``small.npz``."""
    folder = tmp_path_factory.mktemp("models")
    save_model(small_model[0], folder / "small.npz")
    return folder


def _tiny_model(seed: int = 0, hidden: Iterable[int] = (8,), epochs: int = 2) -> NeuralNetwork:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (200, 784)).astype(np.uint8)
    y = np.arange(200) % 10
    return NeuralNetwork(
        hidden_layers=list(hidden), epochs=epochs, batch_size=50, random_state=seed
    ).fit(x, y, x[:50], y[:50])


@pytest.fixture
def tiny_model() -> Callable[..., NeuralNetwork]:
    """``tiny_model(seed=0, hidden=(8,), epochs=2)``: fitted on 200 random images."""
    return _tiny_model


# ------------------------------------------------------------------------------ page settings
@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("NN_MODELS_DIR", str(models))
    monkeypatch.setenv("NN_TRAIN_LIMIT", "1000")
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("NN_MINE_DB", str(tmp_path / "mine.sqlite"))
    return models


@pytest.fixture
def small_env(env, small_model_dir, monkeypatch) -> Path:
    monkeypatch.setenv("NN_MODELS_DIR", str(small_model_dir))
    return small_model_dir


@pytest.fixture
def runs_db(env, tmp_path) -> Path:
    return tmp_path / "runs.sqlite"


@pytest.fixture
def mine_db(env, tmp_path) -> Path:
    return tmp_path / "mine.sqlite"


# ------------------------------------------------------------------------------ page helpers
def _open_app(
    page: str | None = None, *, timeout: float = APP_TIMEOUT, session_state: dict | None = None
) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (session_state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def _end_session() -> None:
    """Release the AppTest session's resources (``cache_resource(scope="session")``) and stop and
    forget every job on the server's job board (they belong to the owner, not the session).
    Every AppTest runs as the same session and owner, so without this a job would pass from one
    test to the next."""
    clear_session_cache(APPTEST_SESSION_ID)
    job_board().clear()


@pytest.fixture
def open_app() -> Iterator[Callable[..., AppTest]]:
    _end_session()
    yield _open_app
    _end_session()


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


@pytest.fixture
def texts() -> Callable[..., str]:
    return _texts


def _png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _inject_drawing(at: AppTest, image: Image.Image, key: str = DRAW_CANVAS_KEY) -> None:
    # the canvas component's session-state format (streamlit-drawable-canvas 0.13.0)
    at.session_state[key] = {
        "drawing": {"raw": {"objects": []}, "data": _png_data_url(image)},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception


@pytest.fixture
def inject_drawing() -> Callable[..., None]:
    return _inject_drawing


@pytest.fixture
def started_jobs(monkeypatch) -> list[SessionJob]:
    jobs: list[SessionJob] = []
    start = SessionJob.start

    def recording_start(self: SessionJob, *args, **kwargs) -> SessionJob:
        jobs.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(SessionJob, "start", recording_start)
    return jobs


# ------------------------------------------------------------------------------ networks
@pytest.fixture(scope="session")
def reference_cnn():
    """A convolutional network of the engine's own kernels with seeded random weights, every
    layer kind the exporters know (tests/export_reference.py)."""
    from export_reference import ReferenceCNN

    return ReferenceCNN()


CNN_LAYERS = [
    {"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2, "padding": "same"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 8, "kernel": 3},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2, "stride": 1},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 16},  # on the 4x4x8 image: the implicit flatten
    {"type": "batchnorm"},
    {"type": "leaky_relu", "slope": 0.1},
]


@pytest.fixture(scope="session")
def cnn_model(small_model):
    """A small convolutional network trained by the engine (2 epochs on 3,000 images, ~3 s):
    'same' and 'valid' convolutions, batch norm on images and on vectors, both poolings,
    dropout and the implicit flatten before a dense layer."""
    data = small_model[1]
    model = NeuralNetwork(layers=CNN_LAYERS, epochs=2, random_state=0)
    return model.fit(data.x_train[:3000], data.y_train[:3000])
