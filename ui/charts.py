"""Plotly figures of training curves, shared by the Train, Evaluate and Models pages.

Pure functions: they take plain lists/dicts (a ``NeuralNetwork.history_`` or a worker snapshot)
and return ``plotly.graph_objects.Figure``; they never call Streamlit, so pages render them with
``st.plotly_chart(fig, width="stretch")``.

- ``training_curves_figure(history)``: loss and accuracy per epoch, training and validation,
  side by side (two panels).
- ``batch_loss_figure(batch_loss, ema=None, smoothing=0.98)``: the per-batch loss, raw (faint) and
  smoothed (exponential moving average).
- ``live_training_figure(history, batch_loss, ...)``: the Train page's live view as one figure:
  loss and accuracy per epoch above, the batch loss below (one figure to re-send and redraw
  per poll instead of two; fixed margins, so that a redraw lays the figure out once).
- ``ema(values, smoothing)``: the bias-corrected exponential moving average used above.
- ``compare_figure(histories, metric)``: one metric per epoch for several models on one chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
BATCH_COLOR = "rgba(31,119,180,0.25)"
METRIC_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "train_accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
    "learning_rate": "learning rate",
}


def note_in_middle(fig: go.Figure, text: str, *, panel: str = "paper") -> None:
    """A grey note in the middle of an empty figure ("no epochs yet"); ``panel`` (an axis
    pair such as ``"x3 y3"``) puts it in the middle of that panel instead of the figure."""
    xref, yref = ("paper", "paper") if panel == "paper" else (f"{a} domain" for a in panel.split())
    fig.add_annotation(
        text=text,
        showarrow=False,
        xref=xref,
        yref=yref,
        x=0.5,
        y=0.5,
        font=dict(color="gray"),
    )


def _clean(values: Sequence | None) -> list:
    """Floats with None/NaN/inf turned into None (Plotly leaves a gap)."""
    out = []
    for v in values or []:
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(f if math.isfinite(f) else None)
    return out


def _epochs(history: Mapping) -> list:
    epochs = list(history.get("epoch") or [])
    n = max(
        (len(history.get(k) or []) for k in ("loss", "val_loss", "train_accuracy", "val_accuracy")),
        default=0,
    )
    if len(epochs) < n:
        epochs = list(range(1, n + 1))
    return epochs


def training_curves_figure(
    history: Mapping | None,
    *,
    title: str | None = None,
    height: int = 340,
    uirevision: str | None = None,
) -> go.Figure:
    """Two panels: loss (left) and accuracy (right) per epoch, training and validation.

    ``history`` is a dict of per-epoch lists with keys ``epoch``, ``loss``, ``val_loss``,
    ``train_accuracy``, ``val_accuracy`` (missing keys or ``None`` values are skipped). An empty
    or ``None`` history gives empty axes with a note. A ``uirevision`` keeps the user's zoom
    and legend clicks when the figure is re-sent with new data (live charts).
    """
    history = history or {}
    epochs = _epochs(history)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08
    )
    _add_curves(fig, history, epochs)
    fig.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    if not epochs:
        note_in_middle(fig, "no epochs yet")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40 if not title else 60, b=10),
        title=title,
        legend=dict(orientation="h", y=-0.2),
        hovermode="x unified",
        uirevision=uirevision,
    )
    return fig


_CURVES = (
    ("loss", "train loss", TRAIN_COLOR, 1, "solid"),
    ("val_loss", "val loss", VAL_COLOR, 1, "solid"),
    ("train_accuracy", "train accuracy", TRAIN_COLOR, 2, "dot"),
    ("val_accuracy", "val accuracy", VAL_COLOR, 2, "dot"),
)


def _add_curves(fig: go.Figure, history: Mapping, epochs: list, row: int = 1) -> None:
    """The per-epoch traces: losses in column 1, accuracies in column 2 of ``row``."""
    for key, name, color, col, dash in _CURVES:
        ys = _clean(history.get(key))
        if not any(y is not None for y in ys):
            continue
        fig.add_trace(
            go.Scatter(
                x=epochs[: len(ys)],
                y=ys,
                name=name,
                mode="lines+markers",
                line=dict(color=color, dash=dash),
                marker=dict(size=5),
            ),
            row=row,
            col=col,
        )


def live_training_figure(
    history: Mapping | None,
    batch_loss: Sequence[float],
    *,
    steps: Sequence[float] | None = None,
    smoothed: Sequence[float] | None = None,
    max_points: int | None = None,
    height: int = 590,
    uirevision: str | None = None,
    note: str = "no batches yet",
) -> go.Figure:
    """The live view of a training in one figure: loss and accuracy per epoch (top row, as
    :func:`training_curves_figure`), the loss of every batch and its EMA below (as
    :func:`batch_loss_figure`, thinned to about ``max_points`` points, 4 significant digits).
    Without data, ``note`` stands in the middle of the batch-loss panel (a queued training
    says so there).

    The legend sits in the top margin, above the panels' titles, so that the training and
    validation curves can be told apart. One figure is one message and one redraw per poll.
    The margins are fixed (``autoexpand`` off): Plotly otherwise lays a figure out, measures
    its tick labels and lays it out again on every redraw."""
    history = history or {}
    epochs = _epochs(history)
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{}, {}], [{"colspan": 2}, None]],
        subplot_titles=("Loss", "Accuracy", "Batch loss"),
        horizontal_spacing=0.1,
        vertical_spacing=0.17,
        row_heights=[0.45, 0.55],
    )
    _add_curves(fig, history, epochs)
    xs, ys, sm = _thinned_batches(batch_loss, steps, smoothed, max_points, 4)
    for trace in _batch_traces(xs, ys, sm):
        fig.add_trace(trace, row=2, col=1)
    fig.update_xaxes(rangemode="tozero", row=1, col=1)
    fig.update_xaxes(rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="epoch", title_standoff=4, row=2, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    if not epochs and not ys:
        note_in_middle(fig, note, panel="x3 y3")
    fig.update_layout(
        height=height,
        margin=dict(l=55, r=15, t=75, b=45, autoexpand=False),  # t: the legend's rows
        legend=dict(
            orientation="h",
            xref="container",
            yref="container",
            x=0,
            y=1,
            yanchor="top",
            font=dict(size=11),
        ),
        hovermode="x unified",
        uirevision=uirevision,
    )
    return fig


def ema(values: Sequence[float], smoothing: float = 0.98) -> list:
    """Bias-corrected exponential moving average (like TensorBoard's smoothing); skips NaN."""
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if math.isfinite(f):
            avg = smoothing * avg + (1 - smoothing) * f
            weight = smoothing * weight + (1 - smoothing)
        out.append(avg / weight if weight > 0 else None)
    return out


def _rounded(values: Sequence, digits: int) -> list:
    """``digits`` significant digits (None kept): what a chart can show, in fewer bytes."""
    return [None if v is None else float(f"{v:.{digits}g}") for v in values]


def _every(values: list, stride: int) -> list:
    """Every ``stride``-th value and the last one."""
    if stride <= 1 or not values:
        return values
    kept = values[::stride]
    if (len(values) - 1) % stride:
        kept.append(values[-1])
    return kept


def _thinned_batches(batch_loss, steps, smoothed, max_points, digits, smoothing=0.98):
    """x, loss and EMA lists of a batch-loss chart: every k-th batch (and the last) so that
    at most about ``max_points`` remain, ``digits`` significant digits (x: two more)."""
    ys = _clean(batch_loss)
    xs = list(steps) if steps is not None else list(range(1, len(ys) + 1))
    sm = list(smoothed) if smoothed is not None else ema(ys, smoothing)
    stride = -(-len(ys) // max_points) if max_points and len(ys) > max_points else 1
    xs, ys, sm = (_every(list(v), stride) for v in (xs, ys, _clean(sm)))
    return _rounded(xs, digits + 2), _rounded(ys, digits), _rounded(sm, digits)


def _batch_traces(xs: list, ys: list, smoothed: list) -> list[go.Scatter]:
    """The batch loss (faint) and its EMA (bold) as two line traces; none without batches."""
    if not ys:
        return []
    return [
        go.Scatter(
            x=xs, y=ys, name="batch loss", mode="lines", line=dict(color=BATCH_COLOR, width=1)
        ),
        go.Scatter(
            x=xs,
            y=smoothed,
            name="smoothed (EMA)",
            mode="lines",
            line=dict(color=TRAIN_COLOR, width=2),
        ),
    ]


def batch_loss_figure(
    batch_loss: Sequence[float],
    *,
    steps: Sequence[float] | None = None,
    smoothing: float = 0.98,
    smoothed: Sequence[float] | None = None,
    height: int = 280,
    uirevision: str | None = None,
    max_points: int | None = None,
    digits: int = 4,
) -> go.Figure:
    """Loss of every batch (faint) and its EMA (bold). ``steps`` are the x values (batch
    numbers, possibly fractional epochs); default 1..n. ``smoothed`` skips recomputing the EMA.
    ``max_points``: draw at most about that many points per trace (every k-th batch and the
    last); values are rounded to ``digits`` significant digits. Both cut the bytes a live chart
    re-sends on every poll (800 batches: 44 KB of JSON; 300 points at 4 digits: about 12 KB).

    SVG traces, not WebGL: the live chart is re-sent every second, and a WebGL redraw clears its
    canvas first (blank frames); the worker keeps at most a few thousand points."""
    xs, ys, sm = _thinned_batches(batch_loss, steps, smoothed, max_points, digits, smoothing)
    fig = go.Figure()
    for trace in _batch_traces(xs, ys, sm):
        fig.add_trace(trace)
    if not ys:
        note_in_middle(fig, "no batches yet")
    fig.update_layout(
        title="Batch loss",
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title="epoch" if steps is not None else "batch",
        yaxis_title="loss",
        legend=dict(orientation="h", y=-0.25),
        uirevision=uirevision,
    )
    return fig


def compare_figure(
    histories: Mapping[str, Mapping], metric: str = "val_accuracy", *, height: int = 380
) -> go.Figure:
    """One line per model: ``metric`` (a history key, e.g. ``val_accuracy`` or ``loss``) per
    epoch. ``histories`` maps a label (model name) to its history dict."""
    fig = go.Figure()
    for label, history in histories.items():
        history = history or {}
        ys = _clean(history.get(metric))
        if not any(y is not None for y in ys):
            continue
        xs = _epochs(history)[: len(ys)]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, name=str(label), mode="lines+markers", marker=dict(size=5))
        )
    if not fig.data:
        note_in_middle(fig, f"no {METRIC_LABELS.get(metric, metric)} recorded")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        title=METRIC_LABELS.get(metric, metric).capitalize() + " per epoch",
        xaxis_title="epoch",
        yaxis_title=METRIC_LABELS.get(metric, metric),
        hovermode="x unified",
    )
    if "accuracy" in metric:
        fig.update_yaxes(tickformat=".1%")
    return fig
