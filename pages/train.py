"""Train page: every engine option, presets, background training with live charts, save."""

from __future__ import annotations

import copy
import time

import streamlit as st

from nn.core.layer_spec import compact
from nn.io.models_folder import model_path, sanitize_model_name
from nn.services import settings
from nn.services.presets import PRESETS, adapted_to_set, fitting_presets
from ui import state, train_form
from ui.charts import live_training_figure
from ui.live import (
    CHART_SECONDS,
    HEAVY_KEYS,
    LIVE_BATCH_POINTS,
    cached_view,
    status_poll_seconds,
)
from ui.session_jobs import queue_text, run_errors_text, save_training, start_training
from ui.text import duration_text

state.init_state()
job = state.session_job("train")  # this person's training, whichever tab started it
if job is not None and st.session_state.get("train_job_shown") != job.id:
    # a training this session has not shown yet (a reload, another tab): its form with it
    st.session_state["train_job_shown"] = job.id
    if job.form is not None:
        st.session_state["train_config"] = copy.deepcopy(job.form)
        for key in [k for k in st.session_state if str(k).startswith("tf_")]:
            del st.session_state[key]  # the widgets start again from that form
cfg = st.session_state["train_config"]
running = bool(job is not None and not job.done)
# a paused job changes nothing until Resume or Stop, whose clicks rerun the page: no polling
polling = running and not job.paused
limit = state.train_limit()

st.title(":material/model_training: Train a network")
st.caption(
    "Pick a preset or set every option yourself, then start. Training runs in the "
    "background: you can visit other pages meanwhile."
)
data_set = state.active_set()
if not data_set.builtin:
    st.caption(
        f"Training on the data set **{data_set.name}** ({data_set.describe().split(': ', 1)[1]})"
        ": the network's input shape comes from its images"
        + (
            "; augmentation (made for 28x28 digits) is switched off for it."
            if not settings.augments(data_set.image_shape)
            else "."
        )
    )

# ------------------------------------------------------------------ presets
# a preset whose network cannot take the set's images (a convolution stack on images too small
# for it, a network too large for them) is shown disabled, with the reason
problems = fitting_presets(data_set.image_shape, data_set.n_classes)
# the descriptions are MNIST's (784 inputs, 10 digits): what changes on another set
on_set = (
    ""
    if data_set.builtin
    else f". On {data_set.name}: {data_set.shape_text} images in, {data_set.n_classes} classes "
    "out" + ("" if settings.augments(data_set.image_shape) else ", no augmentation") + "."
)


def _preset_in_force() -> str:
    """The preset the form holds unchanged (as its button fills it for the active set), or ""
    once a setting was changed by hand."""
    name = cfg.get("preset") or ""
    if name not in PRESETS or problems.get(name) is not None:
        return ""
    model, _ = adapted_to_set(name, data_set.image_shape, data_set.n_classes)
    model.pop("input_shape", None)
    preset = settings.form_values(model, PRESETS[name].data_kwargs())
    same = settings.model_kwargs(cfg) == settings.model_kwargs(preset)
    return name if same and settings.data_kwargs(cfg) == settings.data_kwargs(preset) else ""


def _run_name(model_kwargs: dict) -> str:
    """What a run is called until its model is saved: its layers and data set, after the
    preset it is, e.g. "fast: dense 256-128 on mnist", "C8k3-P2-D32 on mnist"."""
    if model_kwargs.get("layers"):
        layers = compact(model_kwargs["layers"]) or "custom stack"
    else:
        hidden = model_kwargs.get("hidden_layers") or []
        layers = "dense " + ("-".join(str(int(u)) for u in hidden) or "no hidden layer")
    preset = _preset_in_force()
    return (f"{preset}: " if preset else "") + f"{layers} on {data_set.name}"


def _save_name(run_name: str) -> str:
    """The Save box's first suggestion: the preset and data set ("fast-mnist"), else the run's
    layers and data set ("C8k3-P2-D32-mnist"), in the letters a model name allows."""
    preset, _, rest = run_name.rpartition(": ")
    base = f"{preset} {data_set.name}" if preset else rest.replace(" on ", " ")
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in base)
    return "-".join(part for part in cleaned.split("-") if part)[:60] or "model"


