"""Overview (/): what the app is, how to use it, and the MNIST data set at a glance."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import state
from ui.eval_charts import class_counts_figure
from ui.gallery import (
    GridTile,
    class_counts,
    labelled_grid,
    mean_images,
    sample_per_class,
    tile_images,
)


@st.cache_resource(show_spinner="Summarising MNIST…")
def _dataset_summary():
    """Counts per digit, a 10x15 sample grid and the mean image of each digit (computed once)."""
    data = state.get_mnist()
    train_counts = class_counts(data.y_train)
    test_counts = class_counts(data.y_test)
    samples = sample_per_class(data.y_train, per_class=15, seed=0)
    sample_grid = tile_images(
        data.x_train[samples], ncols=15, scale=2, pad=2, background=(240, 242, 246)
    )
    means = mean_images(data.x_train, data.y_train)
    peak = means.reshape(10, -1).max(axis=1)[:, None, None]
    means_scaled = means * (255.0 / np.maximum(peak, 1.0))
    mean_grid = labelled_grid(
        means_scaled,
        [GridTile((str(d),)) for d in range(10)],
        ncols=10,
        scale=3,
        border=0,
        pad=4,
        font_size=16,
    )
    return train_counts, test_counts, sample_grid, mean_grid


state.init_state()
st.title("A neural network from scratch, on MNIST")
st.markdown(
    "This dashboard trains and explores a fully connected neural network written with nothing "
    "but **NumPy**: forward pass, backpropagation and optimisers by hand. It learns to read "
    "handwritten digits from **MNIST**, 70,000 small grey images of the digits 0-9."
)

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
        "Draw a digit with the mouse and see what the network thinks, stroke by stroke.",
    ),
    (
        "pages/predictions.py",
        "Predictions",
        ":material/grid_view:",
        "Browse the 10,000 test images: right ones in green, mistakes in red.",
    ),
    (
        "pages/evaluate.py",
        "Evaluate",
        ":material/analytics:",
        "Accuracy, per-digit scores, the confusion matrix, what the first layer learnt.",
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

train_counts, test_counts, sample_grid, mean_grid = _dataset_summary()

st.subheader("The data set at a glance")
m1, m2, m3 = st.columns(3)
m1.metric("Training images", f"{int(train_counts.sum()):,}")
m2.metric("Test images", f"{int(test_counts.sum()):,}")
m3.metric("Image size", "28 x 28 px")
st.plotly_chart(
    class_counts_figure(train_counts, test_counts), width="stretch", key="overview_counts"
)

st.markdown("**The mean image of each digit**: all training images of that digit averaged")
st.image(mean_grid, width="content", output_format="PNG")
st.caption(
    "MNIST digits are scaled into a 20x20 box and centred by their centre of mass, which is "
    "why the averages still look like digits. Drawings on the Draw page get the same "
    "treatment."
)
st.markdown("**Samples**: one row per digit, random training images")
st.image(sample_grid, width="content", output_format="PNG")
