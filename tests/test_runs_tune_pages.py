"""The Runs and Tune pages under Streamlit's AppTest (through app.py, as served), and the pure
helpers of ui/tune.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nn.services.runs import RunStore
from ui.session_jobs import SessionJob

SEARCH_SECONDS = 90


def _texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown]
        + [e.value for e in at.error]
        + [i.value for i in at.info]
        + [s.value for s in at.success]
        + [t.value for t in at.title]
    )
    return "\n".join(str(p) for p in parts)


def _seed_runs(db: Path) -> tuple[int, int]:
    store = RunStore(db)
    a = store.start_run(
        {
            "model": {
                "hidden_layers": [64],
                "learning_rate": 0.01,
                "optimizer": "sgd",
                "batch_size": 32,
                "epochs": 3,
            },
            "data": {"split": "standard", "seed": 0, "train_size": 2000},
        },
        name="wide-sgd",
        source="dashboard",
        seed=1,
    )
    for e, acc in enumerate([0.8, 0.85, 0.9], 1):
        store.log_epoch(a, e, loss=1.0 / e, val_accuracy=acc, val_loss=0.5 / e)
    store.finish_run(a, "finished", metrics={"val_accuracy": 0.9, "test_accuracy": 0.89})
    sid = store.start_search({"space": {}}, name="s")
    b = store.start_run(
        {"model": {"hidden_layers": [32, 16], "learning_rate": 0.003}},
        name="trial 0",
        source="tune",
        search_id=sid,
    )
    store.log_epoch(b, 1, loss=0.7, val_accuracy=0.7)
    store.finish_run(b, "stopped", metrics={"val_accuracy": 0.7}, message="pruned")
    store.finish_search(sid, best_run_id=b)
    return a, b


# ------------------------------------------------------------------------------ the Runs page
def test_runs_page_without_runs(env, open_app):
    at = open_app("pages/runs.py")
    assert "No runs match" in _texts(at)


def test_runs_page_lists_filters_compares_and_loads(runs_db, open_app):
    a, b = _seed_runs(runs_db)
    at = open_app("pages/runs.py")
    table = at.dataframe[0].value
    assert list(table["id"]) == [b, a]  # newest first
    assert set(table["source"]) == {"dashboard", "tune"}

    at.multiselect(key="runs_source").set_value(["tune"]).run()
    assert list(at.dataframe[0].value["id"]) == [b]
    at.multiselect(key="runs_source").set_value([]).run()
    at.multiselect(key="runs_status").set_value(["finished"]).run()
    assert list(at.dataframe[0].value["id"]) == [a]
    at.multiselect(key="runs_status").set_value([]).run()
    at.selectbox(key="runs_order").set_value("val_accuracy").run()
    assert list(at.dataframe[0].value["id"]) == [a, b]

    # select both rows (what a click in the table does): their curves are overlaid
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    val = next(c for c in charts if "alidation accuracy" in json.dumps(c["layout"]["title"]))
    assert {t["name"] for t in val["data"]} == {f"#{a} wide-sgd", f"#{b} trial 0"}
    by_name = {t["name"]: t for t in val["data"]}
    assert by_name[f"#{a} wide-sgd"]["y"] == [0.8, 0.85, 0.9]

    # load the dashboard run's settings into the Train page
    at.selectbox(key="runs_load_choice").set_value(f"#{a} wide-sgd").run()
    at.button(key="load_run").click().run()
    assert not at.exception
    cfg = at.session_state["train_config"]
    assert [layer["units"] for layer in cfg["layers"]] == [64]
    assert cfg["learning_rate"] == 0.01 and cfg["optimizer"] == "sgd"
    assert cfg["batch_size"] == 32 and cfg["epochs"] == 3 and cfg["train_size"] == 2000
    assert any("Train" in t.value for t in at.title)  # switched to the Train page
    assert not any("Runs" in t.value for t in at.title)


# ------------------------------------------------------------------------------ the Tune page
def _small_search(at: AppTest, trials: int = 4, epochs: int = 2) -> None:
    at.text_input(key="tune_text_hidden_layers").set_value("16 | 32")
    at.multiselect(key="tune_choices_batch_size").set_value([32, 64])
    at.number_input(key="tune_trials").set_value(trials)
    at.number_input(key="tune_epochs").set_value(epochs)
    at.number_input(key="tune_val_size").set_value(500)
    at.run()


def _wait_finished(at: AppTest, job: SessionJob) -> None:
    """Wait for the search thread to end, then rerun the page (``run_every`` never fires under
    AppTest)."""
    job.wait(SEARCH_SECONDS)
    assert job.done, "the search did not finish in time:\n" + _texts(at)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_tune_page_refuses_bad_ranges(env, open_app):
    at = open_app("pages/tune.py")
    assert not at.button(key="start_search").disabled
    at.text_input(key="tune_low_learning_rate").set_value("1e-1")
    at.text_input(key="tune_high_learning_rate").set_value("1e-4")
    at.run()
    errors = [e.value for e in at.error]
    assert any("learning_rate" in e and "above" in e for e in errors)
    assert at.button(key="start_search").disabled
    at.text_input(key="tune_low_learning_rate").set_value("zero")
    at.run()
    assert any("not a number" in e.value for e in at.error)
    at.text_input(key="tune_low_learning_rate").set_value("1e-4")
    at.text_input(key="tune_text_hidden_layers").set_value("128 | abc")
    at.run()
    assert any("hidden_layers" in e.value for e in at.error)
    at.text_input(key="tune_text_hidden_layers").set_value("128")
    at.checkbox(key="tune_on_l2").check().run()
    at.text_input(key="tune_low_l2").set_value("0")
    at.run()
    assert any("l2" in e.value and "low > 0" in e.value for e in at.error)
    at.text_input(key="tune_low_l2").set_value("1e-6")
    at.run()
    assert not at.error and not at.button(key="start_search").disabled


def test_tune_page_search_finishes_records_and_trains_the_best(runs_db, open_app, started_jobs):
    at = open_app("pages/tune.py")
    _small_search(at)
    at.button(key="start_search").click().run()
    assert not at.exception
    (job,) = started_jobs
    _wait_finished(at, job)
    assert any(b.key == "train_best" for b in at.button)
    assert "**finished**" in _texts(at)
    trials = at.dataframe[0].value
    assert len(trials) == 4 and set(trials["status"]) == {"finished", "pruned"}
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    parcoords = figure["data"][0]
    assert parcoords["type"] == "parcoords"
    labels = [d["label"] for d in parcoords["dimensions"]]
    assert labels == ["hidden_layers", "log10 learning_rate", "batch_size", "val accuracy"]

    store = RunStore(runs_db)
    search = store.list_searches()[0]
    assert search.status == "finished"
    runs = store.list_runs(search_id=search.id)
    assert len(runs) == 4 and {r.source for r in runs} == {"tune"}
    best = store.get_run(search.best_run_id)

    at.button(key="train_best").click().run()
    assert not at.exception
    cfg = at.session_state["train_config"]
    assert [layer["units"] for layer in cfg["layers"]] == best.config["model"]["hidden_layers"]
    assert cfg["learning_rate"] == pytest.approx(best.config["model"]["learning_rate"])
    assert cfg["batch_size"] == best.config["model"]["batch_size"]
    assert cfg["train_size"] == 0  # the Train page keeps its own data settings
    assert any("Train" in t.value for t in at.title)


def test_tune_page_cancel(runs_db, open_app, started_jobs):
    at = open_app("pages/tune.py")
    _small_search(at, trials=30, epochs=3)
    at.button(key="start_search").click().run()
    (job,) = started_jobs
    assert not at.button(key="cancel_search").disabled
    at.button(key="cancel_search").click().run()
    _wait_finished(at, job)
    assert "**cancelled**" in _texts(at)
    assert at.button(key="cancel_search").disabled
    assert not at.button(key="start_search").disabled
    store = RunStore(runs_db)
    assert store.list_searches()[0].status == "stopped"


# ------------------------------------------------------------------------------ helpers
def test_build_space_and_helpers():
    from nn.services.settings import recorded_settings
    from ui import tune as tn

    settings = tn.default_settings()
    space, errors = tn.build_space(settings)
    assert errors == {} and space.names == ["hidden_layers", "learning_rate", "batch_size"]
    assert tn.parse_layers("64 | 256,128 | [32]") == [[64], [256, 128], [32]]
    for name in list(settings["params"]):
        settings["params"][name]["on"] = False
    assert "space" in tn.build_space(settings)[1]
    settings["params"]["dropout"].update(on=True, low=0.2, high=0.9)
    settings["trials"] = 0
    space, errors = tn.build_space(settings)
    assert space is None and "budget" in errors and "dropout" not in errors
    settings["params"]["optimizer"].update(on=True, choices=[])
    assert "at least one" in tn.build_space(settings)[1]["optimizer"]

    model, data = recorded_settings(
        {
            "model": {"hidden_layers": [8], "bogus": 1},
            "data": {"split": "standard", "train_size": 10},
        }
    )
    assert model == {"hidden_layers": [8]} and data == {"split": "standard", "train_size": 10}
    assert recorded_settings({"learning_rate": 0.1, "x": 2}) == ({"learning_rate": 0.1}, {})

    trials = [
        {
            "index": 0,
            "params": {"learning_rate": 1e-3, "hidden_layers": [16]},
            "val_accuracy": 0.5,
            "status": "finished",
            "epochs": 1,
            "seconds": 1.0,
        },
        {
            "index": 1,
            "params": {"learning_rate": 1e-2, "hidden_layers": [32, 16]},
            "val_accuracy": None,
            "status": "running",
            "epochs": 0,
            "seconds": 0.0,
        },
    ]
    space = {
        "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
        "hidden_layers": {"type": "choice", "values": [[16], [32, 16]]},
    }
    fig = tn.parallel_coordinates_figure(trials, space)
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == ["log10 learning_rate", "hidden_layers", "val accuracy"]
    assert list(dims[0].values) == [pytest.approx(-3.0)]
    assert list(dims[1].ticktext) == ["[16]", "[32, 16]"]
    assert len(tn.trials_frame(trials)) == 2


def test_tune_status_agrees_with_itself_and_the_table_shows_no_none():
    """While a halving search runs, its trials stay "running" between rungs: the line counts
    the trials scored (not "0/8 done" beside a best score); once ended it says what became of
    them, without a rung; a trial not scored yet shows dashes in the table, never "None"."""
    from ui import tune as tn

    def trial(i, status, acc, run_id=None):
        return {
            "index": i,
            "status": status,
            "val_accuracy": acc,
            "epochs": 1 if acc is not None else 0,
            "seconds": 1.0,
            "run_id": run_id,
            "params": {"learning_rate": 0.01, "momentum": None},
        }

    running = {
        "status": "running",
        "n_trials": 8,
        "n_rungs": 3,
        "rung": 0,
        "best_val_accuracy": 0.924,
        "current": {"index": 7, "epoch": 1},
        "elapsed": 12.0,
        "trials": [trial(i, "running", 0.9 if i < 7 else None) for i in range(8)],
    }
    text = tn.status_text(running)
    assert "7/8 trials scored" in text and "rung 1/3" in text and "92.40%" in text
    assert tn.trials_scored(running) == 7
    cancelled = running | {
        "status": "cancelled",
        "rung": 2,
        "trials": [trial(i, "pruned", 0.9) for i in range(5)]
        + [trial(i, "cancelled", None) for i in range(5, 8)],
    }
    text = tn.status_text(cancelled)
    assert "8 trials: 5 pruned, 3 cancelled" in text and "rung" not in text
    preparing = {"status": "preparing", "n_trials": 0, "trials": [], "elapsed": 0.0}
    assert tn.status_text(preparing) == "**preparing** · 0s"  # not "0/0 trials scored"
    frame = tn.trials_frame(running["trials"])
    assert "None" not in frame.astype(str).to_numpy().ravel().tolist()
    assert frame.loc[7, "val_accuracy"] == "—" and frame.loc[0, "val_accuracy"] == "90.00%"
