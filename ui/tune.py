"""Helpers of the Tune and Runs pages: the search form, the background search worker, tables,
the parallel-coordinates chart, and "load these settings into the Train page".

Contract
    ``init_tune_state()``                  creates ``st.session_state["tune_settings"]`` (the Tune
                                            form, plain values; survives page changes).
    ``build_space(settings, base)``         -> ``(SearchSpace | None, {param or "budget": msg})``
                                            (pure; no Streamlit).
    ``start_search(settings, space, base)`` this person's search, a ``ui.session_jobs``
                                            job in a worker (``ui.state.session_job("search")``).
    ``trials_frame(trials)``, ``parallel_coordinates_figure(trials, space)``  (pure).
    ``offered()``                           the hyperparameters offered, from ``nn.core.params``.
    ``runs_frame(runs)`` (pure), ``load_into_train(model, data)``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import streamlit as st

from nn.core import params as hyperparams
from nn.core.layer_spec import compact
from nn.core.limits import MAX_GRID_POINTS, MAX_TRIALS
from nn.core.params import Param
from nn.core.plain_numbers import plain_float
from nn.search import Choice, LogUniform, SearchSpace, Uniform
from nn.services import settings as train_settings
from nn.services.training import check_size_on_set, check_sizes_of_choices, part_sizes
from nn.services.tuning import SearchJob
from ui import session_jobs
from ui.charts import note_in_middle
from ui.state import current_owner, job_board, job_runner
from ui.state import workspace as state_workspace

SETTINGS_KEY = "tune_settings"

BUDGET_DEFAULTS: dict[str, Any] = {
    "strategy": "random",
    "trials": 9,
    "grid_points": 3,
    "epochs_per_trial": 3,
    "halving": True,
    "train_size": 5000,
    "val_size": 2000,
    "n_jobs": 1,
    "seed": 0,
}


# ------------------------------------------------------------------------------ settings
def offered() -> dict[str, Param]:
    """The hyperparameters the Tune page offers: those with a ``search`` in ``PARAMS``. A
    range is typed as text ("log-uniform") or numbers ("uniform"); a choice among fixed
    options is a multiselect; hidden layer widths are typed as "128 | 256,128"."""
    return {name: p for name, p in hyperparams.PARAMS.items() if p.search is not None}


def typed_widths(param: Param) -> bool:
    """Whether the page takes this hyperparameter's choices as typed lists of widths."""
    return param.kind == "widths"


def default_entry(param: Param) -> dict[str, Any]:
    """The Tune form's first settings of one offered hyperparameter."""
    search = param.search
    entry: dict[str, Any] = {"on": search.on}
    if search.kind == "loguniform":
        entry.update(low=f"{search.low:g}", high=f"{search.high:g}")
    elif search.kind == "uniform":
        entry.update(low=float(search.low), high=float(search.high))
    elif typed_widths(param):
        entry["text"] = " | ".join(",".join(map(str, widths)) for widths in search.chosen)
    else:
        entry["choices"] = list(search.chosen)
    return entry


def default_settings() -> dict[str, Any]:
    params = {name: default_entry(p) for name, p in offered().items()}
    return {"params": params, **copy.deepcopy(BUDGET_DEFAULTS)}


def init_tune_state() -> dict[str, Any]:
    """The Tune form's settings (created once per session)."""
    ss = st.session_state
    if SETTINGS_KEY not in ss:
        ss[SETTINGS_KEY] = default_settings()
    return ss[SETTINGS_KEY]


def _float(text: Any, what: str) -> float:
    try:
        return plain_float(text)
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None


_WIDTHS = re.compile(r"[0-9]{1,9}(?:\s*[-,\s]\s*[0-9]{1,9})*")


def parse_layers(text: str) -> list[list[int]]:
    """``"64 | 128 | 256,128"`` -> ``[[64], [128], [256, 128]]`` (``ValueError`` if malformed)."""
    choices = []
    for part in str(text).split("|"):
        part = part.strip()
        if part.startswith("[") and part.endswith("]"):  # one pair: [256, 128]
            part = part[1:-1].strip()
        if not part:
            continue
        if not _WIDTHS.fullmatch(part):
            raise ValueError(
                f"{part[:40]!r} is not a list of whole numbers from 1 up (write e.g. 256,128)"
            )
        widths = [int(w) for w in re.split(r"[-,\s]+", part)]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"{part!r}: every layer needs at least 1 neuron")
        choices.append(widths)
    if not choices:
        raise ValueError("give at least one choice, e.g. 128 | 256,128")
    return choices


