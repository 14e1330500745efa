"""From what a person sets to ``NeuralNetwork`` keyword arguments, in one place: the Train form's
values (``form_values`` and back, ``model_kwargs`` and ``data_kwargs``; their checks are
``nn.services.form_checks``), the command line's augmentation flags (``augment_overrides``; a
preset with the other flags is ``nn.services.presets.resolve_config``), and the fitting of
settings to a data set's images
(``for_images``: augmentation is made for 28x28 greyscale digits and only applies to them; a
convolution stack's input shape comes from the images). The hyperparameters themselves are
``nn.core.params.PARAMS``; the Augmenter's settings ``nn.core.augment.SETTINGS``.

The form's values are plain JSON-able values (they live in the dashboard's session):
    stack_mode        "dense" (``layers``: rows of units, activation and dropout) or "stack"
                      (``stack``: the layer dicts ``NeuralNetwork(layers=...)`` takes, with
                      ``stack_ids`` and ``stack_next_id`` for its editor)
    <name>            every number, switch and choice of ``PARAMS`` by its name; an optional
                      one with a switch has ``<name>_on`` too
    augment           whether to augment, and every shown Augmenter setting by its name
    split, val_fraction, test_fraction, train_size (0 = all), data_seed
    preset            the preset it came from, or ""
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nn.core.augment import SETTINGS as AUGMENT_SETTINGS
from nn.core.config import dense_specs
from nn.core.limits import MAX_SEED
from nn.core.params import PARAMS, Param, ParameterError, defaults, json_params

MNIST_IMAGE_SHAPE = (28, 28, 1)
SPLITS = ("standard", "80:10:10", "custom")
DATA_SECTION = "data"
LAYER_BOUNDS = {"n_layers": (0, 8), "units": (1, 4096), "dropout": (0.0, 0.95)}
"""The dense rows' form ranges: how many hidden layers, neurons a layer, dropout a layer."""


# ------------------------------------------------------------------------------ the 28x28 rule
def augments(image_shape: Any) -> bool:
    """Whether augmentation applies to images of this shape: its shifts, rotations and
    elastic distortions are made for 28x28 greyscale digits."""
    return tuple(int(s) for s in image_shape) == MNIST_IMAGE_SHAPE


