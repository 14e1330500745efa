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


state.init_state()
info = state.active_set()
noun = "digit" if info.builtin else "class"
st.title("A neural network from scratch, on " + ("MNIST" if info.builtin else info.name))
if info.builtin:
    st.markdown(
        "This dashboard trains and explores a fully connected neural network written with "
        "nothing but **NumPy**: forward pass, backpropagation and optimisers by hand. It learns "
        "to read handwritten digits from **MNIST**, 70,000 small grey images of the digits 0-9."
    )
else:
    colour = "grey" if info.greyscale else "colour"
    st.markdown(
        "This dashboard trains and explores a neural network written with nothing but "
        "**NumPy**: forward pass, backpropagation and optimisers by hand. It learns to tell "
        f"apart the images of the data set **{info.name}**: "
        f"{info.n_train + info.n_test:,} {info.shape_text} {colour} images of "
        f"{info.n_classes} classes. The bundled MNIST (handwritten digits) stays one choice "
        "away in the sidebar."
    )
if info.builtin:
    draw_text = "Draw a digit with the mouse and see what the network thinks, stroke by stroke."
elif info.image_shape == (28, 28, 1):
    draw_text = "Draw with the mouse and see which class the network thinks it is."
else:
    draw_text = "For 28x28 greyscale sets, as MNIST: choose one in the sidebar to draw."

st.subheader("How to use it")
GUIDE = [
    (
        "pages/train.py",
        "Train",
        ":material/model_training:",
        "Pick layers, activation and optimiser; watch the loss fall live.",
    ),
    (
        "pages/draw.py",
        "Draw",
        ":material/draw:",
        draw_text,
    ),
    (
        "pages/predictions.py",
        "Predictions",
        ":material/grid_view:",
        f"Browse the {info.n_test:,} test images: right ones in green, mistakes in red.",
    ),
    (
        "pages/evaluate.py",
        "Evaluate",
        ":material/analytics:",
        f"Accuracy, per-{noun} scores, the confusion matrix, what the first layer learnt.",
    ),
    (
        "pages/models.py",
        "Models",
        ":material/inventory_2:",
        "Save, load, compare, upload and download trained networks.",
    ),
]
for col, (page, label, icon, text) in zip(st.columns(len(GUIDE)), GUIDE, strict=True):
    with col.container(border=True, height="stretch"):
        st.page_link(page, label=f"**{label}**", icon=icon)
        st.caption(text)
active = state.active_model_name()
if active:
    st.caption(
        f"Active model: **{active}** (switch it in the sidebar). New here? Train a model "
        f"first, then draw."
    )
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
