# ruff: noqa  (the frozen reference, kept byte for byte as it was; see its docstring)
"""The frozen reference: the fixed multi-layer perceptron estimator as it stood before layers
became objects (``git show 563fab4:nn/core/network.py``), kept unchanged so that
tests/test_reference_repeat.py can check that today's estimator repeats its results bit for bit.
Never edit this file to make a test pass.

A fully connected network with a softmax output, as a scikit-learn style estimator.

Hyperparameters are stored as given in ``__init__`` and validated in ``fit``; learned state ends in
``_``. One ``np.random.default_rng(random_state)`` drives initialisation, shuffling, dropout and
augmentation, so a seeded run repeats exactly.

The hot loop allocates nothing of the batch's size that it can avoid: per-layer buffers are made once
per batch size, uint8 images are gathered and scaled into a float buffer per batch, activations and
parameter updates work in place, and the softmax/cross-entropy gradient is computed in the logits'
own buffer.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core.activations import ACTIVATIONS, get_activation
from nn.core.initializers import INIT_CHOICES, default_init, initialize
from nn.core.losses import softmax, softmax_cross_entropy
from nn.core.optimizers import OPTIMIZERS, Optimizer, flat_like, make_optimizer
from nn.core.schedules import SCHEDULES, learning_rate

STOP_REASONS = ("completed", "early_stopping", "callback", "diverged")
MONITORS = ("val_loss", "val_accuracy")
DTYPES = ("float32", "float64")
_EVAL_CHUNK = 4096


@dataclass(frozen=True)
class TrainingEvent:
    """What a training callback receives after every batch (``kind="batch"``) and epoch
    (``kind="epoch"``). ``epoch`` counts from 1 over the model's whole life (continued training
    counts on); validation fields are ``None`` when there is no validation set or mid-epoch."""

    kind: str
    epoch: int
    epochs: int
    batch: int
    n_batches: int
    loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    samples_per_second: float
    elapsed: float


Callback = Callable[[TrainingEvent], Any]


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r} is not allowed: {allowed}.")


def _per_layer(name: str, value: Any, n: int) -> list:
    """A scalar applies to every hidden layer; a sequence must give one value per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise _bad(name, value, f"give one value per hidden layer ({n}) or a single value")
        return list(value)
    return [value] * n


