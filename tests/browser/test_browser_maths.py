"""How it computes (/maths) in a real browser: draw a digit on the Draw page, open the page from
the sidebar (the drawing carried over), pick a unit, take three steps and watch the loss fall."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_browser import (
    CANVAS,
    _predicted_digit,
    _stroke,
    no_exception,
    open_page,
    settle,
)

pytestmark = pytest.mark.browser

LOSSES = ".st-key-maths_update .maths-loss"


def _losses(page) -> list[float]:
    return [float(t.replace("−", "-")) for t in page.locator(LOSSES).all_inner_texts()]


def test_draw_then_maths_three_steps_lower_the_loss(app_server, new_page, shots):
    page = new_page
    open_page(page, app_server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    _stroke(page, [(70, 50), (210, 50), (110, 240)])  # a 7
    digit = _predicted_digit(page)
    page.locator("[data-testid=stSidebarNavLink]", has_text="How it computes").click()
    page.locator("[data-testid=stMain] h1", has_text="How it computes").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    main = page.locator("[data-testid=stMain]")
    assert main.get_by_text("your drawing").first.is_visible()
    assert main.get_by_text(f"the network says {digit}").first.is_visible()

    unit = page.locator(".st-key-maths_unit_13 input")  # the output layer, chosen at first
    unit.fill("3")
    unit.press("Enter")
    settle(page)
    assert main.get_by_text("backpropagation is right").first.is_visible()
    no_exception(page)

    for count in (1, 2, 3):
        page.locator(".st-key-maths_step button").click()
        page.locator(LOSSES).nth(count).wait_for(timeout=30_000)
        settle(page)
    losses = _losses(page)
    assert len(losses) == 4, losses
    assert losses[0] > losses[1] > losses[2] > losses[3], losses
    no_exception(page)
    page.locator(".st-key-maths_update").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "maths.png"))

    # a convolution: click a position on its feature map
    select = page.locator(".st-key-maths_layer input[role=combobox]")
    select.scroll_into_view_if_needed()
    select.click()
    page.get_by_role("option", name=re.compile(r"^0 conv2d")).click()
    settle(page)
    title = page.locator(".js-plotly-plot .gtitle").first
    title.wait_for(timeout=30_000)
    before = title.text_content()
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.1, area["y"] + area["height"] * 0.9)
    page.wait_for_function(
        "t => document.querySelector('.js-plotly-plot .gtitle').textContent !== t", arg=before
    )
    settle(page)
    row, col = map(int, re.search(r"row (\d+), column (\d+)", title.text_content()).groups())
    assert row > 12 and col < 12, title.text_content()  # low and to the left, where clicked
    no_exception(page)
