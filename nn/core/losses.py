"""Softmax fused with cross-entropy, computed stably (row maximum subtracted)."""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax; ``out`` may be ``z`` itself."""
    out = np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def softmax_cross_entropy(
    z: np.ndarray, y: np.ndarray, grad_out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of logits ``z`` against class indices ``y``, and dL/dz.

    Returns ``(loss, grad)`` where ``grad = (softmax(z) - onehot(y)) / n``; before the division
    it is the probability matrix with 1 subtracted at the true class. ``grad_out`` (which may be
    ``z``) receives the gradient, so the hot loop allocates nothing of the batch's size.
    """
    n = z.shape[0]
    rows = np.arange(n)
    shifted = np.subtract(z, z.max(axis=1, keepdims=True), out=grad_out)
    true_logit = shifted[rows, y].copy()
    np.exp(shifted, out=shifted)
    sums = shifted.sum(axis=1, keepdims=True)
    # loss_i = log(sum_j exp(s_ij)) - s_i,y_i, with s = z - max(z); never log(0).
    loss = float(np.mean(np.log(sums[:, 0]) - true_logit))
    shifted /= sums
    shifted[rows, y] -= 1.0
    shifted /= n
    return loss, shifted
