"""Models page: the saved models as a table; load, delete, download (.npz, .pkl, ONNX, offline
HTML), upload, compare."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import streamlit as st

from nn.data.registry import model_record, record_label
from nn.io.export import export_bytes
from nn.io.model_files import (
    MAX_UPLOAD_BYTES,
    ModelFileError,
    export_pickle,
    load_model_bytes,
    save_model,
)
from nn.io.models_folder import delete_model, model_path, sanitize_model_name
from nn.io.plan import INSTALL_HINT, ExportError, MissingExportExtraError
from ui import state
from ui.charts import compare_figure
from ui.mine import accuracy_text as mine_accuracy_text
from ui.text import markdown_escape

state.init_state()
folder = state.models_dir()

st.title(":material/inventory_2: Models")
st.caption(
    f"Saved models in `{folder}`. The active model is used by Draw, Predictions and Evaluate."
)


@st.cache_resource(max_entries=4, show_spinner=False)
def _file_bytes(path: str, mtime: float, fmt: str) -> bytes:
    """The model at ``path`` as ``.npz`` or ``.pkl`` bytes (converted through a temp file)."""
    src = Path(path)
    if src.suffix.lower() == f".{fmt}":
        return src.read_bytes()
    model = state.get_model(src)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{src.stem}.{fmt}"
        if fmt == "pkl":
            export_pickle(model, out)
        else:
            save_model(model, out)
        return out.read_bytes()


@st.cache_resource(max_entries=4, show_spinner=False)
def _export_bytes(path: str, mtime: float, fmt: str) -> bytes:
    """The model at ``path`` exported as ONNX or as the offline HTML digit reader."""
    return export_bytes(state.get_model(Path(path)), fmt, title=f"Digit reader: {Path(path).stem}")


EXPORT_BUTTONS = {
    "onnx": (
        "Download .onnx",
        "application/octet-stream",
        "ONNX for onnxruntime, netron and other frameworks: input 'pixels' (n, 784) float32 in "
        "[0, 1], output 'probabilities' (n, 10).",
    ),
    "html": (
        "Download .html",
        "text/html",
        "One self-contained web page that reads digits drawn on it, offline, in any browser.",
    ),
    "numpy": (
        "Download NumPy program",
        "application/zip",
        "reader.py and its weights reader.npz (a .zip): the forward pass written out in NumPy, "
        "one short function per layer; 'python reader.py digit.png' reads a digit.",
    ),
}


def _export_button(column, path: Path, pick: str, fmt: str) -> None:
    """A download button for the model as ``fmt``; the install command when the extra is
    missing, the reason when the model cannot be exported."""
    label, mime, help_text = EXPORT_BUTTONS[fmt]
    try:
        data = _export_bytes(str(path), path.stat().st_mtime, fmt)
    except MissingExportExtraError:
        column.download_button(
            label,
            b"",
            key=f"download_{fmt}",
            icon=":material/download:",
            width="stretch",
            disabled=True,
            help=f"Needs the optional packages onnx and onnxruntime: {INSTALL_HINT}",
        )
        column.caption(f"ONNX export needs the export extra: `{INSTALL_HINT}`")
        return
    except (ExportError, OSError, ValueError) as exc:
        column.warning(f"Cannot export as {fmt.upper()}: {markdown_escape(exc)}")
        return
    column.download_button(
        label,
        data,
        file_name=f"{pick}.{'zip' if fmt == 'numpy' else fmt}",
        mime=mime,
        key=f"download_{fmt}",
        icon=":material/download:",
        width="stretch",
        help=help_text,
    )


def _dash(value, fmt: str = "{}") -> str:
    """``value`` formatted, or "—" when it is missing (a table cell showed "None")."""
    return "—" if value is None else fmt.format(value)


def _when(value) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


rows = state.model_rows()
active = state.active_model_name()
data_set = state.active_set()


def _set_cell(row: dict) -> str:
    """The data set a model was trained on, by name (or by shape when it names none)."""
    record = model_record(row)
    return record.get("name") or f"unnamed ({'x'.join(map(str, record['image_shape']))})"


def _use_problem(name: str) -> str | None:
    """Why the saved model ``name`` cannot become the active model: it does not fit the active
    set and its own set is not here. None when it fits, or its set is here (making it active
    switches to that set)."""
    path = state.model_path_for(name)
    if path is None:
        return f"**{name}** is gone from the models folder."
    try:
        meta = state.get_model_metadata(path)
    except (OSError, ValueError) as exc:
        return f"**{name}** cannot be read: {markdown_escape(exc)}"
    if state.model_fits(meta, data_set):
        return None
    record = model_record(meta)
    if any(
        info.name == record.get("name") and state.model_fits(meta, info)
        for info in state.data_sets()
    ):
        return None
    return (
        f"**{name}** was trained on {markdown_escape(record_label(record))}, which is not "
        f"among the data sets here, and cannot be used on **{data_set.name}** "
        f"({data_set.shape_text} images, {data_set.n_classes} classes). Add its data set on the "
        f"**Data sets** page, or choose a model of {data_set.name}."
    )


def _delete_controls(pick: str) -> None:
    """Delete the workspace's model ``pick``, after a tick."""
    confirm = st.checkbox(
        f"Yes, delete **{pick}**",
        key="confirm_delete",
        help="Deleting removes the file(s) from the models folder.",
    )
    if st.button("Delete", key="delete_model", icon=":material/delete:", disabled=not confirm):
        try:
            delete_model(folder, pick)
        except (OSError, ValueError) as exc:
            st.error(f"Could not delete {pick}: {markdown_escape(exc)}")
        else:
            if st.session_state.get("active_model_name") == pick:
                state.set_active_model(None)
            st.session_state.pop("confirm_delete", None)
            st.toast(f"Deleted {pick}.", icon=":material/delete:")
            st.rerun()


