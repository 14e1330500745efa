"""Plotly figures for the Overview, Predictions and Evaluate pages.

Pure functions of NumPy arrays / plain lists returning ``plotly.graph_objects.Figure``; they never
call Streamlit. Pages render them with ``st.plotly_chart(fig, width="stretch")``.

- ``class_counts_figure(train_counts, test_counts)``   digits per class, train and test.
- ``probability_figure(proba, classes, true_label)``   the ten class probabilities as bars.
- ``confusion_figure(cm)``                             the confusion matrix heatmap (clickable).
- ``cell_from_selection(event)``                       the (true, pred) cell of a chart click.
- ``per_class_figure(report)``                         precision / recall / F1 per digit.
- ``weights_figure(W, n_units, ncols)``                first-layer weights as 28x28 images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

TRAIN_COLOR = "#1f77b4"
TEST_COLOR = "#ff7f0e"
BAR_COLOR = "#9aa5b1"
PRED_COLOR = "#1f77b4"
RIGHT_COLOR = "#22a050"
WRONG_COLOR = "#dc3232"
METRIC_COLORS = {"precision": "#1f77b4", "recall": "#ff7f0e", "f1": "#2ca02c"}

_MARGIN = dict(l=10, r=10, t=40, b=10)


def _noun(names: Sequence[str] | None) -> str:
    """What a class is called on the axes: ``digit`` for MNIST, ``class`` for named classes."""
    return "digit" if names is None else "class"


def class_counts_figure(
    train_counts: Sequence[int],
    test_counts: Sequence[int],
    *,
    height: int = 320,
    names: Sequence[str] | None = None,
) -> go.Figure:
    """Grouped bars: how many images of each digit (or of each of ``names``) in the training and
    the test set."""
    digits = [str(d) for d in range(len(train_counts))] if names is None else list(names)
    noun = _noun(names)
    fig = go.Figure(
        [
            go.Bar(
                x=digits,
                y=list(map(int, train_counts)),
                name="train",
                marker_color=TRAIN_COLOR,
                hovertemplate=noun + " %{x}: %{y:,} training images<extra></extra>",
            ),
            go.Bar(
                x=digits,
                y=list(map(int, test_counts)),
                name="test",
                marker_color=TEST_COLOR,
                hovertemplate=noun + " %{x}: %{y:,} test images<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        height=height,
        margin=_MARGIN,
        title=f"Images per {noun}",
        xaxis_title=noun,
        yaxis_title="images",
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    fig.update_xaxes(type="category")
    return fig


def probability_figure(
    proba: Sequence[float],
    classes: Sequence | None = None,
    *,
    true_label: int | None = None,
    height: int = 260,
    title: str | None = "How sure the network is",
    noun: str = "digit",
) -> go.Figure:
    """The class probabilities as bars; the predicted class is highlighted (green if it is the
    true label, red if not, blue when the true label is unknown); the true label is outlined.

    Built in one ``go.Figure`` call (no ``update_layout``): it is redrawn on every stroke."""
    p = np.asarray(proba, dtype=np.float64).ravel()
    classes = list(range(p.size)) if classes is None else list(classes)
    best = int(p.argmax()) if p.size else -1
    if true_label is None:
        top = PRED_COLOR
    else:
        top = RIGHT_COLOR if classes[best] == true_label else WRONG_COLOR
    colors = [top if i == best else BAR_COLOR for i in range(p.size)]
    line_w = [3 if true_label is not None and c == true_label else 0 for c in classes]
    bar = dict(
        type="bar",
        x=[str(c) for c in classes],
        y=p.tolist(),
        marker=dict(color=colors, line=dict(color=RIGHT_COLOR, width=line_w)),
        text=[f"{v:.0%}" if v >= 0.005 else "" for v in p],
        textposition="outside",
        cliponaxis=False,
        hovertemplate=noun + " %{x}: %{y:.2%}<extra></extra>",
    )
    layout = dict(
        height=height,
        margin=_MARGIN,
        title=dict(text=title),
        showlegend=False,
        xaxis=dict(title=dict(text=noun), type="category"),
        yaxis=dict(range=[0, 1.12], tickformat=".0%", title=dict(text="probability")),
    )
    return go.Figure(data=[bar], layout=layout)


def confusion_figure(
    cm: np.ndarray,
    *,
    height: int = 520,
    selected: tuple[int, int] | None = None,
    names: Sequence[str] | None = None,
) -> go.Figure:
    """Confusion matrix heatmap: rows = true digit (top to bottom 0..9), columns = predicted.

    Colour follows log(1 + count) so the few mistakes stay visible next to the large diagonal;
    every cell is labelled with its count. A transparent marker on every cell makes the cells
    clickable: selection points carry ``x`` (predicted) and ``y`` (true).
    ``selected`` outlines one ``(true, pred)`` cell. ``names`` label the axes' ticks (the cells
    keep their class indices).
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    labels = list(range(k))
    ticks = [str(c) for c in labels] if names is None else [str(n) for n in names][:k]
    noun = _noun(names)
    row_tot = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, row_tot, out=np.zeros(cm.shape), where=row_tot > 0)
    heat = go.Heatmap(
        z=np.log1p(cm).tolist(),
        x=labels,
        y=labels,
        text=cm.astype(str).tolist(),
        texttemplate="%{text}",
        textfont=dict(size=12),
        colorscale="Blues",
        showscale=False,
        xgap=1,
        ygap=1,
        hoverinfo="skip",
    )
    # Plotly heatmaps cannot be selected: an invisible square marker on every cell centre takes
    # the clicks (and the hover text), so a click selects a point with x = predicted, y = true.
    tt, pp = np.meshgrid(labels, labels, indexing="ij")
    hits = go.Scatter(
        x=pp.ravel().tolist(),
        y=tt.ravel().tolist(),
        mode="markers",
        marker=dict(symbol="square", size=28, color="rgba(0,0,0,0)"),
        customdata=np.stack([cm.ravel(), share.ravel()], axis=1).tolist(),
        selected=dict(marker=dict(opacity=1)),
        unselected=dict(marker=dict(opacity=1)),
        hovertemplate=(
            "true %{y}, predicted %{x}: %{customdata[0]} images "
            "(%{customdata[1]:.1%} of the %{y}s)<extra></extra>"
        ),
        showlegend=False,
    )
    fig = go.Figure([heat, hits])
    if selected is not None:
        t, p = selected
        fig.add_shape(
            type="rect",
            x0=p - 0.5,
            x1=p + 0.5,
            y0=t - 0.5,
            y1=t + 0.5,
            line=dict(color=WRONG_COLOR, width=3),
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(
            title=f"predicted {noun}",
            tickmode="array",
            tickvals=labels,
            ticktext=ticks,
            side="top",
            constrain="domain",
            fixedrange=True,
        ),
        yaxis=dict(
            title=f"true {noun}",
            tickmode="array",
            tickvals=labels,
            ticktext=ticks,
            autorange="reversed",
            scaleanchor="x",
            constrain="domain",
            fixedrange=True,
        ),
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        hoverdistance=30,
    )
    return fig


