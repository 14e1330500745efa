"""nn.core.data_parallel: a training batch split across threads gives the whole batch's loss,
predictions and gradients (up to float32 rounding of the sums), only for stacks and batches where
that holds, on copies that share the parameters."""

from __future__ import annotations

import numpy as np
import pytest

from nn import NeuralNetwork
from nn.core import threads
from nn.core.data_parallel import MIN_ROWS, DataParallel, splits
from nn.core.losses import softmax_cross_entropy
from nn.core.sequential import Sequential

CNN = [
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]


def _stack(specs=CNN, seed=0) -> Sequential:
    net = Sequential(specs, (10, 10, 1), np.float32)
    net.allocate()
    net.attach_gradients()
    net.initialize(np.random.default_rng(seed), "auto")
    return net


def _whole_batch(net: Sequential, x, y, rng=None) -> tuple[float, int, np.ndarray]:
    logits = net.forward(x, training=True, keep=True, rng=rng)
    correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    loss, delta = softmax_cross_entropy(logits, y, grad_out=logits)
    net.backward(delta)
    return loss, correct, net.flat_grads.copy()


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("n", [2 * MIN_ROWS, 2 * MIN_ROWS + 1, 130])
def test_a_split_batch_gives_the_whole_batch_loss_predictions_and_gradients(monkeypatch, parts, n):
    monkeypatch.setattr(threads, "count", lambda: parts)
    rng = np.random.default_rng(n)
    x = rng.random((n, 10, 10, 1), dtype=np.float32)
    y = rng.integers(0, 3, n)
    net = _stack()
    want_loss, want_correct, want_grads = _whole_batch(net, x, y)
    parallel = DataParallel(net)
    assert parallel.parts(n) == min(parts, n // MIN_ROWS) > 1
    loss, correct = parallel.loss_and_gradients(x, y)
    assert correct == want_correct
    assert loss == pytest.approx(want_loss, rel=1e-6)
    np.testing.assert_allclose(net.flat_grads, want_grads, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [2 * MIN_ROWS + 1, 130])
def test_dropout_masks_of_a_split_batch_are_the_whole_batch_masks(monkeypatch, n):
    """Each part takes its rows of masks drawn as the whole batch's forward draws them."""
    monkeypatch.setattr(threads, "count", lambda: 2)
    specs = [
        *CNN[:3],
        {"type": "dropout", "rate": 0.5},
        CNN[3],
        {"type": "dense", "units": 8},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 3},
    ]
    rng = np.random.default_rng(n)
    x = rng.random((n, 10, 10, 1), dtype=np.float32)
    y = rng.integers(0, 3, n)
    net = _stack(specs)
    assert splits(net)
    want_loss, want_correct, want_grads = _whole_batch(net, x, y, np.random.default_rng(5))
    loss, correct = DataParallel(net).loss_and_gradients(x, y, np.random.default_rng(5))
    assert correct == want_correct
    assert loss == pytest.approx(want_loss, rel=1e-6)
    np.testing.assert_allclose(net.flat_grads, want_grads, rtol=1e-5, atol=1e-7)


def test_the_copies_share_the_parameters_and_keep_their_own_gradients(monkeypatch):
    monkeypatch.setattr(threads, "count", lambda: 2)
    net = _stack()
    parallel = DataParallel(net)
    rng = np.random.default_rng(1)
    parallel.loss_and_gradients(rng.random((80, 10, 10, 1), dtype=np.float32), np.zeros(80, int))
    (copy,) = parallel._copies
    assert copy.flat_params is net.flat_params
    assert np.shares_memory(copy.layers[0].params[0], net.flat_params)
    assert not np.shares_memory(copy.flat_grads, net.flat_grads)
    net.flat_params += 1  # an optimizer's step, in place
    np.testing.assert_array_equal(copy.layers[0].params[0], net.layers[0].params[0])


@pytest.mark.parametrize(
    "specs",
    [
        [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 3}],
        [CNN[0], {"type": "batchnorm"}, *CNN[1:]],
    ],
    ids=["dense only", "batch norm"],
)
def test_stacks_whose_batch_is_not_separable_or_gains_nothing_are_never_split(monkeypatch, specs):
    monkeypatch.setattr(threads, "count", lambda: 4)
    net = Sequential(specs, (10, 10, 1) if specs[0]["type"] != "dense" else (100,))
    assert not splits(net)
    assert DataParallel(net).parts(1024) == 1


def test_small_batches_and_one_thread_are_not_split(monkeypatch):
    net = _stack()
    monkeypatch.setattr(threads, "count", lambda: 2)
    assert DataParallel(net).parts(2 * MIN_ROWS - 1) == 1
    monkeypatch.setattr(threads, "count", lambda: 1)
    assert DataParallel(net).parts(4096) == 1


def test_fit_splits_a_cnn_batch_and_learns_as_the_whole_batch_does(monkeypatch):
    """Fits of the same CNN with and without the split end at weights equal up to rounding."""
    rng = np.random.default_rng(3)
    x = (rng.random((256, 100)) * 255).astype(np.uint8)
    y = (x[:, :50].sum(axis=1) > x[:, 50:].sum(axis=1)).astype(int)
    seen = []
    real_parts = DataParallel.parts
    monkeypatch.setattr(
        DataParallel, "parts", lambda self, n: seen.append(real_parts(self, n)) or seen[-1]
    )
    layers = [{"type": "conv2d", "filters": 4, "kernel": 3}, {"type": "maxpool"}]
    fitted = []
    for count in (1, 2):
        monkeypatch.setattr(threads, "count", lambda count=count: count)
        model = NeuralNetwork(layers=layers, epochs=2, batch_size=64, random_state=0)
        fitted.append(model.fit(x.reshape(-1, 10, 10, 1), y))
    assert 2 in seen and 1 in seen
    one, two = (m.stack_.flat_params for m in fitted)
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-5)
    assert not hasattr(fitted[1], "_parallel")  # the copies go with the fit
