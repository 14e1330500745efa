"""The dashboard in a real browser: Debian's Chromium driven by Playwright against
``streamlit run app.py`` (fixtures in ``conftest.py``).

Run: ``python -m pytest tests/browser -q`` (under two minutes on 2 cores). With
``NN_SCREENSHOTS=1`` the screenshots are written to ``docs/screenshots/``.

The tests run in file order and share one server: the first one uses a server of its own, the
training run of ``test_train_...`` shows up later on the Runs page, the model uploaded by
``test_models_upload`` in the Models screenshot.
"""

from __future__ import annotations

import itertools
import os
import re
import time

import pytest

import app

pytestmark = pytest.mark.browser

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TITLE = "[data-testid='stMain'] h1"
CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
PREDICTION = ".st-key-prediction"
NAV_LINK = "[data-testid=stSidebarNavLink]"
PAGE_TITLES = [title for _, title, _, _ in app.PAGES]


# ------------------------------------------------------------------------------ helpers
def settle(page, timeout: float = 30_000) -> None:
    """Wait until the script is not running (twice, a moment apart: a rerun that a click or a
    fragment timer is about to start does not show at once)."""
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_timeout(250)
    page.wait_for_selector(IDLE, timeout=timeout)


def open_page(page, server, path: str, title: str) -> None:
    """Load ``/path`` and wait until its ``st.title`` (containing ``title``) is drawn."""
    page.goto(f"{server.url}/{path}")
    page.locator(TITLE, has_text=title).first.wait_for(timeout=60_000)
    settle(page)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll ``predicate()`` until it returns something truthy; fail with ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


def screenshot(page, shots, name: str) -> None:
    page.wait_for_timeout(300)  # let Plotly finish drawing
    page.screenshot(path=str(shots / f"{name}.png"))


def no_exception(page) -> None:
    errors = page.locator("[data-testid=stException]").all_inner_texts()
    assert not errors, f"the page shows an exception: {errors}"


# ------------------------------------------------------------------------------ 1. navigation
def test_first_visit_to_train_shows_page_titles(fresh_server, new_page):
    """Straight to /train on a server that has served nothing yet: app.py's navigation (page
    titles), not Streamlit's pages/ folder mode (file names, no shared sidebar)."""
    page = new_page
    open_page(page, fresh_server, "train", "Train a network")
    links = page.locator(NAV_LINK)
    links.first.wait_for()
    # a link's text is "<icon ligature>\n\n<title>": the title is its last line
    labels = [text.strip().splitlines()[-1].strip() for text in links.all_inner_texts()]
    assert labels == PAGE_TITLES
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert hrefs[1].endswith("/train") and hrefs[0].rstrip("/") == fresh_server.url
    assert page.locator(f"{NAV_LINK}[aria-current='page']").inner_text().endswith("Train")
    assert page.locator("[data-testid=stSidebar]").get_by_text("Active model").is_visible()
    no_exception(page)


# ------------------------------------------------------------------------------ 2. drawing
def _stroke(page, points, steps: int = 30) -> None:
    """One mouse stroke through ``points`` (canvas pixels), many small moves per segment."""
    box = page.locator(CANVAS).bounding_box()
    assert box and box["width"] > 100, box
    x0, y0 = points[0]
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for (xa, ya), (xb, yb) in itertools.pairwise(points):
        for i in range(1, steps + 1):
            page.mouse.move(
                box["x"] + xa + (xb - xa) * i / steps, box["y"] + ya + (yb - ya) * i / steps
            )
    page.mouse.up()


def _prediction_text(page) -> str:
    return page.locator(PREDICTION).first.inner_text()


def _predicted_digit(page) -> int:
    """Wait until the prediction container shows a number; return the first one."""
    text = wait_until(
        lambda: re.search(r"\d+", _prediction_text(page)) and _prediction_text(page),
        20,
        "a prediction",
    )
    settle(page)
    text = _prediction_text(page)
    return int(re.search(r"\d+", text).group())


def _wait_invitation(page) -> str:
    return wait_until(
        lambda: (lambda t: not re.search(r"\d", t) and t)(_prediction_text(page)),
        20,
        "the invitation to draw",
    )


