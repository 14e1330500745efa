"""The Draw page's canvas and prediction rendering.

``analyse_drawing(model, image)`` is the per-stroke path (no Streamlit): preprocess the canvas
image, one ``predict_proba`` and one ``activations`` call, about a millisecond in all. The
``render_*`` functions draw its result.

Everything a stroke changes is drawn as a few ``st.html`` blocks (``*_html`` functions: pictures
as inline PNG data URLs, the probabilities as HTML bars) rather than one Streamlit element per
picture, caption and chart: the browser's redraw of each element after every stroke, not the
server, was most of the page's round trip (bench/draw_browser.py, bench/README.md).

Session keys owned here: ``draw_canvas`` (the canvas), ``draw_canvas_counter`` (int, the canvas's
generation; bumping it clears the canvas), ``draw_canvas_cleared`` (the drawing it held then),
``draw_model`` (name of the model picked on the Draw page), ``draw_kept`` (the confirmation
to show after a drawing was kept, until the fragment's next run shows it),
``draw_true_digit_<counter>`` (the "True digit" choice) and ``draw_true_digit_for`` (the canvas
counter and prediction that choice was last set to).

``render_keep`` offers "Keep this drawing" with its true digit (a 0-9 choice defaulting to the
prediction) and writes to the drawings store (``ui.mine``) only when the button is pressed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from nn.data.preprocess import DrawingResult, preprocess_drawing
from nn.services.mine import MineStoreError, png_bytes
from ui import state
from ui.canvas import draw_canvas, drawing_data
from ui.gallery import png_data_url
from ui.mine import store

CANVAS_KEY = "draw_canvas"
COUNTER_KEY = "draw_canvas_counter"  # the canvas's generation: Clear empties it
STALE_KEY = "draw_canvas_cleared"  # the drawing's data when it was cleared
KEPT_KEY = "draw_kept"
KEEP_BUTTON_KEY = "draw_keep"
CHOICE_FOR_KEY = "draw_true_digit_for"  # (canvas counter, prediction) the choice was set for
CANVAS_SIZE = 280
STROKE_WIDTH = 20
STEP_PADDING = 8  # black pixels around each preprocessing step image
PREDICTION_KEY = "prediction"  # st.container(key=...) read by the browser tests
BAR_COLOR = "#9aa5b1"  # the probability bars, as ui.eval_charts draws them on other pages
PRED_COLOR = "#1f77b4"
BAR_HEIGHT_PX = 150
CAPTION_STYLE = "font-size:0.875rem;opacity:0.65;margin:0.25rem 0 0.5rem 0"
INVITATION = (
    "Draw a digit in the black box (zero to nine, large and centred works best). "
    "The prediction appears here while you draw."
)
STEP_TITLES = {
    "cropped": "1. cropped",
    "scaled": "2. scaled to 20 px",
    "centred": "3. centred: the input",
}


@dataclass(frozen=True)
class DrawingAnalysis:
    """Everything the Draw page shows for one drawing. ``proba``/``activations`` are ``None``
    when the drawing is blank."""

    result: DrawingResult
    proba: np.ndarray | None = None
    label: Any = None
    confidence: float | None = None
    activations: list[np.ndarray] | None = None

    @property
    def blank(self) -> bool:
        return self.result.blank


def analyse_drawing(model, image: np.ndarray | None) -> DrawingAnalysis:
    """Preprocess ``image`` (the canvas RGBA array, or ``None`` before the first stroke) and, if it
    holds a digit, predict it with ``model`` and collect the hidden layers' activations."""
    if image is None:
        empty = np.zeros((CANVAS_SIZE, CANVAS_SIZE), dtype=np.uint8)
        return DrawingAnalysis(preprocess_drawing(empty))
    result = preprocess_drawing(image)
    if result.blank:
        return DrawingAnalysis(result)
    x = result.x[None, :]
    proba = np.asarray(model.predict_proba(x))[0]
    best = int(proba.argmax())
    acts = [np.array(a[0]) for a in model.activations(x)]
    return DrawingAnalysis(result, proba, model.classes_[best], float(proba[best]), acts)


NOT_SURE = "Not sure"


def prediction_text(label: Any, confidence: float) -> str:
    """``"Prediction: 7, 93% sure"`` (the digit is the first number in the text)."""
    return f"Prediction: {label}, {confidence:.0%} sure"


# ------------------------------------------------------------------------------ canvas
def clear_canvas() -> None:
    """Button callback: the next canvas generation (``ui.canvas.draw_canvas`` empties it in
    place); the drawing it holds now reads as none until the empty one arrives."""
    st.session_state[COUNTER_KEY] = st.session_state.get(COUNTER_KEY, 0) + 1
    st.session_state[STALE_KEY] = drawing_data(st.session_state.get(CANVAS_KEY))


