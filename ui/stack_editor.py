"""The Train page's layer-stack editor: add, remove, reorder and set layers of every kind, with
each layer's output shape and parameter count beside it, from the engine's shape inference.

The stack lives in ``train_config`` as ``stack`` (the layer dicts ``NeuralNetwork(layers=...)``
takes, the output layer left out) and ``stack_ids`` (a stable id per row, so a row's widgets
keep their values when rows move). Widget keys are ``tf_stk_<id>_<setting>``.

``infer_shapes(stack, input_shape, n_classes)`` builds the stack as the engine does
(``nn.core.config.layer_rows``: shapes only, nothing allocated) and returns one :class:`Row`
per layer plus the output layer: its output shape, its parameter count, or the fault that stops
the stack there. Layers are numbered from 1, as the engine's messages number them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import streamlit as st

from nn.core.config import layer_rows
from nn.core.layer_spec import compact, parse_layers, to_line
from nn.core.layers import LAYERS
from nn.services import settings
from nn.services.presets import PRESETS

INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10
KIND_LABELS = {
    "conv2d": "convolution",
    "maxpool": "max pooling",
    "avgpool": "average pooling",
    "dense": "dense",
    "batchnorm": "batch norm",
    "dropout": "dropout",
    "flatten": "flatten",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "conv2d": {"filters": 32, "kernel": 3, "stride": 1, "padding": "same"},
    "maxpool": {"size": 2},
    "avgpool": {"size": 2},
    "dense": {"units": 128},
    "batchnorm": {},
    "dropout": {"rate": 0.25},
    "flatten": {},
    "relu": {},
    "leaky_relu": {"slope": 0.01},
    "sigmoid": {},
    "tanh": {},
}
"""What a new layer of each kind starts with."""
FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "conv2d": (
        ("filters", "Filters", "int"),
        ("kernel", "Kernel", "int"),
        ("stride", "Stride", "int"),
        ("padding", "Padding", "padding"),
    ),
    "maxpool": (("size", "Size", "int"), ("stride", "Stride", "int")),
    "avgpool": (("size", "Size", "int"), ("stride", "Stride", "int")),
    "dense": (("units", "Units", "int"),),
    "batchnorm": (("momentum", "Momentum", "float"),),
    "dropout": (("rate", "Rate", "float"),),
    "leaky_relu": (("slope", "Slope", "float"),),
}
"""The settings each kind shows: (setting, label, widget)."""
assert set(DEFAULTS) == set(LAYERS), "every layer kind has defaults"


@dataclass
class Row:
    """One layer of the stack as the engine sees it: output shape and parameters, or fault."""

    index: int  # -1 for the output layer
    kind: str
    output_shape: tuple[int, ...] | None
    n_parameters: int
    fault: str | None = None
    note: str | None = None  # allowed, but likely not meant (a kernel larger than its input)

    @property
    def shape_text(self) -> str:
        return "?" if self.output_shape is None else "x".join(map(str, self.output_shape))


def infer_shapes(
    stack: list[dict], input_shape: tuple[int, ...] = INPUT_SHAPE, n_classes: int = N_CLASSES
) -> list[Row]:
    """A :class:`Row` per layer and one for the output dense layer, from the engine's own shape
    inference (``nn.core.config.layer_rows``); after a fault the rows that follow have no
    shape."""
    rows: list[Row] = []
    shape: tuple[int, ...] | None = tuple(input_shape)
    specs = [*stack, {"type": "dense", "units": int(n_classes)}]
    for index, (spec, row) in enumerate(zip(specs, layer_rows(specs, shape), strict=True)):
        note = _oversized_kernel(spec, shape) if shape and isinstance(spec, dict) else None
        out_index = -1 if index == len(stack) else index
        rows.append(
            Row(out_index, row.kind, row.output_shape, row.n_parameters, row.fault or None, note)
        )
        shape = row.output_shape
    return rows


def _oversized_kernel(spec: dict, in_shape: tuple[int, ...]) -> str | None:
    """A word on a convolution whose kernel is larger than its input: with padding ``same``
    it is accepted (the input is padded with zeros), but most of the kernel then reads zeros."""
    if spec.get("type") != "conv2d" or len(in_shape) != 3:
        return None
    kernel, (h, w) = int(spec.get("kernel", 3)), in_shape[:2]
    if kernel <= max(h, w):
        return None
    return (
        f"The {kernel}x{kernel} kernel is larger than its {h}x{w} input: with padding 'same' "
        f"the input is padded with zeros to fit, so most of the kernel reads zeros. A kernel "
        f"of 3 or 5 is usual."
    )


def shape_chain(rows: list[Row], input_shape: tuple[int, ...] = INPUT_SHAPE) -> str:
    """``28x28x1 -> 28x28x32 -> 14x14x32 -> ... -> 10`` over the layers that change the shape."""
    parts = ["x".join(map(str, input_shape))]
    for row in rows:
        text = row.shape_text
        if text != parts[-1]:
            parts.append(text)
    return " -> ".join(parts)


def faults(rows: list[Row]) -> list[str]:
    """Messages naming each faulty layer (one at most: the stack stops there)."""
    out = []
    for row in rows:
        if row.fault:
            where = "the output layer" if row.index < 0 else f"layer {row.index + 1} ({row.kind})"
            out.append(f"Stack: {where}: {row.fault}.")
    return out


# ------------------------------------------------------------------------------ state
def ensure_ids(cfg: dict) -> None:
    stack = cfg.setdefault("stack", [])
    ids = cfg.setdefault("stack_ids", [])
    if len(ids) != len(stack):
        ids[:] = list(range(len(stack)))
    cfg.setdefault("stack_next_id", max(ids, default=-1) + 1)


def set_stack(cfg: dict, stack: list[dict]) -> None:
    """Replace the stack (new row ids: the widgets start from the new values)."""
    start = int(cfg.get("stack_next_id", 0))
    cfg["stack"] = copy.deepcopy(list(stack))
    cfg["stack_ids"] = list(range(start, start + len(stack)))
    cfg["stack_next_id"] = start + len(stack)


def _config() -> dict:
    return st.session_state["train_config"]


def _move(position: int, step: int) -> None:
    cfg = _config()
    other = position + step
    if 0 <= other < len(cfg["stack"]):
        for key in ("stack", "stack_ids"):
            cfg[key][position], cfg[key][other] = cfg[key][other], cfg[key][position]


def _remove(position: int) -> None:
    cfg = _config()
    if 0 <= position < len(cfg["stack"]):
        del cfg["stack"][position]
        del cfg["stack_ids"][position]


def _add() -> None:
    cfg = _config()
    ensure_ids(cfg)
    kind = st.session_state.get("tf_stk_add_kind", "conv2d")
    cfg["stack"].append({"type": kind, **copy.deepcopy(DEFAULTS[kind])})
    cfg["stack_ids"].append(cfg["stack_next_id"])
    cfg["stack_next_id"] += 1


def _apply_text() -> None:
    cfg = _config()
    text = st.session_state.get("tf_stk_text", "")
    try:
        stack = parse_layers(text, files=False) if text.strip() else []
    except ValueError as exc:
        st.session_state["tf_stk_text_error"] = str(exc)
        return
    st.session_state.pop("tf_stk_text_error", None)
    set_stack(cfg, stack)


# ------------------------------------------------------------------------------ widgets
def _setting_widget(col, spec: dict, row_id: int, field: str, label: str, widget: str, disabled):
    key = f"tf_stk_{row_id}_{field}"
    value = spec.get(field, LAYERS[spec["type"]].settings.get(field))
    if field == "stride" and spec["type"] in ("maxpool", "avgpool") and value is None:
        value = spec.get("size", 2)
    if widget == "padding":
        options = ["valid", "same"]
        initial = {} if key in st.session_state else {"index": options.index(value or "valid")}
        return col.selectbox(label, options, key=key, disabled=disabled, **initial)
    if widget == "int":
        initial = {} if key in st.session_state else {"value": int(value)}
        return int(col.number_input(label, key=key, step=1, disabled=disabled, **initial))
    initial = {} if key in st.session_state else {"value": float(value)}
    return float(
        col.number_input(label, key=key, step=0.05, format="%.3f", disabled=disabled, **initial)
    )


def _sync(cfg: dict) -> None:
    """Take this run's widget values into the stack before shapes are inferred (a widget's new
    value is in session state before the widget is drawn again)."""
    for position, row_id in enumerate(cfg["stack_ids"]):
        spec = cfg["stack"][position]
        kind = st.session_state.get(f"tf_stk_{row_id}_type", spec["type"])
        if kind != spec["type"]:  # a new kind starts from its defaults
            spec = cfg["stack"][position] = {"type": kind, **copy.deepcopy(DEFAULTS[kind])}
            for field, _, _ in FIELDS.get(kind, ()):
                st.session_state.pop(f"tf_stk_{row_id}_{field}", None)
            continue
        for field, _, widget in FIELDS.get(kind, ()):
            key = f"tf_stk_{row_id}_{field}"
            if key in st.session_state:
                value = st.session_state[key]
                spec[field] = (
                    value
                    if widget == "padding"
                    else (int(value) if widget == "int" else float(value))
                )
        if kind in ("maxpool", "avgpool") and spec.get("stride") == spec.get("size"):
            spec.pop("stride", None)  # the default: stride = size


def _row(cfg: dict, position: int, row: Row, disabled: bool) -> None:
    spec, row_id = cfg["stack"][position], cfg["stack_ids"][position]
    kinds = list(LAYERS)
    with st.container(border=True, key=f"tf_stk_row_{position}"):
        head = st.columns([2.2, 2.2, 0.75, 0.75, 0.75], vertical_alignment="bottom", gap="small")
        type_key = f"tf_stk_{row_id}_type"
        initial = {} if type_key in st.session_state else {"index": kinds.index(spec["type"])}
        kind = head[0].selectbox(
            f"Layer {position + 1}",
            kinds,
            format_func=KIND_LABELS.get,
            key=type_key,
            disabled=disabled,
            **initial,
        )
        params = f", {row.n_parameters:,} parameters" if row.n_parameters else ""
        head[1].markdown(f"→ **{row.shape_text}**{params}")
        head[2].button(
            "",
            icon=":material/arrow_upward:",
            key=f"tf_stk_up_{position}",
            on_click=_move,
            args=(position, -1),
            disabled=disabled or position == 0,
            help="Move up",
        )
        head[3].button(
            "",
            icon=":material/arrow_downward:",
            key=f"tf_stk_down_{position}",
            on_click=_move,
            args=(position, 1),
            disabled=disabled or position == len(cfg["stack"]) - 1,
            help="Move down",
        )
        head[4].button(
            "",
            icon=":material/close:",
            key=f"tf_stk_remove_{position}",
            on_click=_remove,
            args=(position,),
            disabled=disabled,
            help="Remove this layer",
        )
        fields = FIELDS.get(kind, ())
        if fields:
            cols = st.columns(len(fields))
            for col, (field, label, widget) in zip(cols, fields, strict=True):
                _setting_widget(col, spec, row_id, field, label, widget, disabled)
        if row.fault:
            st.error(row.fault, icon=":material/error:")
        elif row.note:
            st.warning(row.note, icon=":material/warning:")


# The stacks the editor starts from besides the dense form's (the output layer is added).
LENET5 = [
    {"type": "conv2d", "filters": 6, "kernel": 5, "padding": "same"},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2},
    {"type": "conv2d", "filters": 16, "kernel": 5, "padding": "valid"},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2},
    {"type": "dense", "units": 120},
    {"type": "tanh"},
    {"type": "dense", "units": 84},
    {"type": "tanh"},
]
"""LeNet-5 (LeCun et al., 1998) on 28x28 images: its first convolution pads to keep 28x28, as
the original's 32x32 input gave it room."""


