"""The Train page under AppTest: widgets, validation before training, a short real training
on a small slice (NN_TRAIN_LIMIT), stop, save with overwrite confirmation."""

from __future__ import annotations

import json

import pytest
from apptest_support import APP
from streamlit.testing.v1 import AppTest

from nn.io.model_files import load_model
from nn.services.presets import PRESETS
from nn.services.runs import RunStore
from ui.session_jobs import SessionJob

PAGE = "pages/train.py"
JOB_SECONDS = 90


@pytest.fixture
def open_train(env, open_app):
    return lambda: open_app(PAGE)


def small_form(at: AppTest, epochs: int = 1) -> None:
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(16).run()
    at.number_input(key="tf_epochs").set_value(epochs).run()
    at.number_input(key="tf_batch_size").set_value(100).run()


def wait_finished(at: AppTest, job: SessionJob) -> None:
    """Wait for the training thread to end, then rerun the page (``run_every`` never fires
    under AppTest)."""
    job.wait(JOB_SECONDS)
    assert job.done, "training did not finish in time"
    at.run()
    assert not at.exception
    assert not at.button(key="start_training").disabled


def test_widgets_exist(open_train):
    at = open_train()
    for key in (
        "start_training",
        "pause_training",
        "resume_training",
        "stop_training",
        "preset_fast",
        "preset_best",
    ):
        assert at.button(key=key) is not None
    for key in (
        "tf_n_layers",
        "tf_units_0",
        "tf_learning_rate",
        "tf_epochs",
        "tf_batch_size",
        "tf_random_state",
        "tf_l2",
        "tf_input_dropout",
        "tf_train_size",
        "tf_warmup_epochs",
        "tf_drop_0",
    ):
        assert at.number_input(key=key) is not None
    for key in ("tf_optimizer", "tf_schedule", "tf_init", "tf_split", "tf_act_0"):
        assert at.selectbox(key=key) is not None
    for key in ("tf_clip_norm_on", "tf_early_stopping", "tf_augment"):
        assert at.toggle(key=key) is not None
    assert at.button(key="start_training").disabled is False
    assert at.button(key="stop_training").disabled is True


def test_optimizer_and_schedule_parameters_shown_when_relevant(open_train):
    at = open_train()
    at.selectbox(key="tf_optimizer").set_value("momentum").run()
    assert "tf_momentum" in [w.key for w in at.number_input]
    assert "tf_beta1" not in [w.key for w in at.number_input]
    at.selectbox(key="tf_optimizer").set_value("adam").run()
    keys = [w.key for w in at.number_input]
    assert "tf_beta1" in keys and "tf_beta2" in keys and "tf_momentum" not in keys
    at.selectbox(key="tf_schedule").set_value("step").run()
    keys = [w.key for w in at.number_input]
    assert "tf_step_size" in keys and "tf_gamma" in keys
    at.toggle(key="tf_augment").set_value(True).run()
    keys = [w.key for w in at.number_input]
    assert {"tf_shift", "tf_rotation", "tf_scale", "tf_elastic_alpha", "tf_elastic_sigma"} <= set(
        keys
    )


def test_preset_fills_form(open_train):
    at = open_train()
    at.button(key="preset_reference-500-300-100").click().run()
    assert not at.exception
    assert at.number_input(key="tf_n_layers").value == 3
    assert at.number_input(key="tf_units_0").value == 500
    assert at.selectbox(key="tf_optimizer").value == "sgd"
    assert at.session_state["train_config"]["preset"] == "reference-500-300-100"


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("tf_learning_rate", 0.0, "learning_rate=0"),
        ("tf_units_0", 0, "no neurons"),
        ("tf_batch_size", 5000, "larger than the 1000 training images"),
    ],
)
def test_invalid_settings_refused_before_training(open_train, texts, key, value, needle):
    at = open_train()
    at.number_input(key=key).set_value(value).run()
    assert needle in texts(at.error)
    at.button(key="start_training").click().run()
    assert not at.exception
    assert "Fix the settings" in texts(at.error)
    assert "Press **Start**" in texts(at.info)  # no worker was started


