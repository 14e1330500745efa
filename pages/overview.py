"""Overview (/): what the app is, how to use it, and the active data set (MNIST unless another
is chosen) at a glance."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import state
from ui.eval_charts import class_counts_figure
from ui.gallery import (
    GridTile,
    as_images,
    class_counts,
    labelled_grid,
    mean_images,
    sample_per_class,
    tile_images,
)
from ui.page_registry import PAGES, page_summary

MAX_SAMPLE_ROWS = 20  # classes shown in the sample grid (one row each)


@st.cache_resource(max_entries=4, show_spinner="Summarising the data set…")
def _dataset_summary(name: str, sha256: str):
    """Counts per class, a sample grid (15 per class) and the mean image of each class, computed
    once per set."""
    info = next(s for s in state.data_sets() if s.name == name)
    data = state.get_set_data(info)
    k, shape = info.n_classes, info.image_shape
    train_counts = class_counts(data.y_train, k)
    test_counts = class_counts(data.y_test, k)
    samples = sample_per_class(data.y_train, per_class=15, n_classes=min(k, MAX_SAMPLE_ROWS))
    scale = max(1, 56 // max(shape[:2]))
    sample_grid = tile_images(
        as_images(data.x_train[samples], shape),
        ncols=15,
        scale=scale,
        pad=2,
        background=(240, 242, 246),
    )
    means = mean_images(data.x_train, data.y_train, k, shape)
    peak = means.reshape(k, -1).max(axis=1).reshape((k,) + (1,) * (means.ndim - 1))
    means_scaled = means * (255.0 / np.maximum(peak, 1.0))
    mean_grid = labelled_grid(
        means_scaled,
        [GridTile((str(c),)) for c in info.class_names],
        ncols=min(k, 10),
        scale=max(1, 84 // max(shape[:2])),
        border=0,
        pad=4,
        font_size=16 if info.builtin else 12,
    )
    return train_counts, test_counts, sample_grid, mean_grid


def _model_sentence(name: str | None) -> str:
    """What the active model is: "The model that ships, **default**, is a convolutional
    network (C32k5-...), 99.61% right on the test images", or how to get one."""
    path = state.model_path_for(name) if name else None
    if path is None:
        return "No trained model yet: train one on the **Train** page (a minute for a dense one)."
    try:
        meta = state.get_model_metadata(path)
    except (OSError, ValueError):
        return f"The active model is **{name}**."
    stack = meta.get("stack") if (meta.get("params") or {}).get("layers") else None
    layers = state.layers_text((meta.get("architecture") or {}).get("layer_sizes"), stack)
    conv = any(isinstance(layer, dict) and layer.get("type") == "conv2d" for layer in stack or [])
    kind = "a convolutional network" if conv else "a dense network"
    acc = (meta.get("metrics") or {}).get("test_accuracy")
    right = f", {acc:.2%} right on the test images" if isinstance(acc, (int, float)) else ""
    which = "The model that ships" if name == state.DEFAULT_MODEL_NAME else "The active model"
    return (
        f"{which}, **{name}**, is {kind} (`{layers}`){right}: draw, browse its predictions and "
        "look inside it straight away, or train your own."
    )


state.init_state()
info = state.active_set()
noun = "digit" if info.builtin else "class"
active = state.active_model_name()
st.title("A neural network from scratch, on " + ("MNIST" if info.builtin else info.name))
if info.builtin:
    st.markdown(
        "This dashboard trains and explores neural networks written with nothing but **NumPy**: "
        "forward pass, backpropagation and optimisers by hand, for dense (fully connected) "
        "networks and for convolutional networks (CNNs) built layer by layer. They learn to "
        "read handwritten digits from **MNIST**, 70,000 small grey images of the digits 0-9. "
        + _model_sentence(active)
    )
else:
    colour = "grey" if info.greyscale else "colour"
    st.markdown(
        "This dashboard trains and explores neural networks written with nothing but "
        "**NumPy**: forward pass, backpropagation and optimisers by hand, dense or "
        "convolutional. It learns to tell apart the images of the data set "
        f"**{info.name}**: {info.n_train + info.n_test:,} {info.shape_text} {colour} images of "
        f"{info.n_classes} classes. The bundled MNIST (handwritten digits) stays one choice "
        "away in the sidebar. " + _model_sentence(active)
    )
