"""The network: gradient checks in float64, training behaviour, validation, repeatability."""

import numpy as np
import pytest

from nn import NeuralNetwork, ParameterError
from nn.core.activations import ACTIVATIONS, get_activation
from nn.core.config import configure, memory, stack_for
from nn.core.inputs import NotFittedError
from nn.core.limits import MAX_SEED
from nn.core.losses import softmax, softmax_cross_entropy
from tests.gradients import loss_and_gradients


def _blobs(n=300, d=6, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    y = rng.integers(0, k, n)
    X = centres[y] + rng.normal(0, 1, size=(n, d))
    return X.astype(dtype), y


def _rel_error(a, b):
    """Relative error of two gradient arrays, ||a - b|| / (||a|| + ||b||)."""
    return np.linalg.norm(a - b) / max(1e-12, np.linalg.norm(a) + np.linalg.norm(b))


def _numeric_grads(model, X, y, eps=1e-6):
    out = []
    for p in model._params():
        g = np.zeros_like(p)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = p[i]
            p[i] = old + eps
            plus, _ = loss_and_gradients(model, X, y)
            p[i] = old - eps
            minus, _ = loss_and_gradients(model, X, y)
            p[i] = old
            g[i] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


def _fitted(X, y, **kw):
    kw.setdefault("dtype", "float64")
    kw.setdefault("epochs", 1)
    kw.setdefault("batch_size", min(32, len(y)))
    kw.setdefault("random_state", 0)
    kw.setdefault("learning_rate", 0.01)
    return NeuralNetwork(**kw).fit(X, y)


def _check_gradients(model, X, y):
    _, analytic = loss_and_gradients(model, X, y)
    numeric = _numeric_grads(model, X, y)
    for a, n in zip(analytic, numeric, strict=True):
        assert _rel_error(a, n) < 1e-6


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_each_activation(activation):
    X, y = _blobs(n=20, d=4, k=3)
    model = _fitted(X, y, hidden_layers=(5,), activation=activation, leaky_slope=0.1)
    _check_gradients(model, X, y)


def test_gradients_deep_mixed_network_with_l2():
    X, y = _blobs(n=16, d=5, k=4, seed=1)
    model = _fitted(
        X, y, hidden_layers=(6, 5, 4), activation=["tanh", "leaky_relu", "sigmoid"], l2=0.05
    )
    _check_gradients(model, X, y)


def test_gradients_two_layers_relu_l2():
    X, y = _blobs(n=12, d=4, k=3, seed=2)
    model = _fitted(X, y, hidden_layers=(7, 6), activation=["relu", "tanh"], l2=0.3)
    _check_gradients(model, X, y)


def test_l2_gradient_is_l2_times_weights():
    X, y = _blobs(n=30, d=4, k=3, seed=3)
    plain = _fitted(X, y, hidden_layers=(5,))
    loss0, g0 = loss_and_gradients(plain, X, y)
    plain.l2 = 0.7
    loss1, g1 = loss_and_gradients(plain, X, y)
    np.testing.assert_allclose(g1[0] - g0[0], 0.7 * plain.coefs_[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1[1], g0[1])  # biases are not penalised
    penalty = 0.35 * sum(np.sum(w * w) for w in plain.coefs_)
    assert loss1 - loss0 == pytest.approx(penalty, rel=1e-10)


def test_activation_derivatives_by_central_differences():
    z = np.linspace(-3, 3, 61) + 0.013  # avoid the kink at 0
    for name in ACTIVATIONS:
        act = get_activation(name)
        a = act.forward(z.copy())
        grad = act.backward(np.ones_like(z), a)
        eps = 1e-6
        numeric = (act.forward(z + eps) - act.forward(z - eps)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9, err_msg=name)


def test_softmax_cross_entropy_gradient_and_stability():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4))
    y = np.array([0, 3, 1, 2, 3])
    loss, grad = softmax_cross_entropy(z.copy(), y)
    p = softmax(z.copy())
    expected = -np.mean(np.log(p[np.arange(5), y]))
    assert loss == pytest.approx(expected, rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(grad, (p - onehot) / 5, atol=1e-15)
    eps = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        num[i] = (softmax_cross_entropy(zp, y)[0] - softmax_cross_entropy(zm, y)[0]) / (2 * eps)
    assert _rel_error(grad, num) < 1e-6
    huge = np.array([[1000.0, -1000.0, 0.0]])
    loss, grad = softmax_cross_entropy(huge.copy(), np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0)
    assert np.isfinite(grad).all()


def test_fit_learns_and_api_shapes():
    X, y = _blobs(n=400, d=8, k=4)
    labels = np.array(["a", "b", "c", "d"])[y]
    model = NeuralNetwork(
        hidden_layers=(16,), epochs=30, batch_size=32, learning_rate=0.01, random_state=0
    ).fit(X, labels)
    assert model.fit is not None and model.n_iter_ == 30
    assert list(model.classes_) == ["a", "b", "c", "d"]
    proba = model.predict_proba(X)
    assert proba.shape == (400, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert model.score(X, labels) > 0.95
    assert set(model.predict(X[:10])) <= set("abcd")
    assert model.layer_sizes_ == [8, 16, 4]
    assert model.n_parameters_ == 8 * 16 + 16 + 16 * 4 + 4
    assert len(model.history_["loss"]) == 30
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_fit_returns_self_and_params_round_trip():
    model = NeuralNetwork(hidden_layers=[4, 3], activation=["relu", "tanh"], dropout=[0.1, 0.0])
    params = model.get_params()
    clone = NeuralNetwork(**params)
    assert clone.get_params() == params
    X, y = _blobs(n=50)
    assert model.set_params(epochs=1, batch_size=16).fit(X, y) is model


def test_uint8_input_is_scaled_like_float():
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, size=(200, 20), dtype=np.uint8)
    y = (X8[:, 0] > 127).astype(int)
    a = NeuralNetwork(hidden_layers=(8,), epochs=3, random_state=1).fit(X8, y)
    b = NeuralNetwork(hidden_layers=(8,), epochs=3, random_state=1).fit(
        X8.astype(np.float32) / 255, y
    )
    np.testing.assert_allclose(
        a.predict_proba(X8), b.predict_proba(X8.astype(np.float32) / 255), rtol=1e-4, atol=1e-6
    )


def test_seeded_runs_repeat_exactly_and_seeds_differ():
    X, y = _blobs(n=200)
    kw = dict(hidden_layers=(10,), epochs=3, dropout=0.3, random_state=7, augment=None)
    a = NeuralNetwork(**kw).fit(X, y)
    b = NeuralNetwork(**kw).fit(X, y)
    c = NeuralNetwork(**{**kw, "random_state": 8}).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    assert {k: v for k, v in a.history_.items() if k != "seconds"} == {
        k: v for k, v in b.history_.items() if k != "seconds"
    }


def test_dropout_scaling_keeps_expectation_and_is_off_at_predict():
    from nn.core.layers import Dropout

    layer = Dropout(rate=0.25)
    layer.build((500,), np.float32)
    ones = np.ones((2000, 500), np.float32)
    mask = layer.forward(ones, training=True, keep=True, rng=np.random.default_rng(0))
    kept = mask > 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(mask[kept], 1 / 0.75, rtol=1e-6)
    assert abs(mask.mean() - 1.0) < 0.01
    X, y = _blobs(n=100)
    model = NeuralNetwork(
        hidden_layers=(16,), dropout=0.5, epochs=2, batch_size=32, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))