def render_canvas() -> np.ndarray | None:
    """The drawing canvas (white ink on black); returns its RGBA image or ``None`` if untouched.
    It sends each stroke at its mouse-up (``ui.canvas``)."""
    return draw_canvas(
        key=CANVAS_KEY,
        stroke_width=STROKE_WIDTH,
        stroke_color="#FFFFFF",
        background_color="#000000",
        size=CANVAS_SIZE,
        generation=st.session_state.setdefault(COUNTER_KEY, 0),
        stale=st.session_state.get(STALE_KEY),
    )


# ------------------------------------------------------------------------------ rendering
def figure_html(picture: np.ndarray, caption: str, width: int | None = None) -> str:
    """An ``<img>`` of ``picture`` (``width`` pixels wide, default its own; enlarged, its pixels
    stay crisp squares) with its caption below."""
    text = html.escape(caption)
    w = int(picture.shape[1] if width is None else width)
    return (
        '<figure style="margin:0 1.5rem 0.5rem 0;display:inline-block;vertical-align:top">'
        f'<img src="{png_data_url(picture)}" width="{w}" alt="{text}" '
        'style="image-rendering:pixelated;max-width:100%;display:block">'
        f'<figcaption style="{CAPTION_STYLE}">{text}</figcaption></figure>'
    )


def section_html(title: str, caption: str, body: str) -> str:
    """A section: its heading, a caption saying what it shows, then ``body`` (HTML)."""
    return (
        f'<h3>{html.escape(title)}</h3><p style="{CAPTION_STYLE}">{html.escape(caption)}</p>{body}'
    )


def prediction_html(
    analysis: DrawingAnalysis, names: list[str] | None = None, threshold: float | None = None
) -> str:
    """The predicted class and its confidence, with the second guess, of a drawing that is not
    blank. ``names``: the class names of the model's outputs (default: the output index,
    MNIST's digit). Below the model's saved confidence ``threshold``: "Not sure", with the best
    guess in small print."""
    runner_up = np.argsort(analysis.proba)[::-1][1]
    guess = runner_up if names is None else names[int(runner_up)]
    second = f"Second guess: {guess} ({analysis.proba[runner_up]:.0%})."
    if threshold is not None and analysis.confidence < threshold:
        best = f"Best guess: {analysis.label} ({analysis.confidence:.0%}); {second.lower()}"
        return (
            f'<h3 style="margin:0">{html.escape(NOT_SURE)}</h3><p style="{CAPTION_STYLE}">'
            f"{html.escape(best)} This model answers from {threshold:.0%} sure (its saved "
            "threshold, set on Evaluate).</p>"
        )
    return (
        f'<h3 style="margin:0">{html.escape(prediction_text(analysis.label, analysis.confidence))}'
        f'</h3><p style="{CAPTION_STYLE}">{html.escape(second)}</p>'
    )


def render_prediction(
    analysis: DrawingAnalysis, names: list[str] | None = None, threshold: float | None = None
) -> None:
    """The prediction (``prediction_html``, "Not sure" below ``threshold``), or the invitation
    to draw, in the ``prediction`` container (the browser tests read its text)."""
    with st.container(key=PREDICTION_KEY, border=True):
        if analysis.blank and names is None:
            st.markdown(f":material/draw: {INVITATION}")
        elif analysis.blank:  # a set of its own classes: draw one of them
            st.markdown(
                f":material/draw: Draw one of the classes ({', '.join(names)}) in the black box "
                "(large and centred works best). The prediction appears here while you draw."
            )
        else:
            st.html(prediction_html(analysis, names, threshold))


def probability_html(
    proba: Sequence[float],
    classes: Sequence,
    *,
    noun: str = "digit",
    title: str = "How sure the network is",
) -> str:
    """The class probabilities as vertical bars, the predicted class highlighted, each bar's
    percentage above it and its class below (its exact value on hover)."""
    p = np.asarray(proba, dtype=np.float64).ravel()
    best = int(p.argmax())
    columns = []
    for i, (value, name) in enumerate(zip(p, classes, strict=True)):
        label = html.escape(str(name))
        color = PRED_COLOR if i == best else BAR_COLOR
        percent = f"{value:.0%}" if value >= 0.005 else ""
        height = max(1, round(float(value) * BAR_HEIGHT_PX))
        columns.append(
            f'<div title="{html.escape(noun)} {label}: {value:.2%}" style="flex:1;display:flex;'
            'flex-direction:column;justify-content:flex-end;align-items:center;min-width:0">'
            f'<span style="font-size:0.75rem">{percent}</span>'
            f'<div style="width:80%;height:{height}px;background:{color}"></div>'
            f'<span style="font-size:0.8rem;border-top:1px solid #ccc;width:100%;'
            f'text-align:center">{label}</span></div>'
        )
    return (
        f'<div style="font-weight:600;margin-bottom:0.25rem">{html.escape(title)}</div>'
        f'<div role="img" aria-label="{html.escape(title)}" style="display:flex;gap:4px;'
        f'height:{BAR_HEIGHT_PX + 40}px;align-items:stretch">{"".join(columns)}</div>'
        f'<div style="text-align:center;font-size:0.8rem;opacity:0.65">{html.escape(noun)}</div>'
    )