def for_images(
    model: Mapping[str, Any], image_shape: Any, set_name: str = "", *, switch_off: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """The settings ``model`` for a data set of images of ``image_shape``, and a note for every
    change. For images other than 28x28 greyscale, augmentation is switched off (with a note),
    or refused (``ParameterError``) when ``switch_off`` is false because a person asked for it;
    and a missing ``input_shape`` becomes the images' shape."""
    model = dict(model)
    shape = tuple(int(s) for s in image_shape)
    if augments(shape):
        return model, []
    what = "x".join(map(str, shape))
    where = f"{set_name} holds {what} images" if set_name else f"the set holds {what} images"
    notes = []
    if model.get("augment"):
        if not switch_off:
            raise ParameterError(
                "augment",
                f"augment: the augmentations distort 28x28 greyscale digits; {where}: switch "
                "augmentation off (--no-augment)",
            )
        model["augment"] = None
        notes.append(
            f"augmentation (made for 28x28 greyscale digits) is switched off for {what} images"
        )
    if model.get("input_shape") is None:
        model["input_shape"] = list(shape)
    return model, notes


def augment_overrides(
    switch: bool | None, given: Mapping[str, float], base: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``augment`` a person's augmentation choices make of a preset's ``base``: ``switch``
    False turns it off, True starts from the Augmenter's defaults when the preset has none
    (``augment={}`` would augment nothing); ``given`` settings change one transform each, the
    others kept (off without a base or the switch). ``{}`` when nothing was chosen."""
    if switch is False:
        return {"augment": None}
    if not (switch or given):
        return {}
    if base:
        start = dict(base)
    elif switch:
        start = {name: float(s.default) for name, s in AUGMENT_SETTINGS.items()}
    else:
        start = {name: 0.0 for name in ("shift", "rotation", "scale", "elastic_alpha")}
    return {"augment": {**start, **given}}


# ------------------------------------------------------------------------------ form values
@dataclass(frozen=True)
class NumberField:
    """One number of the form: its label and help, the range ``form_problems`` checks, and the
    widget's step and display format."""

    label: str
    help: str
    min_value: float | None
    max_value: float | None
    step: float
    format: str | None = None
    section: str = "training"


_DATA_FIELDS = {
    "data_seed": NumberField("Split seed", "Seeds which images go to which part.", 0, MAX_SEED, 1),
    "val_fraction": NumberField(
        "Validation fraction", "Share of all images for validation.", 0.0, 0.9, 0.05
    ),
    "test_fraction": NumberField(
        "Test fraction", "Share of all images for the test.", 0.0, 0.9, 0.05
    ),
    "train_size": NumberField(
        "Training-set size",
        "Use a stratified subset of this many training images (0 = all).",
        0,
        None,
        1000,
    ),
}


def form_params() -> list[Param]:
    """The hyperparameters the form holds as one value each: numbers, switches and choices
    (not the per-layer ones, which the dense rows hold, nor ``warm_start``)."""
    return [
        p
        for p in PARAMS.values()
        if p.kind in ("float", "int", "bool", "choice") and not p.per_layer and p.flag
    ]


def number_fields() -> dict[str, NumberField]:
    """Every number of the form by its key, in the order the form shows them: the
    hyperparameters' (their ranges the engine's, their largest the form's ``Widget.max``), the
    Augmenter's and the data split's. Ranges are checked by ``form_problems`` rather than by the
    widgets: a number typed outside a widget's bounds is never sent to the server."""
    out = {}
    for p in form_params():
        if p.widget is not None and p.kind in ("float", "int"):
            low = p.interval.low if p.interval.low is not None else None
            w = p.widget
            out[p.name] = NumberField(p.label, p.help, low, w.max, w.step, w.format, p.section)
    for name, s in AUGMENT_SETTINGS.items():
        if s.step is not None:
            help = f"{s.meaning[0].upper()}{s.meaning[1:]}."
            out[name] = NumberField(s.label, help, s.low, s.high, s.step, None, "augmentation")
    for name, field in _DATA_FIELDS.items():
        out[name] = NumberField(**{**vars(field), "section": DATA_SECTION})
    return out


def section_of(name: str) -> str:
    """The form section a setting (and a fault of it) belongs to."""
    if name in PARAMS:
        return PARAMS[name].section
    if name in AUGMENT_SETTINGS:
        return "augmentation"
    return DATA_SECTION if name in _DATA_FIELDS or name == "split" else "training"


def _layer(units: Any = 128, activation: Any = "relu", dropout: Any = 0.0) -> dict:
    return {"units": int(units), "activation": activation, "dropout": float(dropout)}


def _form_value(param: Param, value: Any) -> Any:
    if value is None:  # an optional setting that is off: the value its widget starts from
        return param.widget.on_value if param.widget and param.widget.switch else param.interval.low
    return {"float": float, "int": int, "bool": bool}.get(param.kind, copy.deepcopy)(value)


def form_values(
    model: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None, preset: str = ""
) -> dict[str, Any]:
    """The form's values for these ``NeuralNetwork`` settings and split settings (defaults for
    what they leave out)."""
    p = json_params({**defaults(), **dict(model or {})})
    data = dict(data or {})
    widths = p["hidden_layers"]
    widths = [widths] if isinstance(widths, int) else list(widths)
    acts = p["activation"] if isinstance(p["activation"], list) else [p["activation"]] * len(widths)
    drops = p["dropout"] if isinstance(p["dropout"], list) else [p["dropout"]] * len(widths)
    stack = list(p["layers"] or [])
    form: dict[str, Any] = {
        "preset": preset,
        "stack_mode": "stack" if p["layers"] is not None else "dense",
        "stack": stack,
        "stack_ids": list(range(len(stack))),
        "stack_next_id": len(stack),
        "layers": [_layer(u, a, d) for u, a, d in zip(widths, acts, drops, strict=True)],
    }
    for param in form_params():
        form[param.name] = _form_value(param, p[param.name])
        if param.optional and param.widget is not None and param.widget.switch:
            form[f"{param.name}_on"] = p[param.name] is not None
    augment = p["augment"] or {}
    form["augment"] = bool(augment)
    for name, s in AUGMENT_SETTINGS.items():
        if s.step is not None:
            form[name] = float(augment.get(name, s.default))
    form.update(
        split=data.get("split", "standard"),
        val_fraction=float(data.get("val_fraction") or 0.1),
        test_fraction=float(data.get("test_fraction") or 0.1),
        train_size=int(data.get("train_size") or 0),
        data_seed=int(data.get("seed") or 0),
    )
    return form


def model_kwargs(form: Mapping[str, Any]) -> dict[str, Any]:
    """``NeuralNetwork`` keyword arguments from the form's values."""
    kwargs: dict[str, Any] = {}
    for param in form_params():
        value = copy.deepcopy(form.get(param.name, param.default))
        if param.optional and param.widget is not None and param.widget.switch:
            value = value if form.get(f"{param.name}_on") else None
        kwargs[param.name] = value
    rows = form["layers"]
    acts = [row["activation"] for row in rows]
    drops = [float(row["dropout"]) for row in rows]
    kwargs["hidden_layers"] = [int(row["units"]) for row in rows]
    kwargs["activation"] = (acts[0] if len(set(acts)) == 1 else acts) if rows else "relu"
    kwargs["dropout"] = (drops[0] if len(set(drops)) == 1 else drops) if rows else 0.0
    if form.get("stack_mode") == "stack":
        kwargs["layers"] = copy.deepcopy(list(form.get("stack") or []))
    shown = [name for name, s in AUGMENT_SETTINGS.items() if s.step is not None]
    kwargs["augment"] = {name: form[name] for name in shown} if form["augment"] else None
    return kwargs


def dense_stack(form: Mapping[str, Any]) -> list[dict]:
    """The form's dense rows as a layer stack (``nn.core.config.dense_specs``), or an empty
    stack while the rows are not valid."""
    try:
        return dense_specs(model_kwargs(form))
    except ParameterError:
        return []


def data_kwargs(form: Mapping[str, Any]) -> dict[str, Any]:
    """``split_dataset`` settings from the form's values (``train_size`` 0 -> None = all)."""
    out = {
        "split": form["split"],
        "seed": int(form["data_seed"]),
        "train_size": int(form["train_size"]) or None,
    }
    if form["split"] == "custom":
        out.update(
            val_fraction=float(form["val_fraction"]), test_fraction=float(form["test_fraction"])
        )
    return out


def search_base(form: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a search starts from (what it does not vary): the Train form's, or the
    hyperparameters a partial form names; without ``random_state`` (every trial gets its own
    seed) and ``warm_start`` (the search sets it)."""
    form = dict(form or {})
    try:
        kwargs = model_kwargs(form)
    except (KeyError, TypeError, ValueError):  # a partial form: keep the settings it names
        named = form.get("model") or form
        kwargs = {k: v for k, v in named.items() if k in PARAMS}
    kwargs.pop("random_state", None)
    kwargs.pop("warm_start", None)
    return kwargs


def recorded_settings(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model_kwargs, data_kwargs)`` from a recorded run's config: ``{"model": ...,
    "data": ...}`` (dashboard, tune, CLI) or a flat dict of NeuralNetwork settings; unknown
    settings and ``warm_start`` left out."""
    config = dict(config or {})
    model = config.get("model") if isinstance(config.get("model"), dict) else config
    model = {k: copy.deepcopy(v) for k, v in model.items() if k in PARAMS and k != "warm_start"}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    keys = ("split", "seed", "train_size", "val_fraction", "test_fraction")
    return model, {k: v for k, v in data.items() if k in keys}