STARTING_LABELS = {
    "empty": "Empty",
    "lenet5": "LeNet-5",
    "cnn": "The cnn preset's",
    "dense": "The dense layers",
}
"""The editor's starting points, by key: the stack each gives is :func:`starting_stack`'s."""


def starting_stack(key: str, cfg: dict) -> list[dict]:
    """The stack of a starting point: an empty stack, LeNet-5, the ``cnn`` preset's, or the
    dense form's layers of ``cfg``."""
    if key == "lenet5":
        return copy.deepcopy(LENET5)
    if key == "cnn":
        return copy.deepcopy(PRESETS["cnn"].model_kwargs().get("layers") or [])
    if key == "dense":
        return settings.dense_stack(cfg)
    return []


def _start_from(key: str) -> None:
    cfg = _config()
    set_stack(cfg, starting_stack(key, cfg))


def _starting_buttons(disabled: bool) -> None:
    """One click replaces the stack by a starting point (the output layer is added)."""
    st.caption("Start from:")
    # two a row: four in a row cut "The cnn preset's" down to "The cnn…"
    cols = [col for _ in range(2) for col in st.columns(2)]
    for col, (key, label) in zip(cols, STARTING_LABELS.items(), strict=True):
        col.button(
            label,
            key=f"tf_stk_start_{key}",
            on_click=_start_from,
            args=(key,),
            disabled=disabled,
            width="stretch",
            help="Replace the stack by this one (the output layer is added).",
        )


