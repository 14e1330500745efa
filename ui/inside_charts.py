"""Plotly figures of an ``nn.core.probe`` record: what happens inside the layers over the epochs.

Pure functions of the record (plain lists and dicts), never calling Streamlit:

- ``series_figure(record, key, ...)``: one line per layer of one per-layer number over the
  epochs (gradient norm, update ratio, spread across units, dead or saturated fraction).
- ``bands_figure(record, layer, kind)``: the quantile bands of a layer's weights, gradients or
  outputs over the epochs (TensorBoard's distributions).
- ``histogram_figure(record, layer, kind)``: the per-epoch histograms as a heatmap, epochs down,
  values across (TensorBoard's histograms), re-binned onto one common range.
- ``probe_figure(record)``: the probe batch's loss and the test grid's accuracy per epoch.
- ``grid_captions(record)``: a caption per test digit (prediction and top-3 probabilities).

``LESSONS`` holds the text shown beside each chart: what to look for.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nn.core.probe import decode_images
from ui.gallery import png_data_url

KINDS = {"weight": "weights", "grad": "gradients", "act": "outputs"}
SERIES_LABELS = {
    "grad_norm": "gradient norm",
    "update_ratio": "update / weight",
    "weight_unit_spread": "spread across units (weights)",
    "act_unit_spread": "spread across units (outputs)",
    "dead_fraction": "ReLU units never firing",
    "saturated_fraction": "saturated outputs",
}
LOG_SERIES = frozenset({"grad_norm", "update_ratio"})
LESSONS = {
    "grad_norm": (
        "The size of each layer's gradient on the probe batch. Healthy layers have gradients "
        "of similar size. When the lines fall layer after layer toward the input (layer 0 far "
        "below the last), the early layers learn slowly or not at all: vanishing gradients, "
        "as with sigmoid and N(0, 1) weights. Lines that shoot up mean exploding gradients."
    ),
    "update_ratio": (
        "How far one step moves the weights, relative to their size. Around 1e-3 (the band) "
        "is healthy. Above about 1e-2 the learning rate is too high: the steps throw the "
        "weights around and the loss climbs. Far below 1e-4 the layer barely learns."
    ),
    "weight_unit_spread": (
        "How different the units of a layer are (the spread of the weights across neurons or "
        "filters). Zero means every unit of the layer is the same: with zero initialisation "
        "every unit gets the same gradient, so they stay identical forever and the layer "
        "works like a single neuron."
    ),
    "act_unit_spread": (
        "How different the units' outputs are on the same images. Zero means every unit "
        "computes the same thing (zero initialisation), or every unit is dead."
    ),
    "dead_fraction": (
        "The share of ReLU units (a channel counts as one unit in a feature map) that output 0 "
        "for every probe image. A dead unit passes no gradient and never recovers: a large "
        "share means too high a learning rate or a bad initialisation."
    ),
    "saturated_fraction": (
        "The share of sigmoid or tanh outputs stuck near their limits, where the slope is "
        "almost zero. Saturated units pass almost no gradient back: with N(0, 1) weights most "
        "of a sigmoid layer saturates from the start."
    ),
    "bands": (
        "The distribution over the epochs: the median (line), about one and two standard "
        "deviations (bands) and the range. Weights that stay at one value never learned; "
        "gradients collapsing to 0 vanish; bands widening without bound explode."
    ),
    "histogram": (
        "The same distribution as histograms, one row per epoch (darker: more values). Watch "
        "the shape move: weights spreading out as they learn, outputs piling up at 0 (dead "
        "ReLUs) or at the limits (saturated sigmoid)."
    ),
    "probe": (
        "The loss on the fixed probe batch and the accuracy on the grid of fixed digits below. "
        "A loss that climbs back up after falling, or jumps, is the learning rate being too "
        "high."
    ),
}


def _clean(values: Sequence | None) -> list:
    out = []
    for v in values or []:
        out.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
    return out


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
        uirevision="inside",
    )
    return fig


DIVERGED_COLOUR = "#d62728"


def _mark_divergence(fig: go.Figure, record: dict, *, across: bool = False) -> None:
    """A red dashed line, labelled, at the point taken where training diverged (across the
    chart, for the heatmap whose epochs run down; else up it)."""
    diverged = record.get("diverged")
    if not diverged or diverged.get("at") is None:
        return
    line = {"line_dash": "dash", "line_color": DIVERGED_COLOUR, "line_width": 1.5}
    label = {"annotation_text": "diverged", "annotation_font_color": DIVERGED_COLOUR}
    if across:
        fig.add_hline(y=diverged["at"], **line, **label, annotation_position="top left")
    else:
        fig.add_vline(x=diverged["at"], **line, **label, annotation_position="top")


def layers_with(record: dict, key: str) -> list[int]:
    """Indices of the layers that have at least one value of ``key``."""
    return [
        i
        for i, series in enumerate(record["series"])
        if any(v is not None for v in series.get(key) or [])
    ]


def series_figure(record: dict, key: str, *, height: int = 300) -> go.Figure:
    """One line per layer of the per-layer number ``key`` over the epochs."""
    fig = go.Figure()
    epochs = record["epochs"]
    zeros = False
    for i in layers_with(record, key):
        values = _clean(record["series"][i][key])
        if key in LOG_SERIES:  # a 0 (no step: the learning rate reached 0) has no log
            zeros = zeros or any(v is not None and v <= 0 for v in values)
            values = [v if v is None or v > 0 else None for v in values]
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=record["layers"][i]["name"],
            )
        )
    if key == "update_ratio":
        fig.add_hrect(y0=3e-4, y1=3e-3, fillcolor="#2ca02c", opacity=0.12, line_width=0)
    if key in LOG_SERIES:
        fig.update_yaxes(type="log", exponentformat="power")
    elif key in ("dead_fraction", "saturated_fraction"):
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%", dtick=0.2, tick0=0)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 12 else None)
    _mark_divergence(fig, record)
    if zeros:
        fig.add_annotation(
            text="0 (no step) is left out: a log scale has no 0",
            xref="paper",
            yref="paper",
            x=1,
            y=1,
            xanchor="right",
            yanchor="bottom",
            showarrow=False,
            font={"size": 11, "color": "gray"},
        )
    if not fig.data:
        fig.add_annotation(
            text="no values yet",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"color": "gray"},
        )
    return _layout(fig, SERIES_LABELS.get(key, key), height)


def bands_figure(record: dict, layer: int, kind: str, *, height: int = 300) -> go.Figure:
    """Quantile bands (range, ~2 and ~1 standard deviations, median) of ``kind`` (``weight``,
    ``grad`` or ``act``) of one layer over the epochs."""
    epochs = record["epochs"]
    rows = record["series"][layer].get(f"{kind}_q") or []
    columns = [
        _clean([row[j] if row else None for row in rows]) for j in range(7)
    ]  # QUANTILES order
    fig = go.Figure()
    for (low, high), opacity, label in (
        ((0, 6), 0.12, "range"),
        ((1, 5), 0.22, "2%-98%"),
        ((2, 4), 0.35, "16%-84%"),
    ):
        fig.add_trace(
            go.Scatter(x=epochs, y=columns[high], mode="lines", line={"width": 0}, showlegend=False)
        )
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=columns[low],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=f"rgba(31,119,180,{opacity})",
                name=label,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=epochs, y=columns[3], mode="lines+markers", line={"color": "#1f77b4"}, name="median"
        )
    )
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 12 else None)
    _mark_divergence(fig, record)
    name = record["layers"][layer]["name"]
    return _layout(fig, f"{KINDS[kind]} of layer {name}: distribution over epochs", height)


def histogram_matrix(record: dict, layer: int, kind: str, bins: int = 40):
    """``(edges, matrix)``: every epoch's histogram of ``kind`` re-binned onto ``bins`` bins over
    the range of all epochs (each bin's count spread evenly over its width), rows normalised to
    sum to 1; ``None`` when there is no histogram."""
    hists = record["series"][layer].get(f"{kind}_hist") or []
    ranges = [(h["lo"], h["hi"]) for h in hists if h and h.get("counts") and h["lo"] is not None]
    if not ranges:
        return None
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    matrix = np.zeros((len(hists), bins))
    for row, h in enumerate(hists):
        if not h or not h.get("counts") or h["lo"] is None:
            continue
        counts = np.asarray(h["counts"], float)
        own = np.linspace(h["lo"], h["hi"], counts.size + 1)
        # the share of each own bin falling in each common bin
        for k, count in enumerate(counts):
            if count == 0:
                continue
            a, b = own[k], own[k + 1]
            overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0, None)
            width = b - a
            if width <= 0:
                matrix[row, min(int((a - lo) / (hi - lo) * bins), bins - 1)] += count
            else:
                matrix[row] += count * overlap / width
        total = matrix[row].sum()
        if total > 0:
            matrix[row] /= total
    return edges, matrix


def histogram_figure(record: dict, layer: int, kind: str, *, height: int = 300) -> go.Figure:
    """The per-epoch histograms of ``kind`` of one layer as a heatmap (epochs down)."""
    fig = go.Figure()
    name = record["layers"][layer]["name"]
    made = histogram_matrix(record, layer, kind)
    if made is not None:
        edges, matrix = made
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(
            go.Heatmap(
                x=centres,
                y=record["epochs"],
                z=np.sqrt(matrix),  # square root: the tails stay visible beside the peak
                colorscale="Blues",
                showscale=False,
                hovertemplate="value %{x:.3g}<br>epoch %{y}<extra></extra>",
            )
        )
    fig.update_yaxes(title_text="epoch", autorange="reversed")
    fig.update_xaxes(title_text=KINDS[kind])
    if made is not None:
        _mark_divergence(fig, record, across=True)
    return _layout(fig, f"{KINDS[kind]} of layer {name}: histogram per epoch", height)


def probe_figure(record: dict, *, height: int = 280) -> go.Figure:
    """Probe-batch loss (left axis) and test-grid accuracy (right axis) per epoch."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = record["epochs"]
    fig.add_trace(
        go.Scatter(
            x=epochs, y=_clean(record["probe_loss"]), name="probe loss", mode="lines+markers"
        )
    )
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=_clean(record.get("grid_accuracy")),
            name="test grid accuracy",
            mode="lines+markers",
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="loss", secondary_y=False)
    # fixed ticks (0%, 20%, ...): left to itself the right axis took the left one's grid, at
    # 21%, 63%...
    fig.update_yaxes(
        title_text="accuracy",
        tickformat=".0%",
        range=[0, 1.02],
        tickmode="linear",
        tick0=0,
        dtick=0.2,
        showgrid=False,
        secondary_y=True,
    )
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 12 else None)
    _mark_divergence(fig, record)
    return _layout(fig, "probe loss and test grid accuracy", height)


