"""The Train form refuses what it shows (AppTest): a number typed beyond a widget's range is
the number checked, a network above the parameter limit is refused, nothing starts training."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

PAGE = "pages/train.py"
JOB_SECONDS = 120


@pytest.fixture
def open_train(env, open_app):
    return lambda: open_app(PAGE)


@pytest.fixture
def start_is_refused(texts):
    def check(at: AppTest, needle: str) -> None:
        at.button(key="start_training").click().run()
        assert not at.exception
        message = texts(at.error)
        assert "Fix the settings" in message and needle in message, message
        assert at.button(key="stop_training").disabled  # nothing is training

    return check


def test_neurons_beyond_the_range_are_shown_and_refused(open_train, start_is_refused):
    at = open_train()
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(100_000).run()
    assert at.number_input(key="tf_units_0").value == 100_000  # the form shows the typed value
    assert at.session_state["train_config"]["layers"][0]["units"] == 100_000
    start_is_refused(at, "Hidden layer 1 has 100,000 neurons: use at most 4,096")


def test_a_network_above_the_parameter_limit_is_refused(open_train, start_is_refused):
    at = open_train()
    at.number_input(key="tf_n_layers").set_value(3).run()
    for i in range(3):
        at.number_input(key=f"tf_units_{i}").set_value(4096).run()
    start_is_refused(at, "parameters; the limit is 20,000,000")


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("tf_random_state", 2**33, "Seed: 8,589,934,592 is above 4,294,967,295"),
        ("tf_epochs", 5000, "Epochs: 5,000 is above 1,000"),
        ("tf_n_layers", 50, "Hidden layers: 50 is outside 0 to 8"),
        ("tf_drop_0", 2.0, "dropout 2 is outside 0-0.95"),
    ],
)
def test_other_numbers_beyond_their_ranges_are_refused(
    open_train, start_is_refused, key, value, needle
):
    at = open_train()
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    start_is_refused(at, needle)


def test_a_finished_run_whose_loss_is_worse_than_chance_is_called_diverged():
    from ui.train_form import diverged_without_nan

    assert diverged_without_nan({"history": {"loss": [0.9, 0.3]}}) is None
    assert diverged_without_nan({"history": {}}) is None
    message = diverged_without_nan({"history": {"loss": [2e11, 3e11]}})
    assert "3e+11, above ln(10) = 2.30" in message and "diverged" in message
    assert diverged_without_nan({"stop_reason": "diverged", "stop_message": "boom"}) == "boom"


def test_train_page_shows_divergence_without_nan_as_an_error(open_train, texts, started_jobs):
    """SGD at learning rate 10 with tanh: the loss explodes (about 1e2) without NaN; the page
    must not say "Training finished" (whether or not the engine stops the run itself)."""
    at = open_train()
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(32).run()
    at.selectbox(key="tf_act_0").set_value("tanh").run()
    at.selectbox(key="tf_optimizer").set_value("sgd").run()
    at.number_input(key="tf_learning_rate").set_value(10.0).run()
    at.number_input(key="tf_epochs").set_value(2).run()
    at.number_input(key="tf_batch_size").set_value(100).run()
    at.button(key="start_training").click().run()
    (job,) = started_jobs
    job.wait(JOB_SECONDS)
    assert job.done, "training did not end in time"
    at.run()
    assert not at.button(key="start_training").disabled
    shown = texts(at.success)
    assert "Training finished." not in shown, (shown, texts(at.error))
    assert "diverged" in texts(at.error)


def test_validate_checks_every_number_range_without_the_form_drawn():
    """The ranges are the form's declared fields, so validate() refuses a number out of range
    in a process that never drew the form (a fresh interpreter here)."""
    import subprocess
    import sys

    code = (
        "from ui import train_form as tf\n"
        "cfg = {**tf.default_config(), 'shift': 20.0, 'epochs': 5000}\n"
        "print(tf.validate(cfg))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "Shift (px): 20 is above 14" in out
    assert "Epochs: 5,000 is above 1,000" in out


def test_every_number_field_has_a_range_and_a_widget_step():
    from nn.services.settings import number_fields
    from ui.train_form import default_config

    cfg = default_config()
    for field, spec in number_fields().items():
        assert field in cfg, field
        assert spec.step > 0, field
        assert spec.min_value is not None, field
        lo, hi = spec.min_value, spec.max_value
        assert lo <= cfg[field] <= (hi if hi is not None else cfg[field]), field
