"""The Inside page under AppTest: after a short training on the Train page it shows the recorded
layers live, with the test grid; a saved model shows its record, and one saved without a record a
snapshot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from nn.io.model_files import load_model, read_metadata, save_model
from ui.session_jobs import SessionJob

JOB_SECONDS = 90


def figures(at) -> dict[str, dict]:
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {}).get("text", "")
        out[title] = spec
    return out


def train_briefly(
    at: AppTest, jobs: list[SessionJob], epochs: int = 2, learning_rate: float | None = None
) -> None:
    """Train a small network on the Train page (at ``learning_rate`` if given) and wait for
    its thread to end."""
    if learning_rate is not None:
        at.number_input(key="tf_learning_rate").set_value(learning_rate).run()
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(16).run()
    at.number_input(key="tf_epochs").set_value(epochs).run()
    at.number_input(key="tf_batch_size").set_value(100).run()
    at.button(key="start_training").click().run()
    (job,) = jobs
    job.wait(JOB_SECONDS)
    assert job.done, "training did not finish in time"
    at.run()
    assert not at.exception
    assert not at.button(key="start_training").disabled


def test_inside_page_after_a_short_training(env, open_app, started_jobs):
    at = open_app("pages/train.py")
    train_briefly(at, started_jobs)
    at.switch_page("pages/inside.py").run()
    assert not at.exception
    assert at.selectbox(key="inside_source").value == "The model training now"
    figs = figures(at)
    grad = figs["gradient norm"]
    names = [t["name"] for t in grad["data"]]
    assert len(names) == 2 and names[0] == "0 dense" and names[1].endswith(" dense")
    assert all(len(t["y"]) == 2 for t in grad["data"])  # two epochs
    assert "update / weight" in figs and "ReLU units never firing" in figs
    assert any("histogram per epoch" in title for title in figs)
    captions = " ".join(c.value for c in at.caption)
    assert "vanishing gradients" in captions and "learning rate is too high" in captions
    grid = [h.proto.body for h in at.get("html") if h.proto.body.count("<img") == 50]
    assert grid, "the test grid of 50 digits is shown"
    # two caption lines a digit, neither wrapping: the prediction, then the next guesses
    assert grid[0].count("white-space:nowrap") == 50
    assert grid[0].count('<figcaption style="font-size:0.75rem;line-height:1.25;white-space') == 50
    assert all(c[0] in "✓✗" for c in grid[0].split('opacity:0.8">')[1:])
    # the distribution explorer switches layer and kind
    at.selectbox(key="inside_layer").select(names[1]).run()
    at.radio(key="inside_kind_3").set_value("grad").run()
    assert not at.exception
    assert any(t.startswith(f"gradients of layer {names[1]}") for t in figures(at))


def test_a_saved_model_without_a_record_shows_a_snapshot(env, small_model, open_app):
    save_model(small_model[0], env / "plain.npz")
    at = open_app("pages/inside.py")
    at.selectbox(key="inside_source").select("plain").run()
    assert not at.exception
    assert "as it is now" in " ".join(c.value for c in at.caption)
    grad = figures(at)["gradient norm"]
    assert all(len(t["y"]) == 1 for t in grad["data"])


def test_a_training_that_diverges_in_its_first_epoch_shows_where(env, open_app, started_jobs):
    at = open_app("pages/train.py")
    train_briefly(at, started_jobs, learning_rate=10.0)
    assert started_jobs[0].snapshot()["status"] == "diverged"
    at.switch_page("pages/inside.py").run()
    assert not at.exception
    notes = " ".join(w.value for w in at.warning)
    assert "Training diverged in epoch 1, batch" in notes and "red dashed line" in notes
    grad = figures(at)["gradient norm"]
    assert all(len(t["y"]) == 1 for t in grad["data"])  # the point where it diverged
    (line,) = grad["layout"]["shapes"]
    assert line["line"]["dash"] == "dash" and 0 < line["x0"] < 1
    assert grad["data"][0]["x"] == [line["x0"]]
    assert "where it diverged" not in " ".join(c.value for c in at.caption)  # live, not saved


def test_the_grid_says_its_digits_are_test_digits_shown_only(env, open_app, started_jobs):
    at = open_app("pages/train.py")
    train_briefly(at, started_jobs)
    at.switch_page("pages/inside.py").run()
    captions = " ".join(c.value for c in at.caption)
    assert "50 fixed test digits (5 of each class), from the test set, used for nothing but" in (
        captions
    )
    assert "Probe of 64 validation images." in captions


def test_a_model_file_saved_before_the_record_named_its_images_still_shows(env, open_app):
    """saved_models/default.npz holds a record of 25 epochs written before records said which
    images their probe and grid are (and before divergences were marked): it loads, and the
    page shows it, its grid as test digits."""
    shipped = Path(__file__).resolve().parents[1] / "saved_models" / "default.npz"
    record = read_metadata(shipped)["inside"]
    assert "probe_images" not in record and "images" not in record["grid"]
    assert "diverged" not in record
    shutil.copy(shipped, env / "shipped.npz")
    assert load_model(env / "shipped.npz").metadata_["inside"]["epochs"] == record["epochs"]
    at = open_app("pages/inside.py")
    at.selectbox(key="inside_source").select("shipped").run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert f"Recorded while shipped trained ({len(record['epochs'])} epochs" in captions
    assert f"probe of {record['probe_size']} validation images" in captions
    assert "50 fixed test digits (5 of each class), from the test set" in captions
    grad = figures(at)["gradient norm"]
    assert all(len(t["y"]) == len(record["epochs"]) for t in grad["data"])
    assert [h for h in at.get("html") if h.proto.body.count("<img") == 50]


def test_the_live_view_remakes_its_charts_only_when_the_job_moved_on(
    env, open_app, started_jobs, monkeypatch
):
    """A poll of an unchanged job re-sends the charts it kept; a job that moved on (another
    epoch reported) has its record copied and its charts made again."""
    from ui import inside_charts

    at = open_app("pages/train.py")
    train_briefly(at, started_jobs)
    at.switch_page("pages/inside.py").run()
    made = []
    series_figure = inside_charts.series_figure

    def counting(record, name, *args, **kwargs):
        made.append(name)
        return series_figure(record, name, *args, **kwargs)

    monkeypatch.setattr(inside_charts, "series_figure", counting)
    at.run()
    assert not at.exception
    assert made == []
    assert "gradient norm" in figures(at)

    (job,) = started_jobs
    snapshot = job.snapshot
    monkeypatch.setattr(job, "snapshot", lambda without=(): {**snapshot(without), "epoch": 3})
    at.run()
    assert not at.exception
    assert "grad_norm" in made and "update_ratio" in made
    assert "gradient norm" in figures(at)


def test_inside_charts_that_looked_like_bugs():
    """A 0 on a log scale (no step at a schedule's end) is left out with a word, not drawn as a
    drop to the bottom; a chart without values says so; the grid accuracy's axis ticks every
    20%."""
    from ui import inside_charts as charts

    record = {
        "epochs": [1, 2, 3],
        "layers": [{"name": "0 dense", "trained": True, "kind": "dense"}],
        "series": [{"update_ratio": [1e-3, 5e-4, 0.0], "act_unit_spread": [None, None, None]}],
        "probe_loss": [0.5, 0.4, 0.3],
        "grid_accuracy": [0.8, 0.9, 0.95],
    }
    fig = charts.series_figure(record, "update_ratio")
    assert list(fig.data[0].y) == [1e-3, 5e-4, None]
    assert "a log scale has no 0" in fig.layout.annotations[0].text
    empty = charts.series_figure(record, "act_unit_spread")
    assert not empty.data and empty.layout.annotations[0].text == "no values yet"
    probe = charts.probe_figure(record)
    right = probe.layout.yaxis2
    assert (right.tickmode, right.tick0, right.dtick) == ("linear", 0, 0.2)