def cell_from_selection(event) -> tuple[int, int] | None:
    """``(true, predicted)`` of the confusion-matrix cell picked in an ``st.plotly_chart``
    selection event (the last point; ``x`` is the predicted digit, ``y`` the true one), or
    ``None`` when nothing usable is selected."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, AttributeError):
        return None
    for point in reversed(list(points or [])):
        try:
            return int(point["y"]), int(point["x"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def per_class_figure(
    report: Mapping, *, height: int = 320, names: Sequence[str] | None = None
) -> go.Figure:
    """Precision, recall and F1 of each digit (or class of ``names``, indexed by the report's
    classes) as grouped bars (``report`` from ``nn.core.metrics.classification_report``)."""
    if names is None:
        classes = [str(c) for c in report["classes"]]
    else:
        classes = [str(names[int(c)]) if int(c) < len(names) else str(c) for c in report["classes"]]
    noun = _noun(names)
    fig = go.Figure(
        [
            go.Bar(
                x=classes,
                y=list(report[m]),
                name=m if m != "f1" else "F1",
                marker_color=METRIC_COLORS[m],
                hovertemplate=f"{noun} %{{x}}: {m} %{{y:.2%}}<extra></extra>",
            )
            for m in ("precision", "recall", "f1")
        ]
    )
    low = min([min(report[m]) for m in ("precision", "recall", "f1")] + [1.0])
    fig.update_layout(
        barmode="group",
        height=height,
        margin=_MARGIN,
        title=f"Per-{noun} precision, recall and F1",
        xaxis_title=noun,
        yaxis=dict(range=[max(0.0, math.floor(low * 20) / 20 - 0.05), 1.0], tickformat=".0%"),
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    fig.update_xaxes(type="category")
    return fig


def tile_weights(
    W: np.ndarray, n_units: int = 64, ncols: int = 8, side: int = 28
) -> tuple[np.ndarray, np.ndarray]:
    """Tile the incoming weights of the first ``n_units`` units (columns of ``W``,
    ``(784, n_hidden)``) into one array with NaN gaps; each unit is scaled by its own largest
    absolute weight to [-1, 1]. Returns ``(tiled, unit_index)`` where ``unit_index`` has the unit
    number of every pixel (-1 in the gaps)."""
    W = np.asarray(W, dtype=np.float64)
    n = min(n_units, W.shape[1])
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    cell = side + 1
    tiled = np.full((nrows * cell - 1, ncols * cell - 1), np.nan)
    units = np.full(tiled.shape, -1, dtype=np.int64)
    for u in range(n):
        r, c = divmod(u, ncols)
        w = W[:, u].reshape(side, side)
        m = np.abs(w).max()
        tiled[r * cell : r * cell + side, c * cell : c * cell + side] = w / m if m > 0 else w
        units[r * cell : r * cell + side, c * cell : c * cell + side] = u
    return tiled, units


def weights_figure(
    W: np.ndarray,
    *,
    n_units: int = 64,
    ncols: int = 8,
    height: int | None = None,
    title: str | None = None,
    side: int = 28,
    unit_name: str = "unit",
) -> go.Figure:
    """The first layer's weights as ``side`` x ``side`` images (28x28 for a dense layer on
    MNIST, kxk for a convolution's filters), one per unit, on a diverging scale (red =
    positive, blue = negative, white = zero), each unit scaled to its own range."""
    tiled, units = tile_weights(W, n_units, ncols, side)
    h, w = tiled.shape
    if height is None:
        height = int(min(900, max(260, 660 * h / max(w, 1))))
    z = np.where(np.isnan(tiled), None, np.round(tiled, 3)).tolist()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=units.tolist(),
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            zmin=-1,
            zmax=1,
            hoverongaps=False,
            colorbar=dict(title="weight / max", thickness=12, len=0.7),
            hovertemplate=unit_name + " %{customdata}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=title or (f"First-layer weights of {min(n_units, np.shape(W)[1])} hidden units"),
        plot_bgcolor="white",
        xaxis=dict(visible=False, constrain="domain"),
        yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
    )
    return fig


def conv_filters(weight: np.ndarray) -> np.ndarray:
    """A convolution's weight ``(k, k, channels, filters)`` as ``(k*k, filters)`` columns, one
    image per filter (the mean over the input channels when there are several)."""
    w = np.asarray(weight, dtype=np.float64)
    k, _, _, f = w.shape
    return w.mean(axis=2).reshape(k * k, f)
