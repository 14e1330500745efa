"""Attribution maps: saliency against central differences, completeness of integrated gradients,
occlusion on a toy model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from nn.core.attributions import (
    attribution,
    blurred_baseline,
    integrated_gradients,
    occlusion,
    saliency,
    scores,
)
from nn.core.network import NeuralNetwork

SMOOTH_CNN = [
    {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same"},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "batchnorm"},
    {"type": "tanh"},
    {"type": "maxpool", "size": 2},
    {"type": "dense", "units": 12},
    {"type": "sigmoid"},
]


@pytest.fixture(scope="module")
def digits(small_model):
    data = small_model[1]
    return data.x_train[:400], data.y_train[:400], data.x_test[:3] / 255.0


@pytest.fixture(scope="module", params=["dense", "cnn"])
def model64(request, digits):
    x, y, _ = digits
    if request.param == "dense":
        model = NeuralNetwork(hidden_layers=(24, 16), activation="tanh", dtype="float64")
    else:
        model = NeuralNetwork(layers=SMOOTH_CNN, dtype="float64")
    return model.set_params(epochs=1, batch_size=50, random_state=0).fit(x, y)


def test_saliency_matches_central_differences(model64, digits):
    rng = np.random.default_rng(0)
    # faint noise: no two values tie in a max-pool window (where the gradient is one-sided)
    x = digits[2][0].astype(np.float64) + 0.01 * rng.random(784)
    target = 3
    grad = saliency(model64, x, target)
    assert grad.shape == x.shape
    pixels = np.concatenate([rng.choice(784, 12, replace=False), np.flatnonzero(x > 0.5)[:8]])
    eps = 1e-5
    for i in pixels:
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (
            scores(model64, up[None])[0, target] - scores(model64, down[None])[0, target]
        ) / (2 * eps)
        assert grad[i] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_add_up_to_the_score_difference(model64, digits, baseline):
    x = digits[2][1].astype(np.float64)
    target = 2
    base = np.zeros_like(x) if baseline == "black" else blurred_baseline(x)
    ig = integrated_gradients(model64, x, target, baseline, steps=256)
    difference = scores(model64, x[None])[0, target] - scores(model64, base[None])[0, target]
    assert abs(difference) > 1e-3
    assert ig.sum() == pytest.approx(difference, rel=1e-3, abs=1e-4)
    # few steps are close already; the map has the input's shape
    assert integrated_gradients(model64, x, target, baseline, steps=16).sum() == pytest.approx(
        difference, rel=0.05, abs=1e-3
    )


def test_the_blurred_baseline_keeps_the_ink_and_loses_the_shape(digits):
    x = digits[2][0].astype(np.float64)
    blurred = blurred_baseline(x)
    assert blurred.shape == x.shape
    assert blurred.max() < 0.5 * x.max()
    assert blurred.sum() == pytest.approx(x.sum(), rel=0.3)  # zero padding loses a little


@pytest.fixture(scope="module")
def toy():
    """Softmax regression on 28x28 inputs where only the top-left 7x7 square matters: class 0's
    weight is +1 there, everything else 0."""
    rng = np.random.default_rng(0)
    model = NeuralNetwork(hidden_layers=(), epochs=1, batch_size=10, dtype="float64")
    model.fit(rng.random((20, 784)), np.arange(20) % 2)
    weight = np.zeros((28, 28))
    weight[:7, :7] = 1.0
    model.coefs_[0][...] = 0
    model.coefs_[0][:, 0] = weight.ravel()
    model.intercepts_[0][...] = 0
    return model, weight


def test_occlusion_of_single_pixels_is_the_probability_drop(toy):
    model, weight = toy
    x = np.zeros(784)
    x.reshape(28, 28)[2:5, 2:5] = 0.5
    x.reshape(28, 28)[20:25, 20:25] = 1.0  # ink the model ignores
    drops = occlusion(model, x, 0, patch=1, stride=1)

    def p(v):  # two classes: p0 = sigmoid(logit0 - logit1)
        return 1 / (1 + np.exp(-v))

    expected = p(weight.ravel() @ x) - p(weight.ravel() @ x - weight.ravel() * x)
    assert np.allclose(drops, expected, atol=1e-12)
    image = drops.reshape(28, 28)
    assert image[2:5, 2:5].min() > 0 and np.all(image[20:25, 20:25] == 0)


def test_occlusion_patches_point_at_the_square_that_matters(toy):
    model, _ = toy
    x = np.full(784, 0.4)
    image = occlusion(model, x, 0, patch=4, stride=2).reshape(28, 28)
    assert image[:7, :7].min() > 0
    assert np.all(image[12:, :] == 0) and np.all(image[:, 12:] == 0)
    assert np.unravel_index(image.argmax(), image.shape) < (7, 7)
    # the map of integrated gradients of a linear score is exactly (x - baseline) * weight
    ig = integrated_gradients(model, x, 0, "black", steps=3).reshape(28, 28)
    assert np.allclose(ig[:7, :7], 0.4) and np.allclose(ig[7:, :], 0)


def test_bad_requests_are_refused(toy):
    model, _ = toy
    with pytest.raises(ValueError, match="class index from 0 to 1"):
        saliency(model, np.zeros(784), 5)
    with pytest.raises(ValueError, match="reads 784"):
        saliency(model, np.zeros(100), 0)
    with pytest.raises(ValueError, match="use one of saliency"):
        attribution(model, np.zeros(784), 0, "lime")
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(model, np.zeros(784), 0, "grey")


def test_maps_leave_the_model_as_it_was(cnn_model, digits):
    x = digits[2][0]
    before = cnn_model.predict_proba(digits[2])
    for method in ("saliency", "integrated_gradients", "occlusion"):
        out = attribution(cnn_model, x, 1, method, "blurred")
        assert out.shape == x.shape and np.isfinite(out).all()
    assert np.array_equal(before, cnn_model.predict_proba(digits[2]))
    assert all(not layer.grads for layer in cnn_model.layers_)
