"""One test image in detail, as the Predictions page and the layer map show it: the image
enlarged in a frame (green: right, red: wrong) beside the bar chart of its probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import streamlit as st

from ui.eval_charts import probability_figure
from ui.gallery import GREEN, RED, GridTile, labelled_grid


def image_detail(
    image: np.ndarray,
    index: int,
    true_class: int,
    predicted: int,
    proba: np.ndarray,
    classes: Sequence,
    *,
    label: Callable[[int], str] = str,
    noun: str = "digit",
    shape: Sequence[int] = (28, 28, 1),
    key: str,
) -> None:
    """Test image ``index`` and its probabilities (``classes``: the model's classes)."""
    right = predicted == true_class
    a, b = st.columns([1, 3], vertical_alignment="center")
    a.image(
        labelled_grid(
            image,
            [GridTile((f"#{index}: {'right' if right else 'wrong'}",), GREEN if right else RED)],
            ncols=1,
            scale=max(2, 168 // max(shape[:2])),
            border=4,
            font_size=15,
            shape=shape,
        ),
        width="content",
        output_format="PNG",
    )
    b.plotly_chart(
        probability_figure(
            proba,
            [label(c) for c in classes],
            true_label=label(int(true_class)),
            title=f"Probabilities for #{index} (true {noun} {label(true_class)}, outlined)",
            noun=noun,
        ),
        width="stretch",
        key=key,
    )
