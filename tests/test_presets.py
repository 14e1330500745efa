"""nn.presets and nn.training: every preset is valid and trains; the shared training helper.

The end-to-end accuracy check (10,000 MNIST images, >= 95% on the test set) runs through the CLI
in tests/test_cli.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.core.config import configure
from nn.data import MNIST, SPLITS, load_mnist
from nn.services.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset, resolve_config, train
from nn.services.training import (
    DATA_DEFAULTS,
    TrainResult,
    check_data_kwargs,
    check_model_kwargs,
    run_training,
)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def small(mnist):
    """A 6,000 + 1,000 image slice of MNIST, so that scoring stays cheap."""
    return MNIST(
        mnist.x_train[:6000], mnist.y_train[:6000], mnist.x_test[:1000], mnist.y_test[:1000]
    )


def test_registry():
    assert DEFAULT_PRESET == "fast"
    assert set(PRESETS) == {
        "fast",
        "best",
        "cnn",
        "cnn-best",
        "reference-256-128",
        "reference-500-300-100",
        "reference-he-relu",
    }
    for name, p in PRESETS.items():
        assert isinstance(p, Preset) and p.name == name
        assert p.description and "\n" not in p.description
        assert isinstance(p.reference, str)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid(name):
    p = PRESETS[name]
    configure(p.model)
    check_model_kwargs(p.model)
    data = check_data_kwargs(p.data)
    assert data["split"] in SPLITS
    assert set(p.data) <= set(DATA_DEFAULTS)


def test_preset_values():
    fast = PRESETS["fast"].model
    assert fast["hidden_layers"] == [256, 128] and fast["optimizer"] == "adam"
    assert fast["schedule"] == "cosine" and fast["epochs"] == 12
    best = PRESETS["best"].model
    assert best["hidden_layers"] == [800, 800] and best["optimizer"] == "momentum"
    assert best["augment"]["elastic_alpha"] == 20.0
    kinds = [layer["type"] for layer in PRESETS["cnn"].model["layers"]]
    assert kinds.count("conv2d") == 2 and kinds.count("maxpool") == 2 and "dense" in kinds
    best_cnn = PRESETS["cnn-best"].model
    kinds = [layer["type"] for layer in best_cnn["layers"]]
    assert kinds.count("batchnorm") == 3 and "dropout" in kinds and "conv2d" in kinds
    assert best_cnn["augment"]["elastic_alpha"] > 0 and best_cnn["warmup_epochs"] > 0
    assert best_cnn["schedule"] == "cosine"
    for name in ("cnn", "cnn-best"):
        assert PRESETS[name].data == {"split": "standard", "seed": 0, "train_size": None}
    assert PRESETS["reference-256-128"].data["split"] == "80:10:10"
    assert PRESETS["reference-500-300-100"].model["hidden_layers"] == [500, 300, 100]
    assert PRESETS["reference-he-relu"].model["clip_norm"] == 5.0
    assert "97.23%" in PRESETS["reference-500-300-100"].reference


def test_get_preset_errors():
    assert get_preset("best") is PRESETS["best"]
    assert get_preset(PRESETS["fast"]) is PRESETS["fast"]
    for bad in ("nope", "", None, 3):
        with pytest.raises(ValueError) as info:
            get_preset(bad)
        for name in PRESETS:
            assert name in str(info.value)


def test_copies_do_not_change_the_preset():
    p = PRESETS["best"]
    kwargs = p.model_kwargs(epochs=1)
    kwargs["augment"]["shift"] = 99.0
    kwargs["hidden_layers"].append(5)
    assert kwargs["epochs"] == 1 and p.model["epochs"] == 40
    assert p.model["augment"]["shift"] == 2.0 and p.model["hidden_layers"] == [800, 800]
    model, data = resolve_config("fast", {"epochs": 2}, {"train_size": 10})
    model["hidden_layers"].append(1)
    assert PRESETS["fast"].model["hidden_layers"] == [256, 128]
    assert data == {"split": "standard", "seed": 0, "train_size": 10}
    assert resolve_config(None) == ({}, {"split": "standard", "seed": 0, "train_size": None})


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_trains_briefly(name, small):
    """One epoch on 1,000 images (a second or two for a CNN preset on a quiet machine)."""
    result = train(name, overrides={"epochs": 1}, data_overrides={"train_size": 1000}, mnist=small)
    assert isinstance(result, TrainResult)
    assert result.model.n_iter_ == 1 and not result.diverged
    assert result.split.x_train.shape == (1000, 784)
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert np.isfinite(result.model.history_["loss"][0])
    metrics = result.metrics()
    assert metrics["epochs"] == 1 and metrics["train_size"] == 1000
    assert {"test_accuracy", "val_accuracy", "train_accuracy", "loss", "train_seconds"} <= set(
        metrics
    )
    stack = PRESETS[name].model.get("layers")
    if stack is not None:  # a CNN preset: the fitted model runs its stack on 28x28x1 images
        model = result.model
        assert model.input_shape_ == (28, 28, 1)
        # the preset's layers, then the output layer to the classes, appended
        assert [layer.kind for layer in model.layers_] == [spec["type"] for spec in stack] + [
            "dense"
        ]
        assert result.test_accuracy > 0.3  # one epoch on 1,000 images: well above chance (0.1)


def test_run_training_validates_before_loading(monkeypatch):
    import nn.services.training as training

    def no_loading(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("data was loaded before the settings were checked")

    monkeypatch.setattr(training, "load_data", no_loading)
    with pytest.raises(ValueError, match="learning_rate"):
        run_training({"learning_rate": 0}, {})
    with pytest.raises(ValueError, match="unknown model setting"):
        run_training({"hidden_layer": [3]}, {})
    with pytest.raises(ValueError, match="unknown data setting"):
        check_data_kwargs({"splitt": "standard"})


def test_run_training_with_given_split_and_callback(small):
    from nn.data import split_dataset

    split = split_dataset(
        small, "custom", seed=1, val_fraction=0.0, test_fraction=0.2, train_size=500
    )
    events = []
    result = run_training(
        {"hidden_layers": [16], "epochs": 2, "random_state": 0}, split=split, callback=events.append
    )
    assert result.val_accuracy is None  # no validation part
    assert result.test_accuracy is not None
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2]
