"""What a first-time user trips over, in a real browser: the live chart's legend on /train, the
"Keep this drawing" choice on /draw, and a run named after what it trained (and found by the
name its model was saved under) on /runs. Shares the session's server with ``test_browser.py``
(fixtures in ``conftest.py``)."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_browser import (
    CANVAS,
    NAV_LINK,
    _predicted_digit,
    _prediction_text,
    _stroke,
    no_exception,
    open_page,
    settle,
    wait_until,
)

pytestmark = pytest.mark.browser

# the legend entries of the live chart and where they are drawn, against the chart's own box
_LEGEND_JS = """() => {
  const chart = document.querySelector('.st-key-live_training .js-plotly-plot');
  if (!chart) return null;
  const box = chart.getBoundingClientRect();
  return {box: [box.left, box.top, box.right, box.bottom],
          entries: Array.from(chart.querySelectorAll('.legend .traces')).map(e => {
            const r = e.getBoundingClientRect();
            return {text: e.textContent, rect: [r.left, r.top, r.right, r.bottom]};
          })};
}"""


def _progress_text(page) -> str:
    texts = page.locator("[data-testid=stMain] [data-testid=stProgress]").all_inner_texts()
    return texts[0] if texts else ""


def _set_epochs(page, epochs: int) -> None:
    page.get_by_role("tab", name="Data", exact=True).click()
    field = page.locator(".st-key-tf_epochs input")
    field.fill(str(epochs))
    field.press("Enter")
    settle(page)


def _train_until_finished(page) -> None:
    """Start, and wait until this training has finished (the page may show an earlier training
    of the same person, finished, until the click's rerun)."""
    start = page.locator(".st-key-start_training button")
    start.click()
    wait_until(start.is_disabled, 30, "the training to start")
    wait_until(lambda: _progress_text(page).startswith("Finished"), 60, "the training to end")
    settle(page)


def test_live_chart_legend_tells_training_from_validation(app_server, new_page):
    """The legend of the live loss and accuracy chart is drawn inside the chart, where it can
    be seen, and names the training and the validation curves."""
    page = new_page
    open_page(page, app_server, "train", "Train a network")
    page.locator(".st-key-preset_fast button:visible").first.click()
    settle(page)
    _set_epochs(page, 3)
    _train_until_finished(page)
    page.locator(".st-key-live_training").scroll_into_view_if_needed()
    legend = wait_until(
        lambda: (lambda r: r and r["entries"] and r)(page.evaluate(_LEGEND_JS)),
        20,
        "the live chart's legend",
    )
    left, top, right, bottom = legend["box"]
    shown = [
        e["text"]
        for e in legend["entries"]
        if e["rect"][0] >= left - 1
        and e["rect"][2] <= right + 1
        and e["rect"][1] >= top - 1
        and e["rect"][3] <= bottom + 1
    ]
    for name in ("train loss", "val loss", "train accuracy", "val accuracy"):
        assert name in shown, (name, legend)
    no_exception(page)


def test_picking_the_predicted_digit_keeps_it_selected(app_server, new_page):
    """Clicking the digit already highlighted (the prediction) under "Keep this drawing" keeps
    it chosen and the button usable."""
    page = new_page
    open_page(page, app_server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    _stroke(page, [(140, 40), (140, 240)])  # a "1"
    predicted = _predicted_digit(page)
    keep = page.get_by_role("button", name="Keep this drawing").first
    assert keep.is_enabled()
    choice = page.locator(".st-key-keep button", has_text=re.compile(rf"^\s*{predicted}\s*$"))
    chosen = page.locator(".st-key-keep button[aria-checked=true]")
    for _ in range(2):  # no click on it clears the choice
        choice.first.click()
        settle(page)
        assert keep.is_enabled(), "Keep this drawing was greyed out"
        assert chosen.count() == 1 and chosen.first.inner_text().strip() == str(predicted)
    no_exception(page)


def _runs_names(page) -> list[str]:
    """The name column of the Runs table (the second column; the first is the id)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        "[data-testid=stDataFrame] table tbody tr")).map(r => {
            const cells = r.querySelectorAll('td');
            return cells.length > 1 ? cells[1].innerText.trim() : '';
        })""")


def test_a_custom_run_is_named_for_its_network_then_for_its_saved_model(app_server, new_page):
    """A preset changed by hand is no longer highlighted and does not name the run; the run is
    named after its layers and data set, takes the model's name once saved, and the Runs page
    finds it by that name."""
    page = new_page
    open_page(page, app_server, "train", "Train a network")
    page.locator(".st-key-preset_fast button:visible").first.click()
    settle(page)
    assert page.locator(".st-key-preset_fast button[kind=primary]").count() >= 1
    layers = page.locator(".st-key-tf_n_layers input")
    layers.fill("1")
    layers.press("Enter")
    settle(page)
    # the form is not the preset any more: no preset is highlighted
    wait_until(
        lambda: page.locator("[class*=st-key-preset_] button[kind=primary]").count() == 0,
        10,
        "the preset highlight to go",
    )
    _set_epochs(page, 2)
    _train_until_finished(page)
    name_field = page.locator(".st-key-save_name input")
    default_name = name_field.input_value()
    assert default_name != "fast" and "mnist" in default_name, default_name

    name_field.fill("first-use-net")
    name_field.press("Enter")
    settle(page)
    page.locator(".st-key-save_model button").click()
    page.get_by_text("Saved as first-use-net.npz").first.wait_for()
    settle(page)
    sidebar = page.locator("[data-testid=stSidebar]").inner_text()
    assert "save it on the" not in sidebar, sidebar

    page.locator(NAV_LINK, has_text="Runs").first.click()
    page.locator("[data-testid='stMain'] h1", has_text="Runs").first.wait_for()
    settle(page)
    search = page.locator(".st-key-runs_name input")
    search.fill("first-use")
    search.press("Enter")
    settle(page)
    # the table is drawn unfiltered first: wait for the filter's rerun to show
    names = wait_until(
        lambda: (lambda n: n == ["first-use-net"] and n)(_runs_names(page)),
        30,
        "the runs table to show only the run saved as first-use-net",
    )
    assert names == ["first-use-net"], names
    no_exception(page)


def test_a_stroke_right_after_clear_is_predicted(app_server, new_page):
    """Clear empties the canvas where it is: a stroke drawn a moment after the click (before the
    page has settled) lands on a canvas that is there, and is predicted."""
    page = new_page
    open_page(page, app_server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    for _ in range(3):
        _stroke(page, [(140, 40), (140, 240)])  # a "1"
        assert _predicted_digit(page) == 1
        page.locator(".st-key-draw_clear button").click()
        page.wait_for_timeout(150)  # the hand moving back to the canvas
        _stroke(page, [(70, 50), (210, 50), (110, 240)])  # a "7"
        assert _predicted_digit(page) == 7, _prediction_text(page)
        page.locator(".st-key-draw_clear button").click()
        wait_until(lambda: not re.search(r"\d", _prediction_text(page)), 20, "the invitation")
        settle(page)
    no_exception(page)
