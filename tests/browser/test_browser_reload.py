"""A training belongs to the person, not to the browser tab: reloading the Train page (F5) in the
middle of a training brings the same training back, still running, with its own form; another
tab shows and stops it, and its model waits to be saved. Real Chromium against ``streamlit run
app.py`` (fixtures in ``conftest.py``)."""

from __future__ import annotations

import re

import pytest
from test_browser import no_exception, open_page, settle, wait_until

pytestmark = pytest.mark.browser

PROGRESS = "[data-testid=stMain] [data-testid=stProgress]"


def _progress(page) -> str:
    """The Train page's progress text ("Training — epoch 3/1000, about ...")."""
    texts = page.locator(PROGRESS).all_inner_texts()
    return texts[0].strip() if texts else ""


def _epoch(page) -> int:
    m = re.search(r"epoch (\d+)/1000", _progress(page))
    return int(m.group(1)) if m else -1


def test_a_training_survives_a_reload_and_another_tab_stops_it(fresh_server, new_page):
    page = new_page
    open_page(page, fresh_server, "train", "Train a network")
    page.locator(".st-key-preset_fast button:visible").first.click()
    settle(page)
    page.get_by_role("tab", name="Data", exact=True).click()
    epochs = page.locator(".st-key-tf_epochs input")
    epochs.fill("1000")  # it cannot finish on its own during the test
    epochs.press("Enter")
    settle(page)
    page.locator(".st-key-start_training button").click()
    before = wait_until(lambda: _epoch(page) >= 1 and _epoch(page), 60, "the training to run")

    page.reload()  # F5: a new Streamlit session of the same person
    page.locator("[data-testid=stMain] h1", has_text="Train a network").first.wait_for()
    settle(page)
    wait_until(
        lambda: _progress(page).startswith("Training — epoch"), 30, "the training after a reload"
    )
    wait_until(lambda: _epoch(page) > before, 60, "the reloaded page's epoch to move on")
    assert page.locator(".st-key-start_training button").is_disabled()
    assert page.locator(".st-key-stop_training button").is_enabled()
    page.get_by_role("tab", name="Data", exact=True).click()
    assert page.locator(".st-key-tf_epochs input").input_value() == "1000"  # its own form
    no_exception(page)

    other = page.context.new_page()  # a second tab
    open_page(other, fresh_server, "train", "Train a network")
    wait_until(
        lambda: _progress(other).startswith("Training — epoch"), 30, "the training in a new tab"
    )
    other.locator(".st-key-stop_training button").click()
    wait_until(lambda: _progress(other).startswith("Stopped"), 60, "the Stopped label")
    settle(other)
    assert other.get_by_text("Save this model").is_visible()  # the model waits to be saved
    other.close()

    page.reload()
    page.locator("[data-testid=stMain] h1", has_text="Train a network").first.wait_for()
    settle(page)
    wait_until(lambda: _progress(page).startswith("Stopped"), 30, "the stopped training")
    assert page.get_by_text("Save this model").is_visible()
    assert page.locator(".st-key-start_training button").is_enabled()
    no_exception(page)
