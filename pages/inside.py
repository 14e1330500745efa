"""Inside (/inside): what every layer does over the epochs, live while a model trains and for any
saved model (its recorded training, or a snapshot of it as it is now)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nn.core.probe import GRID_PER_CLASS, PROBE_SIZE, grid_indices, snapshot
from ui import inside_charts as charts
from ui import state
from ui.live import HEAVY_KEYS, STATUS_SECONDS, cached_view
from ui.live_map_chart import LESSON as LIVE_MAP_LESSON
from ui.live_map_chart import live_map_figure

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

job = state.session_job("train")
live_snap = job.snapshot() if job is not None else None
has_live = bool(live_snap and live_snap.get("inside"))
running = bool(job is not None and not job.done)
# the record grows once an epoch: the live view polls every STATUS_SECONDS, copies the record and
# rebuilds its charts only when the job moved on, and does not poll while the job is paused
_RECORD_KEYS = tuple(k for k in HEAVY_KEYS if k != "inside")
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


def _record() -> tuple[dict | None, str, tuple]:
    """The record to show, a line saying where it comes from, and a token that changes when the
    record does (the charts are rebuilt only then)."""
    if source == LIVE:
        w = job
        light = w.snapshot(without=HEAVY_KEYS) if w is not None else {}
        status = light.get("status", "")
        token = (getattr(w, "id", None), status, light.get("epoch", 0))
        record = (
            cached_view("inside_record", token, lambda: w.snapshot(without=_RECORD_KEYS)["inside"])
            if w is not None
            else None
        )
        text = f"Live: {status}, epoch {light.get('epoch', 0)}/{light.get('epochs', 0)}."
        if record:
            text += (
                f" Probe of {record.get('probe_size', 64)} {charts.probe_images(record)} images."
            )
        if status == "diverged" and light.get("stop_message"):
            text += " " + light["stop_message"]
        return record, text, token
    path = state.model_path_for(source)
    if path is None:
        return None, f"The model {source!r} is gone.", (source,)
    set_name = state.active_set().name
    try:
        mtime = path.stat().st_mtime
        record, taken_now = _saved_record(str(path), mtime, set_name)
    except (OSError, ValueError, TypeError) as exc:
        return None, f"Cannot read the model {source!r}: {exc}", (source,)
    token = (str(path), mtime, set_name)
    if taken_now:
        return (
            record,
            (
                "This model was saved without a record of its training: the charts show it as it "
                f"is now (one point, on a probe of {record.get('probe_size', 64)} test images)."
            ),
            token,
        )
    epochs = len(record["epochs"]) - (1 if record.get("diverged") else 0)
    return (
        record,
        (
            f"Recorded while {source} trained ({epochs} epochs"
            f"{', and where it diverged' if record.get('diverged') else ''}; probe of "
            f"{record.get('probe_size', 64)} {charts.probe_images(record)} images)."
        ),
        token,
    )


def _chart(key: str, token: tuple, build, lesson: str) -> None:
    """The chart ``build()`` makes, made again only when ``token`` changed, and its lesson."""
    fig = cached_view(key, token, build)
    st.plotly_chart(fig, width="stretch", key=key, config={"displayModeBar": False})
    st.caption(lesson)


polling = running and source == LIVE and not job.paused


@st.fragment(run_every=STATUS_SECONDS if polling else None)
def inside_view() -> None:
    record, where, token = _record()
    st.caption(where)
    if not record or not record.get("epochs"):
        st.info(
            "Waiting for the first epoch: the charts appear when it ends.",
            icon=":material/hourglass_top:",
        )
        if source == LIVE and running and job.done:
            st.rerun()
        return
    for note in charts.summary(record):
        st.warning(note, icon=":material/lightbulb:")

    def series(name: str, key: str) -> None:
        _chart(key, token, lambda: charts.series_figure(record, name), charts.LESSONS[name])

    left, right = st.columns(2, gap="large")
    with left:
        series("grad_norm", "inside_grad_norm")
        series("weight_unit_spread", "inside_unit_spread")
    with right:
        series("update_ratio", "inside_update_ratio")
        relu = charts.layers_with(record, "dead_fraction")
        key = "dead_fraction" if relu else "saturated_fraction"
        if charts.layers_with(record, key):
            series(key, f"inside_{key}")
        else:
            series("act_unit_spread", "inside_act_spread")
    if relu and charts.layers_with(record, "saturated_fraction"):
        series("saturated_fraction", "inside_saturated_fraction")

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
    shown = (*token, index, kind)
    with b1:
        _chart(
            "inside_bands",
            shown,
            lambda: charts.bands_figure(record, index, kind),
            charts.LESSONS["bands"],
        )
    with b2:
        _chart(
            "inside_histogram",
            shown,
            lambda: charts.histogram_figure(record, index, kind),
            charts.LESSONS["histogram"],
        )

    st.subheader("Probe loss and the test grid")
    _chart("inside_probe", token, lambda: charts.probe_figure(record), charts.LESSONS["probe"])
    data_set = state.active_set()
    names = None if data_set.builtin else list(data_set.class_names)
    captions = charts.grid_captions(record, names)
    if captions:
        st.caption(charts.grid_caption(record, len(captions), GRID_PER_CLASS, names is None))
        images = charts.grid_images(record)
        with st.container(key="inside_grid"):
            if images:
                st.html(charts.grid_html(record, images, names))
            else:  # inputs recorded as rows of values, not images
                st.text("\n".join(captions))
    st.subheader("The live layer map")
    if record.get("map_frames"):
        _chart("inside_map", token, lambda: live_map_figure(record, names), LIVE_MAP_LESSON)
    else:
        st.caption(
            "This record has no live map: it is made while a model trains (here or with python "
            "-m nn train) and saved with it; models trained before it existed have none. The "
            "Layer map page maps any saved model's layers as they are now."
        )
    if source == LIVE and running and job.done:
        st.rerun()


inside_view()
