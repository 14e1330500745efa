"""The Draw page's look inside: feature maps of a CNN and attribution maps of any model, as
images (one PNG each, quick to send and to draw).

- ``feature_maps(model, x)``: ``(title, picture)`` per conv and pooling layer for one input, every
  channel a tile normalised to its own range (a conv layer shows its output after the
  activation that follows it, if one does).
- ``attribution_picture(values, x)``: a map over the input as red (for the class) and blue
  (against it) over the faint digit.
- ``activation_strips(activations)``: a dense network's hidden layers for one input, one strip
  picture per layer, a unit per cell (dark: low, bright: high).
- ``feature_maps_html``, ``activations_html``, ``attribution_html``: those pictures as the Draw
  page's HTML blocks (``ui.drawing.figure_html``).
- ``cached_attribution(...)``: the attribution of the chosen method, computed once per drawing,
  model and method (kept in session state).
"""

from __future__ import annotations

import hashlib
import html
import math
from typing import Any

import numpy as np
import streamlit as st

from nn.core.attributions import attribution
from nn.core.layers import ActivationLayer
from nn.core.network import predicting
from nn.core.probe import forward, image_shape, release
from ui.drawing import figure_html, section_html

METHOD_LABELS = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated gradients",
    "occlusion": "Occlusion",
}
BASELINE_LABELS = {"black": "black (no ink)", "blurred": "the drawing blurred"}
METHOD_HELP = {
    "saliency": (
        "The gradient of the predicted digit's score with respect to each pixel: where a "
        "little more ink would raise the score (red) or lower it (blue)."
    ),
    "integrated_gradients": (
        "The gradient summed along the way from a baseline image to the drawing, times the "
        "change of each pixel: the pixels' shares of the score (they add up to the score "
        "minus the baseline's)."
    ),
    "occlusion": (
        "How much the predicted digit's probability drops when a 6x6 patch over each pixel "
        "is blacked out: red where hiding the drawing hurts the prediction."
    ),
}
PAGE_OPTIONS = {
    "saliency": {},
    "integrated_gradients": {"steps": 16},
    "occlusion": {"patch": 6, "stride": 4},
}
"""Settings that keep a CNN's page update near 100 ms (bench/draw_page.py): 16 steps sum up to
within a few percent of the score difference; 49 overlapping patches cover 28x28."""
_CACHE_KEY = "draw_attribution_cache"
_CACHE_SIZE = 8
IMAGE_KINDS = frozenset({"conv2d", "maxpool", "avgpool"})
FEATURE_MAPS_CAPTION = (
    "What every convolution and pooling layer makes of this drawing: one small image "
    "per filter (bright: strong response), each scaled to its own range."
)
# viridis at 0, 1/8, ..., 1: dark blue (low) to yellow (high), as the Plotly heatmaps elsewhere
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
STRIP_UNITS = 64  # units per row of an activation strip; a wider layer wraps
STRIP_CELL = 8  # pixels per unit on the page
ATTRIBUTION_SCALE = 6  # the attribution map is shown at 6x its 28x28


def is_cnn(model: Any) -> bool:
    return any(layer.kind in IMAGE_KINDS for layer in model.layers_)


def _tile(maps: np.ndarray, scale: int) -> np.ndarray:
    """``(h, w, c)`` maps as one grey picture, channel per tile, each normalised to [0, 255]."""
    h, w, c = maps.shape
    cols = min(c, max(1, math.ceil(math.sqrt(c * 1.5))))
    rows = math.ceil(c / cols)
    m = maps.astype(np.float64)
    lo, hi = m.min(axis=(0, 1)), m.max(axis=(0, 1))
    span = np.where(hi > lo, hi - lo, 1.0)
    tiles = ((m - lo) / span * 255).astype(np.uint8).transpose(2, 0, 1)  # (c, h, w)
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    pad = 1
    cells = np.full((rows * cols, h * scale + pad, w * scale + pad), 60, np.uint8)
    cells[:c, : h * scale, : w * scale] = tiles
    picture = cells.reshape(rows, cols, h * scale + pad, w * scale + pad).transpose(0, 2, 1, 3)
    picture = picture.reshape(rows * (h * scale + pad), cols * (w * scale + pad))
    return np.ascontiguousarray(picture[:-pad, :-pad])


