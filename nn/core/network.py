"""A neural network classifier with a softmax output, as a scikit-learn style estimator.

The network is a stack of layers (``nn.core.layers``): either the dense shorthand
(``hidden_layers``, ``activation``, ``dropout``, ``input_dropout``) or an explicit ``layers``
stack of JSON-able dicts with convolutions, pooling and batch normalisation. The output dense
layer to the classes is appended to either. Hyperparameters are stored as given in ``__init__``
and validated in ``fit``; learned state ends in ``_``. One ``np.random.default_rng(random_state)``
drives initialisation, shuffling, dropout and augmentation, so a seeded run repeats exactly.

The hot loop allocates nothing of the batch's size that it can avoid: every layer's buffers are
made once per batch size, uint8 images are gathered and scaled into a float buffer per batch,
activations and parameter updates work in place, and the softmax/cross-entropy gradient is
computed in the logits' own buffer.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nn.core import limits
from nn.core.activations import ACTIVATIONS
from nn.core.augment import Augmenter
from nn.core.initializers import INIT_CHOICES
from nn.core.layers import (
    IMAGE_LAYERS,
    ActivationLayer,
    Dense,
    Sequential,
    StackError,
    make_layer,
)
from nn.core.losses import softmax, softmax_cross_entropy
from nn.core.optimizers import CHUNK, OPTIMIZERS, Optimizer, make_optimizer
from nn.core.schedules import SCHEDULES, learning_rate

STOP_REASONS = ("completed", "early_stopping", "callback", "diverged")
MONITORS = ("val_loss", "val_accuracy")
DTYPES = ("float32", "float64")
_EVAL_CHUNK = 4096
_EVAL_BUFFER_BYTES = 256 * 1024**2
"""Evaluation runs in chunks of up to ``_EVAL_CHUNK`` rows whose buffers stay within this."""
DIVERGENCE_FACTOR = 100.0
"""A batch loss above this many times max(ln(classes), the fit's first batch loss) diverged."""
_HISTORY_KEYS = (
    "epoch",
    "loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
    "batch_loss",
)


class ParameterError(ValueError):
    """A hyperparameter fault; ``param`` names the hyperparameter (for forms to route it)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TrainingEvent:
    """What a training callback receives after every batch (``kind="batch"``) and epoch
    (``kind="epoch"``). ``epoch`` counts from 1 over the model's whole life (continued training
    counts on); validation fields are ``None`` when there is no validation set or mid-epoch.
    When training diverges, one ``kind="diverged"`` event comes before the last good weights are
    restored (``batch`` and ``loss`` say where and how; ``train_accuracy`` is NaN)."""

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


@dataclass
class _Run:
    """The state of one call of ``fit``'s loop, shared by its named steps."""

    first_epoch: int
    last_epoch: int
    n_batches: int
    start: float
    safe: tuple
    best: tuple | None = None
    best_score: float | None = None
    waited: int = 0
    stop: bool = False
    loss_limit: float = math.inf
    epoch_start: float = 0.0
    extra: dict = field(default_factory=dict)


def _bad(name: str, value: Any, allowed: str) -> ParameterError:
    return ParameterError(name, f"{name}={value!r} is not allowed: {allowed}.")


def _per_layer(name: str, value: Any, n: int) -> list:
    """A scalar applies to every hidden layer; a sequence must give one value per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise _bad(name, value, f"give one value per hidden layer ({n}) or a single value")
        return list(value)
    return [value] * n


def format_bytes(n: float) -> str:
    """``n`` bytes as MB or GB (powers of 1024), for messages."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / 1024**2:.1f} MB"