def _grid_guesses(record: dict, names: list[str] | None) -> list[tuple[str, list[tuple]]]:
    """For each test-grid image: its mark (✓ right, ✗ wrong) and its top guesses as
    ``(class shown, probability)``; with ``names`` the classes by name."""

    def shown(label: Any) -> Any:
        if names is None or not isinstance(label, (int, np.integer)) or not 0 <= label < len(names):
            return label
        return names[int(label)]

    grid, top = record.get("grid"), record.get("grid_top")
    if not grid or not top:
        return []
    out = []
    for label, guesses, probs in zip(grid["labels"], top["labels"], top["proba"], strict=True):
        mark = "✓" if guesses[0] == label else "✗"
        pairs = zip(guesses, probs, strict=True)
        out.append((mark, [(shown(g), 0 if p is None else p) for g, p in pairs]))
    return out


def grid_captions(record: dict, names: list[str] | None = None) -> list[str]:
    """For each test-grid digit: ``"✓ 7 · 7 98% 1 1% 2 0%"`` (✗ when the top guess is wrong);
    with ``names`` (a data set's class names, by label) the classes by name."""
    return [
        f"{mark} {top[0][0]} · " + " ".join(f"{g} {p:.0%}" for g, p in top)
        for mark, top in _grid_guesses(record, names)
    ]


