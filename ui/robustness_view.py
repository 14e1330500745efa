"""Evaluate's two sections on how far a model's reading holds.

- **Robustness**: the test accuracy of one or more saved models as each corruption of
  ``nn.data.corruptions`` grows (one panel per corruption, one line per model); a click on a
  point (or the three boxes) shows that model's worst images at that level.
- **"I'm not sure"**: the coverage and the accuracy on the answered images as a confidence
  threshold rises; a threshold chosen with the slider is saved with the model
  (``nn.io.models_folder.save_threshold``), and Draw and the HTML export then say "not sure"
  below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from nn.core.confidence import coverage_curve, threshold_record, threshold_value
from nn.data.corruptions import CORRUPTIONS
from nn.io.models_folder import save_threshold
from nn.services.robustness import Robustness, robustness
from ui import state
from ui.gallery import GREEN, RED, GridTile, labelled_grid

MODELS_KEY = "rob_models"
IMAGES_KEY = "rob_images"
CHART_KEY = "rob_chart"
PICK_MODEL_KEY = "rob_pick_model"
PICK_NAME_KEY = "rob_pick_name"
PICK_LEVEL_KEY = "rob_pick_level"
RESULTS_KEY = "rob_results"
THRESHOLD_KEY = "eval_threshold"
DEFAULT_IMAGES = 500
LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
PANEL_COLUMNS = 4
SHOWN_THRESHOLDS = 0.9


def _key(name: str, images: int) -> tuple[str, float, int]:
    path = state.model_path_for(name)
    return str(path.resolve()), path.stat().st_mtime, images


def _measure(name: str, images: int) -> None:
    """Measure model ``name`` on ``images`` test images into the session's results, with a
    progress bar (a model file saved again is measured again)."""
    store = st.session_state.setdefault(RESULTS_KEY, {})
    key = _key(name, images)
    if key in store:
        return
    data = state.get_mnist()
    model = state.get_model(Path(key[0]))
    bar = st.progress(0.0, text=f"Measuring {name}…")
    try:
        store[key] = robustness(
            model,
            data.x_test,
            data.y_test,
            images=images,
            progress=lambda f, what: bar.progress(f, text=f"{name}: {what}"),
        )
    finally:
        bar.empty()


def robustness_figure(results: dict[str, Robustness], *, height: int = 520) -> go.Figure:
    """One panel per corruption (accuracy against level), one line per model."""
    names = list(CORRUPTIONS)
    rows = math.ceil(len(names) / PANEL_COLUMNS)
    fig = make_subplots(
        rows=rows,
        cols=PANEL_COLUMNS,
        subplot_titles=[f"{n} ({CORRUPTIONS[n].unit})" for n in names],
        shared_yaxes=True,
        horizontal_spacing=0.04,
        vertical_spacing=0.14,
    )
    for m, (model_name, result) in enumerate(results.items()):
        color = LINE_COLORS[m % len(LINE_COLORS)]
        for k, name in enumerate(names):
            curve = result.curves.get(name) or []
            fig.add_trace(
                go.Scatter(
                    x=[lv for lv, _ in curve],
                    y=[acc for _, acc in curve],
                    mode="lines+markers",
                    name=model_name,
                    legendgroup=model_name,
                    showlegend=k == 0,
                    line={"color": color},
                    customdata=[[model_name, name]] * len(curve),
                    hovertemplate=f"{model_name}<br>{name} %{{x}}: %{{y:.1%}}<extra></extra>",
                ),
                row=k // PANEL_COLUMNS + 1,
                col=k % PANEL_COLUMNS + 1,
            )
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.08},
        clickmode="event+select",
    )
    return fig


def point_from_selection(event, results: dict[str, Robustness]) -> tuple[str, str, float] | None:
    """``(model, corruption, level)`` of the last point clicked on the robustness chart."""
    try:
        points = list(event["selection"]["points"] or [])
    except (KeyError, TypeError, AttributeError):
        return None
    for point in reversed(points):
        custom = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(custom, (list, tuple)) and len(custom) == 2 and custom[0] in results:
            try:
                return str(custom[0]), str(custom[1]), float(point["x"])
            except (KeyError, TypeError, ValueError):
                continue
    return None


def _on_point_selected(results: dict[str, Robustness]) -> None:
    picked = point_from_selection(st.session_state.get(CHART_KEY), results)
    if picked is not None:
        st.session_state[PICK_MODEL_KEY], st.session_state[PICK_NAME_KEY] = picked[:2]
        st.session_state[PICK_LEVEL_KEY] = picked[2]


def _worst_images(results: dict[str, Robustness], y_true: np.ndarray) -> None:
    c1, c2, c3 = st.columns(3)
    model_name = c1.selectbox("Model", list(results), key=PICK_MODEL_KEY)
    name = c2.selectbox("Corruption", list(CORRUPTIONS), key=PICK_NAME_KEY)
    levels = list(CORRUPTIONS[name].levels)
    if st.session_state.get(PICK_LEVEL_KEY) not in levels:
        st.session_state[PICK_LEVEL_KEY] = levels[-1]
    level = c3.selectbox(
        f"Level ({CORRUPTIONS[name].unit})", levels, key=PICK_LEVEL_KEY, format_func="{:g}".format
    )
    result = results[model_name]
    worst = result.worst[name][levels.index(level)]
    accuracy = dict((lv, acc) for lv, acc in result.curves[name])[level]
    st.markdown(
        f"**{model_name}**, {name} at {level:g} ({CORRUPTIONS[name].unit}): accuracy "
        f"**{accuracy:.1%}**. The {len(worst.indices)} images it gave the lowest probability "
        "to their true digit, as the model saw them:"
    )
    tiles = [
        GridTile(
            (f"#{i}: {int(y_true[i])} → {p}", f"{q:.0%} on {int(y_true[i])}"),
            GREEN if p == int(y_true[i]) else RED,
        )
        for i, p, q in zip(worst.indices, worst.predicted, worst.true_probability, strict=True)
    ]
    st.image(
        labelled_grid(worst.images, tiles, ncols=6, scale=3, border=2, font_size=12),
        width="content",
        output_format="PNG",
    )


def render_robustness(active_name: str) -> None:
    """The robustness section for the saved models of MNIST's 28x28 greyscale digits."""
    st.subheader("Robustness: how far the reading holds")
    names = [Path(row["path"]).stem for row in state.fitting_models()]
    names = list(dict.fromkeys(names))
    if MODELS_KEY not in st.session_state:
        st.session_state[MODELS_KEY] = [active_name] if active_name in names else names[:1]
    st.caption(
        "Test accuracy as each corruption of the test digits grows: Gaussian noise, rotation, "
        "shift, thinner and thicker strokes (erosion, dilation), blur and lower contrast. Level "
        "0 is the clean images. Click a point to see that model's worst images at that level."
    )
    c1, c2, c3 = st.columns([4, 1.4, 1.2], vertical_alignment="bottom")
    chosen = c1.multiselect("Models", names, key=MODELS_KEY)
    images = int(
        c2.number_input(
            "Test images",
            min_value=100,
            max_value=10_000,
            step=500,
            value=DEFAULT_IMAGES,
            key=IMAGES_KEY,
        )
    )
    store = st.session_state.setdefault(RESULTS_KEY, {})
    todo = [n for n in chosen if _key(n, images) not in store]
    if c3.button("Measure", key="rob_measure", disabled=not todo, icon=":material/speed:"):
        for name in todo:
            _measure(name, images)
        todo = []
    ready = [n for n in chosen if _key(n, images) in store]
    if todo:
        st.caption(
            f"{', '.join(todo)}: not measured yet at {images:,} images. **Measure** runs "
            f"{sum(len(c.levels) - 1 for c in CORRUPTIONS.values())} corrupted copies of them "
            "through each model (seconds for a dense net, about a minute for a CNN)."
        )
    if not ready:
        return
    results = {name: store[_key(name, images)] for name in ready}
    st.plotly_chart(
        robustness_figure(results),
        width="stretch",
        key=CHART_KEY,
        on_select=lambda: _on_point_selected(results),
        selection_mode="points",
    )
    data = state.get_mnist()
    _worst_images(results, data.y_test)