stems = list(dict.fromkeys(Path(r["path"]).stem for r in rows if not r.get("error")))

# ------------------------------------------------------------------ table
if not rows:
    state.no_model_message()
else:
    table = [
        {
            "": "●" if Path(r["path"]).stem == active else "",
            "name": Path(r["path"]).stem,
            "layers": state.layers_text(r.get("layers"), r.get("stack"))
            if not r.get("error")
            else "unreadable",
            "data set": "" if r.get("error") else _set_cell(r),
            f"fits {data_set.name}": ""
            if r.get("error")
            else "yes"
            if state.model_fits(r, data_set)
            else "no",
            "test accuracy": _dash(r.get("test_accuracy"), "{:.2%}"),
            "my digits": "—" if r.get("error") else mine_accuracy_text(r["path"]),
            "epochs": _dash(r.get("n_iter")),
            "parameters": _dash(r.get("n_parameters"), "{:,}"),
            "saved": _when(r.get("saved")),
            "size (MB)": r["size_bytes"] / 1e6,
            "format": r["format"] + (" · shared" if r.get("shared") else ""),
        }
        for r in rows
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="models_table",
        column_config={
            "": st.column_config.TextColumn(width="small", help="the active model"),
            "data set": st.column_config.TextColumn(
                help="the data set the model was trained on; the other pages offer the models "
                "of the data set chosen in the sidebar"
            ),
            f"fits {data_set.name}": st.column_config.TextColumn(
                help=f"whether the model takes {data_set.name}'s {data_set.shape_text} images "
                f"and {data_set.n_classes} classes (the data set chosen in the sidebar)"
            ),
            "size (MB)": st.column_config.NumberColumn(format="%.2f"),
            "my digits": st.column_config.TextColumn(
                help="accuracy on the digits you drew and kept (My digits); a dash when there "
                "are none"
            ),
        },
    )
    for r in rows:
        if r.get("error"):
            st.warning(
                f"{markdown_escape(Path(r['path']).name)} cannot be read: "
                f"{markdown_escape(r['error'])}",
                icon=":material/warning:",
            )