def _preset_buttons() -> None:
    """One button a preset, the one the form holds unchanged highlighted (drawn after the form,
    whose widgets write ``cfg``, into the place kept for them above it)."""
    st.markdown("**Presets** (one click fills the form)")
    in_force = _preset_in_force()
    cols = st.columns(len(PRESETS))
    for col, (name, preset) in zip(cols, PRESETS.items(), strict=True):
        col.button(
            name,
            key=f"preset_{name}",
            on_click=train_form.apply_preset,
            args=(name, data_set.image_shape, data_set.n_classes),
            help=(preset.description + on_set) if problems[name] is None else problems[name],
            disabled=running or problems[name] is not None,
            width="stretch",
            type="primary" if in_force == name else "secondary",
        )
    unfit = [name for name, problem in problems.items() if problem is not None]
    if unfit:
        st.caption(
            f"Not offered for {data_set.name}'s {data_set.shape_text} images: "
            + "; ".join(problems[name] for name in unfit)
        )


preset_place = st.container()


# ------------------------------------------------------------------ actions
def _start(continue_model=None, epochs: int | None = None) -> None:
    """Start a training of the form's settings (or continue ``continue_model``)."""
    model_kwargs = settings.model_kwargs(cfg)
    if epochs is not None:
        model_kwargs["epochs"] = int(epochs)
    data_kwargs = settings.data_kwargs(cfg)
    if not data_set.builtin:  # the active data set (nn.data.registry); MNIST otherwise
        data_kwargs["set"] = data_set.name
        data_kwargs["sets_dir"] = str(state.data_dir())
        model_kwargs, _ = settings.for_images(model_kwargs, data_set.image_shape)
    run_name = _run_name(model_kwargs)
    old = state.session_job("train")
    old_inside = old.snapshot().get("inside") if old is not None and continue_model else None
    new = start_training(
        state.job_board(),
        state.job_runner(),
        state.current_owner(),
        model_kwargs,
        data_kwargs,
        train_limit=limit,
        model=continue_model,
        run_name=run_name,
        inside=old_inside,
        runs_path=str(state.workspace().runs_db),
        form=cfg,
    )
    st.session_state["train_job_shown"] = new.id


def _save() -> None:
    """Save button callback: validated name, overwrite only when confirmed."""
    w = state.session_job("train")
    if w is None or w.result is None:
        return
    try:
        name = sanitize_model_name(st.session_state.get("save_name", ""))
        path = model_path(state.models_dir(), name)
    except ValueError as exc:
        st.session_state["save_feedback"] = ("error", str(exc))
        return
    if path.exists() and not st.session_state.get("save_overwrite"):
        st.session_state["save_feedback"] = (
            "warning",
            f"A model called **{name}** exists: tick *Overwrite* to replace it.",
        )
        return
    try:
        state.check_room(w.result.stack_.flat_params.nbytes)
        save_training(w, path, name)
    except (OSError, ValueError) as exc:
        st.session_state["save_feedback"] = ("error", f"Could not save: {exc}")
        return
    state.set_active_model(name)
    st.session_state["save_feedback"] = (
        "success",
        f"Saved as **{path.name}**; it is now the active model.",
    )


_LABELS = {
    "preparing": "Preparing the data…",
    "running": "Training",
    "finished": "Finished",
    "stopped": "Stopped",
    "diverged": "Diverged",
    "failed": "Failed",
}


def _status_text(snap: dict) -> str:
    """The progress bar's text: "Training — epoch 3/5, about 4 s left", the queue, or how it
    ended."""
    status = snap["status"]
    if status == "queued":
        return queue_text(snap).capitalize()
    label = "Paused" if snap.get("paused") and status == "running" else _LABELS.get(status, status)
    if status == "preparing" or not snap.get("epochs"):  # no epochs counted yet
        return label
    text = f"{label} — epoch {snap['epoch']}/{snap['epochs']}"
    eta = snap.get("eta_seconds")
    if status == "running" and eta is not None:
        text += f", about {duration_text(eta)} left"
    return text