def test_draw_predicts_the_drawn_digit(app_server, new_page, shots):
    page = new_page
    open_page(page, app_server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    invitation = _prediction_text(page)
    assert "Draw a digit" in invitation and not re.search(r"\d", invitation)

    # a "1": one thick vertical stroke down the middle
    _stroke(page, [(140, 40), (140, 240)])
    digit = _predicted_digit(page)
    assert digit == 1, _prediction_text(page)
    assert "sure" in _prediction_text(page)
    no_exception(page)

    page.locator(".st-key-draw_clear button").click()
    assert "Draw a digit" in _wait_invitation(page)
    settle(page)

    # a "7": a horizontal bar at the top, then a diagonal down to the bottom left
    _stroke(page, [(70, 50), (210, 50), (110, 240)])
    digit = _predicted_digit(page)
    assert 0 <= digit <= 9
    assert digit == 7, _prediction_text(page)
    page.locator("[data-testid=stMain] [aria-label='How sure the network is']").first.wait_for()
    no_exception(page)
    screenshot(page, shots, "draw")

    page.locator(".st-key-draw_clear button").click()
    assert "Draw a digit" in _wait_invitation(page)


# ------------------------------------------------------------------------------ 3. training
_LIVE_JS = """() => {
  const out = {texts: [], batch: 0, epochs: 0};
  document.querySelectorAll("[data-testid=stMain] [data-testid=stProgress]").forEach(
      e => out.texts.push(e.innerText.trim()));
  document.querySelectorAll(".st-key-live_training .js-plotly-plot").forEach(g => {
      for (const t of (g.data || [])) {
          if (t.name === "batch loss")
              for (const x of (t.x || [])) out.batch = Math.max(out.batch, +x);
          if (t.name === "train loss") out.epochs = Math.max(out.epochs, (t.x || []).length);
      }
  });
  return out;
}"""


def _live(page) -> dict:
    """The live panel: progress texts, the epoch they show (largest, if a stale copy lingers),
    the live chart's last batch step (in epochs) and its number of per-epoch points."""
    state = page.evaluate(_LIVE_JS)
    epochs = [int(m.group(1)) for t in state["texts"] if (m := re.search(r"epoch (\d+)/", t))]
    state["epoch"] = max(epochs, default=0)
    state["label"] = state["texts"][0].split(" — ")[0] if state["texts"] else ""
    return state


def _sidebar_status(page) -> str:
    return page.locator("[data-testid=stSidebar]").inner_text()


def _sidebar_epoch(page, label: str = "Training") -> int:
    m = re.search(label + r": epoch (\d+)/(\d+)", _sidebar_status(page))
    return int(m.group(1)) if m else -1


_CHART_RECTS_JS = """() => Array.from(document.querySelectorAll('.st-key-live_training')).map(
    e => {
      const r = e.getBoundingClientRect();
      return ['chart', r.left, r.top, r.right, Math.min(r.bottom, window.innerHeight)];
    })"""
FLICKER_FRAMES = 20
FLICKER_MAX_BLANK = 5  # of the FLICKER_FRAMES, the most that may show a live chart blank


def _blank_charts(rects, png: bytes) -> list[str]:
    """The live charts that a frame shows blank (or not at all). A chart can have a stale copy
    for a moment: it counts as drawn if any copy has ink."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(BytesIO(png)).convert("L"))
    ink: dict[str, float] = {}
    for name, left, top, right, bottom in rects:
        if bottom - top < 100:  # (mostly) below the fold: not judged
            ink[name] = 1.0
            continue
        area = grey[int(top) : int(bottom), int(left) : int(right)]
        ink[name] = max(ink.get(name, 0.0), float((area < 200).mean()))
    return [name for name in ("chart",) if ink.get(name, 0.0) <= 0.005]


def _screenshot_charts(page, shots) -> None:
    """Frames a tenth of a second apart while training runs: the live charts must (nearly)
    never be blank; the Train screenshot is the first frame with both drawn."""
    page.wait_for_timeout(300)
    blank, kept = [], False
    for _ in range(FLICKER_FRAMES):
        rects = page.evaluate(_CHART_RECTS_JS)
        png = page.screenshot()
        missing = _blank_charts(rects, png)
        if missing:
            blank.append(missing)
        elif not kept:
            (shots / "train.png").write_bytes(png)
            kept = True
        page.wait_for_timeout(100)
    assert kept, "no frame with the live charts drawn"
    assert len(blank) <= FLICKER_MAX_BLANK, (
        f"blank live charts in {len(blank)} of {FLICKER_FRAMES} frames: {blank}"
    )


def _click_nav(page, title: str) -> None:
    page.locator(NAV_LINK, has_text=title).first.click()


def test_train_live_pause_resume_page_switch_stop(app_server, new_page, shots):
    page = new_page
    open_page(page, app_server, "train", "Train a network")
    page.locator(".st-key-preset_fast button:visible").first.click()
    settle(page)
    # many epochs, so it cannot finish before we stop it (3,000 images per epoch)
    page.get_by_role("tab", name="Data", exact=True).click()
    epochs = page.locator(".st-key-tf_epochs input")
    epochs.fill("1000")
    epochs.press("Enter")
    settle(page)
    assert epochs.input_value() == "1000"
    assert page.get_by_text(f"Training on {3000:,} images").is_visible()

    page.locator(".st-key-start_training button").click()
    first = wait_until(
        lambda: (lambda s: s["label"] == "Training" and s["batch"] > 0 and s)(_live(page)),
        30,
        "the training to start",
    )
    assert first["texts"][0].startswith("Training — epoch ")
    assert first["texts"][0].count("/1000")
    # the charts move on
    later = wait_until(
        lambda: (
            lambda s: (
                s["batch"] > first["batch"]
                and s["epochs"] >= 2
                and s["epochs"] > first["epochs"]
                and s["epoch"] > first["epoch"]
                and s
            )
        )(_live(page)),
        30,
        "the charts and the progress to advance",
    )
    # still training, with a time estimate; Start is locked and Stop is offered
    assert later["label"] == "Training" and " left" in later["texts"][0], later["texts"]
    assert page.locator(".st-key-start_training button").is_disabled()
    assert page.locator(".st-key-stop_training button").is_enabled()

    # the screenshot shows the buttons, the progress and the curves
    page.evaluate("""() => {
      const el = document.querySelector('.st-key-start_training');
      el.scrollIntoView({block: 'start'});
      for (let p = el.parentElement; p; p = p.parentElement) {  // clear of the top toolbar
        if (p.scrollHeight > p.clientHeight && getComputedStyle(p).overflowY !== 'visible') {
          p.scrollBy(0, -110);
          break;
        }
      }
    }""")
    _screenshot_charts(page, shots)

    # another page: the sidebar shows the status, and it keeps moving
    _click_nav(page, "Overview")
    page.locator(TITLE, has_text="neural network").first.wait_for()
    away = wait_until(
        lambda: _sidebar_epoch(page) > 0 and _sidebar_epoch(page),
        15,
        "the sidebar's training status",
    )
    assert re.search(r"Training: epoch \d+/1000", _sidebar_status(page))
    wait_until(lambda: _sidebar_epoch(page) > away, 20, "the sidebar's epoch to advance")
    no_exception(page)

    # back on Train: still training, further on than before
    _click_nav(page, "Train")
    page.locator(TITLE, has_text="Train a network").first.wait_for()
    back = wait_until(
        lambda: (lambda s: s["label"] == "Training" and s["batch"] > 0 and s)(_live(page)),
        20,
        "the live panel after coming back",
    )
    assert back["epoch"] >= later["epoch"] and back["batch"] > later["batch"]
    assert page.locator(".st-key-start_training button").is_disabled()

    # pause: nothing moves for ~2 s
    page.locator(".st-key-pause_training button").click()
    wait_until(lambda: _live(page)["label"] == "Paused", 15, "the Paused label")
    resume = page.locator(".st-key-resume_training button")
    wait_until(resume.is_enabled, 15, "Resume to be enabled")
    assert "Paused: epoch" in _sidebar_status(page)
    # a paused training is not polled (ui.live): what the page shows stays as it is
    page.wait_for_timeout(4000)
    p1 = _live(page)
    page.wait_for_timeout(4500)  # longer than one chart poll: anything still moving would show
    p2 = _live(page)
    assert p2["label"] == "Paused"
    frozen = ("epoch", "batch", "epochs")
    assert [p2[k] for k in frozen] == [p1[k] for k in frozen], (p1, p2)

    # resume: it moves again
    resume.click()
    wait_until(
        lambda: (lambda s: s["label"] == "Training" and s["batch"] > p2["batch"] and s)(
            _live(page)
        ),
        20,
        "the training to advance after Resume",
    )
    # stop
    stop = page.locator(".st-key-stop_training button")
    wait_until(stop.is_enabled, 10, "Stop to be enabled")
    stop.click()
    wait_until(lambda: _live(page)["label"] == "Stopped", 20, "the Stopped label")
    settle(page)
    stopped = page.locator("[data-testid=stAlert]", has_text=re.compile("stop", re.I))
    assert stopped.first.is_visible()
    assert page.locator(".st-key-start_training button").is_enabled()
    assert stop.is_disabled()
    assert page.get_by_text("Save this model").is_visible()
    assert "Training stopped" in _sidebar_status(page)
    no_exception(page)


# ------------------------------------------------------------------------------ 4. upload
def _table_cells(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        "[data-testid=stDataFrame] table td")).map(e => e.innerText.trim())""")


