"""The Train page's form: one dict ``st.session_state["train_config"]`` and its widgets.

``train_config`` (plain JSON-able values, survives page changes):
    stack_mode        "dense" (the quick form: ``layers``) or "stack" (``stack``)
    layers            list of {"units": int, "activation": str, "dropout": float}
    stack             list of layer dicts (``NeuralNetwork(layers=...)``), with ``stack_ids``
                      and ``stack_next_id`` for its editor (``ui.stack_editor``)
    init, leaky_slope
    optimizer, learning_rate, momentum, beta1, beta2, rho, epsilon
    schedule, lr_decay, step_size, gamma, warmup_epochs, min_lr
    batch_size, epochs, l2, input_dropout, clip (bool), clip_norm
    early_stopping (bool), patience, monitor, min_delta
    augment (bool), shift, rotation, scale, elastic_alpha, elastic_sigma
    split, val_fraction, test_fraction, train_size (0 = all), data_seed, random_state
    preset (name of the preset it came from, or "")

Functions (no maths, only mapping): ``default_config()``, ``config_from_preset(preset)``,
``to_model_kwargs(cfg)``, ``to_data_kwargs(cfg)``, ``validate(cfg, train_limit)`` ->
``{section: [messages]}``, ``apply_preset(name)`` (button callback), ``render_form(cfg, errors,
disabled)``. Widget keys start with ``tf_``; they only mirror ``train_config`` (a preset deletes
them so the widgets pick up the new values).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from nn.core.activations import ACTIVATIONS
from nn.core.config import configure
from nn.core.initializers import INIT_CHOICES
from nn.core.limits import MAX_SEED
from nn.core.network import NeuralNetwork
from nn.core.optimizers import OPTIMIZERS
from nn.core.params import MONITORS, json_params
from nn.core.schedules import SCHEDULES
from nn.services.training import check_network_size
from ui import stack_editor

SPLITS = ("standard", "80:10:10", "custom")
SECTIONS = ("layers", "optimizer", "schedule", "training", "regularisation", "augmentation", "data")
# which section a NeuralNetwork parameter's error is shown under
_PARAM_SECTION = {
    "hidden_layers": "layers",
    "layers": "layers",
    "input_shape": "layers",
    "activation": "layers",
    "leaky_slope": "layers",
    "init": "layers",
    "optimizer": "optimizer",
    "learning_rate": "optimizer",
    "momentum": "optimizer",
    "beta1": "optimizer",
    "beta2": "optimizer",
    "rho": "optimizer",
    "epsilon": "optimizer",
    "schedule": "schedule",
    "lr_decay": "schedule",
    "step_size": "schedule",
    "gamma": "schedule",
    "warmup_epochs": "schedule",
    "min_lr": "schedule",
    "batch_size": "training",
    "epochs": "training",
    "random_state": "training",
    "l2": "regularisation",
    "dropout": "regularisation",
    "input_dropout": "regularisation",
    "clip_norm": "regularisation",
    "patience": "regularisation",
    "monitor": "regularisation",
    "min_delta": "regularisation",
    "validation_fraction": "regularisation",
    "augment": "augmentation",
    "shift": "augmentation",
    "rotation": "augmentation",
    "scale": "augmentation",
    "elastic_alpha": "augmentation",
    "elastic_sigma": "augmentation",
    "probability": "augmentation",
}


def _layer(units: int = 128, activation: str = "relu", dropout: float = 0.0) -> dict:
    return {"units": int(units), "activation": activation, "dropout": float(dropout)}


def default_config() -> dict[str, Any]:
    """The default preset's settings."""
    from nn.services.presets import DEFAULT_PRESET, PRESETS

    return config_from_preset(PRESETS[DEFAULT_PRESET])


