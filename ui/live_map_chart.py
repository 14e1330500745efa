"""The Inside page's live layer map: the frames of ``nn.core.live_map`` as one Plotly figure
with an epoch slider and a play button (the animation runs in the browser), every frame on the
same axes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from nn.core.live_map import decode_frames
from ui.map_chart import class_colors

FRAME_MS = 700
LESSON = (
    "The same test images (50 of each digit) at the last hidden layer, every epoch, all frames "
    "on ONE pair of axes: the two principal directions of the newest epoch's outputs, so "
    "positions can be compared across epochs. Press ▶ to watch the clusters form; crosses are "
    "images the network got wrong at that epoch. The map costs a few tens of milliseconds an "
    "epoch (bench/live_map_cost.py)."
)


def _frame_traces(
    points: np.ndarray, predicted: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> list[go.Scatter]:
    colors = class_colors(len(names))
    traces = []
    for k, name in enumerate(names):
        mine = labels == k
        wrong = predicted[mine] != k
        traces.append(
            go.Scatter(
                x=points[mine, 0],
                y=points[mine, 1],
                mode="markers",
                name=str(name),
                marker={
                    "color": colors[k],
                    "size": np.where(wrong, 9, 6).tolist(),
                    "symbol": np.where(wrong, "x", "circle").tolist(),
                    "opacity": 0.8,
                },
                hovertemplate=f"true {name}<extra></extra>",
                legendgroup=str(name),
                showlegend=False,
            )
        )
    return traces


def _legend(names: Sequence[str]) -> list[go.Scatter]:
    """One legend entry per class, a dot whatever the first point's mark (traces of no point,
    after the ones the frames animate)."""
    colors = class_colors(len(names))
    return [
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=str(name),
            legendgroup=str(name),
            marker={"color": colors[k], "size": 8},
        )
        for k, name in enumerate(names)
    ]


def live_map_figure(record: dict, names: Sequence[str] | None = None, *, height: int = 560):
    """The recorded frames (``record["map"]`` and ``record["map_frames"]``), the last one shown,
    a slider over the epochs and a play button."""
    start, frames = record["map"], record["map_frames"]
    labels = np.asarray(start["labels"])
    points, predicted = decode_frames(frames, len(labels))
    epochs = frames["epochs"]
    n_classes = len(record.get("classes") or []) or int(labels.max()) + 1
    names = [str(c) for c in (names or record.get("classes") or range(n_classes))]
    low, high = points.reshape(-1, 2).min(axis=0), points.reshape(-1, 2).max(axis=0)
    pad = (high - low) * 0.05 + 1e-6
    last = len(epochs) - 1
    fig = go.Figure(
        data=_frame_traces(points[last], predicted[last], labels, names) + _legend(names),
        frames=[
            go.Frame(
                data=_frame_traces(points[e], predicted[e], labels, names), name=f"epoch {ep:g}"
            )
            for e, ep in enumerate(epochs)
        ],
    )
    slider_steps = [
        {
            "label": f"{ep:g}",
            "method": "animate",
            "args": [
                [f"epoch {ep:g}"],
                {"mode": "immediate", "frame": {"duration": 0, "redraw": True}},
            ],
        }
        for ep in epochs
    ]
    play = {
        "label": "▶ play",
        "method": "animate",
        "args": [
            None,
            {
                "frame": {"duration": FRAME_MS, "redraw": True},
                "transition": {"duration": FRAME_MS // 2},
                "fromcurrent": False,
            },
        ],
    }
    pause = {
        "label": "❚❚",
        "method": "animate",
        "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}],
    }
    explained = frames.get("explained") or [0, 0]
    fig.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 40, "b": 20},
        xaxis={"range": [low[0] - pad[0], high[0] + pad[0]], "title": f"PC 1 ({explained[0]:.0%})"},
        yaxis={"range": [low[1] - pad[1], high[1] + pad[1]], "title": f"PC 2 ({explained[1]:.0%})"},
        title=f"Layer {start['layer_name']}, epochs {epochs[0]:g} to {epochs[-1]:g}",
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.08,
                "xanchor": "left",
                "yanchor": "top",
                "buttons": [play, pause],
            }
        ],
        sliders=[
            {
                "active": last,
                "currentvalue": {"prefix": "epoch "},
                "pad": {"t": 40},
                "x": 0.15,
                "len": 0.85,
                "steps": slider_steps,
            }
        ],
        legend={"title": {"text": "true"}},
    )
    return fig
