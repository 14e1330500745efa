"""The training objective of a fitted NeuralNetwork and its gradients, for gradient checks.

What ``fit`` computes for one batch, without dropout (batch norm on its running statistics), with
copies of the gradients in ``stack_.params`` order (``[W0, b0, W1, b1, ...]`` for a dense net).
"""

from __future__ import annotations

import numpy as np

from nn.core.inputs import check_y
from nn.core.network import NeuralNetwork, predicting


def loss_and_gradients(model: NeuralNetwork, X, y) -> tuple[float, list[np.ndarray]]:
    model.check_fitted()
    X = model._rows(model._check_X(X))
    xb = model._to_float(X, np.empty(X.shape, model.stack_.dtype))
    y_idx = model._encode(check_y(y, X.shape[0]))
    with predicting(model):
        model.stack_.attach_gradients()
        model._grads = model.stack_.grads
        try:
            loss, _, grads = model._loss_and_grads(xb, y_idx, training=False)
            copies = [g.copy() for g in grads]
        finally:
            model.stack_.clear_buffers()
            model.stack_.detach_gradients()
            del model._grads
    return loss, copies
