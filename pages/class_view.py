"""Class page (teachers only): everyone's workspaces with their runs, models, drawings and disk
use; the server's jobs with a Stop for any of them; any person's runs to read; a model handed out
to everyone."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nn.io.models_folder import list_models, sanitize_model_name
from nn.services.runs import RunStore
from nn.services.workspace import Workspace, hand_out, list_workspaces, summarize
from ui import auth, state
from ui.charts import compare_figure
from ui.text import markdown_escape

state.init_state()
st.title(":material/school: Class")

if not auth.is_admin():
    st.info(
        "This page is for the teachers named in `NN_ADMINS` on a server where people sign in.",
        icon=":material/lock:",
    )
    st.stop()

people = list_workspaces()
summaries = {w.id: summarize(w) for w in people}


def _who(ident: str) -> str:
    info = summaries.get(ident, {})
    return info.get("name") or info.get("email") or ident


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:,.1f}"


# ------------------------------------------------------------------ jobs
st.subheader("Jobs on this server")
runner = state.job_runner()
jobs = [job for job in runner.jobs() if not job.done]
counts = runner.counts()
st.caption(
    f"{counts['running']} running, {counts['queued']} waiting. The queue takes turns across "
    "people; each person runs at most `NN_JOBS_PER_USER` jobs at once."
)
if not jobs:
    st.write("No job is running or waiting.")
for job in sorted(jobs, key=lambda j: (j.status != "running", j.queue_position or 0, j.id)):
    c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="center")
    place = "running" if job.status == "running" else f"waiting, place {job.queue_position}"
    c1.write(f"**{markdown_escape(_who(str(job.owner)))}** · {job.target} · job {job.id}")
    c2.write(place)
    if c3.button("Stop", key=f"class_stop_{job.id}", icon=":material/stop:"):
        runner.cancel(job.id)
        st.toast(f"Asked job {job.id} to stop.")
        st.rerun()

# ------------------------------------------------------------------ workspaces
st.subheader("Workspaces")
if not people:
    st.write("Nobody has signed in yet.")
    st.stop()
quota = next(iter(summaries.values()))["quota_bytes"]
st.dataframe(
    [
        {
            "person": _who(w.id),
            "email": summaries[w.id].get("email", ""),
            "last seen": summaries[w.id].get("last_seen", ""),
            "models": summaries[w.id]["models"],
            "runs": summaries[w.id]["runs"],
            "drawings": summaries[w.id]["drawings"],
            "disk (MiB)": _mib(summaries[w.id]["disk_bytes"]),
            "jobs": sum(1 for job in jobs if job.owner == w.id),
            "workspace": w.id,
        }
        for w in people
    ],
    hide_index=True,
    width="stretch",
    key="class_table",
)
st.caption(f"Each workspace may hold {_mib(quota)} MiB (`NN_WORKSPACE_BYTES`).")

ident = st.selectbox("Look at", [w.id for w in people], format_func=_who, key="class_person")
person = Workspace.of(ident)

runs_tab, models_tab = st.tabs(["Runs", "Models"])
with runs_tab:
    runs = RunStore(person.runs_db).list_runs(limit=200) if person.runs_db.is_file() else []
    if not runs:
        st.write("No recorded run.")
    else:
        labels = {f"#{r.id} {r.name or ''} ({r.status})": r.id for r in runs}
        picked = st.multiselect("Runs to read", list(labels), key="class_runs")
        st.dataframe([r.summary() for r in runs], hide_index=True, key="class_runs_table")
        if picked:
            store = RunStore(person.runs_db)
            histories = {label: store.get_history(labels[label]) for label in picked}
            st.plotly_chart(compare_figure(histories), key="class_curves")

with models_tab:
    rows = [row for row in list_models(person.models_dir) if not row.get("error")]
    if not rows:
        st.write("No saved model.")
    else:
        stems = [Path(row["path"]).stem for row in rows]
        st.dataframe(
            [
                {"name": s, "test accuracy": r.get("test_accuracy")}
                for s, r in zip(stems, rows, strict=True)
            ],
            hide_index=True,
            key="class_models_table",
        )
        m1, m2, m3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        model = m1.selectbox("Model", stems, key="class_model")
        shared_name = m2.text_input("Hand out as", value=model, key="class_share_name")
        if m3.button("Hand out", key="class_hand_out", icon=":material/share:"):
            try:
                name = sanitize_model_name(shared_name)
                target = hand_out(Path(rows[stems.index(model)]["path"]), name)
            except (OSError, ValueError) as exc:
                st.error(f"Not handed out: {markdown_escape(exc)}")
            else:
                st.success(f"Everyone now sees **{target.stem}** among their models (read-only).")