def render(
    cfg: dict,
    disabled: bool,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
    n_classes: int = N_CLASSES,
) -> list[Row]:
    """The editor for images of ``input_shape`` in ``n_classes`` classes (the active data set's):
    a row per layer, the output layer, add, the one-line form; returns the rows of the stack as
    it stands after this run's edits."""
    ensure_ids(cfg)
    _sync(cfg)
    rows = infer_shapes(cfg["stack"], input_shape, n_classes)
    _starting_buttons(disabled)
    for position in range(len(cfg["stack"])):
        _row(cfg, position, rows[position], disabled)
    out = rows[-1]
    st.markdown(
        f"**Output**: dense {n_classes} + softmax → **{out.shape_text}**"
        + (f", {out.n_parameters:,} parameters" if out.n_parameters else "")
    )
    if out.fault:
        st.error(out.fault, icon=":material/error:")
    total = sum(r.n_parameters for r in rows)
    st.caption(
        f"Input {'x'.join(map(str, input_shape))}. {shape_chain(rows, input_shape)}. "
        f"{total:,} parameters in all. A dense layer reads "
        "an image as its flattened vector."
    )
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.selectbox(
        "Add a layer",
        list(LAYERS),
        format_func=KIND_LABELS.get,
        key="tf_stk_add_kind",
        disabled=disabled,
    )
    c2.button("Add", key="tf_stk_add", on_click=_add, disabled=disabled, icon=":material/add:")
    with st.expander("Write the stack in one line"):
        line = to_line(cfg["stack"])
        shown = st.session_state.get("tf_stk_text_shown")
        if st.session_state.get("tf_stk_text", shown) == shown:  # not edited: follow the rows
            st.session_state["tf_stk_text"] = st.session_state["tf_stk_text_shown"] = line
        st.text_input(
            "Layers",
            key="tf_stk_text",
            disabled=disabled,
            help="Comma-separated: conv32k3same, relu, pool2, dense128, dropout0.3, bn, flatten, "
            "tanh, sigmoid, lrelu0.1, avgpool2, conv16k5s2valid.",
        )
        st.button("Use this line", key="tf_stk_apply_text", on_click=_apply_text, disabled=disabled)
        error = st.session_state.get("tf_stk_text_error")
        if error:
            st.error(error, icon=":material/error:")
    st.caption(f"Compact: {compact([*cfg['stack'], {'type': 'dense', 'units': n_classes}])}")
    return rows
