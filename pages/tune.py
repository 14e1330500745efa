"""Tune page: search hyperparameters (random or grid, successive halving) in the background,
watch the trials live, cancel, and train the best in one click."""

from __future__ import annotations

import streamlit as st

from nn.services.settings import for_images, search_base
from nn.services.status import is_final
from nn.services.training import part_sizes
from ui import state
from ui import tune as tn
from ui.live import STATUS_SECONDS
from ui.session_jobs import run_errors_text

state.init_state()
settings = tn.init_tune_state()
job = state.session_job("search")  # this person's search, whichever tab started it
running = bool(job is not None and not job.done)
base = search_base(st.session_state.get("train_config"))

st.title(":material/tune: Tune hyperparameters")
st.caption(
    "Each trial trains on a training subset and is scored on the validation split. "
    "Settings you do not search come from the **Train** page's form. Every trial is "
    "recorded on the **Runs** page."
)

# ------------------------------------------------------------------ what to search
st.subheader("What to search")
params = settings["params"]
error_slots = {}  # where each parameter's error is shown (next to its inputs)
for name, param in tn.offered().items():
    search = param.search
    entry = params.setdefault(name, tn.default_entry(param))
    c0, c1, c2 = st.columns([1.2, 1.4, 1.4])
    entry["on"] = c0.checkbox(
        param.label, value=entry["on"], key=f"tune_on_{name}", help=search.help, disabled=running
    )
    off = running or not entry["on"]
    if search.kind == "loguniform":
        entry["low"] = c1.text_input(
            "from",
            value=str(entry["low"]),
            key=f"tune_low_{name}",
            disabled=off,
            help="Lowest value, e.g. 1e-4.",
        )
        entry["high"] = c2.text_input(
            "to",
            value=str(entry["high"]),
            key=f"tune_high_{name}",
            disabled=off,
            help="Highest value, e.g. 1e-1.",
        )
    elif search.kind == "uniform":
        entry["low"] = c1.number_input(
            "from", value=float(entry["low"]), step=0.05, key=f"tune_low_{name}", disabled=off
        )
        entry["high"] = c2.number_input(
            "to", value=float(entry["high"]), step=0.05, key=f"tune_high_{name}", disabled=off
        )
    elif tn.typed_widths(param):
        entry["text"] = c1.text_input(
            "choices", value=entry["text"], key=f"tune_text_{name}", disabled=off, help=search.help
        )
    else:
        options = list(search.options or param.choices or search.chosen)
        entry["choices"] = c1.multiselect(
            "choices",
            options,
            default=[c for c in entry["choices"] if c in options],
            key=f"tune_choices_{name}",
            disabled=off,
        )
    error_slots[name] = c0 if search.kind in ("loguniform", "uniform") else c2

# ------------------------------------------------------------------ budget
st.subheader("Budget")
b1, b2, b3, b4 = st.columns(4)
settings["strategy"] = b1.radio(
    "Strategy",
    ["random", "grid"],
    index=["random", "grid"].index(settings["strategy"]),
    key="tune_strategy",
    horizontal=True,
    disabled=running,
    help="Random samples the space; grid tries every combination "
    "(grid points per range), capped at Trials.",
)
settings["trials"] = b2.number_input(
    "Trials",
    min_value=1,
    max_value=500,
    value=int(settings["trials"]),
    key="tune_trials",
    disabled=running,
)
settings["epochs_per_trial"] = b3.number_input(
    "Epochs per trial",
    min_value=1,
    max_value=100,
    value=int(settings["epochs_per_trial"]),
    key="tune_epochs",
    disabled=running,
    help="The budget: epochs of a trial that survives to the end.",
)
settings["halving"] = b4.toggle(
    "Halving",
    value=bool(settings["halving"]),
    key="tune_halving",
    disabled=running,
    help="Successive halving: start every trial with a few epochs "
    "and continue only the best third, repeatedly.",
)
b5, b6, b7, b8 = st.columns(4)
data_set = state.active_set()
n_train_part, n_val_part, _ = part_sizes("standard", data_set.n_train, data_set.n_test)
# no max_value: a number above the set's parts is refused with a message (set_size_problems)
settings["train_size"] = b5.number_input(
    "Training images",
    min_value=0,
    step=1000,
    value=int(settings["train_size"]),
    key="tune_train_size",
    disabled=running,
    help=f"Stratified subset of the training split (0 = all {n_train_part:,} of {data_set.name}).",
)
settings["val_size"] = b6.number_input(
    "Validation images",
    min_value=0,
    step=500,
    value=int(settings["val_size"]),
    key="tune_val_size",
    disabled=running,
    help=f"Validation images used for scoring (0 = all {n_val_part:,} of {data_set.name}).",
)
settings["n_jobs"] = b7.number_input(
    "Parallel jobs",
    min_value=-1,
    max_value=64,
    value=int(settings["n_jobs"]),
    key="tune_n_jobs",
    disabled=running,
    help="Trials trained at once (joblib/loky; -1 = all cores).",
)
settings["grid_points"] = b8.number_input(
    "Grid points per range",
    min_value=1,
    max_value=10,
    value=int(settings["grid_points"]),
    key="tune_grid_points",
    disabled=running or settings["strategy"] != "grid",
)
settings["seed"] = st.number_input(
    "Seed",
    min_value=0,
    value=int(settings["seed"]),
    key="tune_seed",
    disabled=running,
    help="Same seed, same trials and same results.",
)

