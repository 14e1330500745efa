"""What the How it computes page (``pages/maths.py``) draws from the numbers of
``nn.core.maths``: pictures as inline PNGs, formulas with the numbers written in, small HTML
tables, the activation's curve and a feature map to click on. Nothing here computes the network:
every number comes from the engine.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from nn.core.maths import relative_error
from ui.draw_inside import attribution_picture
from ui.drawing import CAPTION_STYLE, figure_html, png_data_url

PICTURE_PX = 140
_FORMULAS = {
    "relu": "a = max(0, z)",
    "leaky_relu": "a = z if z > 0, else {slope}·z",
    "sigmoid": "a = 1 / (1 + e^(−z))",
    "tanh": "a = (e^z − e^(−z)) / (e^z + e^(−z))",
    "softmax": "a = p = e^z / Σ e^z over the ten outputs",
    "identity": "a = z (no activation follows)",
}
TABLE_STYLE = "border-collapse:collapse;font-size:0.85rem;font-variant-numeric:tabular-nums"
CELL = "padding:2px 8px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:right"


def num(value: float | None, digits: int = 4) -> str:
    """A number for a formula: ``digits`` significant digits, a true minus sign."""
    if value is None:
        return "–"
    if value == 0:
        value = 0.0  # no "−0"
    text = f"{value:.{digits}g}"
    return text.replace("-", "−")


def explanation(text: str) -> str:
    """A short explanation beside a step, in the page's caption style."""
    return f'<p style="{CAPTION_STYLE}">{html.escape(text)}</p>'


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], bold_row: int = -1) -> str:
    """A small table of numbers (strings are shown as they are)."""
    head = "".join(f'<th style="{CELL}">{html.escape(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        weight = "font-weight:700;" if i == bold_row else ""
        cells = "".join(
            f'<td style="{CELL}{weight}">'
            f"{html.escape(num(v) if isinstance(v, float) else str(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="{TABLE_STYLE}"><tr>{head}</tr>{"".join(body)}</table>'


# ------------------------------------------------------------------------------ pictures
def grey_picture(values: np.ndarray, px: int = PICTURE_PX) -> np.ndarray:
    """A 2-D array as grey pixels (its own range), enlarged to about ``px`` pixels."""
    a = np.asarray(values, np.float64)
    lo, hi = float(a.min()), float(a.max())
    scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    picture = (scaled * 255).round().astype(np.uint8)
    k = max(1, px // max(a.shape))
    return np.kron(picture, np.ones((k, k), np.uint8))


def signed_picture(values: np.ndarray, px: int = PICTURE_PX, under: np.ndarray | None = None):
    """A 2-D array of signed values as red (> 0) and blue (< 0), scaled by the largest size;
    ``under`` (an image of the same shape) shows faintly beneath."""
    a = np.asarray(values, np.float64)
    base = np.zeros(a.shape) if under is None else np.asarray(under, np.float64)
    k = max(1, px // max(a.shape))
    return attribution_picture(a[..., None], base[..., None], scale=k)


def pictures_html(figures: Sequence[tuple[np.ndarray, str]]) -> str:
    """Pictures side by side, each with its caption."""
    return "<div>" + "".join(figure_html(p, c) for p, c in figures) + "</div>"


def _image_shape(shape: Sequence[int]) -> tuple[int, int] | None:
    """The (rows, columns) a unit's inputs make, when they make a picture."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1])
    return (28, 28) if int(shape[0]) == 784 else None  # the first dense layer reads the digit


def unit_pictures(numbers: dict[str, Any]) -> list[tuple[np.ndarray, str]]:
    """The unit's inputs, weights, their products and (when there are weights to train) dL/dw
    as pictures, summed over channels, when the inputs are an image (the first dense layer, a
    convolution's patch, a pooling window)."""
    rows_cols = _image_shape(numbers["input_shape"])
    if rows_cols is None:
        return []
    shape = (*rows_cols, -1)
    x = np.asarray(numbers["inputs"]).reshape(shape)
    w = np.asarray(numbers["weights"]).reshape(shape)
    channels = x.shape[2]
    summed = f" (summed over {channels} channels)" if channels > 1 else ""
    figures = [
        (grey_picture(x.sum(axis=2)), f"inputs x{summed}"),
        (signed_picture(w.sum(axis=2)), f"weights w{summed}: red > 0, blue < 0"),
        (signed_picture((x * w).sum(axis=2), under=x.mean(axis=2)), "w·x: what each adds to z"),
    ]
    if numbers.get("grad_weights") is not None:
        g = np.asarray(numbers["grad_weights"]).reshape(shape).sum(axis=2)
        figures.append((signed_picture(g), "dL/dw: where the loss pulls each weight"))
    return figures


def picture_of_input(x: np.ndarray, px: int = 112) -> str:
    """The 28x28 input as an ``<img>``."""
    picture = grey_picture(np.asarray(x).reshape(28, 28), px)
    return f'<img src="{png_data_url(picture)}" width="{px}" style="image-rendering:pixelated">'


# ------------------------------------------------------------------------------ formulas
def contributions(numbers: dict[str, Any], top: int = 8) -> list[tuple[int, float, float, float]]:
    """``(index, x, w, w·x)`` of the ``top`` largest contributions to z, largest size first."""
    x, w = np.asarray(numbers["inputs"]), np.asarray(numbers["weights"])
    products = x * w
    order = np.argsort(-np.abs(products), kind="stable")[:top]
    return [(int(i), float(x[i]), float(w[i]), float(products[i])) for i in order]


def z_formula(numbers: dict[str, Any], terms: int = 4) -> str:
    """``z = Σ w·x + b`` with the largest terms written in and the rest summed."""
    best = contributions(numbers, terms)
    written = " + ".join(f"({num(w, 3)}·{num(x, 3)})" for _, x, w, _ in best)
    rest = float(np.dot(numbers["inputs"], numbers["weights"])) - sum(p for *_, p in best)
    others = len(numbers["inputs"]) - len(best)
    more = f" + [{others} more terms: {num(rest, 3)}]" if others > 0 else ""
    return f"z = Σ w·x + b = {written}{more} + {num(numbers['bias'])} = <b>{num(numbers['z'])}</b>"


def pool_text(numbers: dict[str, Any]) -> str:
    """The pooling window's values and the result: the largest (max) or the mean (avg)."""
    values = numbers["inputs"]
    won = int(np.argmax(numbers["weights"]))
    shown = ", ".join(
        f"<b>{num(v, 3)}</b>" if i == won and max(numbers["weights"]) == 1 else num(v, 3)
        for i, v in enumerate(values)
    )
    rule = "the largest" if max(numbers["weights"]) == 1 else "their mean"
    return f"window [{shown}] → z = {rule} = <b>{num(numbers['z'])}</b>"


def batchnorm_formula(numbers: dict[str, Any]) -> str:
    """``(x − mean) / sqrt(var + eps) · gamma + beta`` with the unit's numbers."""
    return (
        f"x̂ = (x − mean) / √(var + ε) = ({num(numbers['x'])} − {num(numbers['running_mean'])}) "
        f"/ √({num(numbers['running_var'])} + {num(numbers['epsilon'], 2)}) = "
        f"{num(numbers['inputs'][0])}<br>z = x̂ · γ + β = {num(numbers['inputs'][0])} · "
        f"{num(numbers['weights'][0])} + {num(numbers['bias'])} = <b>{num(numbers['z'])}</b>"
    )


def activation_text(numbers: dict[str, Any]) -> str:
    """The activation's formula and its value at this z (through the batch norm or dropout
    between them, when there is one)."""
    name = numbers["activation"]
    formula = _FORMULAS.get(name, name).format(slope=numbers.get("activation_slope"))
    between = [k for k in numbers.get("between") or [] if k != "dropout"]
    if not between:
        return f"{html.escape(formula)}: a = <b>{num(numbers['a'])}</b>"
    first = " then ".join(between)
    return (
        f"{html.escape(first)} first turns z = {num(numbers['z'])} into "
        f"{num(numbers['activation_input'])}; then {html.escape(formula)} with that as z: "
        f"a = <b>{num(numbers['a'])}</b>"
    )


def _activation_values(name: str, z: np.ndarray, slope: float | None) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, (slope or 0.0) * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    return z


def activation_svg(numbers: dict[str, Any], width: int = 380, height: int = 170) -> str:
    """The activation's curve with this unit's (z, a) marked, as an SVG picture; "" for
    softmax."""
    name = numbers["activation"]
    if name == "softmax":
        return ""
    z0, a0 = numbers["activation_input"], numbers["a"]
    reach = max(3.0, abs(z0) * 1.3)
    z = np.linspace(-reach, reach, 121)
    a = _activation_values(name, z, numbers.get("activation_slope"))
    low, high = min(float(a.min()), a0, 0.0), max(float(a.max()), a0, 1e-9)
    pad = 0.08 * (high - low)
    low, high = low - pad, high + pad

    def point(zv: float, av: float) -> str:
        return f"{(zv + reach) / (2 * reach) * width:.1f},{(high - av) / (high - low) * height:.1f}"

    curve = " ".join(point(float(zv), float(av)) for zv, av in zip(z, a, strict=True))
    x_axis, y_axis = point(-reach, 0.0), point(0.0, high)
    mx, my = point(z0, a0).split(",")
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 18}">'
        f'<line x1="{x_axis.split(",")[0]}" y1="{x_axis.split(",")[1]}" x2="{width}" '
        f'y2="{x_axis.split(",")[1]}" stroke="#bbb"/>'
        f'<line x1="{y_axis.split(",")[0]}" y1="0" x2="{y_axis.split(",")[0]}" y2="{height}" '
        'stroke="#bbb"/>'
        f'<polyline points="{curve}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
        f'<circle cx="{mx}" cy="{my}" r="5" fill="#d62728"/>'
        f'<text x="4" y="{height + 14}" font-size="11" fill="gray">z from {num(-reach, 3)} to '
        f"{num(reach, 3)}; the red point: z = {num(z0, 4)}, a = {num(a0, 4)}</text></svg>"
    )
    # an <img> of the SVG: st.html's sanitiser drops inline <svg> elements
    url = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img src="{url}" width="{width}" alt="{html.escape(name)} curve, the unit marked">'


def feature_map_figure(
    values: Sequence[Sequence[float]], position: Sequence[int], title: str
) -> dict:
    """A feature map as a heatmap with the chosen position marked, as a Plotly figure dict;
    every cell is a point the page's click selects (``on_select``)."""
    h, w = len(values), len(values[0])
    rows, cols = np.divmod(np.arange(h * w), w)
    return {
        "data": [
            {
                "type": "heatmap",
                "z": values,
                "colorscale": "Viridis",
                "showscale": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "x": cols.tolist(),
                "y": rows.tolist(),
                "mode": "markers",
                "marker": {"size": max(4, 200 // max(h, w)), "opacity": 0.01, "symbol": "square"},
                "hovertemplate": "row %{y}, column %{x}<extra></extra>",
            },
            {
                "type": "scatter",
                "x": [int(position[1])],
                "y": [int(position[0])],
                "mode": "markers",
                "marker": {
                    "size": 12,
                    "color": "red",
                    "symbol": "square-open",
                    "line": {"width": 3},
                },
                "hoverinfo": "skip",
            },
        ],
        "layout": {
            "height": 260,
            "width": 280,
            "margin": {"l": 10, "r": 10, "t": 28, "b": 10},
            "showlegend": False,
            "title": {"text": title, "font": {"size": 13}},
            "clickmode": "event+select",
            "dragmode": False,
            "xaxis": {"range": [-0.5, w - 0.5], "constrain": "domain", "showgrid": False},
            "yaxis": {
                "range": [h - 0.5, -0.5],
                "scaleanchor": "x",
                "constrain": "domain",
                "showgrid": False,
            },
        },
    }


def softmax_html(table: dict[str, Any], classes: Sequence[Any]) -> str:
    """Logits, exponentials, their sum and the probabilities, the true class in bold."""
    t = table["temperature"]
    rows = [
        [str(c), z, e, p]
        for c, z, e, p in zip(classes, table["logits"], table["exps"], table["proba"], strict=True)
    ]
    header = ["class", "logit z", f"e^((z − {num(table['max_logit'], 3)}) / {num(t, 3)})", "p"]
    return (
        table_html(header, rows, bold_row=table["label"])
        + f"<p>Σ = {num(table['sum'])}; p = e^(…) / Σ. Loss = −log p[{classes[table['label']]}] "
        f"= <b>{num(table['loss'])}</b></p>"
    )


def chain_html(chain: Sequence[dict[str, Any]]) -> str:
    """The gradient on its way back (``Trace.gradient_chain``), a row per layer."""
    rows = [[r["layer"], r["kind"], r["norm"], r["largest"]] for r in chain]
    return table_html(["layer", "kind", "|dL/d output|", "largest |dL/d output|"], rows)


def output_gradient_html(gradient: dict[str, Any], classes: Sequence[Any], label: int) -> str:
    """dL/dlogits = p − onehot (``Trace.output_gradient``), a row per class."""
    rows = [
        [str(c), p, int(o), g]
        for c, p, o, g in zip(
            classes, gradient["proba"], gradient["onehot"], gradient["delta"], strict=True
        )
    ]
    return table_html(["class", "p", "onehot", "dL/dz = p − onehot"], rows, bold_row=label)


def check_html(check: dict[str, Any]) -> str:
    """The gradient check's table and its verdict."""
    rows = [
        [r["index"], r["backprop"], r["numeric"], _rel(r["backprop"], r["numeric"])]
        for r in check["numeric_grad"]
    ]
    worst = check["max_rel_error"]
    if worst is None:
        verdict = "Nothing to check."
    elif worst < 1e-6:
        verdict = f"Largest relative error {worst:.1e}: backpropagation is right."
    else:
        verdict = (
            f"Largest relative error {worst:.1e}: above 1e-6, usually a kink (ReLU at 0, a tie "
            "in max pooling) within the step h."
        )
    what = "input" if check["checks"] == "inputs" else "weight"
    return table_html([what, "backprop", "numeric", "relative error"], rows) + (
        f"<p><b>{html.escape(verdict)}</b></p>"
    )


def _rel(b: float, n: float) -> str:
    return f"{relative_error(b, n):.1e}"