def enlarge(image: np.ndarray, size: int = 168) -> np.ndarray:
    """Resize so the longer side is at most ``size`` pixels: small images (20x20, 28x28) by a
    whole factor with nearest neighbour (crisp pixels), large crops by area averaging."""
    h, w = image.shape[:2]
    longest = max(h, w, 1)
    if longest <= size:
        k = max(1, size // longest)
        return image.repeat(k, axis=0).repeat(k, axis=1)
    factor = size / longest
    new = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(image).resize(new, Image.Resampling.BOX))


def frame(image: np.ndarray, pad: int = STEP_PADDING) -> np.ndarray:
    """``image`` with a ``pad``-pixel black border (MNIST's background colour)."""
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="constant", constant_values=0)


def _step_picture(image: np.ndarray, size: int = 168) -> tuple[np.ndarray, int]:
    """``(picture, width on the page)`` of a preprocessing step framed in black: a small image
    (20x20, 28x28) as it is, enlarged by a whole factor in the browser; a large crop reduced
    to ``size`` pixels (``enlarge``)."""
    longest = max(image.shape[:2])
    if longest > size:
        picture = frame(enlarge(image, size))
        return picture, picture.shape[1]
    k = max(1, size // longest)
    picture = frame(image, max(1, round(STEP_PADDING / k)))
    return picture, picture.shape[1] * k


def steps_html(result: DrawingResult) -> str:
    """The preprocessing steps side by side, each captioned with its size."""
    figures = []
    for step, title in STEP_TITLES.items():
        image = result.steps.get(step)
        if image is None:
            continue
        h, w = image.shape[:2]
        picture, width = _step_picture(image)
        figures.append(figure_html(picture, f"{title} ({w}x{h})", width))
    return section_html(
        "What the network sees",
        "The drawing is cropped to its ink, scaled so its longer side is 20 pixels and "
        "centred by its centre of mass in a 28x28 square, the way MNIST was made.",
        "<div>" + "".join(figures) + "</div>",
    )


# ------------------------------------------------------------------ keeping a drawing
def show_kept_confirmation() -> None:
    """The toast (or the error) of a drawing kept by the button's callback just before."""
    message = st.session_state.pop(KEPT_KEY, None)
    if message is None:
        return
    ok, text = message
    if ok:
        st.toast(text, icon=":material/bookmark_added:")
    else:
        st.error(text, icon=":material/error:")


def _keep(image28: np.ndarray, image: np.ndarray, model_name: str, predicted: int, key: str):
    """Button callback: store the drawing with the digit chosen under ``key``, then clear the
    canvas for the next one (the callback runs before the rerun, so the new canvas shows)."""
    digit = st.session_state.get(key)
    if digit is None:
        return
    try:
        state.check_room(len(png_bytes(image)) + image28.nbytes)
        drawing_id = store().add(
            image28,
            int(digit),
            canvas_png=png_bytes(image),
            model_name=model_name,
            predicted=predicted,
        )
    except (MineStoreError, ValueError) as exc:
        st.session_state[KEPT_KEY] = (False, f"The drawing could not be kept: {exc}")
        return
    said = "" if int(digit) == predicted else f" (the model said {predicted})"
    st.session_state[KEPT_KEY] = (
        True,
        f"Kept drawing #{drawing_id} as a {digit}{said}. See it on My digits.",
    )
    clear_canvas()


def render_keep(analysis: DrawingAnalysis, image: np.ndarray, model_name: str) -> None:
    """ "Keep this drawing": its true digit (defaulting to the prediction) and the button. A click
    stores the canvas PNG, the 28x28 input, the label, the model and its prediction (nothing is
    written otherwise), clears the canvas for the next drawing and a toast confirms."""
    predicted = int(analysis.label)
    # One widget per canvas, its choice set to the prediction whenever the prediction changes:
    # the browser updates it in place (a widget keyed by the prediction was made anew at each
    # new reading, ~25 ms of the page's redraw, bench/draw_browser.py).
    counter = st.session_state.get(COUNTER_KEY, 0)
    choice_key = f"draw_true_digit_{counter}"
    if st.session_state.get(CHOICE_FOR_KEY) != (counter, predicted):
        st.session_state[choice_key] = predicted
        st.session_state[CHOICE_FOR_KEY] = (counter, predicted)
    with st.container(key="keep", border=True):
        # required: a click on the chosen digit keeps it chosen (it would otherwise clear the
        # choice and grey the button out)
        digit = st.segmented_control(
            "True digit",
            options=list(range(10)),
            key=choice_key,
            required=True,
            help="What you meant to draw: the network's guess is picked; one click corrects it.",
        )
        st.button(
            "Keep this drawing",
            key=KEEP_BUTTON_KEY,
            icon=":material/bookmark_add:",
            disabled=digit is None,
            on_click=_keep,
            args=(analysis.result.image28, image, model_name, predicted, choice_key),
            help="Save it to My digits, to see how every model reads your handwriting and to "
            "fine-tune on it.",
        )