class NeuralNetwork:
    """Neural network classifier (dense or convolutional) trained by mini-batch gradient descent.

    Parameters (all validated in ``fit``):
        hidden_layers: widths of the hidden layers, e.g. ``(256, 128)``; ``()`` is softmax
            regression.
        activation: one of ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu`` or a list, one per layer.
        leaky_slope: slope of leaky ReLU for negative inputs, in [0, 1) (also the slope of a
            ``leaky_relu`` layer in ``layers`` that gives none).
        init: ``auto`` (He for ReLU-like layers, Xavier/Glorot otherwise) or one of ``zeros``,
            ``uniform`` (U(-1,1)), ``normal`` (N(0,1)), ``he_normal``, ``he_uniform``,
            ``xavier_normal``, ``xavier_uniform``.
        optimizer: ``sgd``, ``momentum``, ``nesterov``, ``rmsprop`` or ``adam``, with ``momentum``,
            ``beta1``, ``beta2``, ``rho`` and ``epsilon`` for those that use them.
        learning_rate, schedule, lr_decay, step_size, gamma, warmup_epochs, min_lr: the learning
            rate and its schedule (see ``nn.schedules``).
        batch_size, epochs, shuffle: mini-batches; ``epochs`` is per call of ``fit``.
        l2: weight penalty ``l2/2 * sum(W**2)`` over dense and conv weights, added to the mean
            cross-entropy (biases and batch-norm parameters are free).
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
        random_state: ``None`` or an int seed in 0..``nn.core.limits.MAX_SEED``.
        layers: ``None`` (the dense shorthand above) or the hidden stack as a list of dicts, e.g.
            ``[{"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same"},
            {"type": "relu"}, {"type": "maxpool", "size": 2}, {"type": "flatten"},
            {"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dropout", "rate": 0.3}]``
            (types in ``nn.core.layers.LAYERS``). It replaces ``hidden_layers``, ``activation``
            and ``dropout``; ``input_dropout``, ``l2`` and ``init`` apply to it as well. A dense
            layer reads an image input as its flattened vector.
        input_shape: ``None`` or ``(height, width, channels)`` of the images. ``None`` takes it
            from a 4-D ``X`` ``(n, height, width, channels)``; a 2-D ``X`` ``(n, d)`` with
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
                raise ParameterError(
                    key,
                    f"{key!r} is not a parameter of NeuralNetwork: use one of "
                    f"{', '.join(sorted(valid))}.",
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"NeuralNetwork({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validated(self) -> dict[str, Any]:
        """Check every hyperparameter (``ParameterError`` naming it otherwise); return the
        normalised settings used by training."""
        self._validate_optimizer()
        self._validate_schedule()
        self._validate_training()
        self._validate_stopping()
        if self.dtype not in DTYPES:
            raise _bad("dtype", self.dtype, f"choose one of {', '.join(DTYPES)}")
        self._validate_seed()
        cfg = self._validated_stack()
        cfg["augmenter"] = self._validated_augmenter()
        cfg["dtype"] = np.dtype(self.dtype)
        return cfg

    def _validate_optimizer(self) -> None:
        if self.init not in INIT_CHOICES:
            raise _bad("init", self.init, f"choose one of {', '.join(INIT_CHOICES)}")
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", self.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
        _positive("learning_rate", self.learning_rate)
        for name in ("momentum", "beta1", "beta2", "rho"):
            _in_range(name, getattr(self, name), 0, 1, "a number in [0, 1)")
        _positive("epsilon", self.epsilon)

    def _validate_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise _bad("schedule", self.schedule, f"choose one of {', '.join(SCHEDULES)}")
        _in_range("lr_decay", self.lr_decay, 0, math.inf, "a number >= 0")
        _positive_int("step_size", self.step_size)
        if not (_is_number(self.gamma) and 0 < self.gamma <= 1):
            raise _bad("gamma", self.gamma, "use a number in (0, 1]")
        _in_range("warmup_epochs", self.warmup_epochs, 0, math.inf, "a number >= 0")
        if not (_is_number(self.min_lr) and 0 <= self.min_lr <= self.learning_rate):
            raise _bad("min_lr", self.min_lr, "use a number in [0, learning_rate]")

    def _validate_training(self) -> None:
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        _in_range("l2", self.l2, 0, math.inf, "a number >= 0")
        _in_range("input_dropout", self.input_dropout, 0, 1, "a probability in [0, 1)")
        if self.clip_norm is not None:
            _positive("clip_norm", self.clip_norm)

    def _validate_stopping(self) -> None:
        _positive_int("patience", self.patience)
        if self.monitor not in MONITORS:
            raise _bad("monitor", self.monitor, f"choose one of {', '.join(MONITORS)}")
        _in_range("min_delta", self.min_delta, 0, math.inf, "a number >= 0")
        if not (_is_number(self.validation_fraction) and 0 < self.validation_fraction < 1):
            raise _bad("validation_fraction", self.validation_fraction, "use a number in (0, 1)")

    def _validate_seed(self) -> None:
        seed = self.random_state
        if seed is None:
            return
        if (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or not 0 <= seed <= limits.MAX_SEED
        ):
            raise _bad("random_state", seed, f"use None or a whole number in 0..{limits.MAX_SEED}")

    def _validated_augmenter(self):
        if not self.augment:
            return None
        if not isinstance(self.augment, dict):
            raise _bad("augment", self.augment, "use None or a dict of Augmenter settings")
        try:
            return Augmenter(**self.augment)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                "augment", f"augment={self.augment!r} is not allowed: {exc}"
            ) from None

    def _validated_stack(self) -> dict[str, Any]:
        """The hidden stack as layer dicts (input dropout first), from ``layers`` or the dense
        shorthand; every layer's type, keys and settings checked (shapes are checked in ``fit``,
        or here when ``input_shape`` is given)."""
        if not (_is_number(self.leaky_slope) and 0 <= self.leaky_slope < 1):
            raise _bad("leaky_slope", self.leaky_slope, "use a number in [0, 1)")
        input_shape = self._validated_input_shape()
        if self.layers is None:
            widths, specs = self._dense_shorthand()
        else:
            widths, specs = None, self._explicit_stack()
        prefix = []
        if self.input_dropout > 0:
            prefix = [{"type": "dropout", "rate": float(self.input_dropout)}]
        cfg = {"layers": widths, "specs": prefix + specs, "n_prefix": len(prefix)}
        cfg["images"] = any(s["type"] in IMAGE_LAYERS for s in specs)
        cfg["input_shape"] = input_shape
        if input_shape is not None:
            self._stack_for(cfg, input_shape if cfg["images"] else (math.prod(input_shape),), 2)
        return cfg

    def _validated_input_shape(self) -> tuple[int, ...] | None:
        shape = self.input_shape
        if shape is None:
            return None
        if not (
            isinstance(shape, (list, tuple))
            and len(shape) == 3
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
            and min(shape) > 0
        ):
            raise _bad(
                "input_shape",
                shape,
                "use None or [height, width, channels] of positive whole numbers, e.g. [28, 28, 1]",
            )
        return tuple(int(s) for s in shape)

    def _dense_shorthand(self) -> tuple[list[int], list[dict]]:
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
        widths = [int(w) for w in layers]
        acts = _per_layer("activation", self.activation, len(widths))
        for a in acts:
            if a not in ACTIVATIONS:
                raise _bad("activation", a, f"choose one of {', '.join(ACTIVATIONS)}")
        dropouts = [float(p) for p in _per_layer("dropout", self.dropout, len(widths))]
        for p in dropouts:
            _in_range("dropout", p, 0, 1, "a probability in [0, 1)")
        specs: list[dict] = []
        for width, act, p in zip(widths, acts, dropouts, strict=True):
            specs.append({"type": "dense", "units": width})
            specs.append(self._activation_spec(act))
            if p > 0:
                specs.append({"type": "dropout", "rate": p})
        return widths, specs

    def _activation_spec(self, name: str) -> dict:
        if name == "leaky_relu":
            return {"type": name, "slope": float(self.leaky_slope)}
        return {"type": name}

    def _explicit_stack(self) -> list[dict]:
        stack = self.layers
        if isinstance(stack, (str, bytes, dict)) or not isinstance(stack, (list, tuple)):
            raise _bad(
                "layers", stack, "use None or a list of layer dicts such as {'type': 'relu'}"
            )
        specs = []
        for index, spec in enumerate(stack):
            if isinstance(spec, dict) and spec.get("type") == "leaky_relu" and "slope" not in spec:
                spec = {**spec, "slope": float(self.leaky_slope)}
            try:
                specs.append(make_layer(spec).spec())
            except ValueError as exc:
                kind = spec.get("type") if isinstance(spec, dict) else type(spec).__name__
                raise ParameterError("layers", f"layers: layer {index} ({kind}): {exc}.") from None
        return specs

    def _too_many(self, param: str, count: int) -> ParameterError:
        return ParameterError(
            param,
            f"{param}: the network would have {count:,} parameters; the limit is "
            f"{limits.MAX_PARAMETERS:,} (nn.core.limits.MAX_PARAMETERS). Use fewer or "
            f"narrower layers.",
        )

    @property
    def _stack_param(self) -> str:
        return "hidden_layers" if self.layers is None else "layers"

    def _stack_for(self, cfg: dict, stack_input: tuple[int, ...], n_classes: int) -> Sequential:
        """The stack for this input shape and number of classes, built (shapes checked, nothing
        allocated); ``ParameterError`` naming the layer and the fault, or a too-large network."""
        specs = [*cfg["specs"], {"type": "dense", "units": int(n_classes)}]
        try:
            net = Sequential(specs, stack_input, cfg.get("dtype", np.dtype(self.dtype)))
        except StackError as exc:
            index = exc.index - cfg["n_prefix"]
            if exc.index == len(specs) - 1:
                where = "the output layer (dense)"
            elif index < 0:
                where = "input_dropout"
            else:
                where = f"layer {index} ({exc.kind})"
            raise ParameterError(
                self._stack_param, f"{self._stack_param}: {where}: {exc.fault}."
            ) from None
        if net.n_parameters > limits.MAX_PARAMETERS:
            raise self._too_many(self._stack_param, net.n_parameters)
        return net

    # ------------------------------------------------------------------ shapes and memory
    def _resolve_input_shape(self, tail: tuple[int, ...], cfg: dict) -> tuple[int, ...]:
        """The shape the stack sees for data rows of shape ``tail`` (``(d,)`` or ``(h, w, c)``)."""
        given = cfg["input_shape"]
        d = math.prod(tail)
        if len(tail) == 3:
            if given is not None and tuple(given) != tuple(tail):
                raise _bad("input_shape", list(given), f"X holds images of shape {list(tail)}")
            image = tuple(tail)
        elif given is not None:
            if math.prod(given) != d:
                raise _bad("input_shape", list(given), f"X has {d} features per row")
            image = tuple(given)
        else:
            side = math.isqrt(d)
            image = (side, side, 1) if side * side == d else None
        if not cfg["images"]:
            return (d,)
        if image is None:
            raise ParameterError(
                "input_shape",
                f"input_shape: a convolution or pooling stack needs images, and {d} features "
                f"are not a square greyscale image; give input_shape=[height, width, channels] "
                f"or X of shape (n, height, width, channels).",
            )
        return image

    def estimate_memory(self, n_features_or_input_shape, n_classes: int) -> dict[str, int]:
        """Bytes training would need, from the shapes alone (nothing is allocated): parameters,
        gradients, optimizer state, snapshots (the last good and the best weights), per-batch
        buffers (every layer's, im2col included, for the training batch and an evaluation chunk)
        and their total. ``n_features_or_input_shape`` is ``784`` or ``(28, 28, 1)``."""
        cfg = self._validated()
        tail = n_features_or_input_shape
        tail = (int(tail),) if isinstance(tail, (int, np.integer)) else tuple(int(s) for s in tail)
        net = self._stack_for(cfg, self._resolve_input_shape(tail, cfg), n_classes)
        return self._memory(net, cfg)

    def check_size(self, n_features_or_input_shape, n_classes: int) -> dict[str, int]:
        """``estimate_memory``, refusing as ``fit`` does: ``ParameterError`` naming
        ``hidden_layers`` or ``layers`` when the network passes ``MAX_PARAMETERS`` or its
        training passes ``MAX_TRAINING_BYTES`` (the estimate in MB/GB in the message)."""
        cfg = self._validated()
        tail = n_features_or_input_shape
        tail = (int(tail),) if isinstance(tail, (int, np.integer)) else tuple(int(s) for s in tail)
        net = self._stack_for(cfg, self._resolve_input_shape(tail, cfg), n_classes)
        self._check_memory(net, cfg)
        return self._memory(net, cfg)

    def describe_stack(self, n_features_or_input_shape, n_classes: int) -> list[dict[str, Any]]:
        """Every layer of the network for this input, the output layer included: ``index``,
        ``type``, ``spec`` (its dict), ``output_shape`` and ``parameters``; nothing allocated."""
        cfg = self._validated()
        tail = n_features_or_input_shape
        tail = (int(tail),) if isinstance(tail, (int, np.integer)) else tuple(int(s) for s in tail)
        net = self._stack_for(cfg, self._resolve_input_shape(tail, cfg), n_classes)
        return [
            {
                "index": i,
                "type": layer.kind,
                "spec": layer.spec(),
                "output_shape": list(layer.output_shape),
                "parameters": layer.n_parameters,
            }
            for i, layer in enumerate(net.layers)
        ]

    def _memory(self, net: Sequential, cfg: dict) -> dict[str, int]:
        itemsize = cfg["dtype"].itemsize
        n_params = net.n_parameters
        slots = len(OPTIMIZERS[self.optimizer].slots)
        d = math.prod(net.input_shape)
        bs = int(self.batch_size)
        chunk = self._eval_chunk(net)
        buffers = (bs + chunk) * d * itemsize
        buffers += net.buffer_bytes(bs, keep=True) + net.buffer_bytes(chunk, keep=False)
        state = sum(math.prod(s) for layer in net.layers for s in layer.state_shapes())
        parameters = (n_params + state) * itemsize
        optimizer = slots * n_params * itemsize + min(CHUNK, n_params) * itemsize
        snapshots = 2 * (parameters + slots * n_params * itemsize)
        out = {
            "n_parameters": n_params,
            "parameters": parameters,
            "gradients": n_params * itemsize,
            "optimizer": optimizer,
            "snapshots": snapshots,
            "buffers": int(buffers),
        }
        out["total"] = int(sum(v for k, v in out.items() if k != "n_parameters"))
        return out

    def _eval_chunk(self, net: Sequential) -> int:
        """Rows per evaluation chunk: ``_EVAL_CHUNK``, fewer when the stack's buffers per row
        would pass ``_EVAL_BUFFER_BYTES`` (convolutions), never fewer than a batch."""
        per_row = net.buffer_bytes(1, keep=False) + math.prod(net.input_shape) * net.dtype.itemsize
        fits = max(_EVAL_BUFFER_BYTES // max(per_row, 1), 1)
        return int(min(_EVAL_CHUNK, max(fits, min(int(self.batch_size), _EVAL_CHUNK))))

    def _check_memory(self, net: Sequential, cfg: dict) -> None:
        need = self._memory(net, cfg)
        if need["total"] > limits.MAX_TRAINING_BYTES:
            parts = ", ".join(
                f"{k} {format_bytes(v)}"
                for k, v in need.items()
                if k not in ("total", "n_parameters")
            )
            raise ParameterError(
                self._stack_param,
                f"{self._stack_param}: training this network needs about "
                f"{format_bytes(need['total'])} ({parts}); the limit is "
                f"{format_bytes(limits.MAX_TRAINING_BYTES)} (NN_MAX_TRAINING_BYTES). Use fewer "
                f"or smaller layers, or a smaller batch_size.",
            )

    # ------------------------------------------------------------------ state
    @property
    def layers_(self) -> list:
        """The fitted stack's layers, the output dense layer last."""
        return self._net.layers

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The dense layers' weight matrices ``(inputs, units)``, in order."""
        return [layer.params[0] for layer in self._net.layers if isinstance(layer, Dense)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The dense layers' biases, in order."""
        return [layer.params[1] for layer in self._net.layers if isinstance(layer, Dense)]

    @property
    def layer_sizes_(self) -> list[int]:
        """The input size, then every dense layer's width (the classes last)."""
        return [self.n_features_in_, *[w.shape[1] for w in self.coefs_]]

    @property
    def n_parameters_(self) -> int:
        return int(self._net.n_parameters)

    @property
    def _flat_params(self) -> np.ndarray:
        return self._net.flat_params

    def _is_fitted(self) -> bool:
        return hasattr(self, "_net")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError("This NeuralNetwork is not fitted yet: call fit(X, y) first.")

    def _params(self) -> list[np.ndarray]:
        return self._net.params

    def _initialize(self, tail: tuple[int, ...], classes: np.ndarray, cfg: dict) -> None:
        """Build the stack for rows of shape ``tail``, check its size and memory, then allocate
        and initialise it from the fit's generator."""
        shape = self._resolve_input_shape(tail, cfg)
        net = self._stack_for(cfg, shape, len(classes))
        self._check_memory(net, cfg)
        net.allocate()
        net.initialize(self._rng, self.init)
        self._net = net
        self.classes_ = classes
        self.input_shape_ = shape
        self.n_features_in_ = math.prod(shape)
        self.n_iter_ = 0
        self.history_ = {k: [] for k in _HISTORY_KEYS}
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

    def __getstate__(self) -> dict[str, Any]:
        # Pickle ships settings and named arrays, never the layer objects or their buffers;
        # unpickling builds the stack again around fresh flat arrays.
        state = self.__dict__.copy()
        state.pop("_work", None)
        net = state.pop("_net", None)
        if net is not None:
            state["_net_arrays"] = (
                net.specs(),
                net.input_shape,
                net.dtype.str,
                [p for p in net.params],
                dict(net.named_state()),
            )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop("_net_arrays", None)
        self.__dict__.update(state)
        if packed is not None:
            specs, shape, dtype, params, named_state = packed
            net = Sequential(specs, shape, np.dtype(dtype))
            net.allocate()
            for p, value in zip(net.params, params, strict=True):
                p[...] = value
            net.load_state(named_state)
            self._net = net

    # ------------------------------------------------------------------ input handling
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        """``X`` as a 2-D array of rows (images ``(n, h, w, c)`` are read as their flattened
        rows, a free view for contiguous data)."""
        X = np.asarray(X)
        if X.ndim not in (2, 4):
            raise ValueError(
                f"{name} must be a 2-D array (samples x features) or 4-D images (samples x "
                f"height x width x channels); got shape {X.shape}."
            )
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no rows.")
        if X.dtype.kind not in "uif" or X.dtype == np.bool_:
            raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}.")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        if self._is_fitted():
            shape = self.input_shape_
            if X.ndim == 4 and len(shape) == 3 and X.shape[1:] != tuple(shape):
                raise ValueError(
                    f"{name} holds images of shape {X.shape[1:]} but the model expects {shape}."
                )
            features = math.prod(X.shape[1:])
            if features != self.n_features_in_:
                raise ValueError(
                    f"{name} has {features} features but the model expects {self.n_features_in_}."
                )
        return X

    @staticmethod
    def _rows(X: np.ndarray) -> np.ndarray:
        return X.reshape(X.shape[0], -1) if X.ndim != 2 else X

    def _to_float(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Convert a slice of input to the model's float dtype in ``out``; uint8 is scaled to
        [0, 1]."""
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
    def _input_buffer(self, n: int) -> np.ndarray:
        """The float input rows for batches of ``n``, made once per batch size."""
        buf = self._work.get(n)
        if buf is None:
            buf = self._work[n] = np.empty((n, self.n_features_in_), self._net.dtype)
        return buf

    def _release_buffers(self) -> None:
        self._work = {}
        self._net.clear_buffers()

    def _decayed(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(weight, its gradient) of every layer the L2 penalty applies to (dense and conv)."""
        return [
            (layer.params[0], layer.grads[0] if layer.grads else None)
            for layer in self._net.layers
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
        net = self._net
        logits = net.forward(x, training=training, keep=True, rng=self._rng)
        correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
        loss, delta = softmax_cross_entropy(logits, y, grad_out=logits)
        net.backward(delta)
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
        return self._net.forward(x)

    def _chunks(self, X: np.ndarray):
        """Yield ``(slice, float batch)`` over ``X`` in chunks, converting uint8 per chunk."""
        step = self._eval_chunk(self._net)
        for start in range(0, X.shape[0], step):
            part = self._rows(X[start : start + step])
            buf = self._input_buffer(part.shape[0])
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
        cfg = self._validated()
        continuing = self.warm_start and self._is_fitted()
        X = self._check_X(X)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must be 1-D with one label per row of X ({X.shape[0]}); got shape {y.shape}."
            )
        if continuing:
            self._continue(cfg, X.shape[1:])
        else:
            classes = np.unique(y)
            if classes.size < 2:
                raise ValueError(f"y has {classes.size} class; at least 2 are needed.")
            self._rng = np.random.default_rng(self.random_state)
            self._cfg = cfg
            self._initialize(X.shape[1:], classes, cfg)
        X = self._rows(X)
        X, y_idx, X_val, yv_idx = self._training_sets(X, self._encode(y), X_val, y_val)
        if self.batch_size > X.shape[0]:
            raise _bad(
                "batch_size",
                self.batch_size,
                f"use at most the number of training samples ({X.shape[0]})",
            )
        self._work: dict[int, np.ndarray] = {}
        self._net.attach_gradients()
        self._grads = self._net.grads
        # Overflow is detected and handled as divergence; NumPy need not warn about it too.
        with np.errstate(over="ignore", invalid="ignore"):
            self._train_loop(X, y_idx, X_val, yv_idx, callback)
        return self

    def _continue(self, cfg: dict, tail: tuple[int, ...]) -> None:
        """Check that ``warm_start`` continues the same network; keep its generator."""
        shape = self._resolve_input_shape(tail, cfg)
        specs = [*cfg["specs"], {"type": "dense", "units": len(self.classes_)}]
        fitted = self._net.specs()
        if (
            Sequential(specs, shape, cfg["dtype"]).specs() != fitted
            or tuple(shape) != tuple(self.input_shape_)
            or self._net.dtype != cfg["dtype"]
        ):
            what = "hidden_layers" if self.layers is None else "layers"
            raise ParameterError(
                self._stack_param,
                f"warm_start needs the same {what}, input and dtype as the fitted model "
                f"({self._described(fitted)}, {self._net.dtype}); got "
                f"{self._described(specs)}, {cfg['dtype']}.",
            )
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(
                None if self.random_state is None else [self.random_state, self.n_iter_]
            )
        if self.optimizer_.name != self.optimizer:
            self.optimizer_ = self._make_optimizer()
        self._cfg = cfg

    def _described(self, specs: list[dict]) -> str:
        if self.layers is None:
            return str([s["units"] for s in specs if s["type"] == "dense"][:-1])
        return str(specs[:-1])

    def _training_sets(self, X, y_idx, X_val, y_val):
        """Training and validation sets: ``X_val``/``y_val`` as given, a held-out part of ``X``
        for early stopping without them, or no validation set."""
        if X_val is None and y_val is None and self.early_stopping:
            return self._hold_out(X, y_idx)
        if (X_val is None) != (y_val is None):
            raise ValueError("Give both X_val and y_val, or neither.")
        if X_val is None:
            return X, y_idx, None, None
        X_val = self._rows(self._check_X(X_val, "X_val"))
        yv_idx = self._encode(y_val, "y_val")
        if yv_idx.shape[0] != X_val.shape[0]:
            raise ValueError(f"y_val has {yv_idx.shape[0]} labels for {X_val.shape[0]} rows.")
        return X, y_idx, X_val, yv_idx

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
        n, bs = X.shape[0], int(self.batch_size)
        run = _Run(
            first_epoch=self.n_iter_,
            last_epoch=self.n_iter_ + int(self.epochs),
            n_batches=math.ceil(n / bs),
            start=time.perf_counter(),
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
        self._net.detach_gradients()
        del self._grads

    def _batch_input(self, X: np.ndarray, idx: np.ndarray, dtype) -> np.ndarray:
        augmenter = self._cfg["augmenter"]
        if augmenter is None:
            return self._to_float(X[idx], self._input_buffer(idx.size))
        xb = augmenter(X[idx], rng=self._rng)
        return xb.astype(dtype) if xb.dtype != dtype else xb

    def _run_batches(self, X, y_idx, order, epoch, run: _Run, callback) -> dict[str, Any]:
        """One epoch's batches: forward, backward, clipping and the optimizer's step."""
        bs, n_batches = int(self.batch_size), run.n_batches
        params, flat = self._params(), (self._net.flat_params, self._net.flat_grads)
        dtype, hist = self._net.dtype, self.history_
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

    def _diverging(self, loss, run: _Run, epoch: int, batch: int, lr: float, callback) -> bool:
        """Whether the batch loss diverged (not finite, or beyond ``run.loss_limit``); if so,
        tell the callback, restore the last good weights and explain."""
        if run.loss_limit == math.inf and math.isfinite(loss):
            base = max(math.log(len(self.classes_)), loss)
            run.loss_limit = DIVERGENCE_FACTOR * base
        if math.isfinite(loss) and loss <= run.loss_limit:
            return False
        self._tell_diverged(callback, epoch, batch, run, loss, lr)
        self._restore(run.safe)
        self._diverged(epoch, batch, loss, lr)
        return True

    def _tell_diverged(self, callback, epoch: int, batch: int, run: _Run, loss, lr) -> None:
        """A ``kind="diverged"`` event while the weights are still those that diverged (its
        return value is ignored: training stops)."""
        if callback is not None:
            event = TrainingEvent(
                "diverged",
                epoch + 1,
                run.last_epoch,
                batch + 1,
                run.n_batches,
                float(loss),
                math.nan,
                None,
                None,
                lr,
                0.0,
                time.perf_counter() - run.start,
            )
            callback(event)

    def _batch_callback(self, callback, epoch, b, run: _Run, sums, loss) -> bool:
        elapsed = time.perf_counter() - run.epoch_start
        seen = sums["seen"]
        event = TrainingEvent(
            "batch",
            epoch + 1,
            run.last_epoch,
            b + 1,
            run.n_batches,
            loss,
            sums["correct"] / seen,
            None,
            None,
            sums["lr"],
            seen / max(elapsed, 1e-9),
            time.perf_counter() - run.start,
        )
        if not callback(event):
            return False
        self.stop_reason_ = "callback"
        self.stop_message_ = f"Stopped on request in epoch {epoch + 1}."
        return True

    def _end_epoch(self, epoch, run: _Run, sums, X_val, yv_idx, y_idx, callback) -> bool:
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
        if not math.isfinite(end_loss) or not np.isfinite(self._net.flat_params).all():
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

    def _epoch_callback(self, callback, epoch, run: _Run, sums, seconds, val_loss, val_acc):
        seen = sums["seen"]
        event = TrainingEvent(
            "epoch",
            epoch + 1,
            run.last_epoch,
            run.n_batches,
            run.n_batches,
            sums["loss"] / seen,
            sums["correct"] / seen,
            val_loss,
            val_acc,
            sums["lr"],
            seen / max(seconds, 1e-9),
            time.perf_counter() - run.start,
        )
        if not callback(event):
            return False
        self.stop_reason_ = "callback"
        self.stop_message_ = f"Stopped on request after epoch {epoch + 1}."
        return True

    def _early_stop(self, epoch, run: _Run, val_loss, val_acc, stopping: bool) -> bool:
        score = val_loss if self.monitor == "val_loss" else -val_acc
        if run.best_score is None or score < run.best_score - self.min_delta:
            run.best_score, run.waited, run.best = score, 0, run.safe
            return False
        run.waited += 1
        if run.waited < self.patience or stopping:
            return False
        self.stop_reason_ = "early_stopping"
        self.stop_message_ = (
            f"Early stopping after epoch {epoch + 1}: {self.monitor} did not "
            f"improve for {self.patience} epochs; restored the best weights "
            f"(epoch {epoch + 1 - run.waited})."
        )
        return True

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

    def _snapshot(self) -> tuple:
        scalars, arrays = self.optimizer_.state_dict()
        return (
            [p.copy() for p in self._params()],
            (scalars, {k: v.copy() for k, v in arrays.items()}),
            {k: v.copy() for k, v in self._net.named_state()},
        )

    def _restore(self, snap) -> None:
        values, (scalars, arrays), state = snap
        for p, v in zip(self._params(), values, strict=True):
            p[...] = v
        self.optimizer_.load_state_dict(scalars, {k: v.copy() for k, v in arrays.items()})
        self._net.load_state(state)

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
        """Class probabilities, one row per sample (rows sum to 1), columns in ``classes_``
        order."""
        self._ready()
        X = self._check_X(X)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=self._net.dtype)
        for part, xb in self._chunks(X):
            softmax(self._forward_eval(xb), out=out[part])
        self._release_buffers()
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
        """The training objective on ``(X, y)`` without dropout (batch norm on its running
        statistics), and copies of its gradients in ``_params()`` order (``[W0, b0, W1, b1,
        ...]`` for a dense net), for gradient checks and teaching."""
        self._ready()
        X = self._rows(self._check_X(X))
        xb = self._to_float(X, np.empty(X.shape, self._net.dtype))
        self._net.attach_gradients()
        self._grads = self._net.grads
        try:
            loss, _, grads = self._loss_and_grads(xb, self._encode(y), training=False)
            copies = [g.copy() for g in grads]
        finally:
            self._release_buffers()
            self._net.detach_gradients()
            del self._grads
        return loss, copies

    def layer_outputs(self, X) -> list[tuple[str, np.ndarray]]:
        """``(name, output)`` of every layer of the stack for ``X`` (no dropout), feature maps
        ``(n, h, w, c)`` included, in order; names are ``"<index> <type>"``."""
        self._ready()
        X = self._rows(self._check_X(X))
        x = self._to_float(X, np.empty(X.shape, self._net.dtype))
        record: list[np.ndarray] = []
        self._net.forward(x, record=record)
        self._release_buffers()
        return [
            (f"{i} {layer.kind}", out)
            for i, (layer, out) in enumerate(zip(self._net.layers, record, strict=True))
        ]

    def activations(self, X) -> list[np.ndarray]:
        """The output of every activation layer for ``X`` (no dropout): the hidden layers'
        outputs of a dense net, the activated feature maps of a convolutional one."""
        return [
            out
            for layer, (_, out) in zip(self._net.layers, self.layer_outputs(X), strict=True)
            if isinstance(layer, ActivationLayer)
        ]

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able metadata and arrays named by layer (``layer3.conv2d.weight``,
        ``layer4.batchnorm.running_mean``, ``opt.m.layer3.conv2d.weight``) describing the fitted
        model (see ``nn.io.model_files``)."""
        self._check_fitted()
        opt_scalars, opt_arrays = self.optimizer_.state_dict()
        net = self._net
        meta = {
            "params": self.get_params(),
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "n_features_in": int(self.n_features_in_),
            "input_shape": [int(s) for s in self.input_shape_],
            "layer_sizes": self.layer_sizes_,
            "stack": net.specs(),
            "n_iter": int(self.n_iter_),
            "history": {k: list(v) for k, v in self.history_.items()},
            "optimizer": opt_scalars,
            "stop_reason": self.stop_reason_,
            "stop_message": self.stop_message_,
            "best_val_accuracy": self.best_val_accuracy_,
        }
        names = net.param_names()
        arrays = dict(net.named_parameters())
        arrays.update(net.named_state())
        for key, value in opt_arrays.items():
            slot, index = key.rsplit(".", 1)
            arrays[f"opt.{slot}.{names[int(index)]}"] = value
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> NeuralNetwork:
        """Rebuild a fitted model from ``to_state``'s output, or from the arrays of the earlier
        format (``coef_<i>``, ``intercept_<i>``, ``opt.<slot>.<i>``); checks names and shapes."""
        known = set(cls._param_names())
        params = meta["params"]
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict of hyperparameters, not {params!r}.")
        model = cls(**{k: v for k, v in params.items() if k in known})
        cfg = model._validated()
        model.classes_ = _classes(meta)
        tail = meta.get("input_shape") or [meta["n_features_in"]]
        shape = model._resolve_input_shape(tuple(int(s) for s in tail), cfg)
        net = model._stack_for(cfg, shape, model.classes_.size)
        legacy = any(k.startswith("coef_") for k in arrays)
        sizes = meta.get("layer_sizes")
        if legacy and sizes is not None and [int(s) for s in sizes[1:-1]] != cfg["layers"]:
            raise ValueError(f"layer sizes {sizes} disagree with hidden_layers {cfg['layers']}.")
        if int(meta["n_features_in"]) != math.prod(shape):
            raise ValueError(
                f"n_features_in {meta['n_features_in']} disagrees with the input "
                f"shape {list(shape)}."
            )
        net.allocate()
        names = _legacy_names(net) if legacy else net.param_names()
        for name, p in zip(names, net.params, strict=True):
            p[...] = _array(arrays, name, p.shape)
        net.load_state(
            {name: _array(arrays, name, value.shape) for name, value in net.named_state()}
        )
        model._net = net
        model.input_shape_ = shape
        model.n_features_in_ = math.prod(shape)
        model.n_iter_ = int(meta.get("n_iter", 0))
        model.history_ = {k: list(v) for k, v in meta.get("history", {}).items()}
        model.optimizer_ = model._make_optimizer()
        model.optimizer_.load_state_dict(
            meta.get("optimizer", {}), _optimizer_arrays(arrays, names, legacy)
        )
        model.stop_reason_ = meta.get("stop_reason")
        model.stop_message_ = meta.get("stop_message", "")
        model.best_val_accuracy_ = meta.get("best_val_accuracy")
        model._cfg = cfg
        return model

    def save(self, path, **kwargs: Any):
        """Save to ``.npz`` (native) or ``.pkl``; see ``nn.io.model_files.save_model``."""
        from nn.io.model_files import save_model

        return save_model(self, path, **kwargs)


def _classes(meta: dict[str, Any]) -> np.ndarray:
    classes = np.asarray(meta["classes"])
    dtype = meta.get("classes_dtype")
    if dtype and np.dtype(dtype).kind in "iub" and classes.dtype.kind in "iu":
        classes = classes.astype(dtype)
    return classes


def _legacy_names(net: Sequential) -> list[str]:
    """``coef_<i>``/``intercept_<i>`` for the dense layers' weights and biases, in order."""
    names, i = [], 0
    for layer in net.layers:
        if layer.param_names and not isinstance(layer, Dense):
            raise ValueError(f"the earlier format holds dense layers only, not {layer.kind}.")
        if isinstance(layer, Dense):
            names += [f"coef_{i}", f"intercept_{i}"]
            i += 1
    return names


def _array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"the array {name!r} is missing.")
    arr = np.asarray(arrays[name])
    if arr.shape != tuple(shape):
        raise ValueError(f"the array {name!r} has shape {arr.shape}, expected {tuple(shape)}.")
    return arr


def _optimizer_arrays(arrays: dict, names: list[str], legacy: bool) -> dict[str, np.ndarray]:
    """Optimizer slots as ``<slot>.<parameter index>`` from either naming of the file."""
    opt = {k[4:]: np.asarray(v) for k, v in arrays.items() if k.startswith("opt.")}
    if legacy:
        return opt
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for key, value in opt.items():
        slot, _, name = key.partition(".")
        if name not in index:
            raise ValueError(f"the optimizer array 'opt.{key}' names no parameter.")
        out[f"{slot}.{index[name]}"] = value
    return out


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
