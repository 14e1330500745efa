"""My digits in a real browser: draw, correct the label, keep the drawing, see it on /mine,
fine-tune briefly (the server's ``NN_TRAIN_LIMIT`` keeps it to a few thousand MNIST images).
Shares the session's server with ``test_browser.py`` (fixtures in ``conftest.py``)."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_browser import (
    CANVAS,
    _predicted_digit,
    _stroke,
    no_exception,
    open_page,
    screenshot,
    settle,
    wait_until,
)

pytestmark = pytest.mark.browser


def test_keep_a_corrected_drawing_and_fine_tune_on_it(app_server, new_page, shots):
    from nn.data.drawn import drawn_inputs
    from nn.services.mine import MineStore

    page = new_page
    store = MineStore(app_server.runs_db.parent / "mine.sqlite")
    kept_before = store.count()
    open_page(page, app_server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    _stroke(page, [(140, 40), (140, 240)])  # a "1"
    predicted = _predicted_digit(page)
    corrected = 4 if predicted != 4 else 7
    choice = page.locator(".st-key-keep button", has_text=re.compile(rf"^\s*{corrected}\s*$"))
    choice.first.click()
    settle(page)
    page.get_by_role("button", name="Keep this drawing").first.click()
    page.locator("[data-testid=stToast]", has_text="Kept drawing").first.wait_for()
    no_exception(page)
    (kept,) = store.list()[kept_before:]
    assert kept.label == corrected and kept.predicted == predicted
    assert kept.model_name == "default" and store.get(kept.id).canvas_png

    # more drawings, so that every digit has some to learn from and some to hold out
    x, y = drawn_inputs(2, seed=3)
    store.add_many(x, y)
    open_page(page, app_server, "mine", "My digits")
    gallery = page.locator("[data-testid=stMain]")
    gallery.get_by_text(f"#{kept.id}", exact=True).first.wait_for()
    no_exception(page)
    screenshot(page, shots, "mine")

    page.get_by_role("tab", name="Fine-tune").click()
    page.locator(".st-key-mine_ft_start button").click()
    saved_message = page.get_by_text(
        re.compile(r"Saved as \S+ \(run")
    )  # not the caption's "saved as"
    wait_until(
        lambda: saved_message.count() > 0 or page.get_by_text("failed").count(),
        240,
        "the fine-tuned model to be saved",
        interval=1.0,
    )
    settle(page)
    no_exception(page)
    saved = saved_message.first.inner_text()
    name = re.search(r"Saved as (\S+) \(run", saved)
    assert name, saved
    # the base is the session's active model (earlier tests on this server may save others)
    assert name.group(1).endswith("-mine")
    assert (app_server.models_dir / f"{name.group(1)}.npz").is_file()
    page.get_by_text("Fine-tuned on").first.wait_for()
