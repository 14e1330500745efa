"""The Draw page's canvas (ui.canvas): the installed streamlit-drawable-canvas bundle with its
send delay patched, differing from the original in that constant only; the stock ``st_canvas``
when the bundle cannot be patched; the data sent is the one ``st_canvas`` sends."""

from __future__ import annotations

import difflib

import pytest
from streamlit.testing.v1 import AppTest
from test_draw_page import prediction_text, upscaled

import ui.canvas
from ui.canvas import BundleError, package_build_dir, patch_send_delay, patched_assets


def _stock_js() -> str:
    (path,) = package_build_dir().glob("index-*.js")
    return path.read_text(encoding="utf-8")


def test_the_patched_bundle_differs_in_the_send_delay_only():
    stock = _stock_js()
    js, css = patched_assets()
    assert js.endswith("\n") and css.endswith("\n")  # inline content, not a path
    patched = js[:-1]
    changed = [
        (a, b) for a, b in zip(stock.splitlines(), patched.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1
    before, after = changed[0]
    ops = [
        op for op in difflib.SequenceMatcher(None, before, after).get_opcodes() if op[0] != "equal"
    ]
    assert [(before[i1:i2], after[j1:j2]) for _, i1, i2, j1, j2 in ops] == [("20", "")]
    assert " = 0," in after and " = 200," in before


def test_patch_refuses_a_bundle_it_does_not_know():
    with pytest.raises(BundleError, match="debounced sender"):
        patch_send_delay("const x = 200;")
    sender = "h.sender = Nh((c) => Ic(h, c), Bc)"
    with pytest.raises(BundleError, match="Bc = 200"):
        patch_send_delay(sender + "; Bc = 250;")
    assert patch_send_delay(sender + "; Bc = 200, Ar = 1;") == sender + "; Bc = 0, Ar = 1;"


def test_canvas_data_is_what_st_canvas_sends():
    def script():
        import streamlit as st
        import streamlit_drawable_canvas as sdc

        seen = {}
        real = sdc.out

        def recording(**kwargs):
            seen.update(kwargs)
            return real(**kwargs)

        sdc.out = recording
        try:
            sdc.st_canvas(
                stroke_width=20,
                stroke_color="#FFFFFF",
                background_color="#000000",
                update_streamlit=True,
                height=280,
                width=280,
                drawing_mode="freedraw",
                return_image_data=True,
                key="k",
            )
        finally:
            sdc.out = real
        st.session_state["sent"] = {"data": seen["data"], "default": seen["default"]}

    at = AppTest.from_function(script).run()
    assert not at.exception
    ours = ui.canvas.canvas_data(
        stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", width=280, height=280
    )
    assert at.session_state["sent"]["data"] == ours


def _canvas_element(at):
    from test_draw_page import _walk

    found = [n for n in _walk(at.main) if getattr(getattr(n, "proto", None), "component_name", "")]
    assert len(found) == 1
    return found[0].proto


@pytest.fixture
def fallback(tmp_path, monkeypatch):
    """A bundle without the debounced sender in place of the installed one."""
    (tmp_path / "index-abc.js").write_text("export default () => {};\n")
    (tmp_path / "index-style.css").write_text(".dc-root{}\n")
    monkeypatch.setattr(ui.canvas, "package_build_dir", lambda: tmp_path)
    ui.canvas._component.cache_clear()
    yield
    ui.canvas._component.cache_clear()


def test_the_page_draws_with_the_patched_canvas(small_env, open_app, small_model, inject_drawing):
    at = open_app("pages/draw.py")
    element = _canvas_element(at)
    assert element.component_name == ui.canvas.COMPONENT_NAME
    assert " = 0, " in element.js_content
    inject_drawing(at, upscaled(small_model[1].x_test[0]))
    assert "Prediction: " in prediction_text(at)


def test_the_stock_canvas_when_the_bundle_cannot_be_patched(
    fallback, small_env, open_app, small_model, inject_drawing, caplog
):
    with caplog.at_level("WARNING", logger="ui.canvas"):
        at = open_app("pages/draw.py")
    assert "debounced sender" in ui.canvas._component()[1]
    assert "stock st_canvas" in caplog.text
    element = _canvas_element(at)
    assert element.component_name == "streamlit-drawable-canvas.streamlit_drawable_canvas"
    inject_drawing(at, upscaled(small_model[1].x_test[0]))
    assert "Prediction: " in prediction_text(at)
