"""Data sets (/data): the sets beside MNIST, adding one (upload or a folder on the server), and
removing one."""

from __future__ import annotations

import streamlit as st

from nn.data.arrays import DataError
from nn.data.registry import remove_set
from nn.services.workspace import QuotaError
from ui import auth, data_sets, state
from ui.data_sets import MAX_UPLOAD_BYTES, add_from_folder, add_from_uploads
from ui.text import markdown_escape

FEEDBACK_KEY = "data_feedback"

state.init_state()
st.title(":material/dataset: Data sets")
st.caption(
    "Every page works on the data set chosen in the sidebar: the bundled MNIST or a set you add "
    "here. Models remember the set they were trained on; the pages offer the models that fit "
    "the chosen set (the same image size and number of classes)."
)

feedback = st.session_state.pop(FEEDBACK_KEY, None)
if feedback:
    kind, text = feedback
    getattr(st, kind)(text)

sets = state.data_sets()
active = state.active_set().name
st.dataframe(
    [
        {
            "": "●" if s.name == active else "",
            "name": s.name,
            "image": s.shape_text + ("" if s.greyscale else " colour"),
            "classes": s.n_classes,
            "class names": ", ".join(s.class_names[:6]) + (", …" if s.n_classes > 6 else ""),
            "train": s.n_train,
            "test": s.n_test,
            "test part": "20% set aside when added" if s.test_split else "its own",
            "source": s.source,
            "added": s.added[:16].replace("T", " ") if s.added else "",
        }
        for s in sets
    ],
    hide_index=True,
    width="stretch",
    key="data_table",
)
st.caption(
    f"Added sets are kept in `{state.data_dir()}`."
    if state.workspace().is_local
    else "Added sets are kept in your workspace: nobody else sees them."
)

# ----------------------------------------------------------------------------- add
st.subheader("Add a data set")
st.markdown(
    "Any image classification set: **IDX** pairs (raw or `.gz`, as MNIST, Fashion-MNIST, "
    "KMNIST), a labelled **CSV** (the label, then the pixels of one image per row), an "
    "**`.npz`** with `x_train`, `y_train`, `x_test`, `y_test` (or `x`, `y`), or **`.npy`** "
    "pairs. Images may be greyscale or colour (`(n, height, width, 3)`), labels 0 to K-1. A set "
    "without a test part gets a stratified, seeded test part of 20% of its images."
)
name_col, classes_col = st.columns([1, 3])
set_name = name_col.text_input("Name", key="data_name", placeholder="fashion")
classes = classes_col.text_input(
    "Class names (comma-separated, in label order; empty: 0, 1, ...)",
    key="data_classes",
    placeholder="T-shirt, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Boot",
)
shape_col, over_col = st.columns([1, 3], vertical_alignment="bottom")
shape = shape_col.text_input(
    "Image shape of flat rows",
    key="data_shape",
    placeholder="32x32x3",
    help="Only for rows of pixels (CSV, 2-D arrays) that are not square greyscale or square "
    "colour images.",
)
overwrite = over_col.checkbox("Replace a set of the same name", key="data_overwrite")
from_server = data_sets.folder_import_allowed(auth.identity() is not None, auth.is_admin())
where = st.radio(
    "From",
    ["Upload files", "A folder on the server"] if from_server else ["Upload files"],
    key="data_where",
    horizontal=True,
)
if where == "Upload files":
    uploads = st.file_uploader(
        f"Files (at most {MAX_UPLOAD_BYTES >> 20} MB together)",
        accept_multiple_files=True,
        key="data_upload",
    )
    folder = ""
else:
    uploads = []
    folder = st.text_input(
        f"Folder (or data file) inside {data_sets.import_root()}",
        key="data_folder",
        placeholder="fashion-mnist",
        help=f"The import folder is set by ${data_sets.IMPORT_ROOT_ENV}.",
    )

if st.button("Add data set", key="data_add", type="primary"):
    try:
        if where == "Upload files":
            files = [(f.name, f.getvalue()) for f in uploads or []]
            state.check_room(sum(len(data) for _, data in files))
            info = add_from_uploads(
                files,
                set_name,
                classes=classes,
                shape=shape,
                overwrite=overwrite,
                data_dir=state.data_dir(),
            )
        else:
            state.check_room(0)
            info = add_from_folder(
                folder,
                set_name,
                classes=classes,
                shape=shape,
                overwrite=overwrite,
                data_dir=state.data_dir(),
            )
    except (DataError, QuotaError, OSError) as exc:
        st.error(f"Not added: {markdown_escape(str(exc))}", icon=":material/error:")
    else:
        state.set_active_set(info.name)
        note = ""
        if info.test_split:
            note = (
                f" It had no test part: {info.n_test:,} images (20%, stratified, seed "
                f"{info.test_split['seed']}) were set aside as its test part."
            )
        st.session_state[FEEDBACK_KEY] = (
            "success",
            f"Added **{markdown_escape(info.describe())}**; it is now the active data set." + note,
        )
        st.rerun()

# ----------------------------------------------------------------------------- remove
added = [s.name for s in sets if not s.builtin]
if added:
    st.subheader("Remove a data set")
    rm_col, sure_col, btn_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    doomed = rm_col.selectbox("Data set", added, key="data_remove_name")
    sure = sure_col.checkbox(
        "Yes, delete it (its models stay)", key="data_remove_sure", value=False
    )
    if btn_col.button("Remove", key="data_remove", disabled=not sure):
        try:
            remove_set(doomed, state.data_dir())
        except (DataError, OSError) as exc:
            st.error(f"Not removed: {markdown_escape(str(exc))}")
        else:
            if active == doomed:
                state.set_active_set("mnist")
            st.session_state[FEEDBACK_KEY] = ("success", f"Removed **{doomed}**.")
            st.rerun()