def grid_html(record: dict, images: list[np.ndarray], names: list[str] | None = None) -> str:
    """The test grid as HTML: each image with two caption lines that never wrap inside a label,
    "✓ 7 98%" (the prediction) and "1 1% · 2 0%" (the next guesses)."""
    tiles = []
    for image, (mark, top) in zip(images, _grid_guesses(record, names), strict=True):
        (first, p0), rest = top[0], top[1:]
        lines = [f"{mark} {first} {p0:.0%}", " · ".join(f"{g} {p:.0%}" for g, p in rest)]
        caption = "<br>".join(html.escape(line) for line in lines if line)
        alt = html.escape(f"{mark} {first}")
        tiles.append(
            '<figure style="display:inline-block;vertical-align:top;margin:0 10px 10px 0;'
            'min-width:84px;width:max-content">'
            f'<img src="{png_data_url(image)}" width="84" alt="{alt}" '
            'style="image-rendering:pixelated;display:block">'
            '<figcaption style="font-size:0.75rem;line-height:1.25;white-space:nowrap;'
            f'opacity:0.8">{caption}</figcaption></figure>'
        )
    return "<div>" + "".join(tiles) + "</div>"


GRID_SOURCES = {
    "test": "from the test set, used for nothing but this display (never to train or to choose)",
    "validation": "from the validation part (the data set has no test part)",
    "training": "from the training images (the data set has neither test nor validation part)",
}


