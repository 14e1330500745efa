"""A data set of one's own in a real browser: upload a small set on the Data sets page, train on
it from the Train page, save the model, browse its predictions with the set's class names.

The server has a data folder and a models folder of its own (``NN_DATA_DIR``, ``NN_MODELS_DIR``
in a temporary folder), so nothing is written into the repository."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from test_browser import NAV_LINK, TITLE, no_exception, open_page, settle, wait_until

from tests.browser.conftest import start_server, stop_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the synthetic sets
from datasets_synthetic import GREY_CLASSES, GREY_SHAPE, make_images  # noqa: E402

from nn.io.model_files import load_model  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def data_server(models_dir, tmp_path, monkeypatch):
    """A server of its own with an empty data folder and a models folder holding default."""
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "sets"))
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy2(models_dir / "default.npz", folder / "default.npz")
    server = start_server(folder, tmp_path)
    yield server
    stop_server(server)


def _go(page, link: str, title: str) -> None:
    """Another page of the same session, through the sidebar's navigation."""
    page.locator(NAV_LINK, has_text=link).first.click()
    page.locator(TITLE, has_text=title).first.wait_for(timeout=60_000)
    settle(page)


def _select_value(box) -> str:
    """What a selectbox shows: its text and the value of its input, if it has one."""
    return box.evaluate(
        "el => el.innerText + ' ' + Array.from(el.querySelectorAll('input'))"
        ".map(i => i.value + ' ' + (i.getAttribute('aria-label') || '')).join(' ')"
    )


def _npz_bytes() -> bytes:
    x, y = make_images(300, GREY_SHAPE, len(GREY_CLASSES))
    buf = io.BytesIO()
    np.savez(buf, x_train=x[60:], y_train=y[60:], x_test=x[:60], y_test=y[:60])
    return buf.getvalue()


def test_upload_a_set_train_on_it_and_browse_its_predictions(data_server, new_page, tmp_path):
    page = new_page
    open_page(page, data_server, "data", "Data sets")
    page.locator(".st-key-data_name input").fill("shapes")
    page.locator(".st-key-data_classes input").fill(", ".join(GREY_CLASSES))
    page.locator(".st-key-data_classes input").press("Enter")
    settle(page)
    page.locator(".st-key-data_upload input[type=file]").set_input_files(
        files=[
            {"name": "shapes.npz", "mimeType": "application/octet-stream", "buffer": _npz_bytes()}
        ]
    )
    settle(page)
    page.locator(".st-key-data_add button").click()
    success = page.locator("[data-testid=stAlert]", has_text="Added")
    success.first.wait_for(timeout=30_000)
    settle(page)
    assert "shapes: 28x28 grey, 3 classes, 240 train + 60 test images" in success.inner_text()
    assert (tmp_path / "sets" / "shapes" / "info.json").is_file()
    sidebar = page.locator("[data-testid=stSidebar]")
    assert "shapes" in _select_value(sidebar.locator(".st-key-sidebar_set"))
    no_exception(page)

    # train on it: the fast preset, 3 epochs
    _go(page, "Train", "Train a network")  # a click: loading a URL starts a new session
    assert page.get_by_text("Training on the data set").first.is_visible()
    page.locator(".st-key-preset_fast button:visible").first.click()
    settle(page)
    page.get_by_role("tab", name="Data", exact=True).click()
    epochs = page.locator(".st-key-tf_epochs input")
    epochs.fill("3")
    epochs.press("Enter")
    settle(page)
    page.locator(".st-key-start_training button").click()
    page.locator("[data-testid=stAlert]", has_text="Training finished").first.wait_for(
        timeout=120_000
    )
    settle(page)
    page.locator(".st-key-save_name input").fill("shapes-net")
    page.locator(".st-key-save_name input").press("Enter")
    settle(page)
    page.locator(".st-key-save_model button").click()
    page.locator("[data-testid=stAlert]", has_text="Saved as").first.wait_for(timeout=30_000)
    settle(page)
    saved = load_model(data_server.models_dir / "shapes-net.npz")
    assert saved.metadata_["dataset"]["name"] == "shapes"
    assert saved.metadata_["dataset"]["class_names"] == GREY_CLASSES

    # its predictions, with the class names; the MNIST model is not offered for this set
    _go(page, "Predictions", "Predictions")
    main = page.locator("[data-testid=stMain]")
    wait_until(lambda: "60 test images of shapes" in main.inner_text(), 20, "the set's test images")
    assert "shapes-net" in _select_value(sidebar.locator(".st-key-sidebar_model"))
    page.locator(".st-key-pred_true").click()
    options = page.locator("[role=option]").all_inner_texts()
    assert [o.strip() for o in options] == ["any", *GREY_CLASSES]
    page.locator("[role=option]", has_text="square").first.click()
    settle(page)
    page.locator(".st-key-pred_grid .js-plotly-plot").wait_for()  # the grid of tiles
    assert page.locator("[data-testid=stImage] img").count() >= 1  # the picked tile's detail
    no_exception(page)
