"""The one hyperparameter table (nn.core.params.PARAMS): NeuralNetwork takes exactly its entries
and validates from it; the command line's flags, the Train form's widgets and the Tune page's
options are made from it, so an entry added to the table appears in all three with no other
edit; the 28x28 augmentation rule (nn.services.settings.for_images)."""

from __future__ import annotations

import contextlib
import inspect
import io
import math

import pytest

from nn.cli.main import main
from nn.core.config import configure
from nn.core.network import NeuralNetwork
from nn.core.params import (
    PARAMS,
    Interval,
    Param,
    ParameterError,
    Search,
    Widget,
    defaults,
    json_params,
)
from nn.services.settings import for_images, form_values, model_kwargs

NEW = Param(
    "label_smoothing",
    "float",
    0.0,
    "Label smoothing",
    "Share of each target moved evenly onto the other classes.",
    "regularisation",
    interval=Interval(0, 1),
    widget=Widget(0.05, None, 0.5),
    search=Search("uniform", "Uniform label smoothing.", low=0.0, high=0.2),
)


def test_the_table_is_neural_networks_signature():
    signature = inspect.signature(NeuralNetwork.__init__).parameters
    names = [name for name in signature if name != "self"]
    assert sorted(names) == sorted(PARAMS)
    for name in names:
        default = signature[name].default
        assert PARAMS[name].default == default, name
    assert defaults() == json_params(NeuralNetwork().get_params())


@pytest.mark.parametrize(
    "name,value,allowed",
    [
        ("beta2", 1.0, "use a number in [0, 1)"),
        ("rho", -0.1, "use a number in [0, 1)"),
        ("learning_rate", 0.0, "use a number greater than 0"),
        ("epochs", 2.5, "use a whole number in 1..100000"),
        ("step_size", 0, "use a whole number greater than 0"),
        ("gamma", 0.0, "use a number in (0, 1]"),
        ("l2", -1.0, "use a number >= 0"),
        ("input_dropout", 1.0, "use a probability in [0, 1)"),
        ("clip_norm", 0.0, "use None or a number greater than 0"),
        ("validation_fraction", 1.0, "use a number in (0, 1)"),
        ("min_lr", 0.5, "use a number in [0, learning_rate]"),
        ("optimizer", "adagrad", "choose one of sgd, momentum, nesterov, rmsprop, adam"),
        ("shuffle", "yes", "use True or False"),
        ("random_state", -1, "use None or a whole number in 0..4294967295"),
        ("epsilon", math.nan, "use a number greater than 0"),
    ],
)
def test_every_fault_names_the_parameter_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ParameterError) as err:
        configure({name: value})
    assert err.value.param == name
    assert str(err.value) == f"{name}={value!r} is not allowed: {allowed}."


def test_unknown_names_and_per_layer_values_are_refused():
    with pytest.raises(ParameterError, match="'beta3' is not a parameter of NeuralNetwork"):
        configure({"beta3": 0.9})
    with pytest.raises(ParameterError, match="dropout=1.5 is not allowed") as err:
        configure({"hidden_layers": [8, 8], "dropout": [0.1, 1.5]})
    assert err.value.param == "dropout"
    with pytest.raises(ParameterError, match="one value per hidden layer"):
        configure({"hidden_layers": [8, 8], "activation": ["relu"] * 3})
    # the dense shorthand's per-layer settings do not apply to an explicit stack
    configure({"layers": [{"type": "dense", "units": 4}], "activation": "swish"})


def test_form_values_and_kwargs_round_trip_every_setting():
    kwargs = {**defaults(), "optimizer": "rmsprop", "rho": 0.8, "clip_norm": 2.5}
    kwargs.update(hidden_layers=[32, 16], dropout=[0.1, 0.2], random_state=7)
    back = model_kwargs(form_values(kwargs))
    for name, value in kwargs.items():
        if name not in ("warm_start", "input_shape", "layers"):
            assert back[name] == value, name
    assert model_kwargs(form_values({"clip_norm": None}))["clip_norm"] is None


def test_augmentation_is_for_28x28_digits_only():
    shifted = {"augment": {"shift": 2.0}}
    assert for_images(shifted, (28, 28, 1)) == (shifted, [])
    model, notes = for_images(shifted, (32, 32, 3), "cifar")
    assert model == {"augment": None, "input_shape": [32, 32, 3]}
    assert "switched off for 32x32x3 images" in notes[0]
    with pytest.raises(ParameterError, match="cifar holds 32x32x3 images") as err:
        for_images(shifted, (32, 32, 3), "cifar", switch_off=False)
    assert err.value.param == "augment"
    kept, _ = for_images({"input_shape": [32, 32, 3]}, (32, 32, 3))
    assert kept == {"input_shape": [32, 32, 3]}


# ------------------------------------------------------------------------------ one new entry
@pytest.fixture
def new_entry(monkeypatch):
    monkeypatch.setitem(PARAMS, NEW.name, NEW)
    return NEW


def test_a_new_entry_is_a_flag_of_the_train_command(new_entry):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        assert main(["train", "--help"]) == 0
    assert "--label-smoothing X" in out.getvalue()
    assert "Share of each target" in out.getvalue()


def test_a_new_entry_is_a_widget_of_the_train_form(new_entry, env, open_app):
    at = open_app("pages/train.py")
    widget = at.number_input(key="tf_label_smoothing")
    assert widget.label == "Label smoothing" and widget.value == 0.0
    widget.set_value(0.9).run()  # the form's bound is the table's Widget.max
    assert "Label smoothing: 0.9 is above 0.5." in " ".join(e.value for e in at.error)


def test_a_new_entry_is_offered_by_the_tune_page(new_entry, env, open_app):
    at = open_app("pages/tune.py")
    box = at.checkbox(key="tune_on_label_smoothing")
    assert box.label == "Label smoothing" and box.value is False
    assert at.number_input(key="tune_high_label_smoothing").value == 0.2
