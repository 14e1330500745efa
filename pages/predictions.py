"""Predictions (/predictions): the active data set's test images (MNIST's 10,000) with true and
predicted labels, filtered, sorted and paged; pick one to see its probabilities."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.gallery import (
    GREEN,
    RED,
    GridTile,
    filter_indices,
    grid_figure,
    labelled_grid,
    page_count,
    page_slice,
    sort_indices,
    tile_from_selection,
)
from ui.image_detail import image_detail
from ui.persist import keep, remember

PAGE_SIZE = 48
NCOLS = 8
ANY = "any"
SORT_LABELS = {"index": "test-set order", "confidence": "least sure first"}

state.init_state()
st.title("Predictions on the test set")

name, model, data, proba, pred = state.require_test_predictions()
info = state.active_set()
names = None if info.builtin else list(info.class_names)  # MNIST's classes are its digits
noun = "digit" if names is None else "class"


def label(k) -> str:
    return str(k) if names is None or k == ANY else names[int(k)]


y_true = data.y_test
confidence = proba.max(axis=1)
n_wrong = int((pred != y_true).sum())
st.caption(
    f"Model **{name}**: {len(y_true) - n_wrong:,} of {len(y_true):,} test images"
    + ("" if info.builtin else f" of **{info.name}**")
    + f" right, {n_wrong:,} mistakes."
)


def _reset_page() -> None:
    st.session_state["pred_page"] = 1


digits = [ANY, *range(info.n_classes)]
for key in ("pred_true", "pred_pred"):  # a choice kept from a set with more classes
    if st.session_state.get(key, ANY) not in digits:
        st.session_state[key] = ANY
c1, c2, c3, c4 = st.columns([1, 1, 1, 1.4], vertical_alignment="bottom")
true_sel = c1.selectbox(
    f"True {noun}",
    digits,
    key=keep("pred_true", ANY),
    on_change=_reset_page,
    format_func=label,
)
pred_sel = c2.selectbox(
    f"Predicted {noun}",
    digits,
    key=keep("pred_pred", ANY),
    on_change=_reset_page,
    format_func=label,
)
only_wrong = c3.toggle("Only mistakes", key=keep("pred_wrong", False), on_change=_reset_page)
sort_by = (
    c4.segmented_control(
        "Sort",
        list(SORT_LABELS),
        format_func=SORT_LABELS.get,
        key=keep("pred_sort", "index"),
        on_change=_reset_page,
    )
    or "index"
)

indices = filter_indices(
    y_true,
    pred,
    true_digit=None if true_sel == ANY else int(true_sel),
    pred_digit=None if pred_sel == ANY else int(pred_sel),
    only_mistakes=only_wrong,
)
indices = sort_indices(indices, confidence, by=sort_by)
pages = page_count(len(indices), PAGE_SIZE)
keep("pred_page", 1)
if st.session_state["pred_page"] > pages:
    st.session_state["pred_page"] = pages

left, right = st.columns([3, 1], vertical_alignment="bottom")
with right:
    page = st.number_input(
        f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="pred_page"
    )
with left:
    n_mistakes = int((pred[indices] != y_true[indices]).sum())
    st.markdown(
        f"**{len(indices):,}** images match ({n_mistakes:,} mistakes) · page {page} of {pages}"
    )
remember("pred_true", "pred_pred", "pred_wrong", "pred_sort", "pred_page")

shown = page_slice(indices, page, PAGE_SIZE)
if len(shown) == 0:
    st.info("No test image matches these filters.")
    st.stop()

tiles = [
    GridTile(
        (f"#{i}", f"{label(y_true[i])} → {label(pred[i])} · {confidence[i]:.0%}"),
        GREEN if pred[i] == y_true[i] else RED,
    )
    for i in shown
]
options = [int(i) for i in shown]
# a new selection of tiles (filters, sort, page) opens its first tile ("least sure first": the
# least sure image); a click on a tile opens that one
if st.session_state.get("pred_pick_for") != options:
    st.session_state["pred_pick_for"] = options
    st.session_state["pred_pick"] = options[0]
elif st.session_state.get("pred_pick") not in options:
    st.session_state["pred_pick"] = options[0]


def _on_tile_clicked() -> None:
    event = st.session_state.get("pred_grid")
    tile = tile_from_selection(event, len(options))
    if tile is not None:
        st.session_state["pred_pick"] = options[tile]


picture = labelled_grid(data.x_test[shown], tiles, ncols=NCOLS, shape=info.image_shape)
st.plotly_chart(
    grid_figure(
        picture,
        len(options),
        NCOLS,
        [
            f"#{i}: true {label(y_true[i])}, predicted {label(pred[i])}, click for details"
            for i in options
        ],
        picked=options.index(st.session_state["pred_pick"]),
    ),
    width="content",
    key="pred_grid",
    on_select=_on_tile_clicked,
    selection_mode="points",
    config={"displayModeBar": False},
)
st.caption(
    f"Under each image: its test-set index, then true {noun} → predicted {noun} · "
    "confidence. Green frame: right; red frame: a mistake. Click an image to see it in detail "
    "below."
)

st.subheader("One image in detail")
pick = st.selectbox(
    "Image",
    options,
    key="pred_pick",
    format_func=lambda i: (
        f"#{i}: true {label(y_true[i])}, predicted {label(pred[i])} "
        f"({confidence[i]:.0%})" + ("" if pred[i] == y_true[i] else " ✗")
    ),
)
image_detail(
    data.x_test[pick],
    pick,
    int(y_true[pick]),
    int(pred[pick]),
    proba[pick],
    model.classes_,
    label=label,
    noun=noun,
    shape=info.image_shape,
    key="pred_proba",
)
