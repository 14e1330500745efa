"""The layer map's scatter: a Components v2 element drawing the points as SVG, each coloured by
its true class, mistakes as crosses. Hovering a point shows its image (cut from one sprite
picture of every image, as TensorBoard's projector does), its true and predicted class and the
confidence; clicking it sends the point's test index back to the page (``picked``).

The images travel once per map as one PNG sprite (28x28 tiles: ~0.4 MB for 2,000 MNIST
digits), not one picture per point.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from ui.gallery import as_images

COMPONENT_NAME = "nn_dashboard.layer_map"
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
TOOLTIP_SIDE = 84
"""Pixels of the image shown on hover (a 28x28 digit three times over)."""

HTML = '<div class="layer-map"></div>'
CSS = """
.layer-map { position: relative; font: 13px sans-serif; color: var(--st-text-color, #222); }
.layer-map .legend { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 4px 0; }
.layer-map .legend span { display: inline-flex; align-items: center; gap: 4px; }
.layer-map .legend i { width: 10px; height: 10px; border-radius: 50%; display: inline-block; }
.layer-map svg { width: 100%; height: auto; border: 1px solid #ddd; border-radius: 4px;
  background: var(--st-background-color, #fff); cursor: crosshair; }
.layer-map svg .pt:hover { stroke: #000; stroke-width: 2px; }
.layer-map .tip { position: absolute; pointer-events: none; display: none; z-index: 10;
  background: #fff; color: #111; border: 1px solid #888; border-radius: 4px; padding: 6px;
  box-shadow: 0 2px 6px rgba(0,0,0,.25); white-space: nowrap; }
.layer-map .tip .img { image-rendering: pixelated; border: 1px solid #ccc; margin-bottom: 4px; }
"""
JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".layer-map");
  root.innerHTML = "";
  const W = data.width, H = data.height, M = 12;
  const legend = document.createElement("div");
  legend.className = "legend";
  data.names.forEach((name, k) => {
    const s = document.createElement("span");
    s.innerHTML = `<i style="background:${data.colors[k]}"></i>${name}`;
    legend.appendChild(s);
  });
  const cross = document.createElement("span");
  cross.textContent = "\u2715 a mistake (coloured by its true class)";
  legend.appendChild(cross);
  root.appendChild(legend);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("data-testid", "layer-map-svg");
  const px = (v) => M + v * (W - 2 * M), py = (v) => H - M - v * (H - 2 * M);
  const order = [...data.x.keys()].sort((a, b) => data.wrong[a] - data.wrong[b]);
  for (const i of order) {
    const x = px(data.x[i]), y = py(data.y[i]), color = data.colors[data.label[i]];
    let mark;
    if (data.wrong[i]) {
      mark = document.createElementNS(NS, "path");
      const r = 4.5;
      const a = `M${x - r},${y - r}L${x + r},${y + r}`, b = `M${x - r},${y + r}L${x + r},${y - r}`;
      mark.setAttribute("d", a + b);
      mark.setAttribute("stroke", color);
      mark.setAttribute("stroke-width", "2.5");
    } else {
      mark = document.createElementNS(NS, "circle");
      mark.setAttribute("cx", x); mark.setAttribute("cy", y); mark.setAttribute("r", 3);
      mark.setAttribute("fill", color); mark.setAttribute("fill-opacity", "0.75");
    }
    mark.setAttribute("class", "pt");
    mark.setAttribute("data-i", i);
    mark.setAttribute("data-index", data.index[i]);
    svg.appendChild(mark);
  }
  root.appendChild(svg);
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("data-testid", "layer-map-tip");
  const img = document.createElement("div");
  img.className = "img";
  img.setAttribute("role", "img");
  const text = document.createElement("div");
  tip.appendChild(img); tip.appendChild(text);
  root.appendChild(tip);
  const [th, tw] = data.tile, scale = data.side / Math.max(th, tw);
  img.style.width = `${tw * scale}px`; img.style.height = `${th * scale}px`;
  img.style.backgroundImage = `url(${data.sprite})`;
  img.style.backgroundSize = `${data.cols * tw * scale}px auto`;
  const show = (event) => {
    const mark = event.target.closest(".pt");
    if (!mark) { tip.style.display = "none"; return; }
    const i = Number(mark.getAttribute("data-i"));
    const col = i % data.cols, row = Math.floor(i / data.cols);
    img.style.backgroundPosition = `${-col * tw * scale}px ${-row * th * scale}px`;
    img.setAttribute("aria-label", `test image #${data.index[i]}`);
    const right = data.label[i] === data.pred[i];
    text.innerHTML = `<b>#${data.index[i]}</b> ${right ? "right" : "<b>wrong</b>"}<br>` +
      `true ${data.names[data.label[i]]} \u2192 predicted ${data.names[data.pred[i]]}<br>` +
      `${Math.round(data.conf[i] * 100)}% sure`;
    const box = root.getBoundingClientRect();
    let left = event.clientX - box.left + 14, top = event.clientY - box.top + 14;
    if (left + 150 > box.width) left -= 180;
    tip.style.left = `${left}px`; tip.style.top = `${top}px`;
    tip.style.display = "block";
  };
  svg.addEventListener("mousemove", show);
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  svg.addEventListener("click", (event) => {
    const mark = event.target.closest(".pt");
    if (mark) setTriggerValue("picked", Number(mark.getAttribute("data-index")));
  });
}
"""


@functools.cache
def _component():
    return st.components.v2.component(COMPONENT_NAME, html=HTML, css=CSS, js=JS)


def class_colors(n: int) -> list[str]:
    """A colour per class: the ten of Plotly's/D3's category palette, then evenly spaced hues."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    return [f"hsl({round(360 * k / n)}, 65%, 45%)" for k in range(n)]


def sprite_png(images: np.ndarray, shape: Sequence[int] | None = None) -> tuple[str, int]:
    """Every image as a tile of one PNG (a data URL) and the number of tiles per row."""
    tiles = as_images(images, shape)
    if tiles.dtype != np.uint8:
        tiles = np.clip(np.rint(tiles * 255), 0, 255).astype(np.uint8)
    n, h, w = tiles.shape[:3]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    channels = tiles.shape[3] if tiles.ndim == 4 else 1
    sheet = np.zeros((rows * h, cols * w, channels), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tiles[i].reshape(h, w, channels)
    picture = Image.fromarray(sheet[:, :, 0] if channels == 1 else sheet)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), cols


def map_data(
    points: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    indices: np.ndarray,
    images: np.ndarray,
    names: Sequence[str],
    *,
    shape: Sequence[int] | None = None,
    width: int = 900,
    height: int = 520,
) -> dict[str, Any]:
    """What the element draws: the points scaled to the plot, one aspect ratio for both axes
    (distances on the map mean the same across and up), labels and predictions as class
    positions, the confidences, test indices and the sprite of the images."""
    points = np.asarray(points, np.float64)
    span = np.ptp(points, axis=0)
    span[span == 0] = 1.0
    box = np.array([width - 24, height - 24], np.float64)
    fit = float(np.min(box / span))  # one scale for x and y, centred in the plot
    used = span * fit / box
    centred = (points - points.min(axis=0)) / span * used + (1 - used) / 2
    sprite, cols = sprite_png(images, shape)
    tile = list(as_images(images[:1], shape).shape[1:3])
    return {
        "x": [round(float(v), 4) for v in centred[:, 0]],
        "y": [round(float(v), 4) for v in centred[:, 1]],
        "label": [int(v) for v in labels],
        "pred": [int(v) for v in predicted],
        "wrong": [int(a != b) for a, b in zip(labels, predicted, strict=True)],
        "conf": [round(float(c), 4) for c in confidence],
        "index": [int(i) for i in indices],
        "names": [str(n) for n in names],
        "colors": class_colors(len(names)),
        "sprite": sprite,
        "cols": cols,
        "tile": tile,
        "side": TOOLTIP_SIDE,
        "width": width,
        "height": height,
    }


def layer_map_chart(data: dict[str, Any], *, key: str) -> int | None:
    """Draw the map; returns the test index of a point just clicked, else ``None``."""
    result = _component()(data=data, key=key, on_picked_change=lambda: None)
    picked = result.get("picked")
    return None if picked is None else int(picked)