if info.builtin:
    draw_text = "Draw a digit with the mouse and see what the network thinks, stroke by stroke."
elif info.image_shape == (28, 28, 1):
    draw_text = "Draw with the mouse and see which class the network thinks it is."
else:
    draw_text = "For 28x28 greyscale sets, as MNIST: choose one in the sidebar to draw."

# what each page is for, by URL path; a page without a text here is described by its docstring
GUIDE = {
    "train": "Pick a preset or build your own network, dense or convolutional; watch the loss "
    "fall live.",
    "draw": draw_text,
    "inside": "What every layer does over the epochs: weights, activations, gradients, live "
    "while a model trains.",
    "maths": "The arithmetic of one unit on one example, forward and backward, and a "
    "gradient checked by hand.",
    "map": "Each layer's outputs for test images laid out in 2-D: watch the classes separate "
    "layer by layer.",
    "predictions": f"Browse the {info.n_test:,} test images: right ones in green, mistakes in "
    "red; click one for its probabilities.",
    "evaluate": f"Accuracy, per-{noun} scores, the confusion matrix, the training curves.",
    "models": "Save, load, compare, upload and download trained networks.",
    "data": "Add a data set of your own (a folder or an upload) beside MNIST.",
    "runs": "Every training recorded: compare the curves of several, load one's settings back.",
    "tune": "Search learning rates, layers and more in the background; train the best.",
    "mine": "The digits you kept on Draw: how every model reads them, and fine-tuning on them.",
}
st.subheader("How to use it")
st.caption("Every page of the dashboard (the sidebar lists them too):")
guide = [page for page in PAGES if page[2]]  # all but this one
PER_ROW = 5
for first in range(0, len(guide), PER_ROW):
    row = guide[first : first + PER_ROW]
    for col, (file, title, url, icon) in zip(st.columns(PER_ROW), row, strict=False):
        with col.container(border=True, height="stretch"):
            st.page_link(file, label=f"**{title}**", icon=icon)
            st.caption(GUIDE.get(url) or page_summary(file))
if active:
    st.caption(f"Active model: **{active}** (switch it in the sidebar).")
else:
    st.caption("No trained model yet: start on the **Train** page, then come back and draw.")

train_counts, test_counts, sample_grid, mean_grid = _dataset_summary(info.name, info.sha256)

if info.builtin:
    st.subheader("The data set at a glance")
else:
    st.subheader(f"The data set at a glance: {info.name}")
    st.caption(
        f"{info.n_classes} classes: {', '.join(info.class_names)}. Source: {info.source}"
        + (" (20% of its images set aside as its test part)" if info.test_split else "")
        + ". Choose another set in the sidebar; add sets on the **Data sets** page."
    )
m1, m2, m3 = st.columns(3)
m1.metric("Training images", f"{int(train_counts.sum()):,}")
m2.metric("Test images", f"{int(test_counts.sum()):,}")
h, w, c = info.image_shape
m3.metric("Image size", f"{h} x {w} px" + ("" if c == 1 else ", colour"))
st.plotly_chart(
    class_counts_figure(
        train_counts, test_counts, names=None if info.builtin else list(info.class_names)
    ),
    width="stretch",
    key="overview_counts",
)

st.markdown(f"**The mean image of each {noun}**: all training images of that {noun} averaged")
st.image(mean_grid, width="content", output_format="PNG")
if info.builtin:
    st.caption(
        "MNIST digits are scaled into a 20x20 box and centred by their centre of mass, which is "
        "why the averages still look like digits. Drawings on the Draw page get the same "
        "treatment."
    )
rows = min(info.n_classes, MAX_SAMPLE_ROWS)
more = "" if rows == info.n_classes else f" (the first {rows} classes)"
st.markdown(f"**Samples**: one row per {noun}, random training images{more}")
st.image(sample_grid, width="content", output_format="PNG")
