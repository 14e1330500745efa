"""What is wrong with the Train form's values (``nn.services.settings``), by section of the
form: numbers outside their ranges, the engine's own checks of the settings, the network's size
on the data set's images, and a split that leaves too few training images."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nn.core.config import configure
from nn.data.registry import mnist_info
from nn.services.settings import (
    DATA_SECTION,
    LAYER_BOUNDS,
    model_kwargs,
    number_fields,
    section_of,
)
from nn.services.training import check_size_on_set, part_sizes


def set_info(info: Any = None) -> Any:
    """``info`` (an ``nn.data.registry.DataSetInfo``), or MNIST's description."""
    return info if info is not None else mnist_info()


def training_part_size(form: Mapping[str, Any], info: Any = None) -> int:
    """Images in the training part of the chosen split of the data set ``info`` (default:
    MNIST), before ``train_size``."""
    info = set_info(info)
    return part_sizes(
        form["split"],
        info.n_train,
        info.n_test,
        float(form.get("val_fraction", 0.1)),
        float(form.get("test_fraction", 0.1)),
    )[0]


def effective_train_size(
    form: Mapping[str, Any], train_limit: int | None = None, info: Any = None
) -> int:
    """The images a training of these values sees (the split's part, ``train_size``, the
    server's limit)."""
    n = training_part_size(form, info)
    if form["train_size"]:
        n = min(n, int(form["train_size"]))
    if train_limit:
        n = min(n, int(train_limit))
    return n


def split_fractions_usable(form: Mapping[str, Any]) -> bool:
    """Whether the split's fractions leave a training part (always, except a custom split
    with bad fractions)."""
    if form["split"] != "custom":
        return True
    v, t = float(form["val_fraction"]), float(form["test_fraction"])
    return 0 < v < 1 and 0 < t < 1 and v + t < 1


def _shown(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _check_bounds(form: Mapping[str, Any], add: Callable[[str, str], None]) -> None:
    """The ranges the widgets do not enforce: the value shown is the value checked, and one
    outside its range is refused with a message."""
    units_lo, units_hi = LAYER_BOUNDS["units"]
    drop_lo, drop_hi = LAYER_BOUNDS["dropout"]
    for i, layer in enumerate(form["layers"]):
        units = int(layer["units"])
        if units < units_lo:
            add("layers", f"Hidden layer {i + 1} has no neurons: give it at least 1.")
        elif units > units_hi:
            add("layers", f"Hidden layer {i + 1} has {units:,} neurons: use at most {units_hi:,}.")
        if not drop_lo <= float(layer["dropout"]) <= drop_hi:
            add(
                "layers",
                f"Hidden layer {i + 1} dropout {float(layer['dropout']):g} is outside "
                f"{drop_lo:g}-{drop_hi:g}.",
            )
    for key, field in number_fields().items():
        value = form.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = field.min_value, field.max_value
        if lo is not None and value < lo:
            add(field.section, f"{field.label}: {_shown(value)} is below {_shown(lo)}.")
        elif hi is not None and value > hi:
            add(field.section, f"{field.label}: {_shown(value)} is above {_shown(hi)}.")


def _check_model(
    form: Mapping[str, Any], info: Any, add: Callable[[str, str], None], layer_faults: bool
) -> None:
    """The engine's own checks of the settings and, when the layers have no fault yet, the
    network's size on the set's images (nothing allocated). With faulty layers, the other
    settings are checked on a stand-in dense net (the engine stops at the first fault)."""
    kwargs = model_kwargs(form)
    if layer_faults:
        kwargs["hidden_layers"] = [max(1, min(4096, int(u))) for u in kwargs["hidden_layers"]]
        kwargs["layers"] = None
    try:
        configure(kwargs)
        if not layer_faults:
            check_size_on_set(kwargs, info)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        add(section_of(getattr(exc, "param", None) or msg.split("=", 1)[0].strip()), msg)


def form_problems(
    form: Mapping[str, Any],
    train_limit: int | None = None,
    info: Any = None,
    stack_faults: list[str] | None = None,
) -> dict[str, list[str]]:
    """Problems of the form's values, by section (empty: ready to train), for the data set
    ``info`` (default: MNIST): its image shape and classes for the layers, its counts for the
    split. ``stack_faults`` are the layer stack's own faults (``ui.stack_editor.faults``)."""
    info = set_info(info)
    errors: dict[str, list[str]] = {}

    def add(section: str, message: str) -> None:
        errors.setdefault(section, []).append(message)

    stacked = form.get("stack_mode") == "stack"
    if form.get("n_layers_typed") is not None and not stacked:
        lo, hi = LAYER_BOUNDS["n_layers"]
        add("layers", f"Hidden layers: {form['n_layers_typed']} is outside {lo} to {hi}.")
    for message in stack_faults or []:
        add("layers", message)
    _check_bounds({**form, "layers": []} if stacked else form, add)
    _check_model(form, info, add, layer_faults="layers" in errors)
    _check_split(form, train_limit, info, add)
    return errors


def _check_split(form: Mapping[str, Any], train_limit: int | None, info: Any, add) -> None:
    if not split_fractions_usable(form):
        v, t = float(form["val_fraction"]), float(form["test_fraction"])
        add(
            DATA_SECTION,
            f"Validation ({v:g}) and test ({t:g}) fractions must each be in (0, 1) "
            "and sum to less than 1.",
        )
        return
    part = training_part_size(form, info)
    if part < 1:
        add(
            DATA_SECTION,
            f"The {form['split']} split of {info.name}'s {info.n_train + info.n_test:,} images "
            "leaves no training images: lower the validation and test fractions.",
        )
        return
    if int(form["train_size"]) < 0 or int(form["train_size"]) > part:
        add(
            DATA_SECTION,
            f"Training-set size {form['train_size']:,} is outside 0..{part:,} (the training "
            f"part of the {form['split']} split of {info.name}; 0 = all).",
        )
    n = effective_train_size(form, train_limit, info)
    batch = form.get("batch_size")
    if isinstance(batch, int) and batch > n:
        add(
            section_of("batch_size"),
            f"batch_size={batch} is larger than the {n} training images: use a smaller batch.",
        )