def layer_pictures(
    model: Any, x: np.ndarray
) -> tuple[np.ndarray, list[tuple[str, np.ndarray, int]]]:
    """``(logits, feature maps)`` of one float input from one forward pass: per conv and pooling
    layer ``(title, picture, scale)``, a picture of one pixel per activation, to be shown
    ``scale`` times larger (the browser enlarges it: fewer bytes to encode and send)."""
    layers = model.layers_
    outputs: list[np.ndarray] = []
    with predicting(model):
        logits = forward(
            layers,
            np.asarray(x, layers[0].dtype).reshape(1, -1),
            keep=False,
            on_output=lambda i, layer, a: outputs.append(np.array(a[0])),
        )
        logits = np.array(logits[0], np.float64)
        release(layers)
    pictures = []
    for i, layer in enumerate(layers):
        if layer.kind not in IMAGE_KINDS:
            continue
        title, maps = f"{i} {layer.kind}", outputs[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if layer.kind == "conv2d" and isinstance(nxt, ActivationLayer):
            title, maps = f"{i} conv2d + {nxt.kind}", outputs[i + 1]
        h, w, c = maps.shape
        scale = max(1, min(4, 56 // max(h, w)))
        pictures.append((f"{title}: {c} maps of {h}x{w}", _tile(maps, 1), scale))
    return logits, pictures


def attribution_picture(values: np.ndarray, x: np.ndarray, scale: int = 1) -> np.ndarray:
    """RGB picture: the digit in faint grey, red where ``values`` > 0 and blue where < 0, each
    scaled by the largest absolute value."""
    h, w, _ = image_shape(np.shape(x) if np.ndim(x) == 3 else (np.size(x),))
    a = np.asarray(values, np.float64).reshape(h, w, -1).sum(axis=2)
    peak = np.abs(a).max()
    a = a / peak if peak > 0 else a
    grey = np.asarray(x, np.float64).reshape(h, w, -1).mean(axis=2) * 0.35
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    pos, neg = np.clip(a, 0, 1), np.clip(-a, 0, 1)
    rgb[:, :, 0] += pos
    rgb[:, :, 1] += 0.25 * pos + 0.45 * neg
    rgb[:, :, 2] += neg
    rgb = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return np.kron(rgb, np.ones((scale, scale, 1), np.uint8))


def cached_attribution(
    model: Any, model_key: str, x: np.ndarray, target: int, method: str, baseline: str
) -> np.ndarray:
    """The attribution map of ``method``, computed once per (model, drawing, target, method,
    baseline); the newest few are kept in session state."""
    digest = hashlib.sha1(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()
    key = (
        model_key,
        digest,
        int(target),
        method,
        baseline if method == "integrated_gradients" else "",
    )
    cache: dict = st.session_state.setdefault(_CACHE_KEY, {})
    if key not in cache:
        cache[key] = attribution(model, x, int(target), method, baseline, **PAGE_OPTIONS[method])
        while len(cache) > _CACHE_SIZE:
            cache.pop(next(iter(cache)))
    return cache[key]


def _viridis(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as viridis RGB (uint8), linear between the table's nine colours."""
    pos = np.clip(t, 0.0, 1.0) * (len(_VIRIDIS) - 1)
    lo = np.minimum(pos.astype(int), len(_VIRIDIS) - 2)
    frac = (pos - lo)[..., None]
    return (_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).round().astype(np.uint8)


def activation_strips(activations: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """``(title, picture)`` per hidden layer: every unit's activation as a pixel of a strip
    (``STRIP_UNITS`` a row, shown ``STRIP_CELL`` times larger), coloured in the layer's own
    range; unused cells are white."""
    strips = []
    for i, a in enumerate(activations, start=1):
        a = np.asarray(a, np.float64).ravel()
        lo, hi = float(a.min()), float(a.max())
        width = min(a.size, STRIP_UNITS)
        rows = math.ceil(a.size / width)
        cells = np.full((rows * width, 3), 255, np.uint8)
        cells[: a.size] = _viridis((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a))
        picture = cells.reshape(rows, width, 3)
        strips.append((f"hidden layer {i} ({a.size} units, min {lo:.2f}, max {hi:.2f})", picture))
    return strips


def feature_maps_html(pictures: list[tuple[str, np.ndarray, int]]) -> str:
    """The feature-map pictures of ``layer_pictures``, one captioned grid per layer."""
    figures = "".join(figure_html(p, title, p.shape[1] * scale) for title, p, scale in pictures)
    return section_html("Feature maps", FEATURE_MAPS_CAPTION, f"<div>{figures}</div>")


def activations_html(activations: list[np.ndarray]) -> str:
    """A dense network's hidden-layer activations as strips, or why there are none."""
    if not activations:
        return (
            "<p>This model has no hidden layers (softmax regression): no activations to show.</p>"
        )
    return section_html(
        "Hidden-layer activations for this drawing",
        "Every unit of each hidden layer for this drawing, one cell per unit (dark: low, "
        "bright: high, in the layer's own range).",
        "".join(
            f"<div>{figure_html(strip, title, strip.shape[1] * STRIP_CELL)}</div>"
            for title, strip in activation_strips(activations)
        ),
    )


def attribution_html(values: np.ndarray, x: np.ndarray, method: str, label: Any) -> str:
    """The attribution map of the predicted ``label`` with its caption, and beside it what the
    method measures, under the heading "Which pixels made it a ..."."""
    small = attribution_picture(values, x)
    caption = f"{METHOD_LABELS[method]} for {label}"
    picture = figure_html(small, caption, small.shape[1] * ATTRIBUTION_SCALE)
    text = METHOD_HELP[method] + " Red pixels speak for the predicted digit, blue ones against it."
    return (
        f"<h3>Which pixels made it a {html.escape(str(label))}</h3>"
        '<div style="display:flex;gap:1rem;align-items:flex-start;flex-wrap:wrap">'
        f'{picture}<p style="font-size:0.875rem;opacity:0.65;max-width:32rem">'
        f"{html.escape(text)}</p></div>"
    )
