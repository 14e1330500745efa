"""From a ``NeuralNetwork``'s hyperparameters to what training uses: the validated ``Config``
(the hidden stack as layer dicts, the augmenter, the dtype), the input shape the stack sees for
some data, the stack built for it (shapes checked, nothing allocated), and the memory training
it would need. Every fault is a ``ParameterError`` naming the hyperparameter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.core import limits
from nn.core.augment import Augmenter
from nn.core.layers import IMAGE_LAYERS, make_layer
from nn.core.optimizers import CHUNK, OPTIMIZERS
from nn.core.params import PARAMS, ParameterError, check_names, check_values, defaults, refusal
from nn.core.sequential import Sequential, StackError

EVAL_CHUNK = 4096
EVAL_BUFFER_BYTES = 256 * 1024**2
"""Evaluation runs in chunks of up to ``EVAL_CHUNK`` rows whose buffers stay within this."""


@dataclass(frozen=True)
class Config:
    """The validated settings of one network."""

    widths: list[int] | None
    """The dense shorthand's hidden widths (``None`` for an explicit ``layers`` stack)."""
    specs: list[dict]
    """The hidden stack as layer dicts, input dropout first."""
    n_prefix: int
    """How many of ``specs`` come before the network's own layers (input dropout)."""
    images: bool
    """Whether the stack holds convolutions or pooling (it reads images)."""
    input_shape: tuple[int, ...] | None
    augmenter: Augmenter | None
    dtype: np.dtype
    optimizer: str
    batch_size: int
    schedule_settings: dict[str, Any]
    """The learning-rate schedule's settings (``nn.core.schedules.learning_rate``'s keywords)."""

    @property
    def stack_param(self) -> str:
        """The hyperparameter a fault of the stack is reported against."""
        return "hidden_layers" if self.widths is not None else "layers"


def configure(values: Mapping[str, Any]) -> Config:
    """Check every hyperparameter of ``values`` (the defaults fill what is missing) and return
    the settings training uses; ``ParameterError`` naming the first fault."""
    check_names(values)
    values = {**defaults(), **values}
    check_values(values)
    input_shape = _input_shape(values["input_shape"])
    if values["layers"] is None:
        widths, specs = _dense_shorthand(values)
    else:
        widths, specs = None, _explicit_stack(values["layers"], values["leaky_slope"])
    prefix = []
    if values["input_dropout"] > 0:
        prefix = [{"type": "dropout", "rate": float(values["input_dropout"])}]
    config = Config(
        widths=widths,
        specs=prefix + specs,
        n_prefix=len(prefix),
        images=any(s["type"] in IMAGE_LAYERS for s in specs),
        input_shape=input_shape,
        augmenter=_augmenter(values["augment"]),
        dtype=np.dtype(values["dtype"]),
        optimizer=values["optimizer"],
        batch_size=int(values["batch_size"]),
        schedule_settings={
            "decay": values["lr_decay"],
            "step_size": values["step_size"],
            "gamma": values["gamma"],
            "warmup_epochs": values["warmup_epochs"],
            "min_lr": values["min_lr"],
        },
    )
    if input_shape is not None:
        stack_input = input_shape if config.images else (math.prod(input_shape),)
        build_stack(config, stack_input, 2)
    return config


