"""Every hyperparameter of ``NeuralNetwork``, declared once (like scikit-learn's
``_parameter_constraints``): its kind, default, allowed range or choices, label and help, the
section of the Train form it belongs to, when the form shows it, and how a search may vary it.

``NeuralNetwork`` validates its settings from ``PARAMS`` (``check_values``); the command line's
flags, the Train form's widgets and the Tune page's options are made from it. The structured
settings (``hidden_layers``, ``layers``, ``input_shape``, ``augment`` and the per-layer
``activation``/``dropout``) are checked where the stack is built (``nn.core.config``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core.activations import ACTIVATIONS
from nn.core.initializers import INIT_CHOICES
from nn.core.limits import MAX_DATASET_IMAGES, MAX_EPOCHS, MAX_SEED
from nn.core.optimizers import OPTIMIZERS
from nn.core.schedules import SCHEDULES

MONITORS = ("val_loss", "val_accuracy")
DTYPES = ("float32", "float64")


class ParameterError(ValueError):
    """A hyperparameter fault; ``param`` names the hyperparameter (for forms to route it)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def refusal(name: str, value: Any, allowed: str) -> ParameterError:
    """The error for ``name=value``, saying what is allowed."""
    return ParameterError(name, f"{name}={value!r} is not allowed: {allowed}.")


@dataclass(frozen=True)
class Interval:
    """Allowed values from ``low`` to ``high`` (``None``: unbounded; a string names another
    hyperparameter whose value is the bound). ``closed`` is "both", "left", "right" or
    "neither"; ``noun`` is what a value is called in messages."""

    low: float | None
    high: float | str | None
    closed: str = "left"
    noun: str = "number"

    def bounds(self, values: Mapping[str, Any]) -> tuple[float, float]:
        low = -math.inf if self.low is None else self.low
        high = self.high
        if isinstance(high, str):
            high = values[high]
        return low, math.inf if high is None else high

    def contains(self, value: float, values: Mapping[str, Any]) -> bool:
        low, high = self.bounds(values)
        above = value >= low if self.closed in ("both", "left") else value > low
        below = value <= high if self.closed in ("both", "right") else value < high
        return above and below

    def describe(self, integral: bool) -> str:
        noun = "whole number" if integral else self.noun
        if self.high is None:
            sign = ">=" if self.closed in ("both", "left") else ">"
            if sign == ">" and self.low == 0:
                return f"a {noun} greater than 0"
            return f"a {noun} {sign} {self.low:g}"
        if integral:
            return f"a {noun} in {self.low}..{self.high}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        high = self.high if isinstance(self.high, str) else f"{self.high:g}"
        return f"a {noun} in {left}{self.low:g}, {high}{right}"


@dataclass(frozen=True)
class Widget:
    """How the Train form shows a number: its step, display format and largest value (the
    form's practical range; the engine's own range is the ``Interval``)."""

    step: float = 1.0
    format: str | None = None
    max: float | None = None
    switch: str = ""
    """For an optional number: the label of the toggle that switches it on."""
    switch_help: str = ""
    on_value: float | None = None
    """The value it takes when switched on with no value given."""