def _dimension(name: str, entry: Mapping[str, Any]):
    param = hyperparams.PARAMS[name]
    kind = param.search.kind
    if kind == "loguniform":
        return LogUniform(_float(entry["low"], "low"), _float(entry["high"], "high"), name=name)
    if kind == "uniform":
        return Uniform(_float(entry["low"], "low"), _float(entry["high"], "high"), name=name)
    if typed_widths(param):
        return Choice(parse_layers(entry["text"]), name=name)
    return Choice(list(entry.get("choices") or []), name=name)


def _budget_problems(settings: Mapping[str, Any]) -> list[str]:
    """What is wrong with the search's budget settings (trials, epochs, sizes, jobs, grid)."""
    budget: list[str] = []
    if not 1 <= int(settings["trials"]) <= MAX_TRIALS:
        budget.append(f"Trials must be 1 to {MAX_TRIALS:,}.")
    if int(settings["epochs_per_trial"]) < 1:
        budget.append("Epochs per trial (the budget) must be at least 1.")
    if int(settings["train_size"]) < 0 or int(settings["val_size"]) < 0:
        budget.append("Training and validation sizes must be 0 (all) or more.")
    cores = os.cpu_count() or 1
    if int(settings["n_jobs"]) == 0 or not -1 <= int(settings["n_jobs"]) <= cores:
        budget.append(f"Parallel jobs must be 1 to {cores} (this machine's cores), or -1 for all.")
    if settings["strategy"] == "grid" and not 1 <= int(settings["grid_points"]) <= MAX_GRID_POINTS:
        budget.append(f"Grid points per range must be 1 to {MAX_GRID_POINTS:,}.")
    return budget


def set_size_problems(settings: Mapping[str, Any], info: Any) -> list[str]:
    """Training and validation sizes above what the standard split of the data set ``info``
    (``nn.data.registry.DataSetInfo``) holds, each with the most allowed."""
    n_train, n_val, _ = part_sizes("standard", info.n_train, info.n_test)
    out = []
    for field, label, most in (
        ("train_size", "Training images", n_train),
        ("val_size", "Validation images", n_val),
    ):
        value = int(settings[field])
        if value > most:
            out.append(
                f"{label}: {value:,} is more than the {most:,} of {info.name}'s standard split; "
                f"use at most {most:,} (0 = all)."
            )
    return out


def build_space(
    settings: Mapping[str, Any], base: Mapping[str, Any] | None = None, info: Any = None
):
    """``(SearchSpace or None, errors)``: ``errors`` maps a parameter name (or ``"budget"``,
    ``"space"``) to a message shown next to its inputs. Networks are sized for the images and
    classes of the data set ``info`` (default: MNIST's). Pure (no Streamlit)."""
    errors: dict[str, str] = {}
    dims = {}
    for name, entry in settings["params"].items():
        if not entry.get("on"):
            continue
        try:
            dim = _dimension(name, entry)
            SearchSpace({name: dim}).check(base or {})
            check_sizes_of_choices(name, dim.values_to_check(), base, info)
            dims[name] = dim
        except ValueError as exc:
            msg = str(exc)
            errors[name] = msg if msg.startswith(name) else f"{name}: {msg}"
    if not dims and not errors:
        errors["space"] = "Choose at least one hyperparameter to search."
    budget = _budget_problems(settings)
    try:  # the Train page's network, sized before anything is allocated
        check_size_on_set(base or {}, info)
    except (ValueError, TypeError) as exc:
        errors["base"] = f"The Train page's settings cannot be searched: {exc}"
    if budget:
        errors["budget"] = " ".join(budget)
    if errors:
        return None, errors
    space = SearchSpace(dims)
    if settings["strategy"] == "grid" and space.grid_size(int(settings["grid_points"])) > 500:
        # a page's grid is trained whole (no sampling): 500 points at most
        return None, {
            "budget": f"The grid has {space.grid_size(int(settings['grid_points']))} "
            "points: fewer choices or grid points, please (at most 500)."
        }
    return space, {}