def test_models_upload_good_and_corrupt(app_server, new_page, upload_file):
    page = new_page
    folder = app_server.models_dir
    open_page(page, app_server, "models", "Models")
    page.locator("[data-testid=stDataFrame]").wait_for()
    wait_until(lambda: "default" in _table_cells(page), 10, "the table to list default")
    assert "uploaded-net" not in _table_cells(page)
    before = sorted(os.listdir(folder))
    file_input = page.locator(".st-key-model_upload input[type=file]")

    # corrupt: the first bytes of a real .npz (a truncated zip) -> refused, nothing written
    corrupt = upload_file.read_bytes()[:2000]
    file_input.set_input_files(
        files=[{"name": "broken.npz", "mimeType": "application/octet-stream", "buffer": corrupt}]
    )
    error = page.locator("[data-testid=stAlert]", has_text="This file was refused")
    error.first.wait_for(timeout=20_000)
    settle(page)
    assert page.locator(".st-key-save_upload").count() == 0
    assert sorted(os.listdir(folder)) == before
    assert "broken" not in _table_cells(page)

    # good: validated, then saved; it appears in the table (and in the folder)
    file_input.set_input_files(str(upload_file))
    page.locator("[data-testid=stAlert]", has_text="Valid model").first.wait_for(timeout=20_000)
    settle(page)
    assert sorted(os.listdir(folder)) == before  # nothing written before Save
    assert page.locator(".st-key-upload_name input").input_value() == "uploaded-net"
    page.locator(".st-key-save_upload button").click()
    wait_until(lambda: "uploaded-net" in _table_cells(page), 20, "the upload in the table")
    settle(page)
    assert sorted(os.listdir(folder)) == sorted(before + ["uploaded-net.npz"])
    cells = _table_cells(page)
    assert "784-16-10" in cells
    no_exception(page)


# ------------------------------------------------------------------------------ 5. screenshots
# Every page of the registry but those whose screenshots their tests take (Train while
# training, Draw with a drawn digit; Inside while a CNN trains, How it computes and My digits
# with drawings: test_browser_inside.py, _maths.py, _mine.py), with the text of its heading
# where the page's title is not in it.
SHOT_BY_THEIR_TESTS = ("train", "draw", "inside", "maths", "mine")
HEADINGS = {"": "neural network"}
SCREENSHOT_PAGES = [
    (url, url or "overview", HEADINGS.get(url, title))
    for _, title, url, _ in app.PAGES
    if url not in SHOT_BY_THEIR_TESTS
]


@pytest.mark.parametrize("path, name, title", SCREENSHOT_PAGES)
def test_page_screenshot(app_server, new_page, shots, path, name, title):
    """Every page loads without an exception; its screenshot (1400x900) is written."""
    page = new_page
    open_page(page, app_server, path, title)
    page.locator("[data-testid=stSpinner]").first.wait_for(state="detached", timeout=60_000)
    settle(page)
    no_exception(page)
    screenshot(page, shots, name)
    assert (shots / f"{name}.png").stat().st_size > 10_000
