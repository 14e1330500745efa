"""Load, split, train and score in one call: what ``python -m nn train`` and the dashboard share.

    from nn.services.training import run_training
    result = run_training({"hidden_layers": [256, 128], "epochs": 5},
                          {"split": "standard", "seed": 0, "train_size": 10_000})
    result.model, result.test_accuracy, result.val_accuracy, result.train_seconds

Data settings (all optional, see :data:`DATA_DEFAULTS`):
    ``split``          ``"standard"`` (official test set; 10,000 validation images carved from the
                       60,000 training images), ``"80:10:10"`` or ``"custom"`` (pooled), see
                       :func:`nn.data.split_dataset`.
    ``seed``           the split's seed (kept apart from the model's ``random_state`` so that runs
                       with different model seeds are scored on the same images).
    ``train_size``     a stratified subset of the training part (``None``: all of it).
    ``val_fraction``, ``test_fraction``   for ``split="custom"``.
    ``path``           a user dataset for :func:`nn.data.load_dataset` (``None``: bundled MNIST).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core.network import NeuralNetwork

__all__ = [
    "DATA_DEFAULTS",
    "TrainResult",
    "check_model_kwargs",
    "check_data_kwargs",
    "load_data",
    "make_split",
    "run_training",
]

DATA_DEFAULTS: dict[str, Any] = {
    "split": "standard",
    "seed": 0,
    "train_size": None,
    "val_fraction": 0.1,
    "test_fraction": 0.1,
    "path": None,
}


@dataclass
class TrainResult:
    """The outcome of :func:`run_training`. Accuracies are ``None`` when that part is empty."""

    model: NeuralNetwork
    split: Any  # nn.data.Split
    test_accuracy: float | None
    val_accuracy: float | None
    train_seconds: float

    @property
    def stop_reason(self) -> str | None:
        return self.model.stop_reason_

    @property
    def diverged(self) -> bool:
        return self.model.stop_reason_ == "diverged"

    def metrics(self) -> dict[str, float | int]:
        """Numeric final metrics, for ``save_model(metrics=...)`` and ``RunStore.finish_run``."""
        hist = self.model.history_
        out: dict[str, float | int] = {}
        if self.test_accuracy is not None:
            out["test_accuracy"] = self.test_accuracy
        if self.val_accuracy is not None:
            out["val_accuracy"] = self.val_accuracy
        for key in ("train_accuracy", "loss", "val_loss"):
            values = [v for v in hist.get(key, []) if v is not None]
            if values:
                out[key] = float(values[-1])
        out["train_seconds"] = round(self.train_seconds, 3)
        out["epochs"] = int(self.model.n_iter_)
        out["train_size"] = int(self.split.x_train.shape[0])
        return out


def check_model_kwargs(model_kwargs: Mapping[str, Any]) -> NeuralNetwork:
    """An unfitted NeuralNetwork with these settings, validated (``ValueError`` naming the bad
    parameter otherwise, unknown names included)."""
    known = set(NeuralNetwork._param_names())
    unknown = sorted(set(model_kwargs) - known)
    if unknown:
        raise ValueError(
            f"unknown model setting(s) {', '.join(map(repr, unknown))}; "
            f"NeuralNetwork takes {', '.join(sorted(known))}"
        )
    model = NeuralNetwork(**dict(model_kwargs))
    model._validated()
    return model


def check_data_kwargs(data_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DATA_DEFAULTS` updated with ``data_kwargs``; ``ValueError`` for unknown keys."""
    data_kwargs = dict(data_kwargs or {})
    unknown = sorted(set(data_kwargs) - set(DATA_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown data setting(s) {', '.join(map(repr, unknown))}; "
            f"use {', '.join(DATA_DEFAULTS)}"
        )
    return {**DATA_DEFAULTS, **data_kwargs}


def load_data(data_kwargs: Mapping[str, Any] | None = None):
    """The dataset named by ``data_kwargs["path"]`` (``nn.data.load_dataset``) or the bundled
    MNIST."""
    from nn.data.datasets import load_dataset, load_mnist

    cfg = check_data_kwargs(data_kwargs)
    return load_mnist() if cfg["path"] is None else load_dataset(cfg["path"])


def make_split(data_kwargs: Mapping[str, Any] | None = None, mnist: Any = None):
    """``nn.data.split_dataset`` with these settings; ``mnist`` (an ``MNIST`` or ``ImageSet``)
    avoids loading the data again."""
    from nn.data.datasets import split_dataset

    cfg = check_data_kwargs(data_kwargs)
    data = mnist if mnist is not None else load_data(cfg)
    return split_dataset(
        data,
        scheme=cfg["split"],
        seed=cfg["seed"],
        val_fraction=cfg["val_fraction"],
        test_fraction=cfg["test_fraction"],
        train_size=cfg["train_size"],
    )


def run_training(
    model_kwargs: Mapping[str, Any],
    data_kwargs: Mapping[str, Any] | None = None,
    *,
    mnist: Any = None,
    split: Any = None,
    callback: Callable[[Any], Any] | None = None,
) -> TrainResult:
    """Validate the settings, load and split the data, ``fit`` (with the validation part) and
    score the result on the validation and test parts.

    ``mnist``: data already loaded (``MNIST`` or ``ImageSet``); ``split``: an ``nn.data.Split``
    to use as is (then ``data_kwargs`` and ``mnist`` are ignored). ``callback`` goes to
    ``fit``. A diverged run returns normally with ``result.diverged`` true (the model keeps the
    weights of its last finished epoch). Raises ``ValueError`` (``DataError`` included) for bad
    settings or data, before any training starts.
    """
    model = check_model_kwargs(model_kwargs)
    if split is None:
        split = make_split(data_kwargs, mnist)
    has_val = split.x_val.shape[0] > 0
    start = time.perf_counter()
    model.fit(
        split.x_train,
        split.y_train,
        split.x_val if has_val else None,
        split.y_val if has_val else None,
        callback=callback,
    )
    seconds = time.perf_counter() - start
    test_acc = val_acc = None
    if model.n_iter_ > 0 or model.stop_reason_ != "diverged":
        if has_val:
            val_acc = _score(model, split.x_val, split.y_val)
        if split.x_test.shape[0] > 0:
            test_acc = _score(model, split.x_test, split.y_test)
    return TrainResult(model, split, test_acc, val_acc, seconds)


def _score(model: NeuralNetwork, x: np.ndarray, y: np.ndarray) -> float:
    return float(model.score(x, y))