class NeuralNetwork:
    """Multi-layer perceptron classifier trained by mini-batch gradient descent.

    Parameters (all validated in ``fit``):
        hidden_layers: widths of the hidden layers, e.g. ``(256, 128)``; ``()`` is softmax regression.
        activation: one of ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu`` or a list, one per layer.
        leaky_slope: slope of leaky ReLU for negative inputs, in [0, 1).
        init: ``auto`` (He for ReLU-like layers, Xavier/Glorot otherwise) or one of ``zeros``,
            ``uniform`` (U(-1,1)), ``normal`` (N(0,1)), ``he_normal``, ``he_uniform``,
            ``xavier_normal``, ``xavier_uniform``.
        optimizer: ``sgd``, ``momentum``, ``nesterov``, ``rmsprop`` or ``adam``, with ``momentum``,
            ``beta1``, ``beta2``, ``rho`` and ``epsilon`` for those that use them.
        learning_rate, schedule, lr_decay, step_size, gamma, warmup_epochs, min_lr: the learning
            rate and its schedule (see ``nn.schedules``).
        batch_size, epochs, shuffle: mini-batches; ``epochs`` is per call of ``fit``.
        l2: weight penalty ``l2/2 * sum(W**2)`` added to the mean cross-entropy (biases are free).
        dropout: drop probability per hidden layer (a number or one per layer); inverted dropout,
            off at predict time. ``input_dropout`` drops input pixels the same way.
        clip_norm: clip the gradient to this global L2 norm (``None``: no clipping).
        early_stopping, patience, monitor, min_delta, validation_fraction: stop when the monitored
            validation metric has not improved for ``patience`` epochs and restore the best weights.
            Without ``X_val``, ``validation_fraction`` of the training data is held out.
        augment: ``None`` or the settings of an ``nn.core.augment.Augmenter`` (a dict) applied
            to each training batch.
        dtype: ``float32`` (fast) or ``float64`` (gradient checks).
        warm_start: when fitted already, ``fit`` continues from the current weights and optimizer.
        random_state: ``None`` or an int seed.
    """

    def __init__(
        self,
        hidden_layers: Sequence[int] = (128,),
        activation: str | Sequence[str] = "relu",
        leaky_slope: float = 0.01,
        init: str = "auto",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        rho: float = 0.9,
        epsilon: float = 1e-8,
        schedule: str = "constant",
        lr_decay: float = 0.0,
        step_size: int = 10,
        gamma: float = 0.5,
        warmup_epochs: float = 0.0,
        min_lr: float = 0.0,
        batch_size: int = 128,
        epochs: int = 10,
        shuffle: bool = True,
        l2: float = 0.0,
        dropout: float | Sequence[float] = 0.0,
        input_dropout: float = 0.0,
        clip_norm: float | None = None,
        early_stopping: bool = False,
        patience: int = 5,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        validation_fraction: float = 0.1,
        augment: dict | None = None,
        dtype: str = "float32",
        warm_start: bool = False,
        random_state: int | None = None,
    ):
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.leaky_slope = leaky_slope
        self.init = init
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.rho = rho
        self.epsilon = epsilon
        self.schedule = schedule
        self.lr_decay = lr_decay
        self.step_size = step_size
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        self.min_lr = min_lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.l2 = l2
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.patience = patience
        self.monitor = monitor
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.dtype = dtype
        self.warm_start = warm_start
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given, JSON-able (sequences become lists)."""
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            out[name] = copy.deepcopy(value)
        return out

    def set_params(self, **params: Any) -> NeuralNetwork:
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"{key!r} is not a parameter of NeuralNetwork: use one of "
                    f"{', '.join(sorted(valid))}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"NeuralNetwork({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validated(self) -> dict[str, Any]:
        """Check every hyperparameter; return the normalised settings used by training."""
        layers = self.hidden_layers
        if isinstance(layers, (int, np.integer)):
            layers = (layers,)
        if not isinstance(layers, (list, tuple)) or not all(
            isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in layers
        ):
            raise _bad(
                "hidden_layers",
                self.hidden_layers,
                "give a list of positive whole numbers of neurons, e.g. [256, 128]",
            )
        layers = [int(w) for w in layers]
        n_hidden = len(layers)
        acts = _per_layer("activation", self.activation, n_hidden)
        for a in acts:
            if a not in ACTIVATIONS:
                raise _bad("activation", a, f"choose one of {', '.join(ACTIVATIONS)}")
        if not (isinstance(self.leaky_slope, (int, float)) and 0 <= self.leaky_slope < 1):
            raise _bad("leaky_slope", self.leaky_slope, "use a number in [0, 1)")
        activations = [
            get_activation(a, slope=self.leaky_slope) if a == "leaky_relu" else get_activation(a)
            for a in acts
        ]
        if self.init not in INIT_CHOICES:
            raise _bad("init", self.init, f"choose one of {', '.join(INIT_CHOICES)}")
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", self.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise _bad("schedule", self.schedule, f"choose one of {', '.join(SCHEDULES)}")
        _positive("learning_rate", self.learning_rate)
        _in_range("momentum", self.momentum, 0, 1, "a number in [0, 1)")
        _in_range("beta1", self.beta1, 0, 1, "a number in [0, 1)")
        _in_range("beta2", self.beta2, 0, 1, "a number in [0, 1)")
        _in_range("rho", self.rho, 0, 1, "a number in [0, 1)")
        _positive("epsilon", self.epsilon)
        _in_range("lr_decay", self.lr_decay, 0, math.inf, "a number >= 0")
        _positive_int("step_size", self.step_size)
        if not (_is_number(self.gamma) and 0 < self.gamma <= 1):
            raise _bad("gamma", self.gamma, "use a number in (0, 1]")
        _in_range("warmup_epochs", self.warmup_epochs, 0, math.inf, "a number >= 0")
        if not (_is_number(self.min_lr) and 0 <= self.min_lr <= self.learning_rate):
            raise _bad("min_lr", self.min_lr, "use a number in [0, learning_rate]")
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        _in_range("l2", self.l2, 0, math.inf, "a number >= 0")
        dropouts = [float(p) for p in _per_layer("dropout", self.dropout, n_hidden)]
        for p in dropouts:
            _in_range("dropout", p, 0, 1, "a probability in [0, 1)")
        _in_range("input_dropout", self.input_dropout, 0, 1, "a probability in [0, 1)")
        if self.clip_norm is not None:
            _positive("clip_norm", self.clip_norm)
        _positive_int("patience", self.patience)
        if self.monitor not in MONITORS:
            raise _bad("monitor", self.monitor, f"choose one of {', '.join(MONITORS)}")
        _in_range("min_delta", self.min_delta, 0, math.inf, "a number >= 0")
        if not (_is_number(self.validation_fraction) and 0 < self.validation_fraction < 1):
            raise _bad("validation_fraction", self.validation_fraction, "use a number in (0, 1)")
        if self.dtype not in DTYPES:
            raise _bad("dtype", self.dtype, f"choose one of {', '.join(DTYPES)}")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise _bad("random_state", self.random_state, "use None or a whole number")
        augmenter = None
        if self.augment:
            if not isinstance(self.augment, dict):
                raise _bad("augment", self.augment, "use None or a dict of Augmenter settings")
            from nn.core.augment import Augmenter

            augmenter = Augmenter(**self.augment)
        return {
            "layers": layers,
            "activations": activations,
            "dropouts": dropouts,
            "augmenter": augmenter,
            "dtype": np.dtype(self.dtype),
        }

    # ------------------------------------------------------------------ state
    @property
    def layer_sizes_(self) -> list[int]:
        return [self.n_features_in_, *[w.shape[1] for w in self.coefs_[:-1]], len(self.classes_)]

    @property
    def n_parameters_(self) -> int:
        return int(sum(w.size + b.size for w, b in zip(self.coefs_, self.intercepts_)))

    def _is_fitted(self) -> bool:
        return hasattr(self, "coefs_")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError("This NeuralNetwork is not fitted yet: call fit(X, y) first.")

    def _initialize(self, n_features: int, classes: np.ndarray, cfg: dict) -> None:
        rng = self._rng
        sizes = [n_features, *cfg["layers"], len(classes)]
        names = [a.name for a in cfg["activations"]] + ["softmax"]
        self.classes_ = classes
        self.n_features_in_ = n_features
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out, act in zip(sizes[:-1], sizes[1:], names):
            init = default_init(act) if self.init == "auto" else self.init
            self.coefs_.append(initialize(init, fan_in, fan_out, rng, cfg["dtype"]))
            self.intercepts_.append(np.zeros(fan_out, dtype=cfg["dtype"]))
        self.n_iter_ = 0
        self.history_ = {
            k: []
            for k in (
                "epoch",
                "loss",
                "train_accuracy",
                "val_loss",
                "val_accuracy",
                "learning_rate",
                "seconds",
                "batch_loss",
            )
        }
        self.optimizer_ = self._make_optimizer()
        self.best_val_accuracy_ = None
        self.stop_reason_ = None
        self.stop_message_ = ""

    def _make_optimizer(self) -> Optimizer:
        return make_optimizer(
            self.optimizer,
            momentum=self.momentum,
            beta1=self.beta1,
            beta2=self.beta2,
            rho=self.rho,
            epsilon=self.epsilon,
        )

    def _params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.coefs_, self.intercepts_) for p in pair]

    def _pack_parameters(self) -> np.ndarray:
        """Make ``coefs_`` and ``intercepts_`` views of one flat array, in ``_params()`` order, so
        that the optimizer updates all of them in a few long passes; returns the flat array."""
        params = self._params()
        flat = getattr(self, "_flat_params", None)
        if (
            flat is not None
            and flat.size == sum(p.size for p in params)
            and flat.dtype == params[0].dtype
        ):
            offsets = np.cumsum([0] + [p.size for p in params[:-1]]) * flat.itemsize
            base = flat.__array_interface__["data"][0]
            if all(
                p.base is flat and p.__array_interface__["data"][0] == base + int(o)
                for p, o in zip(params, offsets)
            ):
                return flat
        flat, views = flat_like(params)
        for view, p in zip(views, params):
            view[...] = p
        self.coefs_, self.intercepts_ = list(views[0::2]), list(views[1::2])
        self._flat_params = flat
        return flat

    def __getstate__(self) -> dict[str, Any]:
        # Pickle keeps no views: ship the weights once (coefs_, intercepts_); the next fit packs
        # them into a fresh flat array.
        state = self.__dict__.copy()
        state.pop("_flat_params", None)
        return state

    # ------------------------------------------------------------------ input handling
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D array (samples x features); got shape {X.shape}."
            )
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows.")
        if X.dtype.kind not in "uif" or X.dtype == np.bool_:
            raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}.")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        if self._is_fitted() and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {X.shape[1]} features but the model expects {self.n_features_in_}."
            )
        return X

    def _to_float(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Convert a slice of input to the model's float dtype in ``out``; uint8 is scaled to [0, 1]."""
        if X.dtype == np.uint8:
            np.multiply(X, out.dtype.type(1.0 / 255.0), out=out)
        else:
            out[...] = X
        return out

    def _encode(self, y: Any, name: str = "y") -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per row); got shape {y.shape}.")
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(
                f"{name} has labels the model does not know: "
                f"{np.unique(y[unknown])[:10].tolist()}; known: "
                f"{self.classes_.tolist()}."
            )
        return idx.astype(np.intp)

    # ------------------------------------------------------------------ forward / backward
    def _buffers(self, n: int) -> dict[str, list[np.ndarray]]:
        """Per-layer work arrays for batches of ``n`` rows, made once per batch size."""
        bufs = self._work.get(n)
        if bufs is None:
            dtype = self.coefs_[0].dtype
            sizes = [w.shape[1] for w in self.coefs_]
            bufs = {
                "x": [np.empty((n, self.n_features_in_), dtype)],
                "z": [np.empty((n, s), dtype) for s in sizes],  # pre-dropout outputs
                "a": [np.empty((n, s), dtype) for s in sizes[:-1]],  # after dropout
                "d": [np.empty((n, s), dtype) for s in sizes[:-1]],  # gradients wrt hidden
                "m": [np.empty((n, s), dtype) for s in sizes[:-1]],  # dropout masks
            }
            self._work[n] = bufs
        return bufs

    def _dropout_mask(self, out: np.ndarray, p: float) -> np.ndarray:
        self._rng.random(out.shape, dtype=out.dtype, out=out)
        np.greater_equal(out, p, out=out)  # 1.0 where kept
        out *= out.dtype.type(1.0 / (1.0 - p))
        return out

    def _loss_and_grads(
        self, x: np.ndarray, y: np.ndarray, training: bool
    ) -> tuple[float, int, list[np.ndarray]]:
        """Forward and backward pass on one batch (``x`` float, ``y`` class indices).

        Returns the objective (mean cross-entropy plus the L2 term), the number of correct
        predictions, and the gradients in the order of ``_params()``. ``training`` turns dropout on.
        """
        cfg = self._cfg
        n = x.shape[0]
        bufs = self._buffers(n)
        n_layers = len(self.coefs_)
        inputs = []  # the input of each weight layer
        a = x
        if training and self.input_dropout > 0:
            mask = self._dropout_mask(np.empty_like(x), self.input_dropout)
            a = x * mask
        for layer in range(n_layers):
            inputs.append(a)
            z = np.matmul(a, self.coefs_[layer], out=bufs["z"][layer])
            z += self.intercepts_[layer]
            if layer == n_layers - 1:
                break
            cfg["activations"][layer].forward(z, out=z)
            p = cfg["dropouts"][layer]
            if training and p > 0:
                mask = self._dropout_mask(bufs["m"][layer], p)
                a = np.multiply(z, mask, out=bufs["a"][layer])
            else:
                a = z
        logits = bufs["z"][-1]
        correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
        loss, delta = softmax_cross_entropy(logits, y, grad_out=logits)
        grads = self._grads
        for layer in range(n_layers - 1, -1, -1):
            gw, gb = grads[2 * layer], grads[2 * layer + 1]
            np.matmul(inputs[layer].T, delta, out=gw)
            np.sum(delta, axis=0, out=gb)
            if self.l2 > 0:
                gw += gw.dtype.type(self.l2) * self.coefs_[layer]
            if layer == 0:
                break
            prev = np.matmul(delta, self.coefs_[layer].T, out=bufs["d"][layer - 1])
            if training and cfg["dropouts"][layer - 1] > 0:
                prev *= bufs["m"][layer - 1]
            cfg["activations"][layer - 1].backward(prev, bufs["z"][layer - 1])
            delta = prev
        if self.l2 > 0:
            loss += 0.5 * self.l2 * sum(float(np.vdot(w, w)) for w in self.coefs_)
        return loss, correct, grads

    def _clip(self, grads: list[np.ndarray]) -> None:
        norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if norm > self.clip_norm:
            scale = grads[0].dtype.type(self.clip_norm / norm)
            for g in grads:
                g *= scale

    def _forward_eval(self, x: np.ndarray) -> np.ndarray:
        """Logits of a float batch, without dropout, in the batch's own buffers."""
        bufs = self._buffers(x.shape[0])
        a = x
        for layer, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            a = np.matmul(a, w, out=bufs["z"][layer])
            a += b
            if layer < len(self.coefs_) - 1:
                self._cfg["activations"][layer].forward(a, out=a)
        return a

    def _chunks(self, X: np.ndarray):
        """Yield ``(slice, float batch)`` over ``X`` in chunks, converting uint8 per chunk."""
        dtype = self.coefs_[0].dtype
        for start in range(0, X.shape[0], _EVAL_CHUNK):
            part = X[start : start + _EVAL_CHUNK]
            buf = self._buffers(part.shape[0])["x"][0]
            yield slice(start, start + part.shape[0]), self._to_float(part, buf)

    # ------------------------------------------------------------------ training
    def fit(self, X, y, X_val=None, y_val=None, callback: Callback | None = None) -> NeuralNetwork:
        """Train on ``X`` (2-D; uint8 images are scaled to [0, 1] per batch) and labels ``y``.

        ``callback(event)`` is called after every batch and epoch; a truthy return stops training.
        A loss that becomes NaN or infinite stops training, keeps the weights of the last finished
        epoch and sets ``stop_reason_ = "diverged"`` with an explanation in ``stop_message_``.
        """
        cfg = self._validated()
        continuing = self.warm_start and self._is_fitted()
        X = self._check_X(X)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must be 1-D with one label per row of X ({X.shape[0]}); got shape {y.shape}."
            )
        if not continuing:
            classes = np.unique(y)
            if classes.size < 2:
                raise ValueError(f"y has {classes.size} class; at least 2 are needed.")
            self._rng = np.random.default_rng(self.random_state)
            self._cfg = cfg
            self._initialize(X.shape[1], classes, cfg)
        else:
            layers = [w.shape[1] for w in self.coefs_[:-1]]
            if layers != cfg["layers"] or self.coefs_[0].dtype != cfg["dtype"]:
                raise ValueError(
                    f"warm_start needs the same hidden_layers and dtype as the fitted "
                    f"model ({layers}, {self.coefs_[0].dtype}); got "
                    f"{cfg['layers']}, {cfg['dtype']}."
                )
            if not hasattr(self, "_rng"):
                self._rng = np.random.default_rng(
                    None if self.random_state is None else [self.random_state, self.n_iter_]
                )
            if self.optimizer_.name != self.optimizer:
                self.optimizer_ = self._make_optimizer()
            self._cfg = cfg
        y_idx = self._encode(y)
        if X_val is None and y_val is None and self.early_stopping:
            X, y_idx, X_val, yv_idx = self._hold_out(X, y_idx)
        elif (X_val is None) != (y_val is None):
            raise ValueError("Give both X_val and y_val, or neither.")
        elif X_val is not None:
            X_val = self._check_X(X_val, "X_val")
            yv_idx = self._encode(y_val, "y_val")
            if yv_idx.shape[0] != X_val.shape[0]:
                raise ValueError(f"y_val has {yv_idx.shape[0]} labels for {X_val.shape[0]} rows.")
        if self.batch_size > X.shape[0]:
            raise _bad(
                "batch_size",
                self.batch_size,
                f"use at most the number of training samples ({X.shape[0]})",
            )
        self._work: dict[int, dict] = {}
        self._pack_parameters()
        self._flat_grads, self._grads = flat_like(self._params())
        # Overflow is detected and handled as divergence; NumPy need not warn about it too.
        with np.errstate(over="ignore", invalid="ignore"):
            self._train_loop(X, y_idx, X_val, yv_idx if X_val is not None else None, callback)
        return self

    def _hold_out(self, X, y_idx):
        """Hold out ``validation_fraction`` of the data, stratified, for early stopping."""
        order = self._rng.permutation(X.shape[0])
        val = []
        for c in range(len(self.classes_)):
            members = order[y_idx[order] == c]
            val.append(members[: int(round(len(members) * self.validation_fraction))])
        val_idx = np.sort(np.concatenate(val))
        mask = np.ones(X.shape[0], bool)
        mask[val_idx] = False
        if not val_idx.size or mask.sum() == 0:
            raise ValueError("Too few samples to hold out a validation set for early stopping.")
        return X[mask], y_idx[mask], X[val_idx], y_idx[val_idx]

    def _train_loop(self, X, y_idx, X_val, yv_idx, callback) -> None:
        cfg = self._cfg
        n, bs = X.shape[0], int(self.batch_size)
        n_batches = math.ceil(n / bs)
        first_epoch = self.n_iter_
        last_epoch = first_epoch + int(self.epochs)
        params = self._params()
        flat = (self._flat_params, self._flat_grads)
        optimizer = self.optimizer_
        augmenter = cfg["augmenter"]
        dtype = params[0].dtype
        best = self._snapshot() if self.early_stopping else None
        best_score, waited = None, 0
        safe = self._snapshot()
        self.stop_reason_, self.stop_message_ = "completed", ""
        start = time.perf_counter()
        hist = self.history_
        for epoch in range(first_epoch, last_epoch):
            epoch_start = time.perf_counter()
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
            loss_sum, correct, seen = 0.0, 0, 0
            lr = self.learning_rate
            stop = False
            for b in range(n_batches):
                idx = order[b * bs : (b + 1) * bs]
                if augmenter is not None:
                    xb = augmenter(X[idx], rng=self._rng)
                    if xb.dtype != dtype:
                        xb = xb.astype(dtype)
                else:
                    xb = self._to_float(X[idx], self._buffers(idx.size)["x"][0])
                lr = self._lr(epoch, last_epoch, (b + 1) / n_batches)
                loss, ok, grads = self._loss_and_grads(xb, y_idx[idx], training=True)
                if not math.isfinite(loss):
                    self._restore(safe)
                    self._diverged(epoch, b, loss, lr)
                    stop = True
                    break
                if self.clip_norm is not None:
                    self._clip(grads)
                optimizer.step(params, grads, lr, flat=flat)
                loss_sum += loss * idx.size
                correct += ok
                seen += idx.size
                hist["batch_loss"].append(loss)
                if callback is not None:
                    elapsed = time.perf_counter() - epoch_start
                    if callback(
                        TrainingEvent(
                            "batch",
                            epoch + 1,
                            last_epoch,
                            b + 1,
                            n_batches,
                            loss,
                            correct / seen,
                            None,
                            None,
                            lr,
                            seen / max(elapsed, 1e-9),
                            time.perf_counter() - start,
                        )
                    ):
                        self.stop_reason_ = "callback"
                        self.stop_message_ = f"Stopped on request in epoch {epoch + 1}."
                        stop = True
                        break
            if self.stop_reason_ == "diverged" or seen < n:
                break  # a partial epoch is not recorded as an epoch
            seconds = time.perf_counter() - epoch_start
            val_loss = val_acc = None
            if X_val is not None:
                val_loss, val_acc = self._evaluate(X_val, yv_idx)
            self.n_iter_ = epoch + 1
            for key, value in (
                ("epoch", epoch + 1),
                ("loss", loss_sum / seen),
                ("train_accuracy", correct / seen),
                ("val_loss", val_loss),
                ("val_accuracy", val_acc),
                ("learning_rate", lr),
                ("seconds", seconds),
            ):
                hist[key].append(value)
            if val_acc is not None:
                self.best_val_accuracy_ = max(val_acc, self.best_val_accuracy_ or 0.0)
            end_loss = val_loss if val_loss is not None else self._batch_loss(xb, y_idx[idx])
            if not math.isfinite(end_loss):
                self._restore(safe)
                self.n_iter_ = epoch
                self._diverged(epoch, n_batches - 1, end_loss, lr)
                break
            safe = self._snapshot()
            if callback is not None and callback(
                TrainingEvent(
                    "epoch",
                    epoch + 1,
                    last_epoch,
                    n_batches,
                    n_batches,
                    loss_sum / seen,
                    correct / seen,
                    val_loss,
                    val_acc,
                    lr,
                    seen / max(seconds, 1e-9),
                    time.perf_counter() - start,
                )
            ):
                self.stop_reason_ = "callback"
                self.stop_message_ = f"Stopped on request after epoch {epoch + 1}."
                stop = True
            if self.early_stopping and X_val is not None:
                score = val_loss if self.monitor == "val_loss" else -val_acc
                if best_score is None or score < best_score - self.min_delta:
                    best_score, waited, best = score, 0, safe
                else:
                    waited += 1
                    if waited >= self.patience and not stop:
                        self.stop_reason_ = "early_stopping"
                        self.stop_message_ = (
                            f"Early stopping after epoch {epoch + 1}: {self.monitor} did not "
                            f"improve for {self.patience} epochs; restored the best weights "
                            f"(epoch {epoch + 1 - waited})."
                        )
                        stop = True
            if stop:
                break
        if self.early_stopping and best is not None and best_score is not None:
            self._restore(best)
        self._work = {}
        del self._flat_grads, self._grads

    def _lr(self, epoch: int, total: int, progress: float) -> float:
        return learning_rate(
            self.schedule,
            self.learning_rate,
            epoch,
            total,
            progress,
            decay=self.lr_decay,
            step_size=self.step_size,
            gamma=self.gamma,
            warmup_epochs=self.warmup_epochs,
            min_lr=self.min_lr,
        )

    def _diverged(self, epoch: int, batch: int, loss: float, lr: float) -> None:
        self.stop_reason_ = "diverged"
        kept = (
            f"the weights from the end of epoch {self.n_iter_} were kept"
            if self.n_iter_
            else "the initial weights were kept"
        )
        self.stop_message_ = (
            f"Training diverged in epoch {epoch + 1}, batch {batch + 1}: the loss became {loss} "
            f"at learning rate {lr:.3g}; {kept}. Try a lower learning rate (for example "
            f"{self.learning_rate / 10:.3g}), gradient clipping (clip_norm), or a different "
            f"initialisation."
        )

    def _snapshot(self) -> tuple[list[np.ndarray], tuple]:
        scalars, arrays = self.optimizer_.state_dict()
        return [p.copy() for p in self._params()], (
            scalars,
            {k: v.copy() for k, v in arrays.items()},
        )

    def _restore(self, snap) -> None:
        values, (scalars, arrays) = snap
        for p, v in zip(self._params(), values):
            p[...] = v
        self.optimizer_.load_state_dict(scalars, {k: v.copy() for k, v in arrays.items()})

    def _batch_loss(self, x: np.ndarray, y_idx: np.ndarray) -> float:
        """Cross-entropy of the current weights on one float batch (a divergence check)."""
        logits = self._forward_eval(x)
        return softmax_cross_entropy(logits, y_idx, grad_out=logits)[0]

    def _evaluate(self, X: np.ndarray, y_idx: np.ndarray) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on a whole set, without dropout."""
        loss_sum, correct = 0.0, 0
        for part, xb in self._chunks(X):
            logits = self._forward_eval(xb)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == y_idx[part]))
            loss, _ = softmax_cross_entropy(logits, y_idx[part], grad_out=logits)
            loss_sum += loss * xb.shape[0]
        return loss_sum / X.shape[0], correct / X.shape[0]

    # ------------------------------------------------------------------ inference
    def _ready(self) -> None:
        self._check_fitted()
        if not hasattr(self, "_cfg"):
            self._cfg = self._validated()
        if not hasattr(self, "_work"):
            self._work = {}

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one row per sample (rows sum to 1), columns in ``classes_`` order."""
        self._ready()
        X = self._check_X(X)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=self.coefs_[0].dtype)
        for part, xb in self._chunks(X):
            softmax(self._forward_eval(xb), out=out[part])
        self._work = {}
        return out

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``; labels the model does not know raise ``ValueError``."""
        self._ready()
        y_idx = self._encode(y)
        proba = self.predict_proba(X)
        if y_idx.shape[0] != proba.shape[0]:
            raise ValueError(f"y has {y_idx.shape[0]} labels for {proba.shape[0]} rows of X.")
        return float(np.mean(proba.argmax(axis=1) == y_idx))

    def loss_and_gradients(self, X, y) -> tuple[float, list[np.ndarray]]:
        """The training objective on ``(X, y)`` without dropout, and copies of its gradients in the
        order ``[W0, b0, W1, b1, ...]`` (for gradient checks and teaching)."""
        self._ready()
        X = self._check_X(X)
        xb = self._to_float(X, np.empty(X.shape, self.coefs_[0].dtype))
        self._grads = [np.empty_like(p) for p in self._params()]
        loss, _, grads = self._loss_and_grads(xb, self._encode(y), training=False)
        self._work = {}
        return loss, [g.copy() for g in grads]

    def activations(self, X) -> list[np.ndarray]:
        """The output of every hidden layer for ``X`` (no dropout), for display."""
        self._ready()
        X = self._check_X(X)
        out = []
        a = self._to_float(X, np.empty(X.shape, self.coefs_[0].dtype))
        for layer, (w, b) in enumerate(zip(self.coefs_[:-1], self.intercepts_[:-1])):
            a = a @ w + b
            self._cfg["activations"][layer].forward(a, out=a)
            out.append(a)
        return out

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able metadata and named arrays describing the fitted model (see nn.persistence)."""
        self._check_fitted()
        opt_scalars, opt_arrays = self.optimizer_.state_dict()
        meta = {
            "params": self.get_params(),
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "n_features_in": int(self.n_features_in_),
            "layer_sizes": self.layer_sizes_,
            "n_iter": int(self.n_iter_),
            "history": {k: list(v) for k, v in self.history_.items()},
            "optimizer": opt_scalars,
            "stop_reason": self.stop_reason_,
            "stop_message": self.stop_message_,
            "best_val_accuracy": self.best_val_accuracy_,
        }
        arrays = {}
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"coef_{i}"] = w
            arrays[f"intercept_{i}"] = b
        arrays.update({f"opt.{k}": v for k, v in opt_arrays.items()})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> NeuralNetwork:
        """Rebuild a fitted model from ``to_state``'s output; checks names and shapes."""
        known = set(cls._param_names())
        model = cls(**{k: v for k, v in meta["params"].items() if k in known})
        cfg = model._validated()
        sizes = [int(s) for s in meta["layer_sizes"]]
        if sizes[1:-1] != cfg["layers"]:
            raise ValueError(f"layer sizes {sizes} disagree with hidden_layers {cfg['layers']}.")
        model.coefs_, model.intercepts_ = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            for name, shape, store in (
                (f"coef_{i}", (fan_in, fan_out), model.coefs_),
                (f"intercept_{i}", (fan_out,), model.intercepts_),
            ):
                if name not in arrays:
                    raise ValueError(f"the array {name!r} is missing.")
                arr = np.asarray(arrays[name])
                if arr.shape != shape:
                    raise ValueError(f"the array {name!r} has shape {arr.shape}, expected {shape}.")
                store.append(np.array(arr, dtype=cfg["dtype"]))
        model.classes_ = np.asarray(meta["classes"])
        dtype = meta.get("classes_dtype")
        if dtype and np.dtype(dtype).kind in "iub" and model.classes_.dtype.kind in "iu":
            model.classes_ = model.classes_.astype(dtype)
        if int(meta["n_features_in"]) != sizes[0]:
            raise ValueError(
                f"n_features_in {meta['n_features_in']} disagrees with the input "
                f"layer of {sizes[0]}."
            )
        if model.classes_.size != sizes[-1]:
            raise ValueError(f"{model.classes_.size} classes but an output layer of {sizes[-1]}.")
        model.n_features_in_ = int(meta["n_features_in"])
        model.n_iter_ = int(meta.get("n_iter", 0))
        model.history_ = {k: list(v) for k, v in meta.get("history", {}).items()}
        model.optimizer_ = model._make_optimizer()
        opt_arrays = {k[4:]: np.asarray(v) for k, v in arrays.items() if k.startswith("opt.")}
        model.optimizer_.load_state_dict(meta.get("optimizer", {}), opt_arrays)
        model.stop_reason_ = meta.get("stop_reason")
        model.stop_message_ = meta.get("stop_message", "")
        model.best_val_accuracy_ = meta.get("best_val_accuracy")
        model._cfg = cfg
        return model

    def save(self, path, **kwargs: Any):
        """Save to ``.npz`` (native) or ``.pkl``; see ``nn.persistence.save_model``."""
        from nn.io.model_files import save_model

        return save_model(self, path, **kwargs)


def _is_number(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
    )


def _positive(name: str, v: Any) -> None:
    if not (_is_number(v) and v > 0):
        raise _bad(name, v, "use a number greater than 0")


def _positive_int(name: str, v: Any) -> None:
    if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0):
        raise _bad(name, v, "use a whole number greater than 0")


def _in_range(name: str, v: Any, low: float, high: float, allowed: str) -> None:
    if not (_is_number(v) and low <= v < high):
        raise _bad(name, v, f"use {allowed}")
