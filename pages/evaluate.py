"""Evaluate (/evaluate): test accuracy, per-digit scores, the confusion matrix (click a cell to
see its images), the accuracy/coverage curve of a "not sure" threshold, robustness to
corruptions (MNIST), the training curves and the first layer's weights."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from nn.core.metrics import classification_report, confusion_matrix, top_confusions
from ui import state
from ui.charts import training_curves_figure
from ui.eval_charts import (
    cell_from_selection,
    confusion_figure,
    conv_filters,
    per_class_figure,
    weights_figure,
)
from ui.gallery import GREEN, RED, GridTile, filter_indices, labelled_grid, sort_indices
from ui.robustness_view import render_not_sure, render_robustness

CM_KEY = "eval_cm"
TRUE_KEY = "eval_true"
PRED_KEY = "eval_pred"
MAX_CELL_IMAGES = 36

state.init_state()
st.title("Evaluate the model")

name, model, data, proba, pred = state.require_test_predictions()
info = state.active_set()
names = None if info.builtin else list(info.class_names)  # MNIST's classes are its digits
noun = "digit" if names is None else "class"


def label(k: int) -> str:
    return str(k) if names is None else names[int(k)]


y_true = data.y_test
n_classes = max(len(model.classes_), info.n_classes)
cm = confusion_matrix(y_true, pred, n_classes)
report = classification_report(y_true, pred, n_classes)

# ----------------------------------------------------------------------------- headline numbers
m1, m2, m3, m4 = st.columns([1, 1, 1, 2])
m1.metric("Test accuracy", f"{report['accuracy']:.2%}")
m2.metric(f"Mistakes (of {int(cm.sum()):,})", f"{int(cm.sum() - np.trace(cm)):,}")
m3.metric("Macro F1", f"{report['macro']['f1']:.3f}")
# the layers as wrapping text, not a metric: a metric cuts a long stack ("C32k5-BN-P…") off
m4.html(
    '<div style="font-size:0.875rem">Architecture</div><div style="font-size:1.5rem;'
    f'overflow-wrap:anywhere;line-height:1.3">{html.escape(state.model_layers_text(model))}</div>'
)
if info.builtin:
    st.caption(f"Model **{name}** on the 10,000 official MNIST test images.")
else:
    st.caption(f"Model **{name}** on the {len(y_true):,} test images of **{info.name}**.")

# ----------------------------------------------------------------------------- per digit
st.subheader(f"Per {noun}")
table, bars = st.columns([2, 3])
with table:
    st.dataframe(
        {
            noun: report["classes"] if names is None else [label(c) for c in report["classes"]],
            "precision": report["precision"],
            "recall": report["recall"],
            "F1": report["f1"],
            "support": report["support"],
        },
        hide_index=True,
        width="stretch",
        key="eval_report",
        column_config={
            c: st.column_config.NumberColumn(format="percent")
            for c in ("precision", "recall", "F1")
        },
    )
    st.caption(
        f"Precision: of the images predicted as this {noun}, how many were it. "
        f"Recall: of the images of this {noun}, how many were found. F1: their harmonic "
        "mean."
    )
with bars:
    st.plotly_chart(per_class_figure(report, names=names), width="stretch", key="eval_per_class")

# ----------------------------------------------------------------------------- confusion matrix
st.subheader("Confusion matrix")
st.caption(
    f"Rows: the true {noun}; columns: what the network predicted. Click a cell (or use the "
    "two boxes) to see the test images behind it; colour follows the count on a log scale."
)
if TRUE_KEY not in st.session_state or PRED_KEY not in st.session_state:
    worst = top_confusions(cm, 1)
    st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = worst[0][:2] if worst else (0, 0)


def _on_cell_selected() -> None:
    """A click on the heatmap becomes the true/predicted selectboxes' value."""
    cell = cell_from_selection(st.session_state.get(CM_KEY))
    if cell is not None:
        st.session_state[TRUE_KEY], st.session_state[PRED_KEY] = cell


cm_col, cell_col = st.columns([1, 1], gap="large")
with cm_col:
    selected = (int(st.session_state[TRUE_KEY]), int(st.session_state[PRED_KEY]))
    st.plotly_chart(
        confusion_figure(cm, selected=selected, names=names),
        width="stretch",
        key=CM_KEY,
        on_select=_on_cell_selected,
        selection_mode="points",
    )
