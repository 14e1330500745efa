"""A training batch of a convolutional stack split across threads, one part per thread.

At two threads a batch of the benchmark CNN took 12.4-13.2 ms this way against 14.8-15.2 ms with
the whole batch on every layer (``bench/layer_profile.py``'s network, interleaved; one thread
19.6-20.5 ms). The whole-batch passes share the cores pass by pass: every product hands its
threads work and waits for them, every split NumPy pass hands over the GIL, and a copy of more
than a core's cache waits on memory. Here each thread runs a whole forward and backward on its
part of the batch, with OpenBLAS at one thread, and the threads meet once per batch.

Each part runs on its own copy of the stack (``Sequential.replica``): the copies share the
parameters, each has its own buffers and gradient array, and the gradients are added into the
stack's when the parts are done. The result is the whole batch's up to float32 rounding: each
part's loss gradient is scaled by its share of the batch, and a weight gradient is the sum of the
parts' sums instead of one sum over the batch. Dropout masks are drawn for the whole batch, layer
by layer as the whole batch's forward draws them (the same generator calls, so the same masks),
and each part takes its rows. Stacks with batch normalisation (whose statistics are the whole
batch's) and dense-only stacks (whose products already share the cores well: split, a dense
network's epoch took a third longer) are never split, nor is a batch too small to give every
part ``MIN_ROWS`` rows.
"""

from __future__ import annotations

import numpy as np

from nn.core import blas, threads
from nn.core.layers import BatchNorm, Conv2D, Dropout
from nn.core.losses import softmax_cross_entropy
from nn.core.sequential import Sequential

MIN_ROWS = 32
"""Rows a part must have: below it the fixed cost of a layer call outweighs the second core."""


def splits(stack: Sequential) -> bool:
    """Whether training batches of ``stack`` are split across threads: a convolutional stack
    without batch normalisation."""
    kinds = tuple(type(layer) for layer in stack.layers)
    return Conv2D in kinds and BatchNorm not in kinds


class _Masks:
    """Stands for the generator in a part's forward: hands each dropout layer, in order, the
    part's rows of the masks drawn for the whole batch."""

    def __init__(self, draws: list[np.ndarray], rows: slice):
        self._draws = iter([draw[rows] for draw in draws])

    def random(self, shape, dtype=None, out=None) -> np.ndarray:
        part = next(self._draws)
        if out is None:
            return part.copy()
        np.copyto(out, part)
        return out


class DataParallel:
    """Forward and backward of training batches of ``stack``, split across threads where
    ``splits(stack)``; copies of the stack are made on the first split batch and kept."""

    def __init__(self, stack: Sequential):
        self.stack = stack
        self.enabled = splits(stack)
        self._copies: list[Sequential] = []

    def parts(self, n: int) -> int:
        """How many parts a batch of ``n`` rows is split into now (1: not split)."""
        if not self.enabled:
            return 1
        return max(1, min(threads.count(), n // MIN_ROWS))

    def loss_and_gradients(
        self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[float, int]:
        """Mean cross-entropy of the batch ``x`` (float) against class indices ``y`` and the
        number of correct predictions; the gradient of that loss in ``stack.flat_grads``.
        ``rng`` draws the dropout masks."""
        n = x.shape[0]
        parts = self.parts(n)
        if parts == 1:
            return forward_backward(self.stack, x, y, rng)
        draws = [
            rng.random((n, *layer.input_shape), dtype=self.stack.dtype)
            for layer in self.stack.layers
            if isinstance(layer, Dropout) and layer.config["rate"] > 0
        ]
        while len(self._copies) < parts - 1:
            self._copies.append(self.stack.replica())
        nets = [self.stack, *self._copies[: parts - 1]]
        cuts = [n * k // parts for k in range(parts + 1)]
        results: list[tuple[float, int]] = [(0.0, 0)] * parts

        def run(k: int) -> None:
            rows = slice(cuts[k], cuts[k + 1])
            results[k] = forward_backward(nets[k], x[rows], y[rows], _Masks(draws, rows), True, n)

        with blas.limit_threads(1):
            threads.run_all([lambda k=k: run(k) for k in range(parts)])
        for copy in nets[1:]:
            self.stack.flat_grads += copy.flat_grads
        loss = sum(part_loss for part_loss, _ in results)
        return loss, sum(correct for _, correct in results)

    def clear(self) -> None:
        """Drops the copies and their buffers."""
        self._copies = []


def forward_backward(
    net: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    rng=None,
    training: bool = True,
    batch_rows: int | None = None,
) -> tuple[float, int]:
    """Forward and backward of the float rows ``x`` against class indices ``y`` through
    ``net``, ``rng`` drawing its dropout masks: the mean cross-entropy and the number of correct
    predictions, the loss's gradient in ``net.flat_grads``. ``x`` may be part of a batch of
    ``batch_rows`` rows: loss and gradient are then scaled by its share of that batch."""
    logits = net.forward(x, training=training, keep=True, rng=rng)
    correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    loss, delta = softmax_cross_entropy(logits, y, grad_out=logits)
    share = 1 if batch_rows is None else x.shape[0] / batch_rows
    if share != 1:
        delta *= delta.dtype.type(share)
    net.backward(delta)
    return loss * share, correct
