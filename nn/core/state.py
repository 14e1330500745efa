"""A fitted ``NeuralNetwork`` as JSON-able metadata and named arrays, and back: ``to_state`` and
``from_state`` (the model files of ``nn.io.model_files`` and the job workers' results are made
of them). Arrays are named by layer (``layer3.conv2d.weight``, ``layer4.batchnorm.running_mean``,
``opt.m.layer3.conv2d.weight``); the earlier dense-only naming (``coef_<i>``, ``intercept_<i>``,
``opt.<slot>.<i>``) still loads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nn.core.config import build_stack, configure, input_shape_for
from nn.core.layers import Dense
from nn.core.network import NeuralNetwork
from nn.core.params import PARAMS, json_params
from nn.core.sequential import Sequential


def to_state(model: NeuralNetwork) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """JSON-able metadata and the arrays, named by layer, of a fitted model."""
    model.check_fitted()
    opt_scalars, opt_arrays = model.optimizer_.state_dict()
    net = model.stack_
    meta = {
        "params": json_params(model.get_params()),
        "classes": model.classes_.tolist(),
        "classes_dtype": model.classes_.dtype.str,
        "n_features_in": int(model.n_features_in_),
        "input_shape": [int(s) for s in model.input_shape_],
        "layer_sizes": model.layer_sizes_,
        "stack": net.specs(),
        "n_iter": int(model.n_iter_),
        "history": {k: list(v) for k, v in model.history_.items()},
        "optimizer": opt_scalars,
        "stop_reason": model.stop_reason_,
        "stop_message": model.stop_message_,
        "best_val_accuracy": model.best_val_accuracy_,
    }
    names = net.param_names()
    arrays = dict(net.named_parameters())
    arrays.update(net.named_state())
    for key, value in opt_arrays.items():
        slot, index = key.rsplit(".", 1)
        arrays[f"opt.{slot}.{names[int(index)]}"] = value
    return meta, arrays


def from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> NeuralNetwork:
    """The fitted model of ``to_state``'s output (or of the earlier naming); checks the names
    and shapes of the arrays against the stack the settings build (``ValueError``)."""
    params = meta["params"]
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of hyperparameters, not {params!r}.")
    model = NeuralNetwork(**{k: v for k, v in params.items() if k in PARAMS})
    config = configure(model.get_params())
    model.classes_ = _classes(meta)
    tail = meta.get("input_shape") or [meta["n_features_in"]]
    shape = input_shape_for(tail, config)
    net = build_stack(config, shape, model.classes_.size)
    legacy = any(k.startswith("coef_") for k in arrays)
    sizes = meta.get("layer_sizes")
    if legacy and sizes is not None and [int(s) for s in sizes[1:-1]] != config.widths:
        raise ValueError(f"layer sizes {sizes} disagree with hidden_layers {config.widths}.")
    if int(meta["n_features_in"]) != math.prod(shape):
        raise ValueError(
            f"n_features_in {meta['n_features_in']} disagrees with the input shape {list(shape)}."
        )
    net.allocate()
    names = _legacy_names(net) if legacy else net.param_names()
    for name, p in zip(names, net.params, strict=True):
        p[...] = _array(arrays, name, p.shape)
    net.load_state({name: _array(arrays, name, value.shape) for name, value in net.named_state()})
    model.stack_ = net
    model.input_shape_ = shape
    model.n_features_in_ = math.prod(shape)
    model.n_iter_ = int(meta.get("n_iter", 0))
    model.history_ = {k: list(v) for k, v in meta.get("history", {}).items()}
    model.optimizer_ = model.new_optimizer()
    model.optimizer_.load_state_dict(
        meta.get("optimizer", {}), _optimizer_arrays(arrays, names, legacy)
    )
    model.stop_reason_ = meta.get("stop_reason")
    model.stop_message_ = meta.get("stop_message", "")
    model.best_val_accuracy_ = meta.get("best_val_accuracy")
    return model


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