with cell_col:
    s1, s2 = st.columns(2)
    classes = list(range(n_classes))
    true_d = s1.selectbox(f"True {noun}", classes, key=TRUE_KEY, format_func=label)
    pred_d = s2.selectbox(f"Predicted {noun}", classes, key=PRED_KEY, format_func=label)
    cell = filter_indices(y_true, pred, true_digit=true_d, pred_digit=pred_d)
    cell = sort_indices(cell, proba.max(axis=1), by="confidence")
    what = "correctly recognised" if true_d == pred_d else f"predicted as {label(pred_d)}"
    st.markdown(
        f"**{len(cell):,}** test images of {'a ' if names is None else ''}{label(true_d)} {what}"
        + (f" (showing the {MAX_CELL_IMAGES} least sure)" if len(cell) > MAX_CELL_IMAGES else "")
        + "."
    )
    if len(cell):
        shown = cell[:MAX_CELL_IMAGES]
        conf = proba[shown, pred[shown]]
        tiles = [
            GridTile((f"#{i}", f"{c:.0%} sure"), GREEN if true_d == pred_d else RED)
            for i, c in zip(shown, conf, strict=True)
        ]
        st.image(
            labelled_grid(
                data.x_test[shown],
                tiles,
                ncols=6,
                scale=2,
                border=2,
                font_size=11,
                shape=info.image_shape,
            ),
            width="content",
            output_format="PNG",
        )
    else:
        st.info("No test image falls in this cell.")

# ----------------------------------------------------------------------------- how far it holds
render_not_sure(name, state.active_model_path(), proba, pred, y_true)
if info.image_shape == (28, 28, 1) and info.builtin:
    render_robustness(name)

# ----------------------------------------------------------------------------- training
st.subheader("Training curves")
history = getattr(model, "history_", None) or {}
if history.get("loss"):
    st.plotly_chart(training_curves_figure(history), width="stretch", key="eval_curves")
    if getattr(model, "stop_message_", ""):
        st.caption(model.stop_message_)
else:
    st.info("This model has no training history (it was saved without one).")

# ----------------------------------------------------------------------------- weights
st.subheader("What the first layer looks for")
convs = [layer for layer in model.layers_ if layer.kind == "conv2d"]
if convs:
    first = convs[0]
    k, _, channels, n_filters = first.params[0].shape
    st.plotly_chart(
        weights_figure(
            conv_filters(first.params[0]),
            n_units=64,
            ncols=min(8, n_filters),
            side=k,
            unit_name="filter",
            title=f"The {n_filters} filters of the first convolution ({k}x{k})",
        ),
        width="stretch",
        key="eval_weights",
    )
    st.caption(
        f"Each square is one {k}x{k} filter of the first convolution"
        + (f" (the mean over its {channels} input channels)" if channels > 1 else "")
        + ": red weights respond to ink, blue ones to its absence, so a filter with red "
        "beside blue detects an edge in that direction. Each filter is scaled to its own "
        "largest weight."
    )
else:
    W = model.coefs_[0]
    hidden = len(model.coefs_) > 1
    h, w, c = info.image_shape
    if W.shape[0] != h * w or c != 1 or h != w:
        st.info(
            "The first layer's weights are drawn as images for a dense first layer on square "
            f"greyscale images; this model's first layer sees {info.shape_text} images through "
            f"{'its convolutions' if W.shape[0] != model.n_features_in_ else 'colour channels'}."
        )
        st.stop()
    st.plotly_chart(
        weights_figure(
            W,
            n_units=64,
            ncols=8 if hidden else 5,
            title=None if hidden else f"Weights of the {W.shape[1]} output units",
            side=h,
        ),
        width="stretch",
        key="eval_weights",
    )
    if hidden:
        st.caption(
            f"Each square shows the {W.shape[0]} incoming weights of one of the first "
            f"{min(64, W.shape[1])} of {W.shape[1]} hidden units, as a {h}x{w} image: red "
            f"pixels excite the unit, blue ones inhibit it. Each unit is scaled to its own "
            f"largest weight."
        )
    else:
        st.caption(
            f"This model has no hidden layer: each square is the weight template of one "
            f"{noun} (red: ink here votes for the {noun}, blue: against)."
        )