def coverage_figure(curve: Sequence[Sequence], threshold: float, *, height: int = 320):
    """Coverage and accuracy on the answered images against the threshold; the chosen
    threshold as a vertical line."""
    t = [row[0] for row in curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=[row[1] for row in curve], name="coverage (answered)"))
    fig.add_trace(go.Scatter(x=t, y=[row[2] for row in curve], name="accuracy when answered"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="#444")
    fig.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 30, "b": 40},
        xaxis_title="confidence threshold (top probability)",
        yaxis={"tickformat": ".0%"},
        legend={"orientation": "h", "y": 1.12},
        hovermode="x unified",
    )
    return fig


def render_not_sure(
    name: str, path: Path, proba: np.ndarray, pred: np.ndarray, y_true: np.ndarray
) -> None:
    """The accuracy/coverage curve of the active model on the test set and the threshold saved
    with it."""
    st.subheader('"I\'m not sure": answering only when confident')
    confidence = proba.max(axis=1)
    right = pred == y_true
    curve = coverage_curve(confidence, right)
    saved = threshold_value(state.get_model_metadata(path))
    if st.session_state.get(THRESHOLD_KEY, {}).get("model") != name:
        st.session_state[THRESHOLD_KEY] = {"model": name}
        st.session_state["eval_threshold_value"] = saved if saved is not None else SHOWN_THRESHOLDS
    threshold = st.slider(
        "Threshold", 0.0, 1.0, step=0.01, key="eval_threshold_value", format="%.2f"
    )
    row = next(r for r in coverage_curve(confidence, right, [threshold]))
    left, right_col = st.columns([3, 2], gap="large")
    left.plotly_chart(coverage_figure(curve, threshold), width="stretch", key="eval_coverage")
    with right_col:
        n = len(confidence)
        answered = int(round(row[1] * n))
        st.metric("Answered", f"{row[1]:.1%}", help=f"{answered:,} of {n:,} test images")
        st.metric("Accuracy when answered", "-" if row[2] is None else f"{row[2]:.2%}")
        st.metric('"Not sure"', f"{n - answered:,}")
        st.caption(
            f"Saved with **{name}**: "
            + ("none (always names a class)" if saved is None else f"**{saved:.2f}**")
        )
        b1, b2 = st.columns(2)
        if b1.button("Save threshold", key="eval_save_threshold", icon=":material/save:"):
            record = threshold_record(threshold, coverage=row[1], accuracy=row[2], images=n)
            save_threshold(path, record)
            st.toast(f"{name} now says “not sure” below {threshold:.2f}")
            st.rerun()
        if b2.button("Remove", key="eval_remove_threshold", disabled=saved is None):
            save_threshold(path, None)
            st.rerun()
    st.caption(
        "The model answers an image only when its top probability reaches the threshold and "
        'says "not sure" otherwise: coverage is the fraction answered, and the accuracy is '
        "measured on those. A saved threshold makes Draw and the HTML export say “not sure” "
        "below it instead of naming a digit."
    )