def config_from_preset(preset: Any) -> dict[str, Any]:
    """Form values from an ``nn.presets.Preset`` (or a dict with "model"/"data"), or defaults."""
    model = dict(
        getattr(preset, "model", None) or (preset or {}).get("model", {})
        if preset is not None
        else {}
    )
    data = dict(
        getattr(preset, "data", None) or (preset or {}).get("data", {})
        if preset is not None
        else {}
    )
    p = json_params(NeuralNetwork(**model).get_params())
    layers = p["hidden_layers"]
    layers = [layers] if isinstance(layers, int) else list(layers)
    acts = p["activation"] if isinstance(p["activation"], list) else [p["activation"]] * len(layers)
    drops = p["dropout"] if isinstance(p["dropout"], list) else [p["dropout"]] * len(layers)
    aug = p["augment"] or {}
    stack = copy.deepcopy(list(p["layers"] or []))
    return {
        "preset": getattr(preset, "name", "") if preset is not None else "",
        "stack_mode": "stack" if p["layers"] is not None else "dense",
        "stack": stack,
        "stack_ids": list(range(len(stack))),
        "stack_next_id": len(stack),
        "layers": [_layer(u, a, d) for u, a, d in zip(layers, acts, drops, strict=True)],
        "init": p["init"],
        "leaky_slope": float(p["leaky_slope"]),
        "optimizer": p["optimizer"],
        "learning_rate": float(p["learning_rate"]),
        "momentum": float(p["momentum"]),
        "beta1": float(p["beta1"]),
        "beta2": float(p["beta2"]),
        "rho": float(p["rho"]),
        "epsilon": float(p["epsilon"]),
        "schedule": p["schedule"],
        "lr_decay": float(p["lr_decay"]),
        "step_size": int(p["step_size"]),
        "gamma": float(p["gamma"]),
        "warmup_epochs": float(p["warmup_epochs"]),
        "min_lr": float(p["min_lr"]),
        "batch_size": int(p["batch_size"]),
        "epochs": int(p["epochs"]),
        "l2": float(p["l2"]),
        "input_dropout": float(p["input_dropout"]),
        "clip": p["clip_norm"] is not None,
        "clip_norm": float(p["clip_norm"]) if p["clip_norm"] is not None else 5.0,
        "early_stopping": bool(p["early_stopping"]),
        "patience": int(p["patience"]),
        "monitor": p["monitor"],
        "min_delta": float(p["min_delta"]),
        "augment": bool(aug),
        "shift": float(aug.get("shift", 2.0)),
        "rotation": float(aug.get("rotation", 10.0)),
        "scale": float(aug.get("scale", 0.1)),
        "elastic_alpha": float(aug.get("elastic_alpha", 0.0)),
        "elastic_sigma": float(aug.get("elastic_sigma", 4.0)),
        "split": data.get("split", "standard"),
        "val_fraction": float(data.get("val_fraction") or 0.1),
        "test_fraction": float(data.get("test_fraction") or 0.1),
        "train_size": int(data.get("train_size") or 0),
        "data_seed": int(data.get("seed") or 0),
        "random_state": int(p["random_state"]) if p["random_state"] is not None else 0,
    }


def to_model_kwargs(cfg: dict) -> dict[str, Any]:
    """``NeuralNetwork`` keyword arguments from the form."""
    layers = cfg["layers"]
    acts = [layer["activation"] for layer in layers]
    drops = [float(layer["dropout"]) for layer in layers]
    kwargs = {
        "hidden_layers": [int(layer["units"]) for layer in layers],
        "activation": acts[0] if len(set(acts)) == 1 else acts,
        "dropout": drops[0] if len(set(drops)) == 1 else drops,
        "augment": (
            {
                "shift": cfg["shift"],
                "rotation": cfg["rotation"],
                "scale": cfg["scale"],
                "elastic_alpha": cfg["elastic_alpha"],
                "elastic_sigma": cfg["elastic_sigma"],
            }
            if cfg["augment"]
            else None
        ),
        "clip_norm": float(cfg["clip_norm"]) if cfg["clip"] else None,
    }
    if not layers:
        kwargs["activation"], kwargs["dropout"] = "relu", 0.0
    if cfg.get("stack_mode") == "stack":
        kwargs["layers"] = copy.deepcopy(list(cfg.get("stack") or []))
    for key in (
        "init",
        "leaky_slope",
        "optimizer",
        "learning_rate",
        "momentum",
        "beta1",
        "beta2",
        "rho",
        "epsilon",
        "schedule",
        "lr_decay",
        "step_size",
        "gamma",
        "warmup_epochs",
        "min_lr",
        "batch_size",
        "epochs",
        "l2",
        "input_dropout",
        "early_stopping",
        "patience",
        "monitor",
        "min_delta",
        "random_state",
    ):
        kwargs[key] = copy.deepcopy(cfg[key])
    return kwargs


def to_data_kwargs(cfg: dict) -> dict[str, Any]:
    """``split_dataset`` settings from the form (``train_size`` 0 -> None = all)."""
    out = {
        "split": cfg["split"],
        "seed": int(cfg["data_seed"]),
        "train_size": int(cfg["train_size"]) or None,
    }
    if cfg["split"] == "custom":
        out.update(
            val_fraction=float(cfg["val_fraction"]), test_fraction=float(cfg["test_fraction"])
        )
    return out