def probe_images(record: dict) -> str:
    """Which images the probe batch is: "validation" (a record that does not say is one)."""
    return str(record.get("probe_images") or "validation")


def grid_caption(record: dict, count: int, per_class: int, digits: bool) -> str:
    """What the test grid shows: how many images, from which part of the data set (a record
    that does not say shows test images), how they are chosen and updated."""
    source = str((record.get("grid") or {}).get("images") or "test")
    where = GRID_SOURCES.get(source, f"from the {source} images")
    return (
        f"{count} fixed {source} {'digits' if digits else 'images'} ({per_class} of each class), "
        f"{where}; updated every epoch: the prediction and the top-3 probabilities. ✗ marks a "
        "wrong prediction."
    )


def grid_images(record: dict, scale: int = 2) -> list[np.ndarray]:
    """The test-grid digits as ``uint8`` images (28x28 for MNIST), enlarged ``scale`` times."""
    grid = record.get("grid")
    if not grid:
        return []
    pixels = decode_images(grid)
    if pixels.ndim != 4 or pixels.shape[1] == 1:  # inputs recorded as a row of values: no picture
        return []
    images = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    return [np.kron(im, np.ones((scale, scale), np.uint8)) if im.ndim == 2 else im for im in images]


def summary(record: dict) -> list[str]:
    """Plain sentences about what the last epoch shows (the lessons, when they apply)."""
    notes: list[str] = []
    if not record["epochs"]:
        return notes
    diverged = record.get("diverged")
    if diverged:
        notes.append(divergence_note(diverged))
    for i, layer in enumerate(record["layers"]):
        series = record["series"][i]
        spread = (series.get("weight_unit_spread") or [None])[-1]
        if layer["trained"] and layer["kind"] in ("dense", "conv2d") and spread is not None:
            last = i == len(record["layers"]) - 1
            if spread < 1e-7 and not last:
                notes.append(
                    f"Every unit of layer {layer['name']} is identical (spread 0): the symmetry "
                    "of the initial weights was never broken."
                )
        saturated = (series.get("saturated_fraction") or [None])[-1]
        if saturated is not None and saturated > 0.3:
            notes.append(f"Layer {layer['name']}: {saturated:.0%} of the outputs are saturated.")
        dead = (series.get("dead_fraction") or [None])[-1]
        if dead is not None and dead > 0.5:
            notes.append(f"Layer {layer['name']}: {dead:.0%} of the ReLU units never fire.")
    ratios = [
        (record["series"][i].get("update_ratio") or [None])[-1]
        for i in layers_with(record, "update_ratio")
    ]
    ratios = [r for r in ratios if r is not None]
    at_divergence = bool(diverged) and record["epochs"][-1] == diverged.get("at")
    if ratios and max(ratios) > 1e-2 and at_divergence:
        notes.append(
            f"By the divergence the weights had moved by {max(ratios):.0%} of their size since "
            "the start of the epoch: the learning rate is too high."
        )
    elif ratios and max(ratios) > 1e-2:
        notes.append(
            f"The largest update is {max(ratios):.1%} of the weights in one step (healthy is "
            "about 0.1%): the learning rate is too high."
        )
    norms = [
        (record["series"][i].get("grad_norm") or [None])[-1]
        for i, layer in enumerate(record["layers"])
        if layer["kind"] in ("dense", "conv2d")
    ]
    norms = [n for n in norms if n is not None]
    if len(norms) >= 3 and norms[-1] > 0 and norms[0] < 0.1 * norms[-1]:
        notes.append(
            f"The first layer's gradient is {norms[0] / norms[-1]:.1%} of the last layer's: "
            "the gradients vanish on their way to the input."
        )
    return notes


def divergence_note(diverged: dict) -> str:
    """What the point taken at a divergence stop shows."""
    loss = diverged.get("loss")
    how = "became infinite or NaN" if loss is None else f"reached {loss:.3g}"
    rate = diverged.get("learning_rate")
    at_rate = "" if rate is None else f" at learning rate {rate:.3g}"
    return (
        f"Training diverged in epoch {diverged['epoch']}, batch {diverged['batch']} of "
        f"{diverged['n_batches']}: the loss {how}{at_rate}. The last point (epoch "
        f"{diverged['at']:g}, the red dashed line) shows the layers as they were then: look at "
        "the gradient norm and the update ratio shooting up and the weights spreading out. The "
        "model kept its last good weights."
    )


def describe(value: Any) -> str:
    return "—" if value is None else f"{value:.3g}"