@dataclass(frozen=True)
class Search:
    """How a search varies a hyperparameter by default (the Tune page's first settings, the
    ``tune`` command's space when none is given): ``kind`` "loguniform" or "uniform" between
    ``low`` and ``high``, or "choice" among ``chosen`` (of ``options`` when the choices are a
    fixed list; lists of widths for ``hidden_layers``). ``on``: searched unless a person says
    otherwise."""

    kind: str
    help: str
    low: float | None = None
    high: float | None = None
    options: tuple = ()
    chosen: tuple = ()
    on: bool = False

    def dimension(self) -> dict[str, Any]:
        """This default as a search dimension's dict (``nn.search.space.dimension_from_dict``)."""
        if self.kind == "choice":
            return {"type": "choice", "values": [_plain(v) for v in self.chosen]}
        return {"type": self.kind, "low": self.low, "high": self.high}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class Param:
    """One hyperparameter of ``NeuralNetwork``."""

    name: str
    kind: str
    """"float", "int", "bool" or "choice" (checked here, from ``interval`` or ``choices``);
    "widths" (hidden layer sizes), "stack" (layer dicts), "shape" (height, width, channels) or
    "augment" (Augmenter settings), checked where the stack is built (``nn.core.config``)."""
    default: Any
    label: str
    help: str
    section: str
    interval: Interval | None = None
    choices: tuple | None = None
    optional: bool = False
    """``None`` is allowed (the setting is off)."""
    per_layer: bool = False
    """A single value for every hidden layer, or a list of one per layer."""
    widget: Widget | None = None
    """How the Train form shows it (``None``: the form does not, or draws it itself)."""
    when: tuple[str, tuple] | None = None
    """``(other, values)``: the form shows it only when the hyperparameter ``other`` is (or,
    per layer, includes) one of ``values``."""
    search: Search | None = None
    """How the Tune page offers it (``None``: not offered there)."""
    fixed_in_search: str = ""
    """Why a search may not vary it (empty: it may)."""
    flag: bool = True
    """Whether ``python -m nn train`` has a flag for it."""
    aliases: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        """The command-line flag, ``--learning-rate``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, values: Mapping[str, Any]) -> None:
        """``ParameterError`` unless ``value`` is allowed (``values``: all the settings, for
        bounds that name another hyperparameter). Structured kinds are checked elsewhere."""
        if value is None and self.optional:
            return
        if self.kind in ("float", "int"):
            number = _is_int(value) if self.kind == "int" else _is_number(value)
            if not (number and self.interval.contains(value, values)):
                allowed = self.interval.describe(self.kind == "int")
                none = "None or " if self.optional else ""
                raise refusal(self.name, value, f"use {none}{allowed}")
        elif self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise refusal(self.name, value, "use True or False")
        elif self.kind == "choice" and value not in self.choices:
            raise refusal(self.name, value, f"choose one of {', '.join(self.choices)}")


def _is_number(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


_UNIT = Interval(0, 1)
_PROBABILITY = Interval(0, 1, noun="probability")
_POSITIVE = Interval(0, None, closed="neither")
_NON_NEGATIVE = Interval(0, None)
_OPTIMIZER = "optimizer"
_SCHEDULE = "schedule"

PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "hidden_layers",
            "widths",
            (128,),
            "Hidden layers",
            "Widths of the hidden layers, e.g. 256 128; none for softmax regression.",
            "layers",
            search=Search(
                "choice",
                "Choices separated by |, each a comma-separated list of layer widths, "
                "e.g. 128 | 256,128.",
                chosen=((64,), (128,), (256, 128)),
                on=True,
            ),
        ),
        Param(
            "activation",
            "choice",
            "relu",
            "Activation",
            "Hidden activation: one for all layers or one per layer.",
            "layers",
            choices=tuple(ACTIVATIONS),
            per_layer=True,
            search=Search(
                "choice", "Activations to try.", options=tuple(ACTIVATIONS), chosen=("relu", "tanh")
            ),
        ),
        Param(
            "leaky_slope",
            "float",
            0.01,
            "Leaky ReLU slope",
            "Slope of leaky ReLU for negative inputs, in [0, 1) (also of a leaky_relu layer of "
            "a stack that gives none).",
            "layers",
            interval=_UNIT,
            widget=Widget(0.01, "%.3f", 0.99),
            when=("activation", ("leaky_relu",)),
        ),
        Param(
            "init",
            "choice",
            "auto",
            "Initialisation",
            "How weights start: auto = He for ReLU-like layers, Xavier otherwise.",
            "layers",
            choices=tuple(INIT_CHOICES),
            widget=Widget(),
        ),
        Param(
            "optimizer",
            "choice",
            "adam",
            "Optimizer",
            "The update rule: sgd, momentum, nesterov, rmsprop or adam.",
            _OPTIMIZER,
            choices=tuple(OPTIMIZERS),
            widget=Widget(),
            search=Search(
                "choice",
                "Optimizers to try.",
                options=tuple(OPTIMIZERS),
                chosen=("adam", "momentum"),
            ),
        ),
        Param(
            "learning_rate",
            "float",
            1e-3,
            "Learning rate",
            "Step size of each update (> 0).",
            _OPTIMIZER,
            interval=_POSITIVE,
            widget=Widget(1e-4, "%.5f", 10.0),
            search=Search(
                "loguniform",
                "Log-uniform: every decade is as likely.",
                low=1e-4,
                high=1e-1,
                on=True,
            ),
        ),
        Param(
            "momentum",
            "float",
            0.9,
            "Momentum",
            "Fraction of the previous step kept by the momentum and nesterov optimizers, "
            "in [0, 1).",
            _OPTIMIZER,
            interval=_UNIT,
            widget=Widget(0.01, None, 0.999),
            when=(_OPTIMIZER, ("momentum", "nesterov")),
        ),
        Param(
            "beta1",
            "float",
            0.9,
            "Beta 1",
            "Decay of Adam's first-moment average, in [0, 1).",
            _OPTIMIZER,
            interval=_UNIT,
            widget=Widget(0.01, "%.4f", 0.9999),
            when=(_OPTIMIZER, ("adam",)),
        ),
        Param(
            "beta2",
            "float",
            0.999,
            "Beta 2",
            "Decay of Adam's second-moment average, in [0, 1).",
            _OPTIMIZER,
            interval=_UNIT,
            widget=Widget(0.001, "%.5f", 0.99999),
            when=(_OPTIMIZER, ("adam",)),
        ),
        Param(
            "rho",
            "float",
            0.9,
            "Rho",
            "Decay of RMSprop's squared-gradient average, in [0, 1).",
            _OPTIMIZER,
            interval=_UNIT,
            widget=Widget(0.01, "%.4f", 0.9999),
            when=(_OPTIMIZER, ("rmsprop",)),
        ),
        Param(
            "epsilon",
            "float",
            1e-8,
            "Epsilon",
            "Small number added to the denominator of RMSprop and Adam (> 0).",
            _OPTIMIZER,
            interval=_POSITIVE,
            widget=Widget(1e-8, "%.1e", 1.0),
            when=(_OPTIMIZER, ("adam", "rmsprop")),
        ),
        Param(
            "schedule",
            "choice",
            "constant",
            "Schedule",
            "How the learning rate changes over the epochs.",
            _SCHEDULE,
            choices=tuple(SCHEDULES),
            widget=Widget(),
        ),
        Param(
            "warmup_epochs",
            "float",
            0.0,
            "Warm-up epochs",
            "Ramp the learning rate up linearly over this many epochs (fractions allowed; "
            "0 = off).",
            _SCHEDULE,
            interval=_NON_NEGATIVE,
            widget=Widget(0.5, None, 100.0),
        ),
        Param(
            "lr_decay",
            "float",
            0.0,
            "Decay",
            "Decay of the inverse_time schedule: lr = lr0 / (1 + decay x epoch).",
            _SCHEDULE,
            interval=_NON_NEGATIVE,
            widget=Widget(0.01, "%.4f", 10.0),
            when=(_SCHEDULE, ("inverse_time",)),
        ),
        Param(
            "step_size",
            "int",
            10,
            "Step size (epochs)",
            "Epochs between the step schedule's drops by gamma.",
            _SCHEDULE,
            interval=_POSITIVE,
            widget=Widget(1, None, 1000),
            when=(_SCHEDULE, ("step",)),
        ),
        Param(
            "gamma",
            "float",
            0.5,
            "Gamma",
            "Factor of the step and exponential schedules, in (0, 1].",
            _SCHEDULE,
            interval=Interval(0, 1, closed="right"),
            widget=Widget(0.05, None, 1.0),
            when=(_SCHEDULE, ("step", "exponential")),
        ),
        Param(
            "min_lr",
            "float",
            0.0,
            "Minimum learning rate",
            "Where the cosine schedule ends (<= learning rate).",
            _SCHEDULE,
            interval=Interval(0, "learning_rate", closed="both"),
            widget=Widget(1e-5, "%.6f", 10.0),
            when=(_SCHEDULE, ("cosine",)),
        ),
        Param(
            "batch_size",
            "int",
            128,
            "Batch size",
            "Images per gradient step.",
            "training",
            interval=Interval(1, MAX_DATASET_IMAGES, closed="both"),
            widget=Widget(16, None, 70_000),
            search=Search(
                "choice",
                "Mini-batch sizes to try.",
                options=(16, 32, 64, 128, 256, 512),
                chosen=(32, 64, 128),
                on=True,
            ),
        ),
        Param(
            "epochs",
            "int",
            10,
            "Epochs",
            "Passes over the training images (per call of fit).",
            "training",
            interval=Interval(1, MAX_EPOCHS, closed="both"),
            widget=Widget(1, None, 1000),
            fixed_in_search="the number of epochs is the search budget: set epochs_per_trial "
            "instead",
        ),
        Param(
            "shuffle",
            "bool",
            True,
            "Shuffle",
            "Reshuffle the training set every epoch.",
            "training",
        ),
        Param(
            "l2",
            "float",
            0.0,
            "L2 penalty",
            "Weight decay: adds l2/2 x sum(W^2) over dense and conv weights to the loss (0 = off).",
            "regularisation",
            interval=_NON_NEGATIVE,
            widget=Widget(1e-5, "%.6f", 1.0),
            search=Search("loguniform", "Log-uniform weight penalty.", low=1e-6, high=1e-2),
        ),
        Param(
            "dropout",
            "float",
            0.0,
            "Dropout",
            "Probability of dropping each hidden neuron while training: one for all layers or "
            "one per layer (0 = off).",
            "regularisation",
            interval=_PROBABILITY,
            per_layer=True,
            search=Search(
                "uniform", "Uniform drop probability of every hidden layer.", low=0.0, high=0.3
            ),
        ),
        Param(
            "input_dropout",
            "float",
            0.0,
            "Input dropout",
            "Probability of dropping each input pixel while training (0 = off).",
            "regularisation",
            interval=_PROBABILITY,
            widget=Widget(0.05, None, 0.95),
        ),
        Param(
            "clip_norm",
            "float",
            None,
            "Max gradient norm",
            "Clip the gradient to this global L2 norm (> 0); none: no clipping.",
            "regularisation",
            interval=_POSITIVE,
            optional=True,
            widget=Widget(
                0.5,
                None,
                1000.0,
                switch="Gradient clipping",
                switch_help="Rescale the gradient when its global L2 norm is too large.",
                on_value=5.0,
            ),
        ),
        Param(
            "early_stopping",
            "bool",
            False,
            "Early stopping",
            "Stop when the validation metric stops improving and keep the best weights.",
            "regularisation",
            widget=Widget(),
        ),
        Param(
            "patience",
            "int",
            5,
            "Patience",
            "Epochs without improvement before stopping.",
            "regularisation",
            interval=_POSITIVE,
            widget=Widget(1, None, 100),
            when=("early_stopping", (True,)),
        ),
        Param(
            "monitor",
            "choice",
            "val_loss",
            "Monitor",
            "The validation metric that must improve.",
            "regularisation",
            choices=MONITORS,
            widget=Widget(),
            when=("early_stopping", (True,)),
        ),
        Param(
            "min_delta",
            "float",
            0.0,
            "Minimum improvement",
            "Smallest change of the monitored metric that counts as an improvement.",
            "regularisation",
            interval=_NON_NEGATIVE,
        ),
        Param(
            "validation_fraction",
            "float",
            0.1,
            "Validation fraction",
            "Held-out fraction for early stopping when there is no validation set.",
            "regularisation",
            interval=Interval(0, 1, closed="neither"),
        ),
        Param(
            "augment",
            "augment",
            None,
            "Augmentation",
            "None or the settings of an nn.core.augment.Augmenter (a dict) applied to each "
            "training batch.",
            "augmentation",
            flag=False,
        ),
        Param(
            "dtype",
            "choice",
            "float32",
            "Precision",
            "float32 (fast) or float64 (gradient checks).",
            "training",
            choices=DTYPES,
        ),
        Param(
            "warm_start",
            "bool",
            False,
            "Warm start",
            "When fitted already, fit continues from the current weights and optimizer.",
            "training",
            fixed_in_search="the search sets warm_start itself (successive halving continues "
            "trials)",
            flag=False,
        ),
        Param(
            "random_state",
            "int",
            None,
            "Seed",
            "Seeds initialisation, shuffling, dropout and augmentation: the same seed repeats a "
            "run; none for an unseeded run.",
            "training",
            interval=Interval(0, MAX_SEED, closed="both"),
            optional=True,
            widget=Widget(1, None, MAX_SEED),
            aliases=("--seed",),
        ),
        Param(
            "layers",
            "stack",
            None,
            "Layer stack",
            "The hidden stack instead of hidden_layers, activation and dropout: one line such "
            "as conv32k3,relu,pool2,conv64k3,relu,pool2,flatten,dense128,relu,dropout0.3 (also "
            "conv32k5s2same, avgpool2, bn, sigmoid, tanh, lrelu), or a JSON file of layer "
            "dicts; none for the dense shorthand.",
            "layers",
            optional=True,
        ),
        Param(
            "input_shape",
            "shape",
            None,
            "Input shape",
            "Image shape HEIGHTxWIDTHxCHANNELS for a stack with convolutions; none reads square "
            "greyscale images (784 -> 28x28x1).",
            "layers",
            optional=True,
        ),
    )
}


def defaults() -> dict[str, Any]:
    """Every hyperparameter's default, JSON-able (sequences as lists)."""
    return json_params({name: p.default for name, p in PARAMS.items()})


