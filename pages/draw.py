"""Draw (/draw): draw a digit, watch the network's prediction, its preprocessing and activations."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import state
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
st.title("Draw a digit")

names = list(dict.fromkeys(Path(row["path"]).stem for row in state.saved_models()))
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
    help="Any saved model; defaults to the active one (sidebar).",
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


@st.fragment
def drawing_area(model, model_name: str) -> None:
    """Canvas and everything computed from it; drawing reruns only this fragment."""
    show_kept_confirmation()
    left, right = st.columns([1, 1.6], gap="large")
    with left:
        image = render_canvas()
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=clear_canvas)
    analysis = analyse_drawing(model, image)
    with right:
        render_prediction(analysis)
        if not analysis.blank:
            render_keep(analysis, image, model_name)
            st.plotly_chart(
                probability_figure(analysis.proba, model.classes_),
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
    if analysis.activations:
        st.subheader("Hidden-layer activations for this drawing")
        st.plotly_chart(
            activations_figure(analysis.activations), width="stretch", key="draw_activations"
        )
    else:
        st.caption("This model has no hidden layers (softmax regression): no activations to show.")


drawing_area(model, model_name)
