"""App shell under AppTest: navigation, shared sidebar, active model across pages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from nn import NeuralNetwork
from nn.io.model_files import save_model

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("NN_MODELS_DIR", str(models))
    monkeypatch.setenv("NN_TRAIN_LIMIT", "1000")
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    return models


def tiny_model(seed: int = 0, hidden=(8,)) -> NeuralNetwork:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (200, 784)).astype(np.uint8)
    y = np.arange(200) % 10
    return NeuralNetwork(
        hidden_layers=list(hidden), epochs=1, batch_size=50, random_state=seed
    ).fit(x, y, x[:50], y[:50])


def save_tiny(folder: Path, name: str, acc: float, **kw) -> Path:
    return save_model(
        tiny_model(**kw),
        folder / f"{name}.npz",
        name=name,
        metrics={"test_accuracy": acc, "val_accuracy": acc},
    )


def test_app_without_models_runs(env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("No saved model yet" in c.value for c in at.sidebar.caption)


def test_sidebar_shows_default_model_and_switches(env):
    # Under AppTest (streamlit 1.67) app.py itself runs only on the FIRST run; later runs
    # (widget interactions, switch_page) execute just the page script, so the sidebar is absent
    # from their element tree. The sidebar is inspected on first runs and the choice followed
    # through session_state (pages call init_state() themselves for that reason).
    save_tiny(env, "default", 0.91)
    save_tiny(env, "other", 0.42, hidden=(16, 8))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    box = at.sidebar.selectbox(key="sidebar_model")
    assert box.value == "default"
    assert box.options == ["default", "other"] or set(box.options) == {"default", "other"}
    assert "784-8-10" in at.sidebar.markdown[0].value
    assert at.sidebar.metric[0].value == "91.00%"
    box.select("other").run()
    assert not at.exception
    assert at.session_state["active_model_name"] == "other"
    # the choice persists across pages
    at.switch_page("pages/models.py").run()
    assert not at.exception
    assert at.session_state["active_model_name"] == "other"
    assert at.selectbox(key="models_pick").value == "other"
    at.switch_page("pages/train.py").run()
    assert at.session_state["active_model_name"] == "other"


def test_sidebar_follows_active_model_set_elsewhere(env):
    save_tiny(env, "default", 0.91)
    save_tiny(env, "other", 0.42, hidden=(16, 8))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["active_model_name"] = "other"
    at.run()
    assert at.sidebar.selectbox(key="sidebar_model").value == "other"
    assert "784-16-8-10" in at.sidebar.markdown[0].value
    assert at.sidebar.metric[0].value == "42.00%"


@pytest.mark.parametrize("page", ["pages/train.py", "pages/models.py"])
def test_my_pages_run(env, page):
    save_tiny(env, "default", 0.9)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception


def test_every_registered_page_runs(env):
    """Smoke test of every page file registered in app.py (including other engineers')."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_pages_list", APP)
    src = Path(APP).read_text()
    assert "st.navigation" in src and spec is not None
    save_tiny(env, "default", 0.9)
    root = Path(APP).parent
    pages = [
        p
        for p in (
            "pages/overview.py",
            "pages/train.py",
            "pages/draw.py",
            "pages/predictions.py",
            "pages/evaluate.py",
            "pages/models.py",
        )
        if (root / p).is_file()
    ]
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    for page in pages:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)


def test_state_helpers(env, monkeypatch):
    from ui import state

    assert state.models_dir() == env
    assert state.train_limit() == 1000
    monkeypatch.setenv("NN_TRAIN_LIMIT", "")
    assert state.train_limit() is None
    assert state.layers_text([784, 256, 10]) == "784-256-10"
