"""The checks a model file's content passes before a model is built from it.

Every metadata value the loaders, ``info`` and the pages read has the type they expect, the
data-set record fits the model, the weights are finite floats: a wrong value is the file's
fault (``ModelFileError``), not a crash further on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from nn.core.limits import MAX_PARAMETERS
from nn.io.npz import ModelFileError, check_manifest

__all__ = ["check_weights", "state_meta", "checked_state"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(label: Any, key: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ModelFileError(
            label, f"metadata field {key!r} is {json.dumps(value, default=repr)[:80]}; {allowed}"
        )


_OPTIONAL_TEXT_FIELDS = (
    "name",
    "created",
    "saved",
    "notes",
    "stop_reason",
    "stop_message",
    "classes_dtype",
)


def _check_field_types(meta: dict, state: dict, label: Any) -> None:
    """Every metadata value the loaders, ``info`` and the pages read has the type they expect:
    a wrong type is the file's fault (ModelFileError), not a crash further on."""
    merged = {**meta, **state}
    for key in _OPTIONAL_TEXT_FIELDS:
        value = merged.get(key)
        _check_type(label, key, value, value is None or isinstance(value, str), "expected text")
    for key in ("metrics", "architecture", "optimizer", "history", "inside"):
        value = merged.get(key)
        _check_type(
            label, key, value, value is None or isinstance(value, dict), "expected an object"
        )
    history = merged.get("history") or {}
    for key, value in history.items():
        _check_type(label, f"history.{key}", value, isinstance(value, list), "expected a list")
    for key in ("n_parameters", "n_iter"):
        value = merged.get(key)
        ok = value is None or (_is_int(value) and value >= 0)
        _check_type(label, key, value, ok, "expected a whole number >= 0")
    value = merged.get("best_val_accuracy")
    _check_type(
        label, "best_val_accuracy", value, value is None or _is_real(value), "expected a number"
    )
    _check_dataset(meta.get("dataset"), label)
    _check_threshold(meta.get("confidence_threshold"), label)
    params = state.get("params")
    _check_type(label, "params", params, isinstance(params, dict), "expected an object")
    sizes = state.get("layer_sizes")
    ok = isinstance(sizes, list) and len(sizes) >= 2 and all(_is_int(n) and n >= 1 for n in sizes)
    _check_type(label, "layer_sizes", sizes, ok, "expected a list of 2 or more sizes >= 1")
    n_weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if n_weights > MAX_PARAMETERS:
        raise ModelFileError(
            label,
            f"layers {'-'.join(map(str, sizes))} have {n_weights:,} parameters; a model of this "
            f"product has at most {MAX_PARAMETERS:,}",
        )
    n_features = state.get("n_features_in")
    _check_type(label, "n_features_in", n_features, _is_int(n_features), "expected a whole number")
    classes = state.get("classes")
    ok = isinstance(classes, list) and all(
        isinstance(c, (int, float, str)) and not isinstance(c, bool) for c in classes
    )
    _check_type(label, "classes", classes, ok, "expected a list of labels")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ModelFileError(
            label,
            f"the model has {len(classes)} classes ({len(set(classes))} distinct); "
            "a classifier needs 2 or more distinct classes",
        )
    _check_dataset_fits(meta.get("dataset"), n_features, len(classes), label)


def _check_threshold(record: Any, label: Any) -> None:
    """A ``confidence_threshold`` record of version 1 holds a ``value`` from 0 to 1; a record
    of a later version is left to the readers that know it (``threshold_value`` reads it as
    none)."""
    if record is None:
        return
    _check_type(
        label, "confidence_threshold", record, isinstance(record, dict), "expected an object"
    )
    version = record.get("version")
    ok = _is_int(version) and version >= 1
    _check_type(label, "confidence_threshold.version", version, ok, "expected a whole number >= 1")
    if version == 1:
        value = record.get("value")
        ok = _is_real(value) and 0 <= value <= 1
        _check_type(label, "confidence_threshold.value", value, ok, "expected a number from 0 to 1")