def json_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters (``NeuralNetwork.get_params()``, which returns them as given) in the JSON
    form model files, runs and searches hold: tuples as lists, NumPy numbers as Python numbers,
    containers copied."""
    return {name: _plain(value) for name, value in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_names(names: Any, known: Any = None) -> None:
    """``ParameterError`` for the first name that is not a hyperparameter (of ``known``, by
    default every name of ``PARAMS``)."""
    known = sorted(PARAMS if known is None else known)
    for name in names:
        if name not in known:
            raise ParameterError(
                name,
                f"{name!r} is not a parameter of NeuralNetwork: use one of {', '.join(known)}.",
            )


def check_values(values: Mapping[str, Any]) -> None:
    """Check every number, switch and choice of ``values`` (all the hyperparameters) against
    its entry in ``PARAMS``; ``ParameterError`` naming the first that is not allowed. Per-layer
    settings are checked layer by layer where the dense stack is built."""
    for name, param in PARAMS.items():
        if name in values and not param.per_layer:
            param.check(values[name], values)


def searchable() -> list[str]:
    """The hyperparameters a search may vary."""
    return [name for name, p in PARAMS.items() if not p.fixed_in_search]


def shown(param: Param, values: Mapping[str, Any]) -> bool:
    """Whether the form shows ``param`` for these settings (its ``when``)."""
    if param.when is None:
        return True
    other, allowed = param.when
    value = values.get(other)
    if isinstance(value, (list, tuple)):
        return any(v in allowed for v in value)
    return value in allowed