def _numbers_text(snap: dict) -> str:
    """One line under the bar: validation accuracy, speed, time, image counts; for a queued
    training, that it starts when a worker is free (no time runs, no images are counted)."""
    if snap["status"] == "queued":
        return "It starts by itself when its turn comes; the charts fill from then on."
    if snap["status"] == "preparing" and not snap.get("n_train"):
        return "Loading and splitting the images…"
    parts = []
    if snap.get("val_accuracy") is not None:
        parts.append(f"validation accuracy **{snap['val_accuracy']:.2%}**")
    elif snap.get("last_val_accuracy") is not None:
        parts.append(f"validation accuracy **{snap['last_val_accuracy']:.2%}**")
    if snap.get("images_per_second"):
        parts.append(f"**{snap['images_per_second']:,.0f}** images/s")
    parts.append(f"**{duration_text(snap.get('elapsed') or 0.0)}** elapsed")
    if snap.get("n_train"):
        parts.append(
            f"{snap['n_train']:,} training, {snap['n_val']:,} validation, "
            f"{snap['n_test']:,} test images"
        )
    else:
        parts.append("counting the images…")
    return " · ".join(parts)


def _live_figure(w):
    """The live chart of ``w``'s snapshot (its inside record left out of the copy)."""
    snap = w.snapshot(without=("inside",))
    return live_training_figure(
        snap["history"],
        snap["batch_loss"],
        steps=snap["batch_steps"],
        smoothed=snap["batch_ema"],
        max_points=LIVE_BATCH_POINTS,
        uirevision="live",
        note=queue_text(snap) if snap["status"] == "queued" else "no batches yet",
    )


form_col, live_col = st.columns([5, 6], gap="large")

with form_col:
    st.subheader("Settings")
    errors = train_form.render_form(cfg, disabled=running, train_limit=limit, info=data_set)
if PRESETS:
    with preset_place:
        _preset_buttons()