def _check_dataset_fits(record: Any, n_features: int, n_classes: int, label: Any) -> None:
    """The data set a model records has the model's own input size and number of classes."""
    if not isinstance(record, dict):
        return
    shape = [int(s) for s in record["image_shape"]]
    values = shape[0] * shape[1] * shape[2]
    shown = "x".join(map(str, shape[:2] if shape[2] == 1 else shape))  # 28x28, 32x32x3
    if values != n_features:
        raise ModelFileError(
            label,
            f"the model records the data set {record.get('name')!r} of "
            f"{shown} images ({values:,} values each) but takes "
            f"{n_features:,} inputs",
        )
    if len(record["class_names"]) != n_classes:
        raise ModelFileError(
            label,
            f"the model records the data set {record.get('name')!r} of "
            f"{len(record['class_names'])} classes but has {n_classes} classes",
        )


def _check_dataset(record: Any, label: Any) -> None:
    """The data set record is absent (an MNIST model) or names a set, its SHA-256, an image
    shape ``[h, w, 1 or 3]`` and 2 or more distinct class names."""
    if record is None:
        return
    _check_type(label, "dataset", record, isinstance(record, dict), "expected an object")
    for key in ("name", "sha256"):
        value = record.get(key)
        _check_type(
            label, f"dataset.{key}", value, value is None or isinstance(value, str), "expected text"
        )
    shape = record.get("image_shape")
    ok = (
        isinstance(shape, list)
        and len(shape) == 3
        and all(_is_int(s) and s >= 1 for s in shape)
        and shape[2] in (1, 3)
    )
    _check_type(label, "dataset.image_shape", shape, ok, "expected [height, width, 1 or 3]")
    names = record.get("class_names")
    ok = (
        isinstance(names, list)
        and len(names) >= 2
        and all(isinstance(c, str) for c in names)
        and len(set(names)) == len(names)
    )
    _check_type(label, "dataset.class_names", names, ok, "expected 2 or more distinct names")


_WEIGHT_NAME_RE = re.compile(r"(coef|intercept)_\d+|layer\d+\..+|opt\..+")


_NON_NEGATIVE_RE = re.compile(r"layer\d+\.batchnorm\.running_var|opt\.(v|square_avg)\..+")


def check_weights(arrays: dict[str, np.ndarray], label: Any) -> None:
    """Weights and optimizer state are finite float32/float64 numbers; variances (batch
    norm's running variance, Adam's second moment) are not negative."""
    for key, arr in arrays.items():
        if not _WEIGHT_NAME_RE.fullmatch(key):
            continue
        if arr.dtype not in (np.float32, np.float64):
            raise ModelFileError(
                label, f"array {key!r} holds {arr.dtype} values; weights are float32 or float64"
            )
        if not np.isfinite(arr).all():
            raise ModelFileError(label, f"array {key!r} holds NaN or infinite values")
        if _NON_NEGATIVE_RE.fullmatch(key) and (arr < 0).any():
            raise ModelFileError(
                label,
                f"array {key!r} holds negative values; a variance (batch norm's running "
                "variance, Adam's second moment) is 0 or more",
            )


def state_meta(meta: dict, label: Any) -> dict:
    keys = meta.get("state_keys")
    shadowed = meta.get("state_shadowed") or {}
    if not isinstance(keys, list) or not isinstance(shadowed, dict):
        raise ModelFileError(label, "metadata has no state_keys")
    state = {}
    for key in keys:
        if key in shadowed:
            state[key] = shadowed[key]
        elif key in meta:
            state[key] = meta[key]
        else:
            raise ModelFileError(label, f"metadata is missing model field {key!r}")
    return state


def checked_state(meta: dict, specs: dict[str, tuple], label: Any) -> dict:
    """The model's fields from the metadata, once the manifest and every type are checked."""
    check_manifest(meta, specs, label)
    state = state_meta(meta, label)
    _check_field_types(meta, state, label)
    return state
