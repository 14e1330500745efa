"""Inside (/inside): what every layer does over the epochs, live while a model trains and for any
saved model (its recorded training, or a snapshot of it as it is now)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nn.core.probe import GRID_PER_CLASS
from ui import inside_charts as charts
from ui import state

SOURCE_KEY = "inside_source"
LIVE = "The model training now"

state.init_state()
st.title(":material/biotech: Inside the network")
st.caption(
    "Every epoch, a fixed batch of validation images (64 for a dense network, fewer for a "
    "costly CNN, so that it costs under 1% of a training epoch) goes forward and backward "
    "through the network, and each layer's weights, gradients and outputs are measured; when "
    "training diverges, once more where it stopped. Try zero initialisation, sigmoid with "
    "N(0, 1) weights, or a learning rate of 1 on the Train page and watch what changes here."
)

slot = state.training_slot()
worker = slot.worker
live_snap = worker.snapshot() if worker is not None else None
has_live = bool(live_snap and live_snap.get("inside"))
running = bool(worker is not None and worker.is_alive())
names = list(dict.fromkeys(Path(row["path"]).stem for row in state.fitting_models()))
sources = ([LIVE] if has_live or running else []) + names
if not sources:
    st.info(
        "No model yet: train one on the Train page, and this page follows it live.",
        icon=":material/info:",
    )
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
if st.session_state.get(SOURCE_KEY) not in sources:
    st.session_state[SOURCE_KEY] = sources[0]
source = st.selectbox(
    "Model",
    sources,
    key=SOURCE_KEY,
    help="The model training now (live), or a saved model: its recorded training, or a "
    "snapshot taken now when it was saved without one.",
)


@st.cache_data(max_entries=16, show_spinner="Measuring the layers…")
def _saved_record(path: str, mtime: float, set_name: str) -> tuple[dict | None, bool]:
    """The saved record, or a snapshot of the model now on the active data set (``True`` when
    a snapshot)."""
    from nn.core.probe import PROBE_SIZE, grid_indices, snapshot

    meta = state.get_model_metadata(path)
    if meta.get("inside"):
        return meta["inside"], False
    model = state.get_model(path)
    data = state.get_set_data()
    grid = grid_indices(data.y_test)
    start = 1000 if len(data.y_test) >= 1000 + PROBE_SIZE else 0  # small sets: from the start
    probe = slice(start, start + PROBE_SIZE)
    record = snapshot(
        model,
        data.x_test[probe],
        data.y_test[probe],
        data.x_test[grid],
        data.y_test[grid],
        probe_images="test",
        grid_images="test",
    )
    return record, True


def _record() -> tuple[dict | None, str]:
    """The record to show and a line saying where it comes from."""
    if source == LIVE:
        w = slot.worker
        snap = w.snapshot() if w is not None else {}
        record = snap.get("inside")
        status = snap.get("status", "")
        text = f"Live: {status}, epoch {snap.get('epoch', 0)}/{snap.get('epochs', 0)}."
        if record:
            text += (
                f" Probe of {record.get('probe_size', 64)} {charts.probe_images(record)} images."
            )
        if status == "diverged" and snap.get("stop_message"):
            text += " " + snap["stop_message"]
        return record, text
    path = state.model_path_for(source)
    if path is None:
        return None, f"The model {source!r} is gone."
    try:
        record, taken_now = _saved_record(str(path), path.stat().st_mtime, state.active_set().name)
    except (OSError, ValueError, TypeError) as exc:
        return None, f"Cannot read the model {source!r}: {exc}"
    if taken_now:
        return record, (
            "This model was saved without a record of its training: the charts show it as it "
            f"is now (one point, on a probe of {record.get('probe_size', 64)} test images)."
        )
    epochs = len(record["epochs"]) - (1 if record.get("diverged") else 0)
    return record, (
        f"Recorded while {source} trained ({epochs} epochs"
        f"{', and where it diverged' if record.get('diverged') else ''}; probe of "
        f"{record.get('probe_size', 64)} {charts.probe_images(record)} images)."
    )


def _chart(fig, key: str, lesson: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displayModeBar": False})
    st.caption(lesson)


@st.fragment(run_every=2.0 if running and source == LIVE else None)
def inside_view() -> None:
    record, where = _record()
    st.caption(where)
    if not record or not record.get("epochs"):
        st.info(
            "Waiting for the first epoch: the charts appear when it ends.",
            icon=":material/hourglass_top:",
        )
        if source == LIVE and running and not slot.worker.is_alive():
            st.rerun()
        return
    for note in charts.summary(record):
        st.warning(note, icon=":material/lightbulb:")

    left, right = st.columns(2, gap="large")
    with left:
        _chart(
            charts.series_figure(record, "grad_norm"),
            "inside_grad_norm",
            charts.LESSONS["grad_norm"],
        )
        _chart(
            charts.series_figure(record, "weight_unit_spread"),
            "inside_unit_spread",
            charts.LESSONS["weight_unit_spread"],
        )
    with right:
        _chart(
            charts.series_figure(record, "update_ratio"),
            "inside_update_ratio",
            charts.LESSONS["update_ratio"],
        )
        relu = charts.layers_with(record, "dead_fraction")
        key = "dead_fraction" if relu else "saturated_fraction"
        if charts.layers_with(record, key):
            _chart(charts.series_figure(record, key), f"inside_{key}", charts.LESSONS[key])
        else:
            _chart(
                charts.series_figure(record, "act_unit_spread"),
                "inside_act_spread",
                charts.LESSONS["act_unit_spread"],
            )
    if relu and charts.layers_with(record, "saturated_fraction"):
        _chart(
            charts.series_figure(record, "saturated_fraction"),
            "inside_saturated_fraction",
            charts.LESSONS["saturated_fraction"],
        )

    st.subheader("Distributions, layer by layer")
    layer_names = [layer["name"] for layer in record["layers"]]
    c1, c2 = st.columns([2, 3])
    chosen = c1.selectbox("Layer", layer_names, key="inside_layer")
    index = layer_names.index(chosen)
    kinds = ["weight", "grad", "act"] if record["layers"][index]["trained"] else ["act"]
    kind = c2.radio(
        "Of", kinds, format_func=charts.KINDS.get, horizontal=True, key=f"inside_kind_{len(kinds)}"
    )
    b1, b2 = st.columns(2, gap="large")
    with b1:
        _chart(charts.bands_figure(record, index, kind), "inside_bands", charts.LESSONS["bands"])
    with b2:
        _chart(
            charts.histogram_figure(record, index, kind),
            "inside_histogram",
            charts.LESSONS["histogram"],
        )

    st.subheader("Probe loss and the test grid")
    _chart(charts.probe_figure(record), "inside_probe", charts.LESSONS["probe"])
    data_set = state.active_set()
    names = None if data_set.builtin else list(data_set.class_names)
    captions = charts.grid_captions(record, names)
    if captions:
        st.caption(charts.grid_caption(record, len(captions), GRID_PER_CLASS, names is None))
        images = charts.grid_images(record)
        with st.container(key="inside_grid"):
            if images:
                st.image(images, caption=captions, width=84)
            else:  # inputs recorded as rows of values, not images
                st.text("\n".join(captions))
    if source == LIVE and running and not slot.worker.is_alive():
        st.rerun()


inside_view()
