"""Draw (/draw): draw a digit, watch the network's prediction, its preprocessing and activations.

Offered for data sets of 28x28 greyscale images (MNIST's shape: the drawing is made into such an
image); the models offered are those that fit the active set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from nn.core.blas import limit_threads
from nn.core.confidence import threshold_value
from ui import draw_inside, state
from ui.drawing import (
    analyse_drawing,
    clear_canvas,
    probability_html,
    render_canvas,
    render_keep,
    render_prediction,
    show_kept_confirmation,
    steps_html,
)
from ui.maths_session import remember_drawing

MODEL_SELECT_KEY = "draw_model_select"

state.init_state()
info = state.active_set()
st.title("Draw a digit" if info.builtin else f"Draw for {info.name}")
if info.image_shape != (28, 28, 1):
    st.info(
        f"Drawing is for data sets of 28x28 greyscale images, as MNIST: the drawing is cropped, "
        f"scaled and centred into one. The active set **{info.name}** holds "
        f"{info.shape_text}{'' if info.greyscale else ' colour'} images; choose a 28x28 "
        "greyscale set in the sidebar to draw.",
        icon=":material/draw:",
    )
    st.stop()
class_names = None if info.builtin else list(info.class_names)

names = list(dict.fromkeys(Path(row["path"]).stem for row in state.fitting_models()))
if not names:
    state.no_model_message()
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

active = state.active_model_name()
if st.session_state.get(MODEL_SELECT_KEY) not in names:
    st.session_state.pop(MODEL_SELECT_KEY, None)
model_col, method_col, baseline_col = st.columns([3, 3, 2])
model_name = model_col.selectbox(
    "Model",
    names,
    index=names.index(active) if active in names else 0,
    key=MODEL_SELECT_KEY,
    help="Any saved model of the active data set; defaults to the active model (sidebar).",
)
# outside the drawing's fragment: a stroke does not send these widgets again
method = method_col.radio(
    "Attribution map",
    list(draw_inside.METHOD_LABELS),
    format_func=draw_inside.METHOD_LABELS.get,
    horizontal=True,
    key="draw_attr_method",
    help="How the map of the pixels that made the prediction is computed (below the drawing).",
)
baseline = "black"
if method == "integrated_gradients":
    baseline = baseline_col.selectbox(
        "Baseline",
        list(draw_inside.BASELINE_LABELS),
        format_func=draw_inside.BASELINE_LABELS.get,
        key="draw_attr_baseline",
    )
model_path = state.model_path_for(model_name)
try:
    model = state.get_model(model_path)
except (OSError, ValueError, TypeError) as exc:
    st.error(f"Cannot load the model {model_name!r}: {exc}")
    st.stop()
st.caption(
    f"Model **{model_name}** belongs to the data set **{info.name}**"
    + ("" if class_names is None else f" (classes: {', '.join(class_names)})")
    + "."
)
# room for the canvas's floating toolbar, which sits above the canvas: it covered whatever
# came right before it (the selectbox's bottom edge, this caption)
st.space("medium")


def _named(analysis):
    """The analysis with the predicted class's name instead of its index (non-MNIST sets)."""
    if class_names is None or analysis.blank:
        return analysis
    return dataclasses.replace(analysis, label=class_names[int(analysis.label)])


@st.fragment
def drawing_area(model, model_name: str, method: str, baseline: str) -> None:
    """Canvas and everything computed from it; drawing reruns only this fragment. What a stroke
    changes is drawn as a few HTML blocks (``ui.drawing``): one element per picture, caption
    and chart made the browser's redraw most of a stroke's round trip. The products of one
    drawing are tiny: on one BLAS thread they take a few milliseconds, while OpenBLAS's two
    threads, with the browser on the other core, stalled a stroke's run by ~50 ms."""
    with limit_threads(1):
        _drawing_area(model, model_name, method, baseline)


def _drawing_area(model, model_name: str, method: str, baseline: str) -> None:
    show_kept_confirmation()
    left, right = st.columns([1, 1.6], gap="large")
    with left:
        image = render_canvas()
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=clear_canvas)
    analysis = _named(analyse_drawing(model, image))
    if not analysis.blank and class_names is None:
        remember_drawing(analysis.result.x)  # carried over to How it computes (/maths)
    outputs = None if class_names is None else [class_names[int(c)] for c in model.classes_]
    # everything is computed before the elements are sent, so that they reach the browser
    # together and it redraws the page once or twice rather than once per element
    blocks = (
        []
        if analysis.blank
        else _result_blocks(model, model_name, analysis, outputs, method, baseline)
    )
    with right:
        render_prediction(analysis, outputs, threshold_value(getattr(model, "metadata_", None)))
        if not analysis.blank:
            if class_names is None:  # the kept drawings are digits (My digits)
                render_keep(analysis, image, model_name)
            st.html(blocks[0])
    if analysis.blank:
        return
    st.html(blocks[1])
    with st.container(key="draw_feature_maps" if draw_inside.is_cnn(model) else None):
        st.html(blocks[2])
    with st.container(key="draw_attribution"):
        st.html(blocks[3])


def _result_blocks(model, model_name: str, analysis, outputs, method: str, baseline: str):
    """The HTML of the probabilities, the preprocessing steps, the feature maps (CNN) or the
    hidden activations (dense), and the attribution map of the predicted class."""
    x = analysis.result.x
    probabilities = probability_html(
        analysis.proba,
        list(model.classes_) if outputs is None else outputs,
        noun="digit" if outputs is None else "class",
    )
    if draw_inside.is_cnn(model):
        inside = draw_inside.feature_maps_html(draw_inside.layer_pictures(model, x)[1])
    else:
        inside = draw_inside.activations_html(analysis.activations)
    target = int(analysis.proba.argmax())
    values = draw_inside.cached_attribution(
        model, f"{model_name}:{id(model)}", x, target, method, baseline
    )
    attribution = draw_inside.attribution_html(values, x, method, analysis.label)
    return [probabilities, steps_html(analysis.result), inside, attribution]


drawing_area(model, model_name, method, baseline)