def _input_shape(shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if not (
        isinstance(shape, (list, tuple))
        and len(shape) == 3
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
        and min(shape) > 0
    ):
        raise refusal(
            "input_shape",
            shape,
            "use None or [height, width, channels] of positive whole numbers, e.g. [28, 28, 1]",
        )
    return tuple(int(s) for s in shape)


def _per_layer(name: str, value: Any, n: int) -> list:
    """A scalar applies to every hidden layer; a sequence must give one value per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise refusal(name, value, f"give one value per hidden layer ({n}) or a single value")
        return list(value)
    return [value] * n


def _dense_shorthand(values: Mapping[str, Any]) -> tuple[list[int], list[dict]]:
    layers = values["hidden_layers"]
    if isinstance(layers, (int, np.integer)):
        layers = (layers,)
    if not isinstance(layers, (list, tuple)) or not all(
        isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0 for w in layers
    ):
        raise refusal(
            "hidden_layers",
            values["hidden_layers"],
            "give a list of positive whole numbers of neurons, e.g. [256, 128]",
        )
    widths = [int(w) for w in layers]
    acts = _per_layer("activation", values["activation"], len(widths))
    for a in acts:
        PARAMS["activation"].check(a, values)
    dropouts = _per_layer("dropout", values["dropout"], len(widths))
    for p in dropouts:
        PARAMS["dropout"].check(p, values)
    specs: list[dict] = []
    for width, act, p in zip(widths, acts, dropouts, strict=True):
        specs.append({"type": "dense", "units": width})
        if act == "leaky_relu":
            specs.append({"type": act, "slope": float(values["leaky_slope"])})
        else:
            specs.append({"type": act})
        if p > 0:
            specs.append({"type": "dropout", "rate": float(p)})
    return widths, specs


def dense_specs(values: Mapping[str, Any]) -> list[dict]:
    """The dense shorthand of these settings (``hidden_layers`` with ``activation``,
    ``dropout`` and ``leaky_slope``) as the layer dicts the engine builds: dense, activation and
    dropout per hidden layer; ``ParameterError`` for a fault of them."""
    return _dense_shorthand({**defaults(), **values})[1]


def _explicit_stack(stack: Any, leaky_slope: float) -> list[dict]:
    if isinstance(stack, (str, bytes, dict)) or not isinstance(stack, (list, tuple)):
        raise refusal("layers", stack, "use None or a list of layer dicts such as {'type': 'relu'}")
    if len(stack) > limits.MAX_LAYERS:
        raise ParameterError(
            "layers", f"layers: {len(stack):,} layers; a stack has at most {limits.MAX_LAYERS}."
        )
    specs = []
    for index, spec in enumerate(stack):
        if isinstance(spec, dict) and spec.get("type") == "leaky_relu" and "slope" not in spec:
            spec = {**spec, "slope": float(leaky_slope)}
        try:
            specs.append(make_layer(spec).spec())
        except ValueError as exc:
            kind = spec.get("type") if isinstance(spec, dict) else type(spec).__name__
            raise ParameterError("layers", f"layers: layer {index + 1} ({kind}): {exc}.") from None
    return specs


def _augmenter(settings: Any) -> Augmenter | None:
    if not settings:
        return None
    if not isinstance(settings, dict):
        raise refusal("augment", settings, "use None or a dict of Augmenter settings")
    try:
        return Augmenter(**settings)
    except (TypeError, ValueError) as exc:
        raise ParameterError("augment", f"augment={settings!r} is not allowed: {exc}") from None


def input_shape_for(tail: Any, config: Config) -> tuple[int, ...]:
    """The shape the stack sees for data rows of shape ``tail`` (``784``, ``(784,)`` or
    ``(h, w, c)``): images for a convolution or pooling stack, flat rows otherwise."""
    tail = (int(tail),) if isinstance(tail, (int, np.integer)) else tuple(int(s) for s in tail)
    given = config.input_shape
    d = math.prod(tail)
    if len(tail) == 3:
        if given is not None and tuple(given) != tuple(tail):
            raise refusal("input_shape", list(given), f"X holds images of shape {list(tail)}")
        image = tuple(tail)
    elif given is not None:
        if math.prod(given) != d:
            raise refusal("input_shape", list(given), f"X has {d} features per row")
        image = tuple(given)
    else:
        side = math.isqrt(d)
        image = (side, side, 1) if side * side == d else None
    if not config.images:
        return (d,)
    if image is None:
        raise ParameterError(
            "input_shape",
            f"input_shape: a convolution or pooling stack needs images, and {d} features "
            f"are not a square greyscale image; give input_shape=[height, width, channels] "
            f"or X of shape (n, height, width, channels).",
        )
    return image


def build_stack(config: Config, stack_input: tuple[int, ...], n_classes: int) -> Sequential:
    """The stack for this input shape and number of classes, the output layer included, built
    with its shapes checked and nothing allocated; ``ParameterError`` naming the layer and the
    fault, or a network above ``limits.MAX_PARAMETERS``."""
    specs = [*config.specs, {"type": "dense", "units": int(n_classes)}]
    param = config.stack_param
    try:
        net = Sequential(specs, stack_input, config.dtype)
    except StackError as exc:
        index = exc.index - config.n_prefix
        if exc.index == len(specs) - 1:
            where = "the output layer (dense)"
        elif index < 0:
            where = "input_dropout"
        else:
            where = f"layer {index + 1} ({exc.kind})"
        raise ParameterError(param, f"{param}: {where}: {exc.fault}.") from None
    if net.n_parameters > limits.MAX_PARAMETERS:
        raise ParameterError(
            param,
            f"{param}: the network would have {net.n_parameters:,} parameters; the limit is "
            f"{limits.MAX_PARAMETERS:,} (nn.core.limits.MAX_PARAMETERS). Use fewer or "
            f"narrower layers.",
        )
    return net


@dataclass(frozen=True)
class LayerRow:
    """One layer of a stack as ``Sequential``'s shape inference sees it: its type, output
    shape and parameter count, or the fault that stops the stack there."""

    kind: str
    output_shape: tuple[int, ...] | None
    n_parameters: int
    fault: str = ""


def layer_rows(specs: list[Any], input_shape: tuple[int, ...]) -> list[LayerRow]:
    """A row per layer dict of ``specs`` for this input, from building the stack (nothing
    allocated); the layers after a faulty one have no shape."""
    try:
        built, faulty, fault = Sequential(specs, input_shape).layers, len(specs), ""
    except StackError as exc:
        built, faulty, fault = exc.built, exc.index, exc.fault
    rows = [LayerRow(x.kind, tuple(x.output_shape), int(x.n_parameters)) for x in built]
    for index in range(len(built), len(specs)):
        spec = specs[index]
        kind = str(spec.get("type", "?")) if isinstance(spec, dict) else "?"
        rows.append(LayerRow(kind, None, 0, fault if index == faulty else ""))
    return rows


def _layer_label(index: int, n_prefix: int, n_layers: int) -> str:
    """How a person reads layer ``index`` of a built stack of ``n_layers`` whose first
    ``n_prefix`` come from ``input_dropout``: "input", "1", "2", ... (the person's own layers,
    from 1, as the stack's messages number them), "output"."""
    if index < n_prefix:
        return "input"
    if index == n_layers - 1:
        return "output"
    return str(index - n_prefix + 1)


def stack_for(
    values: Mapping[str, Any], n_features_or_input_shape: Any, n_classes: int
) -> tuple[Sequential, Config]:
    """The stack these settings build for inputs ``784`` or ``(28, 28, 1)`` and ``n_classes``
    (checked, nothing allocated), and their config."""
    config = configure(values)
    shape = input_shape_for(n_features_or_input_shape, config)
    return build_stack(config, shape, n_classes), config


def describe_stack(
    values: Mapping[str, Any], n_features_or_input_shape: Any, n_classes: int
) -> list[dict[str, Any]]:
    """Every layer these settings build for this input, the output layer included: ``index``
    (from 0), ``label`` (how a person reads it: "input", "1", ..., "output"), ``type``,
    ``spec`` (its dict), ``output_shape`` and ``parameters``; nothing allocated."""
    net, config = stack_for(values, n_features_or_input_shape, n_classes)
    return [
        {
            "index": i,
            "label": _layer_label(i, config.n_prefix, len(net.layers)),
            "type": layer.kind,
            "spec": layer.spec(),
            "output_shape": list(layer.output_shape),
            "parameters": layer.n_parameters,
        }
        for i, layer in enumerate(net.layers)
    ]


def check_same_network(config: Config, stack_input: tuple[int, ...], fitted: Sequential) -> None:
    """``ParameterError`` unless these settings build the ``fitted`` stack again for this input
    (what ``warm_start`` continues): the same layers, input shape and dtype."""
    n_classes = fitted.layers[-1].spec()["units"]
    specs = [*config.specs, {"type": "dense", "units": n_classes}]
    if (
        Sequential(specs, stack_input, config.dtype).specs() == fitted.specs()
        and tuple(stack_input) == tuple(fitted.input_shape)
        and fitted.dtype == config.dtype
    ):
        return

    def described(stack: list[dict]) -> str:
        if config.widths is None:
            return str(stack[:-1])
        return str([s["units"] for s in stack if s["type"] == "dense"][:-1])

    param = config.stack_param
    raise ParameterError(
        param,
        f"warm_start needs the same {param}, input and dtype as the fitted model "
        f"({described(fitted.specs())}, {fitted.dtype}); got {described(specs)}, {config.dtype}.",
    )


def _format_bytes(n: float) -> str:
    """``n`` bytes as MB or GB (powers of 1024), for messages."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / 1024**2:.1f} MB"


def eval_chunk(net: Sequential, batch_size: int) -> int:
    """Rows per evaluation chunk: ``EVAL_CHUNK``, fewer when the stack's buffers per row would
    pass ``EVAL_BUFFER_BYTES`` (convolutions), never fewer than a batch."""
    per_row = net.buffer_bytes(1, keep=False) + math.prod(net.input_shape) * net.dtype.itemsize
    fits = max(EVAL_BUFFER_BYTES // max(per_row, 1), 1)
    return int(min(EVAL_CHUNK, max(fits, min(int(batch_size), EVAL_CHUNK))))


def memory(net: Sequential, config: Config) -> dict[str, int]:
    """Bytes training ``net`` would need, from the shapes alone: parameters (and layer state),
    gradients, optimizer state, snapshots (the last good and the best weights), per-batch
    buffers (every layer's, im2col included, for the training batch and an evaluation chunk),
    and their ``total``; ``n_parameters`` counts the parameters."""
    itemsize = config.dtype.itemsize
    n_params = net.n_parameters
    slots = len(OPTIMIZERS[config.optimizer].slots)
    d = math.prod(net.input_shape)
    bs = config.batch_size
    chunk = eval_chunk(net, bs)
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


def check_memory(net: Sequential, config: Config) -> dict[str, int]:
    """``memory``, refusing a network whose training passes ``limits.MAX_TRAINING_BYTES``
    (``ParameterError`` with the estimate, part by part)."""
    need = memory(net, config)
    if need["total"] > limits.MAX_TRAINING_BYTES:
        parts = ", ".join(
            f"{k} {_format_bytes(v)}" for k, v in need.items() if k not in ("total", "n_parameters")
        )
        raise ParameterError(
            config.stack_param,
            f"{config.stack_param}: training this network needs about "
            f"{_format_bytes(need['total'])} ({parts}); the limit is "
            f"{_format_bytes(limits.MAX_TRAINING_BYTES)} (NN_MAX_TRAINING_BYTES). Use fewer "
            f"or smaller layers, or a smaller batch_size.",
        )
    return need