space, errors = tn.build_space(settings, base, data_set)
size_problems = tn.set_size_problems(settings, data_set)
if size_problems:
    errors["budget"] = " ".join([*filter(None, [errors.get("budget")]), *size_problems])
    space = None
for name, target in error_slots.items():
    if name in errors:
        target.error(errors[name], icon=":material/error:")
for key in ("base", "space", "budget"):
    if key in errors:
        st.error(errors[key], icon=":material/error:")

# ------------------------------------------------------------------ actions
c1, c2, c3 = st.columns([1, 1, 2])
if c1.button(
    "Start search",
    key="start_search",
    type="primary",
    disabled=running or space is None,
    icon=":material/play_arrow:",
):
    base, _ = for_images(base, data_set.image_shape)
    tn.start_search(
        settings, space, base, state.train_limit(), None if data_set.builtin else data_set.name
    )
    st.rerun()
c2.button(
    "Cancel",
    key="cancel_search",
    disabled=not running,
    on_click=job.stop if job is not None else None,
    icon=":material/stop:",
)

snap_now = job.snapshot() if job is not None else None
best_ready = snap_now is not None and is_final(snap_now["status"]) and snap_now.get("best_config")
if best_ready and c3.button(
    "Train the best",
    key="train_best",
    type="primary",
    icon=":material/model_training:",
    help="Open the Train page with the best trial's settings.",
):
    tn.load_into_train(snap_now["best_config"])  # keeps the Train page's data settings
    st.switch_page("pages/train.py")


# ------------------------------------------------------------------ live progress
# every poll re-renders the page in the browser (ui.live): as seldom as the Train page's status
@st.fragment(run_every=STATUS_SECONDS if running else None)
def live() -> None:
    w = state.session_job("search")
    if w is None:
        st.info(
            "Choose what to search and the budget, then **Start search**.", icon=":material/info:"
        )
        return
    snap = w.snapshot()
    if snap["status"] == "failed":
        st.error(f"The search failed: {snap['error']}", icon=":material/error:")
        with st.expander("Details"):
            st.code(snap["traceback"] or "")
    else:
        st.markdown(tn.status_text(snap))
        n = snap.get("n_trials") or 0
        if snap["status"] in ("preparing", "running") and n:
            st.progress(min(1.0, tn.trials_scored(snap) / n))
        if snap["stop_requested"] and not is_final(snap["status"]):
            st.caption("Cancelling: the running trials finish their current step…")
    if snap["trials"]:
        st.dataframe(
            tn.trials_frame(snap["trials"]),
            hide_index=True,
            key="tune_trials_table",
            column_config={"val_accuracy": st.column_config.TextColumn("val accuracy")},
        )
        st.plotly_chart(
            tn.parallel_coordinates_figure(snap["trials"], snap["space"]),
            width="stretch",
            key="tune_parcoords",
        )
    if is_final(snap["status"]) and snap.get("best_config"):
        st.success(
            f"Best: trial {snap['best_trial']} with validation accuracy "
            f"{snap['best_val_accuracy']:.2%}. **Train the best** opens it on the Train "
            f"page (with the Train page's data settings).",
            icon=":material/emoji_events:",
        )
        with st.expander("Best settings"):
            st.json(snap["best_config"])
    if snap.get("run_errors"):
        st.warning(run_errors_text(snap["run_errors"]), icon=":material/database:")
    if snap.get("message") and is_final(snap["status"]):
        st.caption(snap["message"])
    if running and not snap["alive"]:
        st.rerun()  # the search ended: redraw the whole page (buttons, form)


live()
