"""The estimator on layer objects repeats the frozen fixed-MLP reference bit for bit.

``tests/reference_mlp.py`` is the estimator as it stood before layers became objects. For the
same seed both must draw the same random numbers in the same order (initialisation, input and
hidden dropout masks, the permutation per epoch, augmentation, the early-stopping hold-out) and
do the same floating-point operations in the same order, so weights, optimizer state and history
agree exactly.
"""

from pathlib import Path

import numpy as np
import pytest

from nn import NeuralNetwork, load_model
from nn.core.state import from_state
from nn.data import load_mnist
from nn.io import model_files
from nn.io.model_checks import state_meta
from nn.io.model_files import read_metadata
from tests.gradients import loss_and_gradients
from tests.reference_mlp import NeuralNetwork as ReferenceMLP

FORMAT_1_MLP = Path(__file__).resolve().parent / "data" / "mlp_format1.npz"
"""A small dense net in model-file format 1 (made by tests/data/make_mlp_format1.py)."""
SHIPPED_DEFAULT = Path(__file__).resolve().parents[1] / "saved_models" / "default.npz"


def _digits(n=240, d=64, k=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, n)
    X = centres[y] + rng.normal(size=(n, d))
    return X.astype(dtype), y


def _pixels(n=160, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.random((n, 784)) * 80 + y[:, None] * 40).astype(np.uint8)
    return X, y


CONFIGS = {
    "plain_adam": {"hidden_layers": [16, 8], "epochs": 3},
    "dropout_l2_momentum": {
        "hidden_layers": [20, 12],
        "dropout": [0.3, 0.1],
        "input_dropout": 0.2,
        "l2": 1e-3,
        "optimizer": "momentum",
        "learning_rate": 0.05,
        "epochs": 3,
    },
    "clip_nesterov_tanh": {
        "hidden_layers": [12],
        "activation": "tanh",
        "clip_norm": 0.5,
        "optimizer": "nesterov",
        "learning_rate": 0.1,
        "epochs": 2,
    },
    "early_stopping_rmsprop": {
        "hidden_layers": [10],
        "activation": ["leaky_relu"],
        "leaky_slope": 0.1,
        "optimizer": "rmsprop",
        "early_stopping": True,
        "patience": 1,
        "epochs": 6,
        "schedule": "cosine",
        "warmup_epochs": 1.0,
    },
    "float64_sigmoid_sgd": {
        "hidden_layers": [9, 7],
        "activation": ["sigmoid", "relu"],
        "optimizer": "sgd",
        "learning_rate": 0.3,
        "dtype": "float64",
        "dropout": 0.2,
        "epochs": 2,
        "batch_size": 50,
    },
    "softmax_regression": {"hidden_layers": [], "epochs": 2, "init": "normal"},
}


def _same(a, b):
    assert a.n_iter_ == b.n_iter_
    assert a.stop_reason_ == b.stop_reason_
    assert a.stop_message_ == b.stop_message_
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert wa.dtype == wb.dtype
        np.testing.assert_array_equal(wa, wb)
    assert a.history_ == b.history_
    sa, sb = a.optimizer_.state_dict(), b.optimizer_.state_dict()
    assert sa[0] == sb[0] and sa[1].keys() == sb[1].keys()
    for key in sa[1]:
        np.testing.assert_array_equal(sa[1][key], sb[1][key])


def _drop_seconds(model):
    model.history_["seconds"] = [0.0] * len(model.history_["seconds"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dense_configs_repeat_the_reference_exactly(name):
    params = {"batch_size": 32, "random_state": 3, **CONFIGS[name]}
    dtype = np.float64 if params.get("dtype") == "float64" else np.float32
    X, y = _digits(dtype=dtype)
    Xv, yv = _digits(n=80, seed=9, dtype=dtype)
    fit_args = () if params.get("early_stopping") else (Xv, yv)
    new = NeuralNetwork(**params).fit(X, y, *fit_args)
    old = ReferenceMLP(**params).fit(X, y, *fit_args)
    for m in (new, old):
        _drop_seconds(m)
    _same(new, old)
    np.testing.assert_array_equal(new.predict_proba(Xv), old.predict_proba(Xv))
    for a, b in zip(new.activations(Xv[:5]), old.activations(Xv[:5]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_with_augmentation_and_warm_start_repeat_the_reference():
    X, y = _pixels()
    params = {
        "hidden_layers": [24],
        "dropout": 0.25,
        "input_dropout": 0.1,
        "augment": {"shift": 2.0, "rotation": 10.0, "elastic_alpha": 8.0},
        "epochs": 2,
        "batch_size": 40,
        "random_state": 11,
        "warm_start": True,
    }
    new, old = NeuralNetwork(**params), ReferenceMLP(**params)
    for _ in range(2):  # the second fit continues with the same generator
        new.fit(X, y)
        old.fit(X, y)
    for m in (new, old):
        _drop_seconds(m)
    _same(new, old)


def test_loss_and_gradients_repeat_the_reference():
    X, y = _digits(n=60, dtype=np.float64)
    params = {
        "hidden_layers": [7, 5],
        "l2": 0.01,
        "dtype": "float64",
        "epochs": 1,
        "batch_size": 20,
        "random_state": 0,
    }
    new = NeuralNetwork(**params).fit(X, y)
    old = ReferenceMLP(**params).fit(X, y)
    (la, ga), (lb, gb) = loss_and_gradients(new, X, y), old.loss_and_gradients(X, y)
    assert la == lb
    for a, b in zip(ga, gb, strict=True):
        np.testing.assert_array_equal(a, b)


def _predicts_as_the_reference_reads_it(path: Path) -> None:
    kind, meta, arrays = model_files._load(path, meta_only=False)
    reference = ReferenceMLP.from_state(state_meta(meta, path), arrays)
    model = load_model(path)
    X = np.random.default_rng(0).integers(0, 256, (300, 784)).astype(np.uint8)
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    for a, b in zip(
        model.coefs_ + model.intercepts_, reference.coefs_ + reference.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_a_format_1_model_file_predicts_as_the_reference_reads_it():
    meta = read_metadata(FORMAT_1_MLP)
    assert meta["format_version"] == 1 and "stack" not in meta["architecture"]
    _predicts_as_the_reference_reads_it(FORMAT_1_MLP)


def test_the_shipped_default_model_loads_and_reads_mnist():
    """Whatever ``saved_models/default.npz`` holds (a dense net in format 1, a CNN in format 2),
    it loads, reads MNIST's test digits well, and a format-1 file reads as the reference does."""
    meta = read_metadata(SHIPPED_DEFAULT)
    model = load_model(SHIPPED_DEFAULT)
    data = load_mnist()
    assert model.score(data.x_test[:1000], data.y_test[:1000]) >= 0.97
    if meta["format_version"] == 1:
        _predicts_as_the_reference_reads_it(SHIPPED_DEFAULT)


def test_a_model_in_the_earlier_format_continues_training_as_the_reference_does():
    X, y = _digits()
    params = {"hidden_layers": [12], "epochs": 2, "batch_size": 32, "random_state": 5}
    reference = ReferenceMLP(**params, warm_start=True).fit(X, y)
    meta, arrays = reference.to_state()  # coef_<i>, intercept_<i>, opt.<slot>.<i>
    assert "coef_0" in arrays and "opt.m.0" in arrays
    model = from_state(meta, arrays)
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    for m in (model, reference):
        m._rng = np.random.default_rng(1)
        m.fit(X, y)
        _drop_seconds(m)
    _same(model, reference)