def test_early_stopping_restores_best_weights():
    X, y = _blobs(n=300, seed=5)
    Xv, yv = _blobs(n=100, seed=6)
    yv = np.random.default_rng(0).permutation(yv)  # noise labels: validation loss soon worsens
    seen = {}

    def remember(event):
        if event.kind == "epoch":
            seen[event.epoch] = ([w.copy() for w in model.coefs_], event.val_loss)

    model = NeuralNetwork(
        hidden_layers=(32,),
        epochs=200,
        early_stopping=True,
        patience=3,
        learning_rate=0.01,
        random_state=0,
    )
    model.fit(X, y, Xv, yv, callback=remember)
    assert model.stop_reason_ == "early_stopping"
    best_epoch = min(seen, key=lambda e: seen[e][1])
    assert model.n_iter_ == best_epoch + 3
    for w, best in zip(model.coefs_, seen[best_epoch][0], strict=True):
        np.testing.assert_array_equal(w, best)


def test_early_stopping_without_validation_holds_out_a_fraction():
    X, y = _blobs(n=200)
    model = NeuralNetwork(
        hidden_layers=(8,), epochs=3, early_stopping=True, validation_fraction=0.2, random_state=0
    ).fit(X, y)
    assert all(v is not None for v in model.history_["val_accuracy"])


def test_callback_gets_events_and_can_stop():
    X, y = _blobs(n=256)
    events = []

    def cb(event):
        events.append(event)
        return event.kind == "batch" and event.epoch == 2 and event.batch == 3

    model = NeuralNetwork(hidden_layers=(8,), epochs=5, batch_size=32, random_state=0)
    model.fit(X, y, X[:50], y[:50], callback=cb)
    assert model.stop_reason_ == "callback"
    assert model.n_iter_ == 1  # the interrupted epoch is not counted
    kinds = [e.kind for e in events]
    assert kinds[:8] == ["batch"] * 8 and kinds[8] == "epoch"
    epoch_event = events[8]
    assert epoch_event.val_accuracy is not None and epoch_event.samples_per_second > 0
    assert epoch_event.n_batches == 8 and epoch_event.epochs == 5


