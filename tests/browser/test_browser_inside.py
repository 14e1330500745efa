"""A CNN built, trained and looked into in a real browser: build a small stack on /train in the
stack editor, train it on the server's slice (``NN_TRAIN_LIMIT``), watch /inside update while it
trains, save it, then draw on /draw and see its feature maps and an attribution map. Shares the
session's server with ``test_browser.py`` (fixtures in ``conftest.py``)."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_browser import (
    CANVAS,
    NAV_LINK,
    _predicted_digit,
    _stroke,
    no_exception,
    open_page,
    screenshot,
    settle,
    wait_until,
)

pytestmark = pytest.mark.browser

STACK = "conv8k3same,relu,pool2,conv16k3same,relu,pool2,dense32,relu"
CHAIN = "28x28x1 -> 28x28x8 -> 14x14x8 -> 14x14x16 -> 7x7x16 -> 32 -> 10"
EPOCHS = 4

_GRAD_POINTS_JS = """() => {
  let n = 0;
  document.querySelectorAll(".st-key-inside_grad_norm .js-plotly-plot").forEach(g => {
      for (const t of (g.data || [])) n = Math.max(n, (t.x || []).length);
  });
  return n;
}"""


def _nav(page, title: str, heading: str) -> None:
    """Go to a page through the sidebar (the same session: a reload would be a new one)."""
    page.locator(NAV_LINK, has_text=title).first.click()
    page.locator("[data-testid='stMain'] h1", has_text=heading).first.wait_for(timeout=60_000)
    settle(page)


def _main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def test_build_train_look_inside_and_draw_a_cnn(app_server, new_page, shots):
    page = new_page
    open_page(page, app_server, "train", "Train a network")
    page.locator(".st-key-tf_stack_mode button", has_text="Layer stack").first.click()
    settle(page)
    page.get_by_text("Write the stack in one line").first.click()
    line = page.locator(".st-key-tf_stk_text input")
    line.fill(STACK)
    line.press("Enter")
    settle(page)
    page.locator(".st-key-tf_stk_apply_text button").click()
    settle(page)
    # the caption's "->" is drawn as an arrow
    wait_until(
        lambda: CHAIN.replace("->", "→") in _main_text(page).replace("->", "→"),
        20,
        "the shape chain of the stack",
    )
    assert "→ 28x28x8, 80 parameters" in _main_text(page)
    assert "Compact: C8k3same-P2-C16k3same-P2-D32-D10" in _main_text(page)
    no_exception(page)
    page.locator(".st-key-tf_stk_row_0").first.scroll_into_view_if_needed()
    screenshot(page, shots, "train-stack")

    page.get_by_role("tab", name="Data", exact=True).click()
    epochs = page.locator(".st-key-tf_epochs input")
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    settle(page)
    page.locator(".st-key-start_training button").click()
    settle(page)

    # /inside follows the training: the gradient-norm chart gains a point per epoch
    _nav(page, "Inside", "Inside the network")
    first = wait_until(lambda: page.evaluate(_GRAD_POINTS_JS), 120, "the first epoch's charts")
    later = wait_until(
        lambda: (lambda n: n > first and n)(page.evaluate(_GRAD_POINTS_JS)),
        120,
        "the charts to gain an epoch",
    )
    assert later > first
    grid = page.locator(".st-key-inside_grid img")
    wait_until(lambda: grid.count() == 50, 30, f"the test grid of 50 digits ({grid.count()})")
    assert "vanishing gradients" in _main_text(page)
    no_exception(page)
    screenshot(page, shots, "inside")

    # back on /train: wait for the end, save the model (it becomes the active one)
    _nav(page, "Train", "Train a network")
    save = page.locator(".st-key-save_model button")
    save.wait_for(timeout=180_000)
    name = page.locator(".st-key-save_name input")
    name.fill("browser-cnn")
    name.press("Enter")
    settle(page)
    page.locator(".st-key-save_model button").click()
    settle(page)
    assert "browser-cnn.npz" in _main_text(page)

    # /draw with the CNN: feature maps of every conv and pool layer, an attribution map
    _nav(page, "Draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    _stroke(page, [(70, 50), (210, 50), (110, 240)])  # a "7"
    digit = _predicted_digit(page)
    assert 0 <= digit <= 9
    maps = wait_until(
        lambda: (
            page.locator(".st-key-draw_feature_maps img").count() >= 4
            and page.locator(".st-key-draw_feature_maps").inner_text()
        ),
        30,
        "the feature maps",
    )
    for title in ("0 conv2d + relu: 8 maps of 28x28", "2 maxpool", "3 conv2d + relu", "5 maxpool"):
        assert title in maps, maps
    page.locator(".st-key-draw_attribution img").first.wait_for(timeout=30_000)
    assert "Saliency for" in page.locator(".st-key-draw_attribution").inner_text()
    page.locator(".st-key-draw_attr_method").get_by_text("Integrated gradients").click()
    settle(page)
    wait_until(
        lambda: "Integrated gradients for" in page.locator(".st-key-draw_attribution").inner_text(),
        30,
        "the integrated gradients map",
    )
    no_exception(page)
    page.locator(".st-key-draw_feature_maps").first.scroll_into_view_if_needed()
    screenshot(page, shots, "draw-cnn")
    assert re.search(r"Which pixels made it a \d", _main_text(page))
