"""My digits (/mine): the drawings the user kept, every model on them, export, import, fine-tune."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st

from nn.data import DataError
from nn.services.mine import MAX_IMPORT_BYTES, MineStoreError
from ui import state
from ui.drawing import enlarge
from ui.mine import drawings_arrays, mine_score, store
from ui.text import markdown_escape

TOAST_KEY = "mine_toast"
PICK_KEY = "mine_pick"
RELABEL_KEY = "mine_relabel_digit"
RELABEL_FOR_KEY = "mine_relabel_for"
DELETE_PENDING_KEY = "mine_delete_pending"
THUMB = 56  # gallery thumbnail side in pixels (28x28 doubled)

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

gallery, scores_tab, edit_tab, files_tab = st.tabs(
    ["Gallery", "Models on my digits", "Relabel or delete", "Export and import"]
)

with gallery:
    for digit in range(10):
        members = np.flatnonzero(y == digit)
        if not len(members):
            continue
        st.markdown(f"**{digit}** · {len(members)} drawing{'s' if len(members) != 1 else ''}")
        st.image(
            [_thumb(x[i]) for i in members],
            caption=[f"#{ids[i]}" for i in members],
            width=THUMB,
            output_format="PNG",
        )

# ------------------------------------------------------------------ every model on the drawings
models = [row for row in state.saved_models() if state.model_path_for(Path(row["path"]).stem)]
names = list(dict.fromkeys(Path(row["path"]).stem for row in models))
scored: dict[str, object] = {}
with scores_tab:
    if not names:
        state.no_model_message()
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
            added = drawings.import_bytes(upload.getvalue(), upload.name)
        except (DataError, MineStoreError) as exc:
            st.error(
                f"Not imported, nothing was added: {markdown_escape(str(exc))}",
                icon=":material/error:",
            )
        else:
            _done(f"Imported {len(added)} drawings from {upload.name}.")
