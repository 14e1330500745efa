"""Runs page: every recorded training run (dashboard, CLI, tune), filtered and sorted; the curves
of the selected runs overlaid; a run's settings loaded back into the Train page in one click."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nn.services.runs import ORDER_BY_FIELDS, SOURCES, STATUSES, RunStore
from nn.services.settings import recorded_settings
from ui import state
from ui import tune as tn
from ui.charts import compare_figure

state.init_state()

st.title(":material/history: Runs")
st.caption(
    "Every training run is recorded here: from the Train page, `python -m nn train` and "
    "the Tune page. Select rows to compare their curves."
)

try:
    store = RunStore(state.workspace().runs_db)
    if not st.session_state.get("runs_checked_interrupted"):
        store.mark_interrupted()  # runs whose process died are not "running" any more
        st.session_state["runs_checked_interrupted"] = True
except Exception as exc:  # noqa: BLE001 - an unusable database is shown, not raised
    st.error(f"The run database cannot be opened: {exc}", icon=":material/error:")
    st.stop()

# ------------------------------------------------------------------ filters
f1, f2, f3, f4 = st.columns([1.3, 1.3, 1, 1])
statuses = f1.multiselect("Status", list(STATUSES), key="runs_status", placeholder="all statuses")
sources = f2.multiselect("Source", list(SOURCES), key="runs_source", placeholder="all sources")
searches = store.list_searches()
search_labels = {"all": None} | {
    f"#{s.id} {s.name or ''} ({s.status})".replace("  ", " "): s.id for s in searches
}
search_label = f3.selectbox("Search", list(search_labels), key="runs_search")
order_by = f4.selectbox(
    "Sort by",
    list(ORDER_BY_FIELDS),
    index=list(ORDER_BY_FIELDS).index("started_at"),
    key="runs_order",
)
g1, g2, g3 = st.columns([2, 1, 1])
name_filter = g1.text_input(
    "Name or model contains",
    key="runs_name",
    placeholder="any name",
    help="A run is named after its layers and data set, and after its model once saved.",
)
descending = g2.toggle("Descending", value=True, key="runs_desc")
limit = g3.number_input(
    "Show at most", min_value=10, max_value=10_000, value=500, step=50, key="runs_limit"
)

runs = store.list_runs(
    status=statuses or None,
    source=sources or None,
    search_id=search_labels[search_label],
    order_by=order_by,
    descending=descending,
    limit=int(limit),
)
if name_filter.strip():
    needle = name_filter.strip().lower()
    runs = [
        r
        for r in runs
        if needle in (r.name or "").lower()
        or (r.model_path and needle in Path(r.model_path).stem.lower())
    ]

if not runs:
    st.info(
        "No runs match. Train a model on the **Train** page, run `python -m nn train`, or "
        "start a search on the **Tune** page.",
        icon=":material/info:",
    )
    st.stop()

# ------------------------------------------------------------------ the table
df = tn.runs_frame(runs)
# the columns that fit the page's width without sideways scrolling (short labels, narrow
# widths); the run's message and full settings are in the expander below
order = [
    "id",
    "name",
    "dataset",
    "source",
    "status",
    "val_accuracy",
    "test_accuracy",
    "epochs",
    "hidden_layers",
    "optimizer",
    "learning_rate",
    "batch_size",
    "train_size",
    "started",
]
if df["search"].notna().any():
    order.insert(4, "search")
cc = st.column_config
event = st.dataframe(
    df,
    key="runs_table",
    on_select="rerun",
    selection_mode="multi-row",
    hide_index=True,
    width="stretch",
    column_order=order,
    column_config={
        "id": cc.NumberColumn("id", width=40),
        "name": cc.TextColumn("name", width="small"),
        "dataset": cc.TextColumn("data set", width=75, help="the data set the run trained on"),
        "source": cc.TextColumn("source", width=75),
        "status": cc.TextColumn("status", width=70),
        "search": cc.NumberColumn("search", width=55),
        "val_accuracy": cc.NumberColumn(
            "val acc", format="percent", width=65, help="validation accuracy"
        ),
        "test_accuracy": cc.NumberColumn(
            "test acc", format="percent", width=65, help="test accuracy"
        ),
        "epochs": cc.NumberColumn("epochs", width=55),
        "hidden_layers": cc.TextColumn("layers", width=75, help="hidden layer sizes"),
        "optimizer": cc.TextColumn("optimizer", width=75),
        "learning_rate": cc.NumberColumn("lr", format="%.0e", width=50, help="learning rate"),
        "batch_size": cc.NumberColumn("batch", width=50, help="batch size"),
        "train_size": cc.TextColumn(
            "train", width=55, help="training images (all = the whole training set)"
        ),
        "started": cc.DatetimeColumn("started", format="MM-DD HH:mm", width=90),
    },
)
rows = [r for r in (event.selection.rows if event is not None else []) if r < len(runs)]
selected = [runs[r] for r in rows]
st.caption(f"{len(runs)} run(s); {len(selected)} selected. Click a column header to sort.")

if not selected:
    st.info(
        "Select one or more rows to overlay their curves and load their settings.",
        icon=":material/touch_app:",
    )
    st.stop()

# ------------------------------------------------------------------ compare
full = []
for run in selected:
    try:
        full.append(store.get_run(run.id))
    except KeyError:  # deleted meanwhile
        continue
histories = {run.label: run.history for run in full}
c1, c2 = st.columns(2)
c1.plotly_chart(compare_figure(histories, "val_accuracy"), width="stretch", key="runs_val_accuracy")
c2.plotly_chart(compare_figure(histories, "loss"), width="stretch", key="runs_loss")
with st.expander("Validation loss"):
    st.plotly_chart(compare_figure(histories, "val_loss"), width="stretch", key="runs_val_loss")

# ------------------------------------------------------------------ load into Train
labels = {run.label: run for run in full}
if labels:
    l1, l2 = st.columns([2, 1])
    choice = l1.selectbox(
        "Run to load", list(labels), key="runs_load_choice", label_visibility="collapsed"
    )
    run = labels[choice]
    model_kwargs, data_kwargs = recorded_settings(run.config)
    if l2.button(
        "Load settings into Train",
        key="load_run",
        type="primary",
        icon=":material/model_training:",
        disabled=not model_kwargs,
        help="Open the Train page with this run's settings.",
    ):
        tn.load_into_train(model_kwargs, data_kwargs)
        st.switch_page("pages/train.py")
    with st.expander(f"Settings of {run.label}"):
        st.json(
            {
                "model": model_kwargs,
                "data": data_kwargs,
                "metrics": run.metrics,
                "message": run.message,
            }
        )
