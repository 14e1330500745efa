"""Optimizers against hand-computed steps, schedules, and initialisers' statistics."""

import math

import numpy as np
import pytest

from nn.core.initializers import INITIALIZERS, default_init, initialize
from nn.core.optimizers import OPTIMIZERS, make_optimizer
from nn.core.schedules import SCHEDULES, learning_rate


def _one_step(name, lr=0.1, steps=1, **kw):
    w = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    opt = make_optimizer(name, **kw)
    for _ in range(steps):
        opt.step([w], [g], lr)
    return w


def test_sgd_step():
    np.testing.assert_allclose(_one_step("sgd"), [1.0 - 0.05, -2.0 - 0.025])


def test_momentum_two_steps():
    # v1 = -0.1*g; w1 = w0 + v1; v2 = 0.9*v1 - 0.1*g; w2 = w1 + v2
    w = _one_step("momentum", steps=2, momentum=0.9)
    g = np.array([0.5, 0.25])
    v1 = -0.1 * g
    v2 = 0.9 * v1 - 0.1 * g
    np.testing.assert_allclose(w, np.array([1.0, -2.0]) + v1 + v2)


def test_nesterov_two_steps():
    g = np.array([0.5, 0.25])
    w = np.array([1.0, -2.0])
    v = np.zeros(2)
    for _ in range(2):
        v = 0.9 * v - 0.1 * g
        w = w + 0.9 * v - 0.1 * g
    np.testing.assert_allclose(_one_step("nesterov", steps=2, momentum=0.9), w)


def test_rmsprop_step():
    g = np.array([0.5, 0.25])
    s = 0.1 * g**2
    expected = np.array([1.0, -2.0]) - 0.1 * g / (np.sqrt(s) + 1e-8)
    np.testing.assert_allclose(_one_step("rmsprop", rho=0.9, epsilon=1e-8), expected)


def test_adam_first_step_is_lr_times_sign():
    # With bias correction the first Adam step is lr * g / (|g| + eps) = lr * sign(g).
    w = _one_step("adam", lr=0.01)
    np.testing.assert_allclose(w, [1.0 - 0.01, -2.0 - 0.01], rtol=1e-6)


def test_adam_two_steps_hand_computed():
    g = np.array([0.5, 0.25])
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    w = np.array([1.0, -2.0])
    m = v = np.zeros(2)
    for t in (1, 2):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(_one_step("adam", lr=lr, steps=2), w, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    a = [np.ones((3, 2))]
    opt = make_optimizer(name)
    for g in grads[:2]:
        opt.step(a, [g], 0.01)
    scalars, arrays = opt.state_dict()
    b = [a[0].copy()]
    clone = make_optimizer(name)
    clone.load_state_dict(scalars, arrays)
    for g in grads[2:]:
        opt.step(a, [g], 0.01)
        clone.step(b, [g], 0.01)
    np.testing.assert_array_equal(a[0], b[0])


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="choose one of"):
        make_optimizer("adagrad")


def test_schedules():
    assert learning_rate("constant", 0.1, 5, 10) == 0.1
    assert learning_rate("step", 0.1, 9, 30, step_size=10, gamma=0.5) == 0.1
    assert learning_rate("step", 0.1, 10, 30, step_size=10, gamma=0.5) == 0.05
    assert learning_rate("step", 0.1, 25, 30, step_size=10, gamma=0.5) == pytest.approx(0.025)
    assert learning_rate("exponential", 0.1, 3, 10, gamma=0.9) == pytest.approx(0.1 * 0.9**3)
    assert learning_rate("inverse_time", 0.01, 4, 30, decay=0.005) == pytest.approx(0.01 / 1.02)
    assert learning_rate("cosine", 0.1, 0, 10, 0.0) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 5, 10, 0.0) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 9, 10, 1.0, min_lr=0.001) == pytest.approx(0.001)


def test_warmup_is_linear_then_schedule():
    lrs = [learning_rate("cosine", 0.1, 0, 10, p, warmup_epochs=2) for p in (0.25, 0.5, 1.0)]
    np.testing.assert_allclose(lrs, [0.0125, 0.025, 0.05])
    assert learning_rate("constant", 0.1, 1, 10, 0.5, warmup_epochs=2) == pytest.approx(0.075)
    assert learning_rate("constant", 0.1, 2, 10, 0.5, warmup_epochs=2) == 0.1
    assert learning_rate("cosine", 0.1, 2, 10, 0.0, warmup_epochs=2) == pytest.approx(0.1)


def test_schedule_names():
    assert set(SCHEDULES) == {"constant", "step", "exponential", "inverse_time", "cosine"}
    with pytest.raises(ValueError, match="schedule"):
        learning_rate("linear", 0.1, 0, 1)


@pytest.mark.parametrize(
    "name, mean, std",
    [
        ("zeros", 0.0, 0.0),
        ("uniform", 0.0, 1 / math.sqrt(3)),
        ("normal", 0.0, 1.0),
        ("he_normal", 0.0, math.sqrt(2 / 400)),
        ("he_uniform", 0.0, math.sqrt(2 / 400)),
        ("xavier_normal", 0.0, math.sqrt(2 / 700)),
        ("xavier_uniform", 0.0, math.sqrt(2 / 700)),
    ],
)
def test_initializer_statistics(name, mean, std):
    w = initialize(name, 400, 300, np.random.default_rng(0), np.float64)
    assert w.shape == (400, 300) and w.dtype == np.float64
    assert abs(w.mean() - mean) < 0.01 * max(std, 1e-3) * 10
    assert w.std() == pytest.approx(std, rel=0.02, abs=1e-12)


def test_uniform_initialisers_respect_their_limits():
    rng = np.random.default_rng(0)
    assert np.abs(initialize("he_uniform", 400, 300, rng)).max() <= math.sqrt(6 / 400)
    assert np.abs(initialize("xavier_uniform", 400, 300, rng)).max() <= math.sqrt(6 / 700)
    assert np.abs(initialize("uniform", 400, 300, rng)).max() <= 1.0


def test_default_init_per_activation():
    assert default_init("relu") == "he_normal" and default_init("leaky_relu") == "he_normal"
    assert default_init("tanh") == "xavier_uniform" and default_init("sigmoid") == "xavier_uniform"
    assert set(INITIALIZERS) == {
        "zeros",
        "uniform",
        "normal",
        "he_normal",
        "he_uniform",
        "xavier_normal",
        "xavier_uniform",
    }
    with pytest.raises(ValueError, match="init='glorot'"):
        initialize("glorot", 2, 2, np.random.default_rng(0))
