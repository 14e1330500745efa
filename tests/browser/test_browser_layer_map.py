"""The layer map in a real browser: /map draws one mark per test image; hovering a point shows
that image (cut from the sprite, really painted) with its true and predicted digit and the
confidence; clicking it shows it in detail below, as on Predictions."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.browser.test_browser import no_exception, open_page, screenshot, settle, wait_until

pytestmark = pytest.mark.browser

POINTS = "[data-testid=layer-map-svg] .pt"
TIP = "[data-testid=layer-map-tip]"


def test_hover_a_point_shows_its_image_and_click_opens_it(app_server, new_page, shots):
    page = new_page
    open_page(page, app_server, "map", "Layer map")
    points = page.locator(POINTS)
    wait_until(lambda: points.count() == 2000, 120, "2,000 points on the map")
    no_exception(page)
    top = points.last  # drawn last, so nothing covers it
    index = top.get_attribute("data-index")
    box = top.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator(TIP)
    tip.wait_for(state="visible", timeout=10_000)
    text = tip.inner_text()
    assert re.search(rf"#{index}\b", text), text
    assert re.search(r"true \d → predicted \d", text) and re.search(r"\d+% sure", text), text
    image = tip.locator(".img")
    shot = Image.open(io.BytesIO(image.screenshot())).convert("L")
    pixels = np.asarray(shot, dtype=float)
    assert shot.size[0] >= 80 and shot.size[1] >= 80
    assert pixels.max() - pixels.min() > 100, "the tooltip shows no digit (a blank picture)"
    screenshot(page, shots, "layer_map_hover")
    top.click()
    settle(page)
    main = page.locator("[data-testid=stMain]")
    wait_until(
        lambda: f"Probabilities for #{index} (true digit" in main.inner_text(),
        30,
        f"image #{index} in detail",
    )
