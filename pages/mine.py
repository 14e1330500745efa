"""My digits (/mine): the drawings the user kept, every model on them, export, import, fine-tune."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st

from nn.data import DataError
from nn.data.registry import mnist_info
from nn.io.models_folder import model_path, sanitize_model_name
from nn.services.finetune import DEFAULTS as FINETUNE_DEFAULTS
from nn.services.finetune import check_settings, check_user_set
from nn.services.mine import MAX_IMPORT_BYTES, MineStoreError
from nn.services.workspace import QuotaError
from ui import state
from ui.charts import batch_loss_figure
from ui.drawing import enlarge
from ui.live import STATUS_SECONDS
from ui.mine import drawings_arrays, mine_score, store
from ui.session_jobs import queue_text, run_errors_text, start_finetune
from ui.text import duration_text, markdown_escape

TOAST_KEY = "mine_toast"
PICK_KEY = "mine_pick"
RELABEL_KEY = "mine_relabel_digit"
RELABEL_FOR_KEY = "mine_relabel_for"
DELETE_PENDING_KEY = "mine_delete_pending"
THUMB = 56  # gallery thumbnail side in pixels (28x28 doubled)
GALLERY_PER_DIGIT = 60  # newest drawings shown per digit (each is a PNG sent on every run)

state.init_state()
st.title(":material/gesture: My digits")
st.caption(
    "The digits you drew and kept on the **Draw** page: how every model reads your handwriting, "
    "and a model fine-tuned on it."
)
message = st.session_state.pop(TOAST_KEY, None)
if message:
    st.toast(message, icon=":material/check_circle:")

try:
    drawings = store()
    x, y, ids = drawings_arrays()
except (MineStoreError, OSError) as exc:
    st.error(f"The drawings database cannot be used: {exc}", icon=":material/error:")
    st.stop()


def _no_mnist_model() -> None:
    """No saved model reads digits: train one on MNIST."""
    st.info(
        "No saved model of MNIST's digits yet. Train one on the **Train** page with MNIST "
        "chosen in the sidebar (or upload one on **Models**).",
        icon=":material/model_training:",
    )


def _done(text: str) -> None:
    """Confirm on the next run (the page reruns to show the change everywhere)."""
    st.session_state[TOAST_KEY] = text
    st.rerun()


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _thumb(row: np.ndarray) -> np.ndarray:
    return enlarge(row.reshape(28, 28), THUMB)


@st.cache_resource(max_entries=2, show_spinner=False)
def _export_bytes(path: str, version: tuple) -> bytes:
    return store().export_npz()


# ------------------------------------------------------------------ counts and gallery
counts = drawings.counts()
for col, digit in zip(st.columns(10), range(10), strict=True):
    col.metric(str(digit), counts[digit])

if len(y) == 0:
    st.info(
        "No drawings kept yet. Draw a digit on the **Draw** page and press **Keep this "
        "drawing**, or import an `.npz` below.",
        icon=":material/draw:",
    )
    st.page_link("pages/draw.py", label="Go to Draw", icon=":material/draw:")

gallery, scores_tab, edit_tab, files_tab, tune_tab = st.tabs(
    ["Gallery", "Models on my digits", "Relabel or delete", "Export and import", "Fine-tune"]
)

with gallery:
    for digit in range(10):
        members = np.flatnonzero(y == digit)
        if not len(members):
            continue
        heading = f"**{digit}** · {len(members)} drawing{'s' if len(members) != 1 else ''}"
        if len(members) > GALLERY_PER_DIGIT:
            heading += f" (the newest {GALLERY_PER_DIGIT} shown)"
            members = members[-GALLERY_PER_DIGIT:]
        st.markdown(heading)
        st.image(
            [_thumb(x[i]) for i in members],
            caption=[f"#{ids[i]}" for i in members],
            width=THUMB,
            output_format="PNG",
        )

# ------------------------------------------------------------------ every model on the drawings
# the drawings are 28x28 digits: only models of MNIST's shape and ten classes read them,
# whatever data set is chosen in the sidebar
mnist = mnist_info()
saved = [row for row in state.saved_models() if state.model_path_for(Path(row["path"]).stem)]
models = [row for row in saved if state.model_fits(row, mnist)]
names = list(dict.fromkeys(Path(row["path"]).stem for row in models))
others = len({Path(row["path"]).stem for row in saved} - set(names))
if others:
    st.caption(
        f"{others} model{'s' if others != 1 else ''} of other data sets "
        f"{'is' if others == 1 else 'are'} left out: the drawings are digits, read by models "
        "of MNIST's 28x28 images and ten digits."
    )
scored: dict[str, object] = {}
with scores_tab:
    if not names:
        _no_mnist_model()
    elif len(y) == 0:
        st.caption("Keep some drawings to see how each model reads them.")
    else:
        table = []
        for row in models:
            name = Path(row["path"]).stem
            try:
                score = mine_score(row["path"])
            except (OSError, ValueError) as exc:
                st.warning(f"{markdown_escape(name)} cannot be read: {markdown_escape(str(exc))}")
                continue
            scored[name] = score
            table.append(
                {
                    "model": name,
                    "my digits": score.accuracy,
                    "wrong": len(score.wrong),
                    "drawings": len(score.labels),
                    "MNIST test": row.get("test_accuracy"),
                }
            )
        table.sort(key=lambda r: -r["my digits"])
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="mine_scores",
            column_config={
                "my digits": st.column_config.ProgressColumn(
                    "my digits", format="percent", min_value=0.0, max_value=1.0
                ),
                "MNIST test": st.column_config.NumberColumn(format="percent"),
            },
        )
        pick = st.selectbox(
            "The drawings this model gets wrong",
            [r["model"] for r in table],
            key="mine_wrong_model",
        )
        score = scored.get(pick)
        if score is not None:
            wrong = score.wrong
            if not len(wrong):
                st.success(f"{markdown_escape(pick)} reads all {len(score.labels)} of them.")
            else:
                position = {int(i): k for k, i in enumerate(ids)}
                st.image(
                    [_thumb(x[position[int(score.ids[k])]]) for k in wrong],
                    caption=[
                        f"#{score.ids[k]}: is {score.labels[k]}, said {score.pred[k]}"
                        for k in wrong
                    ],
                    width=THUMB * 2,
                    output_format="PNG",
                )

# ------------------------------------------------------------------ relabel or delete one
with edit_tab:
    if len(y) == 0:
        st.caption("Nothing to relabel yet.")
    else:
        listed = {d.id: d for d in drawings.list()}
        options = sorted(listed, reverse=True)
        if st.session_state.get(PICK_KEY) not in listed:
            st.session_state.pop(PICK_KEY, None)
        chosen = st.selectbox(
            "Drawing",
            options,
            key=PICK_KEY,
            format_func=lambda i: f"#{i}: a {listed[i].label}, kept {_when(listed[i].created_at)}",
        )
        current = listed[chosen]
        if st.session_state.get(RELABEL_FOR_KEY) != chosen:
            st.session_state[RELABEL_FOR_KEY] = chosen
            st.session_state[RELABEL_KEY] = current.label
        left, right = st.columns([1, 2], gap="large")
        full = drawings.get(chosen)
        with left:
            st.image(enlarge(current.image, 168), caption="what the network sees", width=168)
            if full.canvas_png:
                st.image(full.canvas_png, caption="as drawn", width=168)
        with right:
            said = (
                f"{markdown_escape(current.model_name)} said {current.predicted}"
                if current.predicted is not None and current.model_name
                else f"from an {current.source}"
            )
            st.markdown(f"Kept as a **{current.label}** ({said}), {_when(current.created_at)}.")
            digit = st.segmented_control("True digit", list(range(10)), key=RELABEL_KEY)
            if st.button(
                "Save the label",
                key="mine_relabel",
                icon=":material/edit:",
                disabled=digit is None or digit == current.label,
            ):
                drawings.relabel(chosen, int(digit))
                _done(f"Drawing #{chosen} is a {digit} now.")
            if st.button("Delete this drawing", key="mine_delete", icon=":material/delete:"):
                st.session_state[DELETE_PENDING_KEY] = chosen
            if st.session_state.get(DELETE_PENDING_KEY) == chosen:
                st.warning(f"Delete drawing #{chosen}? This cannot be undone.")
                yes, no = st.columns(2)
                if yes.button("Yes, delete it", key="mine_delete_confirm", type="primary"):
                    st.session_state.pop(DELETE_PENDING_KEY, None)
                    drawings.delete(chosen)
                    _done(f"Drawing #{chosen} deleted.")
                if no.button("Cancel", key="mine_delete_cancel"):
                    st.session_state.pop(DELETE_PENDING_KEY, None)
                    st.rerun()

# ------------------------------------------------------------------ export and import
with files_tab:
    st.download_button(
        "Download my digits (.npz)",
        data=_export_bytes(str(drawings.path), drawings.version()),
        file_name="my_digits.npz",
        mime="application/octet-stream",
        key="mine_export",
        icon=":material/download:",
        disabled=len(y) == 0,
        help="x: uint8 (n, 784) images, y: their digits; nn.data.load_dataset reads it.",
    )
    upload = st.file_uploader(
        "Import drawings",
        key="mine_import_file",
        help=f"An .npz with x (n, 784 or n, 28, 28; 0-255) and y (digits 0-9), or a labelled "
        f"CSV; at most {MAX_IMPORT_BYTES // 2**20} MB. It is checked whole before anything "
        "is added.",
    )
    if st.button("Import", key="mine_import", icon=":material/upload:", disabled=upload is None):
        try:
            if upload.size > MAX_IMPORT_BYTES:
                raise DataError(
                    f"{upload.name}: {upload.size / 2**20:.1f} MB; at most "
                    f"{MAX_IMPORT_BYTES // 2**20} MB may be imported"
                )
            state.check_room(upload.size)
            added = drawings.import_bytes(upload.getvalue(), upload.name)
        except (DataError, MineStoreError, QuotaError) as exc:
            st.error(
                f"Not imported, nothing was added: {markdown_escape(str(exc))}",
                icon=":material/error:",
            )
        else:
            _done(f"Imported {len(added)} drawings from {upload.name}.")


# ------------------------------------------------------------------ fine-tune on the drawings
def _start_finetune(base: str, new_name: str, epochs: int) -> str | None:
    """Start the session's fine-tuning job; an error message instead when it cannot start."""

    try:
        name = sanitize_model_name(new_name)
        if model_path(state.models_dir(), name).exists():
            return f"A model called {name} exists already: pick another name."
        check_user_set(x, y)
        limit = state.train_limit()
        # the server's cap on training images (NN_TRAIN_LIMIT) below the fine-tuning's own
        own = FINETUNE_DEFAULTS["train_limit"]
        capped = {} if limit is None else {"train_limit": max(100, min(limit, own))}
        settings = check_settings({"epochs": int(epochs), **capped})
    except ValueError as exc:
        return str(exc)
    base_path = state.model_path_for(base)
    if base_path is None:
        return f"The model {base} is gone."
    start_finetune(
        state.job_board(),
        state.job_runner(),
        state.current_owner(),
        base_path,
        name,
        np.array(x),
        np.array(y),
        models_dir=state.models_dir(),
        settings=settings,
        runs_path=str(state.workspace().runs_db),
    )
    return None


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