# ------------------------------------------------------------------------------ train config
def to_train_config(
    model_kwargs: Mapping[str, Any], data_kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Train page's ``train_config`` dict for these settings (``ui.train_form`` shape)."""
    return train_settings.form_values(model_kwargs, data_kwargs)


TRAIN_DATA_FIELDS = ("split", "val_fraction", "test_fraction", "train_size", "data_seed")


def load_into_train(
    model_kwargs: Mapping[str, Any], data_kwargs: Mapping[str, Any] | None = None
) -> None:
    """Put these settings in the Train page's form (its widgets pick them up). With
    ``data_kwargs=None`` the form keeps its current data settings (split, training size)."""
    new = to_train_config(model_kwargs, data_kwargs)
    old = st.session_state.get("train_config")
    if data_kwargs is None and isinstance(old, dict):
        for key in TRAIN_DATA_FIELDS:
            if key in old and key in new:
                new[key] = copy.deepcopy(old[key])
    st.session_state["train_config"] = new
    for key in [k for k in st.session_state if str(k).startswith("tf_")]:
        del st.session_state[key]


# ------------------------------------------------------------------------------ tables, charts
def _short(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def trials_frame(trials: list[Mapping[str, Any]]):
    """One row per trial: index, status, epochs, val accuracy, seconds, then the parameters."""
    import pandas as pd

    rows = []
    for t in trials:
        row = {
            "trial": t["index"],
            "status": (
                f"diverged: {t.get('message') or 'the loss was not finite'}"
                if t["status"] == "diverged"
                else t["status"]
            ),
            "epochs": t["epochs"],
            # text, so that a trial not scored yet shows a dash, not "None"
            "val_accuracy": "—" if t["val_accuracy"] is None else f"{t['val_accuracy']:.2%}",
            "seconds": round(float(t["seconds"]), 1),
            "run": "—" if t.get("run_id") is None else str(t["run_id"]),
        }
        for name, value in t["params"].items():
            row[name] = "—" if value is None else _short(value)
        rows.append(row)
    return pd.DataFrame(rows)


def parallel_coordinates_figure(
    trials: list[Mapping[str, Any]], space: Mapping[str, Mapping[str, Any]] | None = None
):
    """Plotly parallel coordinates: one axis per searched parameter (log10 for log ranges,
    categories for choices) and validation accuracy last; lines coloured by accuracy."""
    import plotly.graph_objects as go

    scored = [t for t in trials if t.get("val_accuracy") is not None]
    names = list(space) if space else (list(scored[0]["params"]) if scored else [])
    fig = go.Figure()
    if not scored:
        note_in_middle(fig, "no scored trials yet")
        fig.update_layout(height=360, margin=dict(l=40, r=40, t=40, b=20))
        return fig
    dims = []
    for name in names:
        kind = (space or {}).get(name, {}).get("type")
        values = [t["params"].get(name) for t in scored]
        if kind == "loguniform" or (kind == "int" and space[name].get("log")):
            dims.append(dict(label=f"log10 {name}", values=[math.log10(float(v)) for v in values]))
        elif kind in ("uniform", "int") or (
            kind is None
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            dims.append(dict(label=name, values=[float(v) for v in values]))
        else:
            options = (space or {}).get(name, {}).get("values") or []
            labels = [json.dumps(o) for o in options]
            for v in values:
                if json.dumps(v) not in labels:
                    labels.append(json.dumps(v))
            codes = [labels.index(json.dumps(v)) for v in values]
            dims.append(
                dict(
                    label=name,
                    values=codes,
                    tickvals=list(range(len(labels))),
                    ticktext=[s.strip('"') for s in labels],
                    range=[-0.5, len(labels) - 0.5] if len(labels) > 1 else [-1, 1],
                )
            )
    accs = [float(t["val_accuracy"]) for t in scored]
    dims.append(dict(label="val accuracy", values=accs))
    fig.add_trace(
        go.Parcoords(
            line=dict(
                color=accs, colorscale="Viridis", showscale=True, colorbar=dict(title="val acc")
            ),
            dimensions=dims,
        )
    )
    fig.update_layout(
        height=400,
        margin=dict(l=70, r=70, t=90, b=30),
        title=dict(text="Settings against validation accuracy", y=0.98),
    )
    return fig


def _layers_cell(hidden: Any, stack: Any) -> str:
    """A run's layers: the hidden widths (``256-128``) or a stack in compact form
    (``C32k3-P2-D128``, the output layer left out as for the widths)."""
    if isinstance(stack, list):
        return compact(stack)
    if isinstance(hidden, list):
        return "-".join(str(h) for h in hidden)
    return str(hidden) if hidden is not None else ""


def runs_frame(runs: list[Any]):
    """One row per run for the Runs table (numbers stay numbers so columns sort; train_size is
    text, "all" when the run used every training image)."""
    import pandas as pd

    rows = []
    for run in runs:
        model, data = train_settings.recorded_settings(run.config)
        hidden = model.get("hidden_layers")
        stack = model.get("layers")
        rows.append(
            {
                "id": run.id,
                "name": run.name or "",
                "source": run.source,
                "dataset": getattr(run, "dataset", "mnist"),
                "status": run.status,
                "val_accuracy": run.metrics.get("val_accuracy"),
                "test_accuracy": run.metrics.get("test_accuracy"),
                "epochs": run.epochs_done,
                "hidden_layers": _layers_cell(hidden, stack),
                "optimizer": model.get("optimizer", ""),
                "learning_rate": model.get("learning_rate"),
                "batch_size": model.get("batch_size"),
                # 0 or missing = every training image (a table cell showed "None")
                "train_size": f"{data['train_size']:,}" if data.get("train_size") else "all",
                "search": run.search_id,
                "started": pd.Timestamp(run.started_at, unit="s").floor("s"),
                "seconds": None if run.duration_seconds is None else round(run.duration_seconds, 1),
                "message": run.message or "",
            }
        )
    columns = [
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
        "search",
        "started",
        "seconds",
        "message",
    ]
    return pd.DataFrame(rows, columns=columns)


ENDED_TRIALS = ("finished", "pruned", "diverged", "failed", "cancelled")
"""A trial's statuses once it trains no more, in the order the status line counts them."""


def trials_scored(snap: Mapping[str, Any]) -> int:
    """Trials with a validation accuracy: trained at least one rung (with halving a trial stays
    "running" between rungs, so the ended ones alone said "0/8 done" beside a best score)."""
    return sum(1 for t in snap.get("trials") or [] if t.get("val_accuracy") is not None)


def status_text(snap: Mapping[str, Any]) -> str:
    """One line about a search's progress: while it runs, the trials scored, the rung, the
    best score and the trial in training; once ended, what became of its trials."""
    trials = snap.get("trials") or []
    n = snap.get("n_trials") or len(trials)
    best = snap.get("best_val_accuracy")
    if snap["status"] == "queued":
        return f"**queued**: {session_jobs.queue_text(snap)}"
    parts = [f"**{snap['status']}**"]
    if snap["status"] in ("preparing", "running"):
        if n:  # (none planned yet while preparing)
            parts.append(f"{trials_scored(snap)}/{n} trials scored")
        if snap.get("n_rungs", 1) > 1:
            parts.append(f"rung {snap.get('rung', 0) + 1}/{snap['n_rungs']}")
    else:
        counts = {s: sum(1 for t in trials if t["status"] == s) for s in ENDED_TRIALS}
        ended = ", ".join(f"{k} {s}" for s, k in counts.items() if k)
        parts.append(f"{n} trials: {ended}" if ended else f"{n} trials, none trained")
    if best is not None:
        parts.append(f"best val accuracy {best:.2%}")
    cur = snap.get("current")
    if cur and snap["status"] == "running":
        parts.append(
            f"training trial {cur['index']}"
            + (f" (epoch {cur['epoch']})" if cur.get("epoch") else "")
        )
    parts.append(f"{snap.get('elapsed', 0.0):.0f}s")
    return " · ".join(parts)


def start_search(
    settings: Mapping[str, Any],
    space: Any,
    base: Mapping[str, Any],
    train_limit: int | None = None,
    dataset: str | None = None,
):
    """Start this person's search of the form's settings (one running is stopped); ``dataset``
    names the data set to search on (``nn.data.registry``; None: MNIST). Returns the
    ``ui.session_jobs.SessionJob``."""
    train_size = int(settings["train_size"]) or None
    if train_limit:
        train_size = min(train_size, train_limit) if train_size else int(train_limit)
    data_kwargs = {"split": "standard", "seed": 0, "train_size": train_size}
    if dataset is not None:
        data_kwargs["set"] = dataset
        data_kwargs["sets_dir"] = str(state_workspace().data_dir)
    job = SearchJob(
        base=dict(base),
        space=space.to_dict(),
        data=data_kwargs,
        val_size=int(settings.get("val_size") or 0),
        strategy=settings.get("strategy", "random"),
        trials=int(settings["trials"]) if settings.get("trials") else None,
        grid_points=int(settings.get("grid_points", 3)),
        epochs_per_trial=int(settings.get("epochs_per_trial", 3)),
        halving=bool(settings.get("halving", True)),
        n_jobs=int(settings.get("n_jobs", 1)),
        seed=int(settings.get("seed", 0)),
        runs_db=str(state_workspace().runs_db),
    )
    return session_jobs.start_search(job_board(), job_runner(), current_owner(), job)