# ------------------------------------------------------------------ actions on one model
if stems:
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.subheader("Manage")
        # a model just saved (upload below) is picked; the widget's state can only be set
        # before the selectbox is drawn, hence the pending key and the rerun
        follow = st.session_state.pop("models_pick_next", None)
        if follow in stems:
            st.session_state["models_pick"] = follow
        elif st.session_state.get("models_pick") not in stems:
            st.session_state["models_pick"] = active if active in stems else stems[0]
        p1, p2 = st.columns([2, 1], vertical_alignment="bottom")
        pick = p1.selectbox(
            "Model", stems, key="models_pick", help="The saved model the buttons below act on."
        )
        path = state.model_path_for(pick)
        if p2.button(
            "Make active",
            key="load_model",
            icon=":material/check:",
            type="primary",
            disabled=pick == active,
            width="stretch",
        ):
            problem = _use_problem(pick)
            if problem is not None:
                st.session_state["models_feedback"] = problem
            else:
                state.set_active_model(pick)
                if state.active_set().name != data_set.name:
                    st.toast(
                        f"{pick} was trained on {state.active_set().name}: that data set is "
                        "now chosen in the sidebar.",
                        icon=":material/dataset:",
                    )
            st.rerun()
        feedback = st.session_state.pop("models_feedback", None)
        if feedback:
            st.error(feedback, icon=":material/block:")
        b2, b3 = st.columns(2)
        if path is not None:
            mtime = path.stat().st_mtime
            try:
                b2.download_button(
                    "Download .npz",
                    _file_bytes(str(path), mtime, "npz"),
                    file_name=f"{pick}.npz",
                    mime="application/octet-stream",
                    key="download_npz",
                    icon=":material/download:",
                    width="stretch",
                )
                b3.download_button(
                    "Download .pkl",
                    _file_bytes(str(path), mtime, "pkl"),
                    file_name=f"{pick}.pkl",
                    mime="application/octet-stream",
                    key="download_pkl",
                    icon=":material/download:",
                    width="stretch",
                    help="Compatibility pickle (plain containers only).",
                )
            except (OSError, ValueError) as exc:
                st.error(f"Cannot prepare the download: {markdown_escape(exc)}")
            b4, b5, b6 = st.columns(3)
            _export_button(b4, path, pick, "onnx")
            _export_button(b5, path, pick, "html")
            _export_button(b6, path, pick, "numpy")
        if state.is_shared(path):
            st.caption(
                f"**{pick}** is shared with everyone on this server: you can use and download "
                "it, not delete or replace it."
            )
        else:
            _delete_controls(pick)

    with right:
        st.subheader("Compare")
        chosen = st.multiselect(
            "Models",
            stems,
            default=[active] if active in stems else stems[:1],
            key="compare_models",
            help="Their training curves, per epoch, on one chart.",
        )
        metric = st.segmented_control(
            "Curve",
            ["val_accuracy", "val_loss", "train_accuracy", "loss"],
            default="val_accuracy",
            key="compare_metric",
            format_func=lambda m: m.replace("_", " ").replace("val", "validation"),
        )
        histories = {}
        for name in chosen:
            p = state.model_path_for(name)
            if p is None:
                continue
            try:
                histories[name] = state.get_model_metadata(p).get("history") or {}
            except (OSError, ValueError) as exc:
                st.error(f"Cannot read {name}: {markdown_escape(exc)}")
        fig = compare_figure(histories, metric or "val_accuracy")
        if fig.data:
            st.plotly_chart(fig, width="stretch", key="compare_chart")
        else:  # an empty chart showed a meaningless -100%..400% axis
            what = (metric or "val_accuracy").replace("_", " ").replace("val", "validation")
            st.info(
                f"Nothing to plot: no {what} recorded for "
                + (", ".join(f"**{n}**" for n in chosen) if chosen else "the chosen models")
                + " (models trained without a validation set have no validation curves).",
                icon=":material/info:",
            )