def _set_info(info: Any = None) -> Any:
    """``info`` (an ``nn.data.registry.DataSetInfo``), or MNIST's description."""
    if info is not None:
        return info
    from nn.data.registry import mnist_info

    return mnist_info()


def training_part_size(cfg: dict, info: Any = None) -> int:
    """Images in the training part of the chosen split of the data set ``info`` (default:
    MNIST), before ``train_size``."""
    from nn.services.training import part_sizes

    info = _set_info(info)
    return part_sizes(
        cfg["split"],
        info.n_train,
        info.n_test,
        float(cfg.get("val_fraction", 0.1)),
        float(cfg.get("test_fraction", 0.1)),
    )[0]


def effective_train_size(cfg: dict, train_limit: int | None = None, info: Any = None) -> int:
    n = training_part_size(cfg, info)
    if cfg["train_size"]:
        n = min(n, int(cfg["train_size"]))
    if train_limit:
        n = min(n, int(train_limit))
    return n


def _shown(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _check_bounds(cfg: dict, add: Callable[[str, str], None]) -> None:
    """The ranges the widgets do not enforce (see NUMBER_FIELDS): the value shown is the value
    checked, and one outside its range is refused with a message."""
    units_lo, units_hi = LAYER_BOUNDS["units"]
    drop_lo, drop_hi = LAYER_BOUNDS["dropout"]
    for i, layer in enumerate(cfg["layers"]):
        units = int(layer["units"])
        if units < units_lo:
            add("layers", f"Hidden layer {i + 1} has no neurons: give it at least 1.")
        elif units > units_hi:
            add(
                "layers",
                f"Hidden layer {i + 1} has {units:,} neurons: use at most {units_hi:,}.",
            )
        if not drop_lo <= float(layer["dropout"]) <= drop_hi:
            add(
                "layers",
                f"Hidden layer {i + 1} dropout {float(layer['dropout']):g} is outside "
                f"{drop_lo:g}-{drop_hi:g}.",
            )
    for field, spec in NUMBER_FIELDS.items():
        label, lo, hi = spec.label, spec.min_value, spec.max_value
        value = cfg.get(field)
        if not isinstance(value, (int, float)):
            continue
        if lo is not None and value < lo:
            add(
                _PARAM_SECTION.get(field, "training"),
                f"{label}: {_shown(value)} is below {_shown(lo)}.",
            )
        elif hi is not None and value > hi:
            add(
                _PARAM_SECTION.get(field, "training"),
                f"{label}: {_shown(value)} is above {_shown(hi)}.",
            )


def validate(cfg: dict, train_limit: int | None = None, info: Any = None) -> dict[str, list[str]]:
    """Problems of the form, by section (empty dict: ready to train), for the data set ``info``
    (default: MNIST): its image shape and classes for the layers, its counts for the split.
    Uses the engine's own checks (``nn.core.config.configure``) plus the split and
    batch checks."""
    info = _set_info(info)
    errors: dict[str, list[str]] = {}

    def add(section: str, message: str) -> None:
        errors.setdefault(section, []).append(message)

    stacked = cfg.get("stack_mode") == "stack"
    if cfg.get("n_layers_typed") is not None and not stacked:
        lo, hi = LAYER_BOUNDS["n_layers"]
        add("layers", f"Hidden layers: {cfg['n_layers_typed']} is outside {lo} to {hi}.")
    if stacked:
        rows = stack_editor.infer_shapes(cfg.get("stack") or [], info.image_shape, info.n_classes)
        for message in stack_editor.faults(rows):
            add("layers", message)
        _check_bounds({**cfg, "layers": []}, add)
    else:
        _check_bounds(cfg, add)
    kwargs = to_model_kwargs(cfg)
    if "layers" in errors:  # check the other settings too (the engine stops at the first fault)
        kwargs["hidden_layers"] = [max(1, min(4096, int(u))) for u in kwargs["hidden_layers"]]
        kwargs["layers"] = None
    try:
        configure(kwargs)
        model = NeuralNetwork(**kwargs)
        if "layers" not in errors:  # the estimate, before anything is allocated
            check_network_size(
                model, info.image_shape if stacked else info.n_features, info.n_classes
            )
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        name = getattr(exc, "param", None) or msg.split("=", 1)[0].strip()
        add(_PARAM_SECTION.get(name, "training"), msg)
    # data
    if cfg["split"] == "custom":
        v, t = float(cfg["val_fraction"]), float(cfg["test_fraction"])
        if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
            add(
                "data",
                f"Validation ({v:g}) and test ({t:g}) fractions must each be in (0, 1) "
                "and sum to less than 1.",
            )
            return errors
    part = training_part_size(cfg, info)
    if part < 1:
        add(
            "data",
            f"The {cfg['split']} split of {info.name}'s {info.n_train + info.n_test:,} images "
            "leaves no training images: lower the validation and test fractions.",
        )
        return errors
    if int(cfg["train_size"]) < 0 or int(cfg["train_size"]) > part:
        add(
            "data",
            f"Training-set size {cfg['train_size']:,} is outside 0..{part:,} (the training "
            f"part of the {cfg['split']} split of {info.name}; 0 = all).",
        )
    n = effective_train_size(cfg, train_limit, info)
    if int(cfg["batch_size"]) > n:
        add(
            "training",
            f"batch_size={cfg['batch_size']} is larger than the {n} training "
            "images: use a smaller batch.",
        )
    return errors


def diverged_without_nan(snap: dict, n_classes: int = 10) -> str | None:
    """A message when a run diverged, or "finished" with a training loss above ln(classes), the
    loss of a model that guesses uniformly: it learned nothing, whether its weights blew up short
    of the engine's divergence rule or never moved (a stalled initialisation, a tiny learning
    rate). None for a run that learned."""
    if snap.get("stop_reason") == "diverged":
        return snap.get("stop_message") or "Training diverged."
    losses = [v for v in (snap.get("history") or {}).get("loss") or [] if v is not None]
    if not losses:
        return None
    chance = math.log(n_classes)
    if not losses[-1] > chance:
        return None
    return (
        f"The training loss ended at {losses[-1]:.4g}, above ln({n_classes}) = {chance:.2f} (the "
        "loss of guessing): the model is no better than chance. Either the training diverged "
        "without reaching NaN (lower the learning rate, clip the gradient) or it never got "
        "going (check the initialisation and the learning rate)."
    )


# ------------------------------------------------------------------------------ widgets
def apply_preset(
    name: str, image_shape: tuple[int, int, int] = (28, 28, 1), n_classes: int = 10
) -> None:
    """Button callback: fill the form from ``nn.presets.PRESETS[name]`` adapted to images of
    ``image_shape`` in ``n_classes`` classes (``nn.services.presets.adapted_to_set``: no
    augmentation for images other than 28x28 greyscale). A preset that does not fit them
    leaves the form as it is (its button is disabled).

    The widget keys are SET (not just deleted): a browser keeps a widget's old value and sends
    it back on the next rerun unless the server sets it through the Session State API."""
    from nn.services.presets import PRESETS, adapted_to_set, fit_problem

    if fit_problem(name, image_shape, n_classes) is not None:
        return
    preset = PRESETS[name]
    model, _ = adapted_to_set(preset, image_shape, n_classes)
    model.pop("input_shape", None)  # the training job takes it from the data set
    cfg = config_from_preset({"model": model, "data": preset.data_kwargs()})
    cfg["preset"] = name
    st.session_state["train_config"] = cfg
    for key in [k for k in st.session_state if str(k).startswith("tf_")]:
        del st.session_state[key]
    for field, value in cfg.items():
        if field not in ("layers", "preset") and not field.startswith("stack"):
            st.session_state[f"tf_{field}"] = value
    st.session_state["tf_stack_mode"] = cfg["stack_mode"]
    st.session_state["tf_n_layers"] = len(cfg["layers"])
    for i, layer in enumerate(cfg["layers"]):
        st.session_state[f"tf_units_{i}"] = layer["units"]
        st.session_state[f"tf_act_{i}"] = layer["activation"]
        st.session_state[f"tf_drop_{i}"] = layer["dropout"]


def _initial(key: str, **default) -> dict:
    """``value=``/``index=`` only when the widget has no state yet (passing both a default and
    a Session-State value makes Streamlit warn)."""
    return {} if key in st.session_state else default


def _show_errors(errors: dict, section: str) -> None:
    for msg in errors.get(section, []):
        st.error(msg, icon=":material/error:")


@dataclass(frozen=True)
class NumberField:
    """One number of the form: its label and help, the range validate() checks, and the
    widget's step and display format."""

    label: str
    help: str
    min_value: float | None
    max_value: float | None
    step: float
    format: str | None = None


# The form's numbers, in the order the form shows them. Their ranges are checked by validate()
# instead of by the widgets: a number typed outside a widget's min/max is never sent to the
# server, so the page would train with the previous value while showing the typed one. Without
# bounds the widget sends what it shows. The training-set size's upper bound is the training
# part of the set's split, checked by validate() on its own.
NUMBER_FIELDS: dict[str, NumberField] = {
    "leaky_slope": NumberField(
        "Leaky ReLU slope",
        "Slope for negative inputs, in [0, 1).",
        min_value=0.0,
        max_value=0.99,
        step=0.01,
        format="%.3f",
    ),
    "learning_rate": NumberField(
        "Learning rate",
        "Step size of each update (> 0).",
        min_value=0.0,
        max_value=10.0,
        step=1e-4,
        format="%.5f",
    ),
    "momentum": NumberField(
        "Momentum",
        "Fraction of the previous step kept, in [0, 1).",
        min_value=0.0,
        max_value=0.999,
        step=0.01,
    ),
    "beta1": NumberField(
        "Beta 1",
        "Decay of Adam's first-moment average, in [0, 1).",
        min_value=0.0,
        max_value=0.9999,
        step=0.01,
        format="%.4f",
    ),
    "beta2": NumberField(
        "Beta 2",
        "Decay of Adam's second-moment average, in [0, 1).",
        min_value=0.0,
        max_value=0.99999,
        step=0.001,
        format="%.5f",
    ),
    "rho": NumberField(
        "Rho",
        "Decay of RMSprop's squared-gradient average, in [0, 1).",
        min_value=0.0,
        max_value=0.9999,
        step=0.01,
        format="%.4f",
    ),
    "epsilon": NumberField(
        "Epsilon",
        "Small number added to the denominator (> 0).",
        min_value=0.0,
        max_value=1.0,
        step=1e-8,
        format="%.1e",
    ),
    "warmup_epochs": NumberField(
        "Warm-up epochs",
        "Ramp the learning rate up linearly over this many epochs (0 = off).",
        min_value=0.0,
        max_value=100.0,
        step=0.5,
    ),
    "lr_decay": NumberField(
        "Decay",
        "lr = lr0 / (1 + decay x epoch).",
        min_value=0.0,
        max_value=10.0,
        step=0.01,
        format="%.4f",
    ),
    "step_size": NumberField(
        "Step size (epochs)",
        "Multiply by gamma every this many epochs.",
        min_value=0,
        max_value=1000,
        step=1,
    ),
    "gamma": NumberField(
        "Gamma", "Factor applied at each step (in (0, 1]).", min_value=0.0, max_value=1.0, step=0.05
    ),
    "min_lr": NumberField(
        "Minimum learning rate",
        "Where the cosine ends (<= learning rate).",
        min_value=0.0,
        max_value=10.0,
        step=1e-5,
        format="%.6f",
    ),
    "batch_size": NumberField(
        "Batch size", "Images per gradient step.", min_value=0, max_value=70_000, step=16
    ),
    "epochs": NumberField(
        "Epochs", "Passes over the training images.", min_value=0, max_value=1000, step=1
    ),
    "random_state": NumberField(
        "Seed",
        "Seeds initialisation, shuffling, dropout and augmentation: the same seed repeats a run.",
        min_value=0,
        max_value=MAX_SEED,
        step=1,
    ),
    "l2": NumberField(
        "L2 penalty",
        "Weight decay: adds l2/2 x sum(W^2) to the loss (0 = off).",
        min_value=0.0,
        max_value=1.0,
        step=1e-5,
        format="%.6f",
    ),
    "input_dropout": NumberField(
        "Input dropout",
        "Probability of dropping each input pixel while training (0 = off).",
        min_value=0.0,
        max_value=0.95,
        step=0.05,
    ),
    "clip_norm": NumberField(
        "Max gradient norm",
        "Clip the gradient to this L2 norm (> 0).",
        min_value=0.0,
        max_value=1000.0,
        step=0.5,
    ),
    "patience": NumberField(
        "Patience",
        "Epochs without improvement before stopping.",
        min_value=0,
        max_value=100,
        step=1,
    ),
    "shift": NumberField(
        "Shift (px)", "Maximum shift in pixels.", min_value=0.0, max_value=14.0, step=0.5
    ),
    "rotation": NumberField(
        "Rotation (°)", "Maximum rotation in degrees.", min_value=0.0, max_value=180.0, step=1.0
    ),
    "scale": NumberField(
        "Scale", "Maximum relative zoom (0.1 = ±10%).", min_value=0.0, max_value=0.9, step=0.05
    ),
    "elastic_alpha": NumberField(
        "Elastic alpha",
        "Strength of the elastic distortion in pixels (0 = off).",
        min_value=0.0,
        max_value=200.0,
        step=1.0,
    ),
    "elastic_sigma": NumberField(
        "Elastic sigma",
        "Smoothness of the elastic distortion (Gaussian std in pixels).",
        min_value=0.0,
        max_value=28.0,
        step=0.5,
    ),
    "data_seed": NumberField(
        "Split seed",
        "Seeds which images go to which part.",
        min_value=0,
        max_value=MAX_SEED,
        step=1,
    ),
    "val_fraction": NumberField(
        "Validation fraction",
        "Share of all images for validation.",
        min_value=0.0,
        max_value=0.9,
        step=0.05,
    ),
    "test_fraction": NumberField(
        "Test fraction",
        "Share of all images for the test.",
        min_value=0.0,
        max_value=0.9,
        step=0.05,
    ),
    "train_size": NumberField(
        "Training-set size",
        "Use a stratified subset of this many training images (0 = all).",
        min_value=0,
        max_value=None,
        step=1000,
    ),
}
LAYER_BOUNDS = {"n_layers": (0, 8), "units": (1, 4096), "dropout": (0.0, 0.95)}


def _num(cfg: dict, field: str, disabled: bool, col=None, help: str | None = None) -> None:
    """The number input of ``NUMBER_FIELDS[field]``, writing its value into ``cfg``; ``help``
    replaces the field's own help text (one that depends on the data set)."""
    spec = NUMBER_FIELDS[field]
    target = col if col is not None else st
    extra = {} if spec.format is None else {"format": spec.format}
    cfg[field] = target.number_input(
        spec.label,
        key=f"tf_{field}",
        help=spec.help if help is None else help,
        disabled=disabled,
        step=spec.step,
        **_initial(f"tf_{field}", value=cfg[field]),
        **extra,
    )


def _select_init(cfg: dict, disabled: bool, col=None) -> None:
    """The weight initialisation select, shared by the dense form and the layer stack."""
    _select(
        cfg,
        "init",
        "Initialisation",
        INIT_CHOICES,
        disabled=disabled,
        col=col,
        help="How weights start: auto = He for ReLU-like layers, Xavier otherwise.",
    )


def _select(
    cfg: dict, field: str, label: str, options, help: str, disabled: bool, col=None, **kw
) -> None:
    target = col if col is not None else st
    options = list(options)
    index = options.index(cfg[field]) if cfg[field] in options else 0
    cfg[field] = target.selectbox(
        label,
        options,
        key=f"tf_{field}",
        help=help,
        disabled=disabled,
        **_initial(f"tf_{field}", index=index),
        **kw,
    )


STACK_MODES = {"dense": "Dense layers (quick)", "stack": "Layer stack (CNN)"}


def _mode_changed() -> None:
    """Switching to an empty stack starts it from the dense layers."""
    cfg = st.session_state["train_config"]
    if st.session_state.get("tf_stack_mode") == "stack" and not cfg.get("stack"):
        stack_editor.set_stack(cfg, stack_editor.dense_as_stack(cfg))


def _layers_section(cfg: dict, disabled: bool, info: Any = None) -> None:
    cfg.setdefault("stack_mode", "dense")
    mode = st.segmented_control(
        "Network",
        list(STACK_MODES),
        format_func=STACK_MODES.get,
        key="tf_stack_mode",
        disabled=disabled,
        on_change=_mode_changed,
        **_initial("tf_stack_mode", default=cfg["stack_mode"]),
        help="Dense layers: widths, activations and dropout, the quick way. Layer stack: any "
        "sequence of convolution, pooling, batch norm, dense, dropout and activation layers.",
    )
    cfg["stack_mode"] = mode or cfg["stack_mode"]
    if cfg["stack_mode"] == "stack":
        info = _set_info(info)
        stack_editor.render(cfg, disabled, info.image_shape, info.n_classes)
        _select_init(cfg, disabled)
        return
    _dense_layers(cfg, disabled)


def _dense_layers(cfg: dict, disabled: bool) -> None:
    layers = cfg["layers"]
    n = st.number_input(
        "Hidden layers",
        key="tf_n_layers",
        **_initial("tf_n_layers", value=len(layers)),
        disabled=disabled,
        help="How many hidden layers (0 = softmax regression).",
    )
    lo, hi = LAYER_BOUNDS["n_layers"]
    if not lo <= n <= hi:  # refused by validate(); the form keeps at most `hi` layer rows
        cfg["n_layers_typed"] = int(n)
        n = max(lo, min(hi, int(n)))
    else:
        cfg.pop("n_layers_typed", None)
    while len(layers) < n:
        layers.append(
            _layer(
                layers[-1]["units"] if layers else 128,
                layers[-1]["activation"] if layers else "relu",
                layers[-1]["dropout"] if layers else 0.0,
            )
        )
    del layers[int(n) :]
    acts = list(ACTIVATIONS)
    for i, layer in enumerate(layers):
        # the layer number as a small header: "Layer 1 dropout" ran into its help icon
        st.markdown(f"**Layer {i + 1}**")
        c1, c2, c3 = st.columns([1.1, 1.2, 1])
        layer["units"] = c1.number_input(
            "Neurons",
            **_initial(f"tf_units_{i}", value=int(layer["units"])),
            step=32,
            key=f"tf_units_{i}",
            disabled=disabled,
            help="Neurons in this hidden layer.",
        )
        layer["activation"] = c2.selectbox(
            "Activation",
            acts,
            **_initial(
                f"tf_act_{i}",
                index=acts.index(layer["activation"]) if layer["activation"] in acts else 0,
            ),
            key=f"tf_act_{i}",
            disabled=disabled,
            help="Non-linearity after this layer.",
        )
        layer["dropout"] = c3.number_input(
            "Dropout",
            **_initial(f"tf_drop_{i}", value=float(layer["dropout"])),
            step=0.05,
            key=f"tf_drop_{i}",
            disabled=disabled,
            help="Probability of dropping each neuron of this layer while training (0 = off).",
        )
    c1, c2 = st.columns(2)
    _select_init(cfg, disabled, col=c1)
    if any(layer["activation"] == "leaky_relu" for layer in layers):
        _num(cfg, "leaky_slope", disabled, col=c2)


def _optimizer_section(cfg: dict, disabled: bool) -> None:
    c1, c2 = st.columns(2)
    _select(
        cfg,
        "optimizer",
        "Optimizer",
        OPTIMIZERS,
        disabled=disabled,
        col=c1,
        help="sgd, momentum, nesterov, rmsprop or adam.",
    )
    _num(cfg, "learning_rate", disabled, col=c2)
    opt = cfg["optimizer"]
    c1, c2, c3 = st.columns(3)
    if opt in ("momentum", "nesterov"):
        _num(cfg, "momentum", disabled, col=c1)
    if opt == "adam":
        _num(cfg, "beta1", disabled, col=c1)
        _num(cfg, "beta2", disabled, col=c2)
    if opt == "rmsprop":
        _num(cfg, "rho", disabled, col=c1)
    if opt in ("adam", "rmsprop"):
        _num(cfg, "epsilon", disabled, col=c3)


def _schedule_section(cfg: dict, disabled: bool) -> None:
    c1, c2 = st.columns(2)
    _select(
        cfg,
        "schedule",
        "Schedule",
        SCHEDULES,
        disabled=disabled,
        col=c1,
        help="How the learning rate changes over the epochs.",
    )
    _num(cfg, "warmup_epochs", disabled, col=c2)
    sched = cfg["schedule"]
    c1, c2 = st.columns(2)
    if sched == "inverse_time":
        _num(cfg, "lr_decay", disabled, col=c1)
    if sched == "step":
        _num(cfg, "step_size", disabled, col=c1)
    if sched in ("step", "exponential"):
        _num(cfg, "gamma", disabled, col=c2)
    if sched == "cosine":
        _num(cfg, "min_lr", disabled, col=c1)


def _training_section(cfg: dict, disabled: bool) -> None:
    c1, c2, c3 = st.columns(3)
    _num(cfg, "batch_size", disabled, col=c1)
    _num(cfg, "epochs", disabled, col=c2)
    _num(cfg, "random_state", disabled, col=c3)


def _regularisation_section(cfg: dict, disabled: bool) -> None:
    c1, c2 = st.columns(2)
    _num(cfg, "l2", disabled, col=c1)
    _num(cfg, "input_dropout", disabled, col=c2)
    c1, c2 = st.columns(2)
    cfg["clip"] = c1.toggle(
        "Gradient clipping",
        key="tf_clip",
        **_initial("tf_clip", value=cfg["clip"]),
        disabled=disabled,
        help="Rescale the gradient when its global L2 norm is too large.",
    )
    if cfg["clip"]:
        _num(cfg, "clip_norm", disabled, col=c2)
    c1, c2, c3 = st.columns(3)
    cfg["early_stopping"] = c1.toggle(
        "Early stopping",
        key="tf_early_stopping",
        **_initial("tf_early_stopping", value=cfg["early_stopping"]),
        disabled=disabled,
        help="Stop when the validation metric stops improving and keep the best weights.",
    )
    if cfg["early_stopping"]:
        _num(cfg, "patience", disabled, col=c2)
        _select(
            cfg,
            "monitor",
            "Monitor",
            MONITORS,
            disabled=disabled,
            col=c3,
            help="The validation metric that must improve.",
        )


def _augmentation_section(cfg: dict, disabled: bool) -> None:
    cfg["augment"] = st.toggle(
        "Augment training images",
        key="tf_augment",
        **_initial("tf_augment", value=cfg["augment"]),
        disabled=disabled,
        help="Randomly shift, rotate, scale and warp each training batch.",
    )
    if not cfg["augment"]:
        return
    c1, c2, c3 = st.columns(3)
    _num(cfg, "shift", disabled, col=c1)
    _num(cfg, "rotation", disabled, col=c2)
    _num(cfg, "scale", disabled, col=c3)
    c1, c2 = st.columns(2)
    _num(cfg, "elastic_alpha", disabled, col=c1)
    _num(cfg, "elastic_sigma", disabled, col=c2)


def split_help(info: Any = None) -> str:
    """What each split does with the images of the data set ``info`` (default: MNIST)."""
    from nn.services.training import part_sizes

    info = _set_info(info)
    _, n_val, _ = part_sizes("standard", info.n_train, info.n_test)
    test = "the official test set" if info.builtin else f"{info.name}'s test part"
    return (
        f"standard: {test} ({info.n_test:,} images), {n_val:,} validation images from the "
        f"{info.n_train:,} training images; 80:10:10 or custom fractions: all "
        f"{info.n_train + info.n_test:,} images pooled."
    )


def _data_section(cfg: dict, disabled: bool, train_limit: int | None, info: Any = None) -> None:
    info = _set_info(info)
    c1, c2 = st.columns(2)
    _select(
        cfg,
        "split",
        "Split",
        SPLITS,
        disabled=disabled,
        col=c1,
        help=split_help(info),
    )
    _num(cfg, "data_seed", disabled, col=c2)
    if cfg["split"] == "custom":
        c1, c2 = st.columns(2)
        _num(cfg, "val_fraction", disabled, col=c1)
        _num(cfg, "test_fraction", disabled, col=c2)
    part = training_part_size(cfg, info) if split_fractions_usable(cfg) else 0
    _num(
        cfg,
        "train_size",
        disabled,
        help="Use a stratified subset of this many training images (0 = all of the training part: "
        f"{part:,} images of {info.name} with this split).",
    )
    n = effective_train_size(cfg, train_limit, info) if split_fractions_usable(cfg) else 0
    note = f"Training on **{n:,}** images."
    if train_limit:
        note += f" (capped by `NN_TRAIN_LIMIT={train_limit}`)"
    st.caption(note)


def split_fractions_usable(cfg: dict) -> bool:
    """Whether the split's fractions leave a training part (always, except a custom split
    with bad fractions)."""
    if cfg["split"] != "custom":
        return True
    v, t = float(cfg["val_fraction"]), float(cfg["test_fraction"])
    return 0 < v < 1 and 0 < t < 1 and v + t < 1


def render_form(
    cfg: dict, disabled: bool = False, train_limit: int | None = None, info: Any = None
) -> dict[str, list[str]]:
    """Draw every setting (in tabs) for the data set ``info`` (default: MNIST), write the values
    into ``cfg``; return the validation errors (each also shown under its section)."""
    info = _set_info(info)
    # short names: longer ones overflow the six tabs and the scroll arrow covers them
    tabs = st.tabs(["Layers", "Optimizer", "Schedule", "Regularise", "Augment", "Data"])
    with tabs[0]:
        _layers_section(cfg, disabled, info)
    with tabs[1]:
        _optimizer_section(cfg, disabled)
    with tabs[2]:
        _schedule_section(cfg, disabled)
    with tabs[3]:
        _regularisation_section(cfg, disabled)
    with tabs[4]:
        _augmentation_section(cfg, disabled)
    with tabs[5]:
        _training_section(cfg, disabled)
        _data_section(cfg, disabled, train_limit, info)
    errors = validate(cfg, train_limit, info)
    for tab, sections in zip(
        tabs,
        (
            ("layers",),
            ("optimizer",),
            ("schedule",),
            ("regularisation",),
            ("augmentation",),
            ("training", "data"),
        ),
        strict=True,
    ):
        with tab:
            for section in sections:
                _show_errors(errors, section)
    return errors