def test_short_training_then_save(env, open_train, texts, started_jobs):
    at = open_train()
    small_form(at, epochs=2)
    at.button(key="start_training").click().run()
    assert not at.exception
    wait_finished(at, started_jobs[-1])
    assert "Training finished" in texts(at.success)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Test accuracy"].endswith("%")
    assert at.get("progress")[0].proto.text == "Finished — epoch 2/2"
    (chart,) = at.get("plotly_chart")  # one live figure: curves and batch loss
    names = {trace["name"] for trace in json.loads(chart.proto.spec)["data"]}
    assert {"train loss", "batch loss"} <= names
    assert "images/s" in texts(at.caption) and "validation accuracy" in texts(at.caption)
    # the form is no preset now: none is highlighted, and the run and the name it suggests say
    # what it trained (not "fast")
    assert all(at.button(key=f"preset_{name}").proto.type != "primary" for name in PRESETS)
    (run,) = RunStore().list_runs()
    assert run.name == "dense 16 on mnist"
    assert at.text_input(key="save_name").value == "dense-16-mnist"
    at.text_input(key="save_name").set_value("tiny net").run()
    at.button(key="save_model").click().run()
    assert not at.exception
    path = env / "tiny_net.npz"
    assert path.is_file()
    assert RunStore().get_run(run.id).name == "tiny_net"  # the run takes the model's name
    model = load_model(path)
    assert model.layer_sizes_ == [784, 16, 10] and model.n_iter_ == 2
    assert 0 < model.metadata_["metrics"]["test_accuracy"] <= 1
    # the record `python -m nn train` saves too (nn.io.models_folder.SaveRecord)
    meta = model.metadata_
    assert {"val_accuracy", "loss", "train_seconds", "epochs", "train_size"} <= set(meta["metrics"])
    assert meta["metrics"]["epochs"] == 2 and meta["metrics"]["train_size"] > 0
    assert meta["notes"].startswith("dashboard: standard split (seed")
    assert meta["dataset"]["name"] == "mnist" and meta["inside"]["epochs"] == [1, 2]
    assert at.session_state["active_model_name"] == "tiny_net"
    # a reload (a new session's first run draws the sidebar): the training is the person's
    again = AppTest.from_file(APP, default_timeout=60)
    again.run()
    assert "saved as **tiny_net**" in texts(again.sidebar.success)
    mtime = path.stat().st_mtime_ns
    # the same name again: refused until "overwrite" is ticked
    at.button(key="save_model").click().run()
    assert "tick *Overwrite*" in texts(at.warning)
    assert path.stat().st_mtime_ns == mtime
    at.checkbox(key="save_overwrite").check().run()
    at.button(key="save_model").click().run()
    assert "Saved as" in texts(at.success)
    # an invalid name is refused
    at.text_input(key="save_name").set_value("../evil").run()
    at.button(key="save_model").click().run()
    assert "invalid model name" in texts(at.error)
    assert sorted(p.name for p in env.iterdir()) == ["tiny_net.npz"]
    # continue training: 1 more epoch, warm start
    at.number_input(key="continue_epochs").set_value(1).run()
    at.button(key="continue_training").click().run()
    assert len(started_jobs) == 2
    wait_finished(at, started_jobs[-1])
    assert at.get("progress")[0].proto.text == "Finished — epoch 3/3"


def test_stop_button_stops(open_train, texts, started_jobs):
    at = open_train()
    small_form(at, epochs=300)
    at.button(key="start_training").click().run()
    (job,) = started_jobs
    assert at.button(key="stop_training").disabled is False
    at.button(key="pause_training").click().run()
    assert not at.exception
    assert job.control._blocked.wait(JOB_SECONDS), "the training did not hold still after Pause"
    at.run()
    assert at.button(key="resume_training").disabled is False
    assert at.button(key="pause_training").disabled is True
    at.button(key="stop_training").click().run()
    wait_finished(at, job)
    assert "Stopped on request" in texts(at.warning)


def test_hidden_layers_is_a_whole_number_after_a_preset(open_train):
    """A preset sets the layer count in the session state; the box still shows "2", not
    "2.00"."""
    at = open_train()
    at.button(key="preset_fast").click().run()
    box = at.number_input(key="tf_n_layers")
    assert box.value == 2 and box.proto.format == "%d"