with tune_tab:
    job = state.session_job("finetune")  # this person's, whichever tab started it
    running = bool(job is not None and not job.done)
    st.caption(
        "Continue training a saved model on 10,000 MNIST images plus your drawings: they are "
        "repeated to be about 8% of each epoch, augmentation is on, and a seeded part of them "
        "is held out to measure the gain. The result is saved as a new model and recorded as "
        "a run."
    )
    if not names:
        _no_mnist_model()
    else:
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        active = state.active_model_name()
        base = c1.selectbox(
            "Model to fine-tune",
            names,
            index=names.index(active) if active in names else 0,
            key="mine_ft_base",
            disabled=running,
        )
        new_name = c2.text_input(
            "Save as", value=f"{base}-mine", key=f"mine_ft_name_{base}", disabled=running
        )
        epochs = c3.number_input(
            "Epochs", min_value=1, max_value=5, value=1, key="mine_ft_epochs", disabled=running
        )
        # what keeps the drawings from being fine-tuned on, said before the click
        try:
            check_user_set(x, y)
            refused = None
        except ValueError as exc:
            refused = str(exc)
        b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1, 2])
        if b1.button(
            "Fine-tune",
            key="mine_ft_start",
            type="primary",
            icon=":material/play_arrow:",
            disabled=running or refused is not None,
            help=None if refused is None else f"Not yet: {refused}.",
        ):
            problem = _start_finetune(base, new_name, int(epochs))
            if problem:
                st.error(markdown_escape(problem), icon=":material/block:")
            else:
                st.rerun()
        b2.button(
            "Pause",
            key="mine_ft_pause",
            icon=":material/pause:",
            disabled=not running or job.paused,
            on_click=job.pause if job is not None else None,
        )
        b3.button(
            "Resume",
            key="mine_ft_resume",
            icon=":material/resume:",
            disabled=not running or not job.paused,
            on_click=job.resume if job is not None else None,
        )
        b4.button(
            "Stop",
            key="mine_ft_stop",
            icon=":material/stop:",
            disabled=not running,
            on_click=job.stop if job is not None else None,
        )
        if refused is not None and not running:
            st.info(f"Not yet: {markdown_escape(refused)}.", icon=":material/block:")


