"""Draw (/draw): draw a digit, watch the network's prediction, its preprocessing and activations.

Offered for data sets of 28x28 greyscale images (MNIST's shape: the drawing is made into such an
image); the models offered are those that fit the active set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from ui import draw_inside, state
from ui.drawing import (
    analyse_drawing,
    clear_canvas,
    render_canvas,
    render_keep,
    render_prediction,
    render_steps,
    show_kept_confirmation,
)
from ui.eval_charts import activations_figure, probability_figure

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
model_name = st.selectbox(
    "Model",
    names,
    index=names.index(active) if active in names else 0,
    key=MODEL_SELECT_KEY,
    help="Any saved model of the active data set; defaults to the active model (sidebar).",
)
# room for the canvas's floating toolbar, which sits above the canvas and overlapped the
# selectbox's bottom edge
st.space("medium")
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


def _named(analysis):
    """The analysis with the predicted class's name instead of its index (non-MNIST sets)."""
    if class_names is None or analysis.blank:
        return analysis
    return dataclasses.replace(analysis, label=class_names[int(analysis.label)])


@st.fragment
def drawing_area(model, model_name: str) -> None:
    """Canvas and everything computed from it; drawing reruns only this fragment."""
    show_kept_confirmation()
    left, right = st.columns([1, 1.6], gap="large")
    with left:
        image = render_canvas()
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=clear_canvas)
    analysis = _named(analyse_drawing(model, image))
    with right:
        outputs = None if class_names is None else [class_names[int(c)] for c in model.classes_]
        render_prediction(analysis, outputs)
        if not analysis.blank:
            if class_names is None:  # the kept drawings are digits (My digits)
                render_keep(analysis, image, model_name)
            st.plotly_chart(
                probability_figure(
                    analysis.proba,
                    model.classes_ if outputs is None else outputs,
                    noun="digit" if outputs is None else "class",
                ),
                width="stretch",
                key="draw_proba",
            )
    if analysis.blank:
        return
    st.subheader("What the network sees")
    st.caption(
        "The drawing is cropped to its ink, scaled so its longer side is 20 pixels and "
        "centred by its centre of mass in a 28x28 square, the way MNIST was made."
    )
    render_steps(analysis.result)
    x = analysis.result.x
    if draw_inside.is_cnn(model):
        st.subheader("Feature maps")
        st.caption(
            "What every convolution and pooling layer makes of this drawing: one small image "
            "per filter (bright: strong response), each scaled to its own range."
        )
        _, pictures = draw_inside.layer_pictures(model, x)
        with st.container(key="draw_feature_maps"):
            for start in range(0, len(pictures), 2):
                cols = st.columns(2, gap="large")
                for col, (title, picture) in zip(cols, pictures[start : start + 2], strict=False):
                    col.image(picture, caption=title)
    elif analysis.activations:
        st.subheader("Hidden-layer activations for this drawing")
        st.plotly_chart(
            activations_figure(analysis.activations), width="stretch", key="draw_activations"
        )
    else:
        st.caption("This model has no hidden layers (softmax regression): no activations to show.")
    render_attribution(model, model_name, x, analysis)


def render_attribution(model, model_name: str, x, analysis) -> None:
    """The attribution map of the predicted digit by the method chosen (computed only for it)."""
    st.subheader(f"Which pixels made it a {analysis.label}")
    methods = list(draw_inside.METHOD_LABELS)
    c1, c2 = st.columns([3, 2])
    method = c1.radio(
        "Attribution",
        methods,
        format_func=draw_inside.METHOD_LABELS.get,
        horizontal=True,
        key="draw_attr_method",
    )
    baseline = "black"
    if method == "integrated_gradients":
        baseline = c2.selectbox(
            "Baseline",
            list(draw_inside.BASELINE_LABELS),
            format_func=draw_inside.BASELINE_LABELS.get,
            key="draw_attr_baseline",
        )
    target = int(analysis.proba.argmax())
    values = draw_inside.cached_attribution(
        model, f"{model_name}:{id(model)}", x, target, method, baseline
    )
    left, right = st.columns([1, 1.6], gap="large")
    with left, st.container(key="draw_attribution"):
        st.image(
            draw_inside.attribution_picture(values, x),
            caption=f"{draw_inside.METHOD_LABELS[method]} for {analysis.label}",
        )
    right.caption(
        draw_inside.METHOD_HELP[method]
        + " Red pixels speak for the predicted digit, blue ones against it."
    )


drawing_area(model, model_name)