def test_divergence_stops_with_message_and_finite_weights():
    X, y = _blobs(n=200)
    X = X * 1000
    model = NeuralNetwork(
        hidden_layers=(32,),
        optimizer="sgd",
        learning_rate=1e6,
        epochs=20,
        activation="relu",
        random_state=0,
    )
    model.fit(X, y)
    assert model.stop_reason_ == "diverged"
    assert "lower learning rate" in model.stop_message_
    assert all(np.isfinite(w).all() for w in model.coefs_)
    assert np.isfinite(model.predict_proba(X)).all()


def test_warm_start_continues_training():
    X, y = _blobs(n=200)
    full = NeuralNetwork(hidden_layers=(8,), epochs=6, random_state=0, shuffle=False).fit(X, y)
    part = NeuralNetwork(
        hidden_layers=(8,), epochs=3, random_state=0, shuffle=False, warm_start=True
    ).fit(X, y)
    assert part.n_iter_ == 3
    part.fit(X, y)
    assert part.n_iter_ == 6 and len(part.history_["loss"]) == 6
    for a, b in zip(full.coefs_, part.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_clipping_limits_norm():
    X, y = _blobs(n=64)
    model = _fitted(X, y, hidden_layers=(8,), clip_norm=0.01)
    _, grads = loss_and_gradients(model, X, y)
    model._clip(grads)
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    assert norm == pytest.approx(0.01, rel=1e-6)


def test_float32_by_default_and_float64_available():
    X, y = _blobs(n=64)
    model = NeuralNetwork(hidden_layers=(4,), epochs=1, batch_size=32).fit(X, y)
    assert model.coefs_[0].dtype == np.float32
    assert _fitted(X, y, hidden_layers=(4,)).predict_proba(X).dtype == np.float64


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"hidden_layers": [0]}, "hidden_layers"),
        ({"hidden_layers": [10, -1]}, "hidden_layers"),
        ({"learning_rate": 0}, "learning_rate=0"),
        ({"activation": "swish"}, "choose one of"),
        ({"activation": ["relu", "tanh"]}, "one value per hidden layer"),
        ({"optimizer": "adagrad"}, "optimizer='adagrad'"),
        ({"dropout": 1.0}, "dropout"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"init": "glorot"}, "init"),
        ({"schedule": "linear"}, "schedule"),
        ({"leaky_slope": 2}, "leaky_slope"),
        ({"clip_norm": -1}, "clip_norm"),
    ],
)
def test_bad_hyperparameters_name_parameter_and_allowed(params, fragment):
    X, y = _blobs(n=100)
    with pytest.raises(ParameterError, match=fragment.replace("[", r"\[")) as err:
        NeuralNetwork(**{"hidden_layers": (4,), **params}).fit(X, y)
    assert err.value.param == next(iter(params))


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 99999999999999999999999, 1.5, True])
def test_random_state_is_bounded(seed):
    with pytest.raises(ParameterError, match=f"random_state.*0..{MAX_SEED}") as err:
        configure({"random_state": seed})
    assert err.value.param == "random_state"
    configure({"random_state": MAX_SEED})


def test_too_many_parameters_refused_before_allocating():
    with pytest.raises(ParameterError, match="10,079,600,010 parameters; the limit is") as err:
        _memory({"hidden_layers": [100_000, 100_000]}, 784, 10)
    assert err.value.param == "hidden_layers"
    model = NeuralNetwork(hidden_layers=[1_000_000_000])
    with pytest.raises(ParameterError, match="795,000,000,010 parameters") as err:
        _memory(model.get_params(), 784, 10)
    assert err.value.param == "hidden_layers"


def test_estimate_memory_counts_parameters_state_and_buffers():
    model = NeuralNetwork(hidden_layers=[256, 128], batch_size=128, optimizer="adam")
    est = _memory(model.get_params(), 784, 10)
    n = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert est["n_parameters"] == n
    assert est["parameters"] == est["gradients"] == 4 * n
    assert est["optimizer"] >= 2 * 4 * n
    assert est["buffers"] > 4 * 128 * (784 + 256 + 128 + 10)
    parts = ("parameters", "gradients", "optimizer", "snapshots", "buffers")
    assert est["total"] == sum(est[k] for k in parts)
    sgd = _memory({"hidden_layers": [256, 128], "optimizer": "sgd"}, 784, 10)
    assert sgd["optimizer"] < est["optimizer"]
    wide = _memory({"hidden_layers": [256, 128], "dtype": "float64"}, 784, 10)
    assert wide["parameters"] == 2 * est["parameters"]


