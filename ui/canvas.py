"""The Draw page's canvas: streamlit-drawable-canvas's own front end, sending a stroke at once.

streamlit-drawable-canvas 0.13.0 (pinned in requirements.txt) sends the drawing to the server
through a debounce of 200 ms after every mouse-up (``<name> = 200`` in its bundled JavaScript,
the delay of the ``sender`` it builds around ``setStateValue("drawing", ...)``). No argument of
``st_canvas`` changes it, and those 200 ms were 40% of the Draw page's round trip from a stroke
to the page updated (bench/draw_browser.py). A freehand stroke ends with one mouse-up, so there
is nothing to coalesce: this module registers, as a Components v2 component of its own, the
installed package's bundle with that one constant set to 0 (the send then runs in the next
task after the mouse-up) and calls it with the data ``st_canvas`` sends. The result is read by
the package's own ``CanvasResult``.

The bundle is passed inline (``js=``/``css=`` strings): a file-backed component needs an
installed distribution with a ``pyproject.toml`` declaring its ``asset_dir``, which this project
is not. The bundle (~400 KB) then travels inside the element's delta, but only once a session:
Streamlit's forward-message cache sends a delta the browser already holds as a reference (a
``ref_hash`` message of ~80 bytes), and the browser's blob URL for the script is cached by its
content. A stroke costs ~21 websocket messages, ~49 kB to the page (the pictures of the Draw page,
the canvas's reference among them) and ~21 kB from it (the drawing's PNG), measured by
bench/draw_browser.py.

If the installed bundle lacks the expected pattern (another version of the package), the page
uses the stock ``st_canvas`` with its 200 ms wait and logs why.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

COMPONENT_NAME = "nn_dashboard.draw_canvas"
HTML = '<div class="canvas-root"></div>'  # the root element the bundle mounts into
SEND_DELAY_MS = 0
# h.sender = Nh((c) => Ic(h, c), Bc): the sender's debounce, whose delay is the last argument
_SENDER = re.compile(r"\.sender = [\w$]+\(\(\w+\) => [\w$]+\(\w+, \w+\), ([\w$]+)\)")
_log = logging.getLogger(__name__)


class BundleError(Exception):
    """The installed canvas bundle is not the one this module knows how to patch."""


def package_build_dir() -> Path:
    """The installed streamlit-drawable-canvas's ``frontend/build`` folder (found without
    importing the package, whose import registers its component)."""
    spec = importlib.util.find_spec("streamlit_drawable_canvas")
    if spec is None or not spec.submodule_search_locations:
        raise BundleError("streamlit-drawable-canvas is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "frontend" / "build"


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise BundleError(f"expected one {pattern} in {folder}, found {len(found)}")
    return found[0]


def patch_send_delay(js: str, delay_ms: int = SEND_DELAY_MS) -> str:
    """``js`` with the sender's debounce delay (the constant ``= 200`` the sender is built with)
    set to ``delay_ms``; raises ``BundleError`` unless both are found exactly once."""
    senders = _SENDER.findall(js)
    if len(senders) != 1:
        raise BundleError(f"expected one debounced sender in the bundle, found {len(senders)}")
    constant = re.compile(rf"(?<![\w$]){re.escape(senders[0])} = 200(?![\w.])")
    if len(constant.findall(js)) != 1:
        raise BundleError(f"expected one '{senders[0]} = 200' in the bundle")
    return constant.sub(f"{senders[0]} = {int(delay_ms)}", js)


def patched_assets(folder: Path | None = None) -> tuple[str, str]:
    """``(js, css)`` of the bundle in ``folder`` (default: the installed package's), the
    JavaScript with the send delay patched. Both end with a newline so that Streamlit takes
    them as inline content, not as file paths."""
    folder = package_build_dir() if folder is None else folder
    js = patch_send_delay(_one(folder, "index-*.js").read_text(encoding="utf-8"))
    css = _one(folder, "index-*.css").read_text(encoding="utf-8")
    return js + "\n", css + "\n"


@functools.cache
def _component() -> tuple[Any, str | None]:
    """``(component callable, None)``, or ``(None, reason)`` when the bundle cannot be patched."""
    try:
        js, css = patched_assets()
    except (BundleError, OSError, UnicodeDecodeError) as exc:
        _log.warning("Draw canvas: the stock st_canvas (200 ms send delay) is used: %s", exc)
        return None, str(exc)
    component = st.components.v2.component(
        COMPONENT_NAME, js=js, css=css, html=HTML, isolate_styles=True
    )
    return component, None


def canvas_data(
    *, stroke_width: int, stroke_color: str, background_color: str, width: int, height: int
) -> dict[str, Any]:
    """The ``data`` that ``st_canvas`` 0.13.0 sends for a freehand canvas with realtime updates,
    PNG image data and no background image or initial drawing."""
    return {
        "fillColor": "#eee",
        "strokeWidth": stroke_width,
        "strokeColor": stroke_color,
        "backgroundColor": background_color,
        "backgroundImageURL": None,
        "realtimeUpdateStreamlit": True,
        "canvasWidth": width,
        "canvasHeight": height,
        "drawingMode": "freedraw",
        "initialDrawing": {"objects": [], "background": background_color},
        "displayRadius": 3,
        "returnImageData": True,
        "disabled": False,
        "backgroundImageFit": "stretch",
        "maxDisplayHeight": None,
        "fontSize": 20,
        "label": "",
    }


def drawing_data(value: Any) -> str | None:
    """The PNG data URL of the drawing in a canvas's session-state value (``None`` if none)."""
    try:
        return (value.get("drawing") or {}).get("data")
    except AttributeError:
        return None


def draw_canvas(
    *,
    key: str,
    stroke_width: int,
    stroke_color: str,
    background_color: str,
    size: int,
    generation: int = 0,
    stale: str | None = None,
) -> np.ndarray | None:
    """A ``size`` x ``size`` freehand canvas; returns its RGBA image, ``None`` before a stroke.

    A new ``generation`` empties the canvas in place: its initial drawing changes, so the
    browser loads it (empty) and sends the empty drawing, with no new canvas mounted (a new
    key's canvas took a moment to appear, and a stroke drawn meanwhile was lost). Until that
    empty drawing arrives, the drawing whose data is ``stale`` (the one held when it was
    emptied) reads as no drawing. The stock ``st_canvas`` fallback gets a new key instead."""
    from streamlit_drawable_canvas import CanvasResult, st_canvas

    component, _ = _component()
    if component is None:
        return st_canvas(
            stroke_width=stroke_width,
            stroke_color=stroke_color,
            background_color=background_color,
            update_streamlit=True,
            height=size,
            width=size,
            drawing_mode="freedraw",
            return_image_data=True,
            key=f"{key}_{generation}" if generation else key,
        ).image_data
    data = canvas_data(
        stroke_width=stroke_width,
        stroke_color=stroke_color,
        background_color=background_color,
        width=size,
        height=size,
    )
    data["initialDrawing"]["generation"] = int(generation)
    result = component(
        data=data,
        key=key,
        default={"drawing": {"raw": data["initialDrawing"], "data": None}, "backgroundFit": None},
        on_drawing_change=lambda: None,
        on_backgroundFit_change=lambda: None,
        width="content",
        height="content",
    )
    drawing = result.get("drawing") or {"raw": data["initialDrawing"], "data": None}
    if stale is not None and drawing.get("data") == stale:
        return None
    return CanvasResult(drawing.get("raw"), drawing.get("data"), True).image_data