# ------------------------------------------------------------------ upload
st.subheader("Upload a model")
# Streamlit cannot empty a file_uploader: after a save the widget gets a new key (a counter),
# i.e. a new, empty uploader. The container keeps a stable CSS class (st-key-model_upload).
st.session_state.setdefault("upload_counter", 0)
upload = st.container(key="model_upload").file_uploader(
    "A model saved by this project (.npz, or the compatibility .pkl)",
    # No ``type=``: Streamlit's own extension check raises inside the widget on a name with a
    # NUL byte (the page's exception screen, the uploader gone); load_model_bytes checks the
    # name and the extension with a message instead.
    key=f"model_upload_{st.session_state['upload_counter']}",
    help=f"At most {MAX_UPLOAD_BYTES // 2**20} MB. The file is checked in memory; nothing is "
    "written until you save it.",
)
if upload is not None:
    data = upload.getvalue()
    try:
        model = load_model_bytes(data, upload.name)
    except (ModelFileError, ValueError, TypeError) as exc:
        st.error(
            f"This file was refused and nothing was saved: {markdown_escape(exc)}",
            icon=":material/block:",
        )
    except Exception as exc:  # noqa: BLE001 - any other fault in a foreign file
        st.error(
            "This file was refused and nothing was saved: "
            + markdown_escape(f"{type(exc).__name__}: {exc}"),
            icon=":material/block:",
        )
    else:
        meta = getattr(model, "metadata_", {}) or {}
        claimed = (meta.get("metrics") or {}).get("test_accuracy")
        record = model_record(model)
        fits_here = state.model_fits(model, data_set)
        measured = state.measured_test_accuracy(model, data, data_set) if fits_here else None
        test_set = "the MNIST test set" if data_set.builtin else f"{data_set.name}'s test part"
        if measured is not None:
            accuracy = f", test accuracy {measured:.2%} (measured here on {test_set}"
            if isinstance(claimed, (int, float)) and abs(claimed - measured) > 5e-5:
                accuracy += f"; the file claims {claimed:.2%}"
            accuracy += ")"
        elif isinstance(claimed, (int, float)):
            accuracy = f", test accuracy {claimed:.2%} as the file claims (not measured here)"
        else:
            accuracy = ""
        st.success(
            f"Valid model: {state.model_layers_text(model)}, "
            f"{model.n_parameters_:,} parameters{accuracy}.",
            icon=":material/verified:",
        )
        own_set_here = any(
            info.name == record.get("name") and state.model_fits(model, info)
            for info in state.data_sets()
        )
        if not fits_here:
            st.warning(
                f"This model was trained on {markdown_escape(record_label(record))} and does "
                f"not fit the active data set **{data_set.name}** ({data_set.shape_text} "
                f"images, {data_set.n_classes} classes): it was not measured here. Saved, it "
                + (
                    f"is listed under its data set **{record['name']}**."
                    if own_set_here
                    else "is kept, but no page can use it until its data set is added on the "
                    "**Data sets** page."
                ),
                icon=":material/dataset:",
            )
        try:
            suggested = sanitize_model_name(Path(upload.name).stem)
        except ValueError:
            suggested = "uploaded-model"
        u1, u2 = st.columns([3, 1], vertical_alignment="bottom")
        name = u1.text_input("Save as", value=suggested, key="upload_name")
        target = None
        try:
            target = model_path(folder, name)
        except ValueError as exc:
            st.error(markdown_escape(exc))
        overwrite = False
        if target is not None and target.exists():
            overwrite = st.checkbox(
                f"Overwrite the existing model **{target.stem}**", key="upload_overwrite"
            )
        if u2.button(
            "Save upload",
            key="save_upload",
            icon=":material/save:",
            type="primary",
            disabled=target is None,
            width="stretch",
        ):
            if target.exists() and not overwrite:
                st.warning(f"A model called **{target.stem}** exists: tick *Overwrite* first.")
            else:
                try:
                    state.check_room(len(data))
                    save_model(model, target, name=target.stem)
                except (OSError, ValueError) as exc:
                    st.error(f"Could not save: {markdown_escape(exc)}")
                else:
                    st.session_state["upload_counter"] += 1  # a new, empty uploader
                    st.session_state["models_pick_next"] = target.stem
                    st.session_state.pop("upload_name", None)  # the next upload's own name
                    if fits_here or own_set_here:
                        state.set_active_model(target.stem)
                        st.toast(
                            f"Saved {target.name}; it is now the active model.",
                            icon=":material/check:",
                        )
                    else:
                        st.toast(
                            f"Saved {target.name}; add its data set to use it.",
                            icon=":material/check:",
                        )
                    st.rerun()