# every poll re-renders the page in the browser (ui.live): as seldom as the Train page's status
@st.fragment(run_every=STATUS_SECONDS if running else None)
def finetune_status() -> None:
    job = state.session_job("finetune")
    if job is None:
        return
    snap = job.snapshot()
    status = snap["status"]
    if snap.get("paused") and status == "running":
        status = "paused"
    label = {
        "paused": "Paused",
        "preparing": "Preparing…",
        "running": "Fine-tuning",
        "finished": "Finished",
        "stopped": "Stopped",
        "diverged": "Diverged",
        "failed": "Failed",
        "queued": queue_text(snap).capitalize(),
    }.get(status, status)
    epoch_text = f" — epoch {snap['epoch']}/{snap['epochs']}" if snap["epochs"] else ""
    if status == "running" and float(snap["progress"]) >= 1.0:  # trained; the scores remain
        epoch_text += ", measuring it on your held-out drawings and the MNIST test set…"
    elif status == "running" and snap.get("eta_seconds") is not None:
        epoch_text += f", about {duration_text(snap['eta_seconds'])} of training left"
    st.progress(min(1.0, float(snap["progress"])), text=f"{label}{epoch_text}")
    st.plotly_chart(
        batch_loss_figure(
            snap["batch_loss"],
            steps=snap["batch_steps"],
            smoothed=snap["batch_ema"],
            uirevision="finetune",
        ),
        width="stretch",
        key="mine_ft_loss",
        config={"displayModeBar": False},
    )
    if status == "failed":
        st.error(f"Fine-tuning failed: {markdown_escape(snap['error'] or '')}")
    if snap.get("run_errors"):
        st.warning(run_errors_text(snap["run_errors"]), icon=":material/database:")
    result = snap["result"]
    if result is not None:
        st.dataframe(
            [
                {
                    "measured on": f"your held-out drawings ({result['n_user_held_out']})",
                    "before": _pct(result["held_out_before"]),
                    "after": _pct(result["held_out_after"]),
                },
                {
                    "measured on": "MNIST test set (10,000)",
                    "before": _pct(result["mnist_before"]),
                    "after": _pct(result["mnist_after"]),
                },
            ],
            hide_index=True,
            key="mine_ft_result",
        )
        st.caption(
            f"Fine-tuned on {result['n_user_train']} of your drawings, each repeated "
            f"{result['repeats']} times, and {result['n_mnist_train']:,} MNIST images."
        )
        for warning in result["warnings"]:
            st.warning(markdown_escape(warning), icon=":material/warning:")
        if snap["saved"]:
            st.success(
                f"Saved as **{markdown_escape(Path(snap['saved']).stem)}**"
                + ("" if snap["run_id"] is None else f" (run {snap['run_id']})")
                + "; pick it in the sidebar to use it.",
                icon=":material/check_circle:",
            )
    if running and not snap["alive"]:
        st.rerun()  # finished while polling: one full rerun enables the buttons again


with tune_tab:
    finetune_status()