def test_fit_refuses_what_needs_more_memory_than_the_limit(monkeypatch):
    from nn.core import limits

    monkeypatch.setattr(limits, "MAX_TRAINING_BYTES", 1_000_000)
    X, y = _blobs(n=100, d=20)
    model = NeuralNetwork(hidden_layers=[2000], epochs=1, batch_size=10)
    with pytest.raises(ParameterError, match=r"needs about \d+\.\d MB") as err:
        model.fit(X, y)
    assert err.value.param == "hidden_layers" and "limit is 1.0 MB" in str(err.value)
    assert not hasattr(model, "coefs_") or not model._is_fitted()


def _diverging_sgd():
    """Blobs and an SGD net whose learning rate of 10 makes its loss blow up without NaN."""
    X, y = _blobs(n=300, d=20, seed=3)
    model = NeuralNetwork(
        hidden_layers=[64, 64],
        optimizer="sgd",
        learning_rate=10.0,
        epochs=5,
        batch_size=16,
        random_state=0,
    )
    return X, y, model


def test_divergence_without_nan_stops_and_says_so():
    X, y, model = _diverging_sgd()
    model.fit(X, y)
    assert model.stop_reason_ == "diverged"
    assert "diverged" in model.stop_message_ and "lower learning rate" in model.stop_message_
    assert all(np.isfinite(w).all() for w in model.coefs_)
    assert max(model.history_["batch_loss"]) < 100 * max(np.log(3), model.history_["batch_loss"][0])


def test_a_divergence_is_told_to_the_callback_before_the_good_weights_return():
    X, y, model = _diverging_sgd()
    events, weights_then = [], []

    def callback(event):
        events.append(event)
        if event.kind == "diverged":
            weights_then.append([w.copy() for w in model.coefs_])

    model.fit(X, y, callback=callback)
    assert model.stop_reason_ == "diverged"
    diverged = [e for e in events if e.kind == "diverged"]
    assert len(diverged) == 1 and events[-1] is diverged[0]
    event = diverged[0]
    assert f"epoch {event.epoch}, batch {event.batch}:" in model.stop_message_
    assert event.loss > 100 or not np.isfinite(event.loss)
    # the callback saw the weights that diverged; fit then put the last good ones back
    then = weights_then[0]
    assert any(not np.array_equal(a, b) for a, b in zip(then, model.coefs_, strict=True))
    assert sum(float(np.abs(w).sum()) for w in then) > sum(
        float(np.abs(w).sum()) for w in model.coefs_
    )


def test_bad_inputs():
    model = NeuralNetwork(hidden_layers=(4,), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="2-D"):
        model.fit(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="one label per row"):
        model.fit(np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((10, 3), np.nan), np.arange(10) % 2)
    with pytest.raises(ValueError, match="at least 2"):
        model.fit(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        model.predict(np.zeros((2, 3)))
    X, y = _blobs(n=50, d=6)
    model.fit(X, y)
    with pytest.raises(ValueError, match="is expecting 6 features"):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="does not know"):
        model.score(X, y + 10)


def test_activations_per_hidden_layer():
    X, y = _blobs(n=50)
    model = NeuralNetwork(
        hidden_layers=(7, 5), activation=["sigmoid", "relu"], epochs=1, batch_size=10
    ).fit(X, y)
    acts = model.activations(X[:3])
    assert [a.shape for a in acts] == [(3, 7), (3, 5)]
    assert (acts[0] > 0).all() and (acts[0] < 1).all() and (acts[1] >= 0).all()


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
def test_warm_start_after_unpickling_into_read_only_buffers(optimizer):
    """Ray hands a model back with every array in read-only shared memory (pickle protocol 5,
    out-of-band buffers); continuing to train it, or a deep copy, must work and match the
    original continued, weights and optimizer state alike (the state that would be saved)."""
    import copy
    import pickle

    X, y = _blobs(n=200, dtype=np.float32)
    model = NeuralNetwork(
        hidden_layers=(8,), epochs=2, optimizer=optimizer, random_state=0, warm_start=True
    ).fit(X, y)
    buffers = []
    data = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
    assert buffers  # the arrays really travel out of band
    shipped = pickle.loads(data, buffers=[memoryview(bytes(b.raw())) for b in buffers])
    # unpickling builds the stack around fresh flat arrays, whatever memory the buffers were in
    assert shipped.coefs_[0].flags.writeable and shipped.coefs_[0].base is shipped._flat_params
    plain = copy.deepcopy(model)
    for m in (model, shipped, plain):
        m.fit(X, y)
    want = model.optimizer_.state_dict()[1]
    for other in (shipped, plain):
        assert other.n_iter_ == 4
        for a, b in zip(
            other.coefs_ + other.intercepts_, model.coefs_ + model.intercepts_, strict=True
        ):
            np.testing.assert_array_equal(a, b)
        got = other.optimizer_.state_dict()[1]
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def _memory(values, n_features, n_classes):
    """The memory training these settings would need (nothing allocated)."""
    return memory(*stack_for(values, n_features, n_classes))
