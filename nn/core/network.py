"""A neural network classifier with a softmax output, as a scikit-learn style estimator.

The network is a stack of layers (``nn.core.sequential``) with an output dense layer to the
classes. Hyperparameters are stored as given in ``__init__`` and validated in ``fit``; learned
state ends in ``_``. One ``np.random.default_rng(random_state)`` drives initialisation,
shuffling, dropout and augmentation, so a seeded run repeats exactly.

The hot loop allocates nothing of the batch's size that it can avoid: every layer's buffers are
made once per batch size, uint8 images are gathered and scaled into a float buffer per batch,
activations and parameter updates work in place, and the softmax/cross-entropy gradient is
computed in the logits' own buffer.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from nn.core.config import (
    Config,
    build_stack,
    check_memory,
    check_same_network,
    configure,
    eval_chunk,
    input_shape_for,
)
from nn.core.data_parallel import DataParallel, forward_backward
from nn.core.events import HISTORY_KEYS, Callback
from nn.core.fit_run import FitRun, diverged_message, early_stopping_message, hold_out
from nn.core.inputs import NotFittedError, check_X, check_y, class_labels, dense_rows
from nn.core.layers import ActivationLayer, Dense
from nn.core.losses import softmax, softmax_cross_entropy
from nn.core.optimizers import Optimizer, make_optimizer
from nn.core.params import check_names, defaults, json_params
from nn.core.schedules import learning_rate
from nn.core.sequential import Sequential

_PREDICTING: weakref.WeakKeyDictionary[Sequential, threading.Lock] = weakref.WeakKeyDictionary()
_PREDICTING_GUARD = threading.Lock()


class NeuralNetwork:
    """Neural network classifier (dense or convolutional) trained by mini-batch gradient descent.

    Every hyperparameter, its range and its meaning is declared in ``nn.core.params.PARAMS``
    (validated in ``fit``). The network is either the dense shorthand (``hidden_layers`` with
    ``activation`` and ``dropout`` per layer) or ``layers``, the hidden stack as a list of dicts,
    e.g. ``[{"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same"}, {"type": "relu"},
    {"type": "maxpool", "size": 2}, {"type": "flatten"}, {"type": "dense", "units": 128}]``
    (types in ``nn.core.layers.LAYERS``); ``input_dropout``, ``l2`` and ``init`` apply to either.
    ``input_shape`` ``None`` takes the images' shape from a 4-D ``X``; a 2-D ``X`` with
    convolution or pooling layers is read as square greyscale images (784 -> 28x28x1).
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
        layers: Sequence[dict] | None = None,
        input_shape: Sequence[int] | None = None,
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
        self.layers = layers
        self.input_shape = input_shape

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's arguments (``nn.core.params.PARAMS`` declares each of them)."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given (the very objects, as scikit-learn's ``clone`` expects);
        ``nn.core.params.json_params`` gives the form model files and runs hold."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> NeuralNetwork:
        check_names(params, self._param_names())
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags of a classifier that takes dense or sparse 2-D input (read by its
        meta-estimators and checks; scikit-learn is imported here, only when they ask)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            input_tags=InputTags(sparse=True),
        )

    def __repr__(self) -> str:
        default, given = defaults(), self.get_params()
        changed = {k: given[k] for k, v in json_params(given).items() if v != default[k]}
        return f"NeuralNetwork({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _configured(self) -> Config:
        """Check every hyperparameter (``ParameterError`` naming it otherwise); the settings
        training uses."""
        return configure(self.get_params())

    # ------------------------------------------------------------------ state
    @property
    def layers_(self) -> list:
        """The fitted stack's layers, the output dense layer last."""
        return self.stack_.layers

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The dense layers' weight matrices ``(inputs, units)``, in order."""
        return [layer.params[0] for layer in self.stack_.layers if isinstance(layer, Dense)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The dense layers' biases, in order."""
        return [layer.params[1] for layer in self.stack_.layers if isinstance(layer, Dense)]

    @property
    def layer_sizes_(self) -> list[int]:
        """The input size, then every dense layer's width (the classes last)."""
        return [self.n_features_in_, *[w.shape[1] for w in self.coefs_]]

    @property
    def n_parameters_(self) -> int:
        return int(self.stack_.n_parameters)

    @property
    def _flat_params(self) -> np.ndarray:
        return self.stack_.flat_params

    def _is_fitted(self) -> bool:
        return hasattr(self, "stack_")

    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def check_fitted(self) -> None:
        """``nn.core.inputs.NotFittedError`` (a ``ValueError`` and an ``AttributeError``)
        unless the model is fitted."""
        if not self._is_fitted():
            raise NotFittedError("This NeuralNetwork is not fitted yet: call fit(X, y) first.")

    def _params(self) -> list[np.ndarray]:
        return self.stack_.params

    def _initialize(self, tail: tuple[int, ...], classes: np.ndarray, cfg: Config) -> None:
        """Build the stack for rows of shape ``tail``, check its size and memory, then allocate
        and initialise it from the fit's generator."""
        shape = input_shape_for(tail, cfg)
        net = build_stack(cfg, shape, len(classes))
        check_memory(net, cfg)
        net.allocate()
        net.initialize(self._rng, self.init)
        self.stack_ = net
        self.classes_ = classes
        self.input_shape_ = shape
        self.n_features_in_ = math.prod(shape)
        self.n_iter_ = 0
        self.history_ = {k: [] for k in HISTORY_KEYS}
        self.optimizer_ = self.new_optimizer()
        self.best_val_accuracy_ = None
        self.stop_reason_ = None
        self.stop_message_ = ""

    def new_optimizer(self) -> Optimizer:
        """A fresh optimizer of this model's ``optimizer`` and its settings."""
        return make_optimizer(self.optimizer, **self.get_params())

    def __getstate__(self) -> dict[str, Any]:
        # the stack pickles as its settings and arrays (Sequential.__reduce__); the buffers and
        # the config are made again when used
        state = self.__dict__.copy()
        state.pop("_work", None)
        state.pop("_cfg", None)
        state.pop("_parallel", None)
        return state

    # ------------------------------------------------------------------ input handling
    def _check_X(self, X: Any, name: str = "X", fitted: bool = True) -> np.ndarray:
        """``X`` checked by ``nn.core.inputs.check_X``: rows, images ``(n, h, w, c)`` or a sparse
        matrix of rows; when ``fitted`` (and the model is), of the fitted model's shape."""
        if not (fitted and self._is_fitted()):
            return check_X(X, name)
        shape = tuple(self.input_shape_)
        image_shape = shape if len(shape) == 3 else None
        return check_X(X, name, n_features=self.n_features_in_, image_shape=image_shape)

    @staticmethod
    def _rows(X: np.ndarray) -> np.ndarray:
        return X.reshape(X.shape[0], -1) if X.ndim != 2 else X

    def _to_float(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Convert a slice of input (dense or sparse) to the model's float dtype in ``out``;
        uint8 is scaled to [0, 1]."""
        X = dense_rows(X)
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
    def _input_buffer(self, work: dict[int, np.ndarray], n: int) -> np.ndarray:
        """The float input rows for batches of ``n``, made once per batch size in ``work``."""
        buf = work.get(n)
        if buf is None:
            buf = work[n] = np.empty((n, self.n_features_in_), self.stack_.dtype)
        return buf

    def _release_buffers(self) -> None:
        self._work = {}
        self.stack_.clear_buffers()

    def _decayed(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(weight, its gradient) of every layer the L2 penalty applies to (dense and conv)."""
        return [
            (layer.params[0], layer.grads[0] if layer.grads else None)
            for layer in self.stack_.layers
            if layer.kind in ("dense", "conv2d")
        ]

    def _loss_and_grads(
        self, x: np.ndarray, y: np.ndarray, training: bool
    ) -> tuple[float, int, list[np.ndarray]]:
        """Forward and backward pass on one batch (``x`` float, ``y`` class indices).

        Returns the objective (mean cross-entropy plus the L2 term), the number of correct
        predictions, and the gradients in the order of ``_params()``. ``training`` turns dropout
        and batch statistics on.
        """
        parallel = getattr(self, "_parallel", None) if training else None
        if parallel is not None:  # in fit: the batch split over threads where that pays
            loss, correct = parallel.loss_and_gradients(x, y, self._rng)
        else:  # only dropout draws; a loaded model has no generator
            rng = self._rng if training else None
            loss, correct = forward_backward(self.stack_, x, y, rng, training)
        if self.l2 > 0:
            decayed = self._decayed()
            for w, gw in decayed:
                gw += gw.dtype.type(self.l2) * w
            loss += 0.5 * self.l2 * sum(float(np.vdot(w, w)) for w, _ in decayed)
        return loss, correct, self._grads

    def _clip(self, grads: list[np.ndarray]) -> None:
        norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if norm > self.clip_norm:
            scale = grads[0].dtype.type(self.clip_norm / norm)
            for g in grads:
                g *= scale

    def _forward_eval(self, x: np.ndarray) -> np.ndarray:
        """Logits of a float batch, without dropout, in the batch's own buffers."""
        return self.stack_.forward(x)

    def _chunks(self, X: np.ndarray, work: dict[int, np.ndarray]):
        """Yield ``(slice, float batch)`` over ``X`` in chunks, converting uint8 (and densifying
        sparse rows) per chunk into buffers kept in ``work``."""
        step = eval_chunk(self.stack_, self.batch_size)
        for start in range(0, X.shape[0], step):
            part = self._rows(X[start : start + step])
            buf = self._input_buffer(work, part.shape[0])
            yield slice(start, start + part.shape[0]), self._to_float(part, buf)

    # ------------------------------------------------------------------ training
    def fit(self, X, y, X_val=None, y_val=None, callback: Callback | None = None) -> NeuralNetwork:
        """Train on ``X`` (rows or images; uint8 images are scaled to [0, 1] per batch) and
        labels ``y``.

        ``callback(event)`` is called after every batch and epoch; a truthy return stops training.
        A loss that becomes NaN or infinite, or far above ln(number of classes), or weights that
        stop being finite, stop training, keep the weights of the last finished epoch and set
        ``stop_reason_ = "diverged"`` with an explanation in ``stop_message_``.
        """
        cfg = self._configured()
        continuing = self.warm_start and self._is_fitted()
        X = self._check_X(X, fitted=continuing)
        y = check_y(y, X.shape[0])
        if continuing:
            self._continue(cfg, X.shape[1:])
        else:
            classes = class_labels(y)
            if classes.size < 2:
                raise ValueError(f"y has {classes.size} class; at least 2 are needed.")
            self._rng = np.random.default_rng(self.random_state)
            self._cfg = cfg
            self._initialize(X.shape[1:], classes, cfg)
        X = self._rows(X)
        X, y_idx, X_val, yv_idx = self._training_sets(X, self._encode(y), X_val, y_val)
        batch_size = int(self.batch_size)
        if batch_size > X.shape[0]:
            warnings.warn(
                f"batch_size={batch_size} is larger than the {X.shape[0]} training samples; "
                f"each batch holds all {X.shape[0]}.",
                UserWarning,
                stacklevel=2,
            )
            batch_size = X.shape[0]
        self._work: dict[int, np.ndarray] = {}
        self.stack_.attach_gradients()
        self._grads = self.stack_.grads
        self._parallel = DataParallel(self.stack_)
        # Overflow is detected and handled as divergence; NumPy need not warn about it too.
        with np.errstate(over="ignore", invalid="ignore"):
            self._train_loop(X, y_idx, X_val, yv_idx, callback, batch_size)
        return self

    def _continue(self, cfg: Config, tail: tuple[int, ...]) -> None:
        """Check that ``warm_start`` continues the same network; keep its generator."""
        check_same_network(cfg, input_shape_for(tail, cfg), self.stack_)
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(
                None if self.random_state is None else [self.random_state, self.n_iter_]
            )
        if self.optimizer_.name != self.optimizer:
            self.optimizer_ = self.new_optimizer()
        self._cfg = cfg

    def _training_sets(self, X, y_idx, X_val, y_val):
        """Training and validation sets: ``X_val``/``y_val`` as given, a held-out part of ``X``
        for early stopping without them, or no validation set."""
        if X_val is None and y_val is None and self.early_stopping:
            return hold_out(X, y_idx, len(self.classes_), self.validation_fraction, self._rng)
        if (X_val is None) != (y_val is None):
            raise ValueError("Give both X_val and y_val, or neither.")
        if X_val is None:
            return X, y_idx, None, None
        X_val = self._rows(self._check_X(X_val, "X_val"))
        yv_idx = self._encode(check_y(y_val, X_val.shape[0], "y_val"), "y_val")
        return X, y_idx, X_val, yv_idx

    def _train_loop(self, X, y_idx, X_val, yv_idx, callback, bs: int) -> None:
        n = X.shape[0]
        run = FitRun(
            batch_size=bs,
            first_epoch=self.n_iter_,
            last_epoch=self.n_iter_ + int(self.epochs),
            n_batches=math.ceil(n / bs),
            safe=self._snapshot(),
        )
        run.best = self._snapshot() if self.early_stopping else None
        self.stop_reason_, self.stop_message_ = "completed", ""
        for epoch in range(run.first_epoch, run.last_epoch):
            run.epoch_start = time.perf_counter()
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
            sums = self._run_batches(X, y_idx, order, epoch, run, callback)
            if self.stop_reason_ == "diverged" or sums["seen"] < n:
                break  # a partial epoch is not recorded as an epoch
            if not self._end_epoch(epoch, run, sums, X_val, yv_idx, y_idx, callback):
                break
        if self.early_stopping and run.best is not None and run.best_score is not None:
            self._restore(run.best)
        self._release_buffers()
        self.stack_.detach_gradients()
        del self._grads, self._parallel

    def _batch_input(self, X: np.ndarray, idx: np.ndarray, dtype) -> np.ndarray:
        augmenter = self._cfg.augmenter
        if augmenter is None:
            return self._to_float(X[idx], self._input_buffer(self._work, idx.size))
        xb = augmenter(dense_rows(X[idx]), rng=self._rng)
        return xb.astype(dtype) if xb.dtype != dtype else xb

    def _run_batches(self, X, y_idx, order, epoch, run: FitRun, callback) -> dict[str, Any]:
        """One epoch's batches: forward, backward, clipping and the optimizer's step."""
        bs, n_batches = run.batch_size, run.n_batches
        params, flat = self._params(), (self.stack_.flat_params, self.stack_.flat_grads)
        dtype, hist = self.stack_.dtype, self.history_
        sums = {"loss": 0.0, "correct": 0, "seen": 0, "lr": self.learning_rate}
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            xb = self._batch_input(X, idx, dtype)
            lr = self._lr(epoch, run.last_epoch, (b + 1) / n_batches)
            sums["lr"], sums["xb"], sums["idx"] = lr, xb, idx
            loss, ok, grads = self._loss_and_grads(xb, y_idx[idx], training=True)
            if self._diverging(loss, run, epoch, b, lr, callback):
                break
            if self.clip_norm is not None:
                self._clip(grads)
            self.optimizer_.step(params, grads, lr, flat=flat)
            sums["loss"] += loss * idx.size
            sums["correct"] += ok
            sums["seen"] += idx.size
            hist["batch_loss"].append(loss)
            if callback is not None and self._batch_callback(callback, epoch, b, run, sums, loss):
                sums["stop"] = True
                break
        return sums

    def _diverging(self, loss, run: FitRun, epoch: int, batch: int, lr: float, callback) -> bool:
        """Whether the batch loss diverged (``FitRun.diverges``); if so, tell the callback,
        restore the last good weights and explain."""
        if not run.diverges(loss, len(self.classes_)):
            return False
        self._tell_diverged(callback, epoch, batch, run, loss, lr)
        self._restore(run.safe)
        self._diverged(epoch, batch, loss, lr)
        return True

    def _tell_diverged(self, callback, epoch: int, batch: int, run: FitRun, loss, lr) -> None:
        """A ``kind="diverged"`` event while the weights are still those that diverged (its
        return value is ignored: training stops)."""
        if callback is not None:
            callback(run.event("diverged", epoch, batch + 1, float(loss), math.nan, lr, 0.0))

    def _batch_callback(self, callback, epoch, b, run: FitRun, sums, loss) -> bool:
        seen = sums["seen"]
        speed = seen / max(time.perf_counter() - run.epoch_start, 1e-9)
        accuracy = sums["correct"] / seen
        if not callback(run.event("batch", epoch, b + 1, loss, accuracy, sums["lr"], speed)):
            return False
        self.stop_reason_ = "callback"
        self.stop_message_ = f"Stopped on request in epoch {epoch + 1}."
        return True

    def _end_epoch(self, epoch, run: FitRun, sums, X_val, yv_idx, y_idx, callback) -> bool:
        """Record a finished epoch, check it, call back, and decide on early stopping; returns
        whether training goes on."""
        seconds = time.perf_counter() - run.epoch_start
        seen = sums["seen"]
        val_loss = val_acc = None
        if X_val is not None:
            val_loss, val_acc = self._evaluate(X_val, yv_idx)
        self.n_iter_ = epoch + 1
        for key, value in (
            ("epoch", epoch + 1),
            ("loss", sums["loss"] / seen),
            ("train_accuracy", sums["correct"] / seen),
            ("val_loss", val_loss),
            ("val_accuracy", val_acc),
            ("learning_rate", sums["lr"]),
            ("seconds", seconds),
        ):
            self.history_[key].append(value)
        if val_acc is not None:
            self.best_val_accuracy_ = max(val_acc, self.best_val_accuracy_ or 0.0)
        if val_loss is not None:
            end_loss = val_loss
        else:
            end_loss = self._batch_loss(sums["xb"], y_idx[sums["idx"]])
        if not math.isfinite(end_loss) or not np.isfinite(self.stack_.flat_params).all():
            self._tell_diverged(callback, epoch, run.n_batches - 1, run, end_loss, sums["lr"])
            self._restore(run.safe)
            self.n_iter_ = epoch
            self._diverged(epoch, run.n_batches - 1, end_loss, sums["lr"])
            return False
        run.safe = self._snapshot()
        stop = bool(sums.get("stop"))
        if callback is not None:
            stop = (
                self._epoch_callback(callback, epoch, run, sums, seconds, val_loss, val_acc) or stop
            )
        if self.early_stopping and X_val is not None:
            stop = self._early_stop(epoch, run, val_loss, val_acc, stop) or stop
        return not stop

    def _epoch_callback(self, callback, epoch, run: FitRun, sums, seconds, val_loss, val_acc):
        seen = sums["seen"]
        event = run.event(
            "epoch",
            epoch,
            run.n_batches,
            sums["loss"] / seen,
            sums["correct"] / seen,
            sums["lr"],
            seen / max(seconds, 1e-9),
            val_loss,
            val_acc,
        )
        if not callback(event):
            return False
        self.stop_reason_ = "callback"
        self.stop_message_ = f"Stopped on request after epoch {epoch + 1}."
        return True

    def _early_stop(self, epoch, run: FitRun, val_loss, val_acc, stopping: bool) -> bool:
        score = val_loss if self.monitor == "val_loss" else -val_acc
        if not run.patience_ran_out(score, self.min_delta, self.patience) or stopping:
            return False
        self.stop_reason_ = "early_stopping"
        self.stop_message_ = early_stopping_message(epoch, self.monitor, self.patience, run.waited)
        return True

    def _lr(self, epoch: int, total: int, progress: float) -> float:
        lr0, settings = self.learning_rate, self._cfg.schedule_settings
        return learning_rate(self.schedule, lr0, epoch, total, progress, **settings)

    def _diverged(self, epoch: int, batch: int, loss: float, lr: float) -> None:
        self.stop_reason_ = "diverged"
        self.stop_message_ = diverged_message(
            epoch, batch, loss, lr, self.n_iter_, self.learning_rate
        )

    def _snapshot(self) -> tuple:
        scalars, arrays = self.optimizer_.state_dict()
        return (
            [p.copy() for p in self._params()],
            (scalars, {k: v.copy() for k, v in arrays.items()}),
            {k: v.copy() for k, v in self.stack_.named_state()},
        )

    def _restore(self, snap) -> None:
        values, (scalars, arrays), state = snap
        for p, v in zip(self._params(), values, strict=True):
            p[...] = v
        self.optimizer_.load_state_dict(scalars, {k: v.copy() for k, v in arrays.items()})
        self.stack_.load_state(state)

    def _batch_loss(self, x: np.ndarray, y_idx: np.ndarray) -> float:
        """Cross-entropy of the current weights on one float batch (a divergence check)."""
        logits = self._forward_eval(x)
        return softmax_cross_entropy(logits, y_idx, grad_out=logits)[0]

    def _evaluate(self, X: np.ndarray, y_idx: np.ndarray) -> tuple[float, float]:
        """Mean cross-entropy and accuracy on a whole set, without dropout."""
        loss_sum, correct = 0.0, 0
        for part, xb in self._chunks(X, self._work):
            logits = self._forward_eval(xb)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == y_idx[part]))
            loss, _ = softmax_cross_entropy(logits, y_idx[part], grad_out=logits)
            loss_sum += loss * xb.shape[0]
        return loss_sum / X.shape[0], correct / X.shape[0]

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one row per sample (rows sum to 1), columns in ``classes_``
        order."""
        self.check_fitted()
        X = self._check_X(X)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=self.stack_.dtype)
        with predicting(self):
            for part, xb in self._chunks(X, {}):
                softmax(self._forward_eval(xb), out=out[part])
            self.stack_.clear_buffers()
        return out

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``; labels the model does not know raise ``ValueError``."""
        proba = self.predict_proba(X)
        y_idx = self._encode(check_y(y, proba.shape[0]))
        return float(np.mean(proba.argmax(axis=1) == y_idx))

    def layer_outputs(self, X) -> list[tuple[str, np.ndarray]]:
        """``(name, output)`` of every layer of the stack for ``X`` (no dropout), feature maps
        ``(n, h, w, c)`` included, in order; names are ``"<index> <type>"``."""
        self.check_fitted()
        X = self._rows(self._check_X(X))
        x = self._to_float(X, np.empty(X.shape, self.stack_.dtype))
        record: list[np.ndarray] = []
        with predicting(self):
            self.stack_.forward(x, record=record)
            self.stack_.clear_buffers()
        return [
            (f"{i} {layer.kind}", out)
            for i, (layer, out) in enumerate(zip(self.stack_.layers, record, strict=True))
        ]

    def activations(self, X) -> list[np.ndarray]:
        """The output of every activation layer for ``X`` (no dropout): the hidden layers'
        outputs of a dense net, the activated feature maps of a convolutional one."""
        return [
            out
            for layer, (_, out) in zip(self.stack_.layers, self.layer_outputs(X), strict=True)
            if isinstance(layer, ActivationLayer)
        ]


def predicting(model: NeuralNetwork) -> threading.Lock:
    """The lock everything computed in a fitted model's layers takes turns on (predictions,
    layer outputs, attributions, layer maps): the layers compute in buffers of their own, so two
    threads using one model (the dashboard's cached models serve every session) would write over
    each other's numbers. Kept outside the estimator, whose ``__dict__`` prediction leaves
    unchanged; ``with predicting(model): ...``."""
    stack = model.stack_
    with _PREDICTING_GUARD:
        lock = _PREDICTING.get(stack)
        if lock is None:
            lock = _PREDICTING[stack] = threading.Lock()
        return lock
