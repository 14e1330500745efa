"""The sidebar shown on every page: the data set and the active model with their switchers,
plus the training status.

``render_sidebar()`` is called by ``app.py`` before ``pg.run()``. The selectbox widget key
(``sidebar_model``) is only a mirror of ``st.session_state["active_model_name"]`` (see
``ui.state``); its ``on_change`` callback writes the choice back, so it persists across pages and
follows changes made elsewhere (e.g. "Load" on the Models page). The data set picker
(``sidebar_set``) mirrors ``st.session_state["active_set_name"]`` the same way; the model
picker offers the models that fit the active set (image shape and classes).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import state
from ui.live import HEAVY_KEYS, status_poll_seconds
from ui.session_jobs import queue_text

SELECT_KEY = "sidebar_model"
SET_KEY = "sidebar_set"


def _on_select() -> None:
    state.set_active_model(st.session_state.get(SELECT_KEY))


def _on_set_select() -> None:
    state.set_active_set(st.session_state.get(SET_KEY) or "mnist")


def _set_label(info) -> str:
    colour = "" if info.greyscale else " colour"
    return f"{info.name} ({info.shape_text}{colour}, {info.n_classes} classes)"


def _set_picker() -> None:
    """The data set every page works on: MNIST and each added set."""
    sets = state.data_sets()
    by_name = {info.name: info for info in sets}
    active = state.active_set().name
    if st.session_state.get(SET_KEY) != active:
        st.session_state[SET_KEY] = active
    st.selectbox(
        "Data set",
        list(by_name),
        key=SET_KEY,
        on_change=_on_set_select,
        format_func=lambda name: _set_label(by_name[name]),
        help="The images every page shows, trains and evaluates on. Add sets on the **Data "
        "sets** page.",
    )


def _model_card(name: str, path: Path) -> None:
    try:
        meta = state.get_model_metadata(path)
    except (OSError, ValueError) as exc:
        st.error(f"Cannot read {path.name}: {exc}")
        return
    arch = meta.get("architecture") or {}
    metrics = meta.get("metrics") or {}
    acc = metrics.get("test_accuracy")
    stack = meta.get("stack") if (meta.get("params") or {}).get("layers") else None
    st.markdown(f"**{name}**  \n`{state.layers_text(arch.get('layer_sizes'), stack)}`")
    # one metric and a caption: two metrics side by side do not fit the sidebar's width
    st.metric("Test accuracy", f"{acc:.2%}" if isinstance(acc, (int, float)) else "not measured")
    n_params = meta.get("n_parameters")
    if isinstance(n_params, int):
        st.caption(f"{n_params:,} parameters")


def _status_body(polling: bool) -> None:
    """ "training: epoch x/y" (or the outcome of the last run) from the training's snapshot."""
    job = state.session_job("train")
    if job is None:
        return
    snap = job.snapshot(without=HEAVY_KEYS)
    running = snap["alive"]
    if running and snap.get("status") == "queued":
        st.info(
            f"**Queued**: {queue_text(snap)}.",
            icon=":material/hourglass_top:",
        )
    elif running:
        paused = bool(snap.get("paused"))
        # the percentage as text, not a second st.progress: in the sidebar Streamlit draws the
        # bar in another colour (red) than the Train page's (blue)
        pct = min(1.0, max(0.0, float(snap.get("progress", 0.0))))
        st.info(
            f"**{'Paused' if paused else 'Training'}**: epoch {snap.get('epoch', 0)}"
            f"/{snap.get('epochs', 0)} ({pct:.0%})",
            icon=":material/pause_circle:" if paused else ":material/model_training:",
        )
    else:
        status = snap.get("status")
        saved = job.saved_as  # the name Save gave it, in whichever tab
        if status in ("finished", "stopped") and saved:
            st.success(f"Training {status}, saved as **{saved}**.", icon=":material/check_circle:")
        elif status in ("finished", "stopped"):
            st.success(
                f"Training {status}: save it on the **Train** page.", icon=":material/check_circle:"
            )
        elif status in ("diverged", "failed"):
            st.error(f"Training {status}: see the **Train** page.", icon=":material/error:")
        if polling:  # it finished while this fragment polled: one full rerun stops the polling
            st.rerun(scope="app")


def _live_status(poll: bool) -> None:
    """The status as a fragment that re-runs itself every ``ui.live.STATUS_SECONDS`` while
    training runs, so the epoch counter moves on every page; while it is paused only every
    ``ui.live.PAUSED_SECONDS`` (only the Train page's buttons change it, and their clicks rerun
    the page; the seldom poll tells the job board someone watches). Not on the Train page
    (``poll=False``), which shows the progress itself: every poll re-renders the page in the
    browser and takes CPU from the training (bench/dashboard_overhead.py)."""
    job = state.session_job("train")
    running = job is not None and not job.done
    if running and not poll:
        if job.paused:  # a pause reruns the page: the snapshot is current
            _status_body(False)
        else:
            st.info("**Training**: progress on this page.", icon=":material/model_training:")
        return
    every = status_poll_seconds(running, running and job.paused)
    st.fragment(run_every=every)(_status_body)(running)


def render_sidebar(page: str | None = None) -> None:
    """Draw the sidebar: active model, model switcher, training status. ``page`` is the URL path
    of the page being shown ("train" for the Train page)."""
    state.init_state()
    with st.sidebar:
        _set_picker()
        st.subheader("Active model", divider="gray")
        models = state.fitting_models()
        names = [Path(row["path"]).stem for row in models]
        names = list(dict.fromkeys(names))  # a model saved as .npz and .pkl appears once
        active = state.active_model_name()
        others = len({Path(r["path"]).stem for r in state.saved_models()} - set(names))
        if not names:
            st.caption(
                "No saved model of this data set yet: train one on the **Train** page."
                if others
                else "No saved model yet: train one on the **Train** page."
            )
        else:
            if active in names and st.session_state.get(SELECT_KEY) != active:
                st.session_state[SELECT_KEY] = active
            st.selectbox(
                "Switch model",
                names,
                key=SELECT_KEY,
                on_change=_on_select,
                help="The model used by Draw, Predictions and Evaluate (saved models in "
                f"{state.models_dir().name}/).",
            )
            path = state.model_path_for(active)
            if active and path is not None:
                _model_card(active, path)
        if others:
            st.caption(
                f"{others} model{'s' if others != 1 else ''} of other data sets not listed "
                "(choose their set above)."
            )
        _live_status(poll=page != "train")