with live_col:
    st.subheader("Training")
    c1, c2, c3, c4 = st.columns(4)
    start = c1.button(
        "Start",
        key="start_training",
        type="primary",
        disabled=running,
        icon=":material/play_arrow:",
        width="stretch",
    )
    c2.button(
        "Pause",
        key="pause_training",
        icon=":material/pause:",
        width="stretch",
        disabled=not running or job.paused,
        on_click=(job.pause if job is not None else None),
    )
    c3.button(
        "Resume",
        key="resume_training",
        icon=":material/resume:",
        width="stretch",
        disabled=not running or not job.paused,
        on_click=(job.resume if job is not None else None),
    )
    c4.button(
        "Stop",
        key="stop_training",
        icon=":material/stop:",
        width="stretch",
        disabled=not running,
        on_click=(job.stop if job is not None else None),
    )
    if start:
        if errors:
            st.error(
                "Fix the settings marked in red before training: "
                + " ".join(m for msgs in errors.values() for m in msgs),
                icon=":material/block:",
            )
        else:
            _start()
            st.rerun()
    elif errors and not running:
        st.warning(
            f"{sum(map(len, errors.values()))} setting(s) need fixing before training "
            "(see the red messages in the form).",
            icon=":material/warning:",
        )

    # Two fragments with a fixed element tree (the same elements, in the same order, on every
    # poll): the status (progress bar and one line of numbers) every STATUS_SECONDS, the chart
    # (one figure) every CHART_SECONDS, rebuilt only when the job moved on. Every poll costs
    # the browser a re-render of the page and the training a share of the CPU (ui.live,
    # bench/dashboard_overhead.py).
    @st.fragment(run_every=status_poll_seconds(running, running and job.paused))
    def live_status() -> None:
        w = state.session_job("train")
        if w is None:
            st.info("Press **Start** to train with these settings.", icon=":material/info:")
            return
        snap = w.snapshot(without=HEAVY_KEYS)
        st.progress(min(1.0, float(snap.get("progress") or 0.0)), text=_status_text(snap))
        st.caption(_numbers_text(snap))
        if running and not snap["alive"]:
            st.rerun()  # finished while polling: one full rerun shows the results

    @st.fragment(run_every=CHART_SECONDS if polling else None)
    def live_charts() -> None:
        w = state.session_job("train")
        if w is None:
            return
        light = w.snapshot(without=HEAVY_KEYS)
        token = (w.id, light["status"], light["epoch"], light["batches_seen"])
        st.plotly_chart(
            cached_view("train", token, lambda: _live_figure(w)),
            width="stretch",
            key="live_training",
            config={"displayModeBar": False},
        )

    live_status()
    live_charts()

    # ------------------------------------------------------------------ results
    if job is not None and not running:
        snap = job.snapshot()
        status = snap["status"]
        if status == "failed":
            st.error(f"Training failed: {snap['error']}", icon=":material/error:")
            with st.expander("Details"):
                st.code(snap.get("traceback") or "", language=None)
        elif status == "diverged" or (
            status == "finished" and train_form.diverged_without_nan(snap)
        ):
            st.error(
                snap["stop_message"]
                if status == "diverged" and snap["stop_message"]
                else train_form.diverged_without_nan(snap) or "Training diverged.",
                icon=":material/trending_up:",
            )
            st.warning(
                f"Lower the learning rate (now {cfg['learning_rate']:g}; try "
                f"{cfg['learning_rate'] / 10:g}) or turn on gradient clipping.",
                icon=":material/lightbulb:",
            )
        elif status == "stopped":
            st.warning(snap["stop_message"] or "Stopped on request.", icon=":material/stop:")
        elif status == "finished":
            msg = "Training finished."
            if snap.get("stop_reason") == "early_stopping":
                msg = snap["stop_message"]
            st.success(msg, icon=":material/check_circle:")
        if snap.get("run_errors"):
            st.warning(run_errors_text(snap["run_errors"]), icon=":material/database:")
        trained = job.result is not None and int(getattr(job.result, "n_iter_", 0) or 0) > 0
        if status in ("finished", "stopped", "diverged") and trained:
            r1, r2 = st.columns(2)
            r1.metric(
                "Test accuracy",
                f"{snap['test_accuracy']:.2%}" if snap.get("test_accuracy") is not None else "—",
            )
            r2.metric(
                "Validation accuracy",
                f"{snap['val_accuracy']:.2%}" if snap.get("val_accuracy") is not None else "—",
            )
            with st.container(border=True):
                st.markdown("**Save this model**")
                # a name for this training, in whichever tab it was started: its run's name
                # made into a model name ("fast-mnist", "C8k3-P2-D32-mnist")
                if st.session_state.get("save_name_for") != job.id:
                    run_name = (job.config.get("job") or {}).get("name") or ""
                    st.session_state["save_name"] = (
                        _save_name(run_name) if run_name else time.strftime("model-%Y%m%d-%H%M")
                    )
                    st.session_state["save_name_for"] = job.id
                s1, s2 = st.columns([3, 1], vertical_alignment="bottom")
                s1.text_input(
                    "Name",
                    key="save_name",
                    help="Letters, digits, '-', '_' and '.'; saved as saved_models/<name>.npz.",
                )
                try:
                    exists = model_path(
                        state.models_dir(), st.session_state.get("save_name", "")
                    ).exists()
                except ValueError:  # an invalid name: Save says why
                    exists = False
                if exists:
                    st.checkbox("Overwrite the existing model with this name", key="save_overwrite")
                s2.button(
                    "Save",
                    key="save_model",
                    type="primary",
                    on_click=_save,
                    icon=":material/save:",
                    width="stretch",
                )
                feedback = st.session_state.pop("save_feedback", None)
                if feedback:
                    getattr(st, feedback[0])(feedback[1])
            with st.container(border=True):
                k1, k2 = st.columns([3, 1], vertical_alignment="bottom")
                more = k1.number_input(
                    "Continue training for more epochs",
                    min_value=1,
                    max_value=500,
                    value=5,
                    key="continue_epochs",
                    help="Same weights and optimizer state (warm start).",
                )
                if k2.button(
                    "Continue",
                    key="continue_training",
                    icon=":material/fast_forward:",
                    width="stretch",
                ):
                    _start(continue_model=job.result, epochs=int(more))
                    st.rerun()
