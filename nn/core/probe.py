"""A look inside a network while it learns: per-layer statistics on a fixed probe batch.

:class:`InsideRecorder` is driven by the training callback. At every epoch event it runs the
probe batch (a few validation images, the same ones every epoch) forward and backward through
the model's layers and records, per layer:

- the distribution of the weights, of the probe batch's gradients and of the layer's output
  (quantiles and a histogram, like TensorBoard's distributions and histograms);
- the gradient norm of the layer's parameters and the weight norm;
- the update-to-weight ratio ``||W after the epoch's last step - W before it|| / ||W before||``
  (about 1e-3 is healthy; near 1 the step throws the weights around);
- the spread across units: the standard deviation across a layer's units (columns of a dense
  weight, filters of a convolution, features or channels of an output), averaged over the rest.
  0 means every unit of the layer is the same (zero initialisation never breaks that symmetry);
- for ReLU, the fraction of units that never fire on the probe batch (a channel of a feature map
  counts as one unit); for sigmoid and tanh, the fraction of outputs in the flat, saturated part.

It also predicts a fixed grid of test images (label and top-3 probabilities) every epoch.

Everything recorded is plain data (lists of floats, ``None`` for a non-finite value) that
travels through training events as JSON and is saved in a model file's metadata:
``start(model)`` gives the description (``inside_start``), ``epoch(model, n)`` one epoch
(``inside_epoch``) and :func:`append_epoch` adds an epoch to a record on the receiving side.
The probe pass reads the model's layers only: it never touches the optimizer, the random
generator or batch norm's running statistics (it runs in prediction mode), and it writes the
layers' gradient arrays, which the next training batch overwrites.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from nn.core.layers import ActivationLayer, Layer
from nn.core.losses import softmax, softmax_cross_entropy

RECORD_VERSION = 1
PROBE_SIZE = 64
"""Validation images given to the probe batch."""
PROBE_MACS = 16_000_000
"""Multiply-adds one forward pass of the probe batch may cost: the probe uses as many of its
images as fit (all 64 for a dense 784-256-128-10 net, about 0.2 M multiply-adds an image), but
at least :data:`MIN_PROBE`. A CNN such as C32k3-P2-C64k3-P2-D128 costs about 4.2 M an image, so
its probe runs on :data:`MIN_PROBE` images: the pass forward and back then costs a few
milliseconds, not the ~60 of 64 images."""
MIN_PROBE = 8
GRID_PER_CLASS = 5
"""Test images per class in the live test grid (50 for MNIST)."""
HIST_BINS = 24
QUANTILES = (0.0, 0.02, 0.16, 0.5, 0.84, 0.98, 1.0)
"""The quantile bands shown: the range, about two and one standard deviations, the median."""
MAX_SAMPLE = 4096
"""Values taken (evenly spaced) from a large array for its quantiles and histogram."""
MAX_ROWS = 256
"""Positions (samples, or samples x pixels of a feature map, or a weight's inputs) the spread
across units averages, evenly spaced."""
SATURATED = {"sigmoid": (0.02, 0.98), "tanh": (-0.98, 0.98)}
"""Outputs outside these bounds sit where the activation's derivative is below ~0.04."""
TOP_K = 3

LAYER_SERIES = (
    "weight_q",
    "weight_hist",
    "grad_q",
    "grad_hist",
    "act_q",
    "act_hist",
    "grad_norm",
    "weight_norm",
    "update_ratio",
    "weight_unit_spread",
    "act_unit_spread",
    "dead_fraction",
    "saturated_fraction",
)


def _finite(value: float) -> float | None:
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    if flat.size > MAX_SAMPLE:
        flat = flat[:: math.ceil(flat.size / MAX_SAMPLE)]
    return flat.astype(np.float64)


def _quantiles(ordered: np.ndarray) -> np.ndarray:
    """:data:`QUANTILES` of sorted values, interpolated linearly as ``np.quantile`` does (which
    sorts again for every call: this is ~5x faster on a sample)."""
    position = np.asarray(QUANTILES) * (ordered.size - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ordered.size - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def distribution(values: np.ndarray) -> tuple[list[float | None], dict[str, Any]]:
    """Quantiles (:data:`QUANTILES`) and a histogram ``{"lo", "hi", "counts"}`` of the finite
    values (a sample of a large array); ``None`` quantiles and no counts when none is finite."""
    sample = _sample(values)
    ordered = np.sort(sample[np.isfinite(sample)])
    if not ordered.size:
        return [None] * len(QUANTILES), {"lo": None, "hi": None, "counts": []}
    quantiles = _quantiles(ordered)
    lo, hi = float(ordered[0]), float(ordered[-1])
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    # bins [edge_i, edge_i+1) of equal width, the last one closed, counted on the sorted sample
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    ends = np.searchsorted(ordered, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], ends, [ordered.size])))
    hist = {"lo": _finite(lo), "hi": _finite(hi), "counts": counts.tolist()}
    return [_finite(q) for q in quantiles], hist


def unit_spread(values: np.ndarray) -> float | None:
    """Standard deviation across the last axis (the units), averaged over the other axes (over
    at most :data:`MAX_ROWS` evenly spaced positions)."""
    if values.shape[-1] < 2:
        return None
    rows = values.reshape(-1, values.shape[-1])
    step = math.ceil(rows.shape[0] / MAX_ROWS)  # evenly spaced rows of a large output
    rows = rows[::step].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(rows.std(axis=1).mean())


def _norm(arrays: Sequence[np.ndarray]) -> float:
    """The Euclidean norm of all the arrays' entries (in float64 when float32 overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = sum(float(np.vdot(a, a)) for a in arrays)
        if math.isinf(total):
            total = sum(float(np.vdot(a, a)) for a in (a.astype(np.float64) for a in arrays))
        return math.sqrt(total)


def _as_float(x: np.ndarray, dtype) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(dtype) * dtype.type(1.0 / 255.0)
    return np.asarray(x, dtype)


def _images_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint(np.asarray(x, np.float64) * 255), 0, 255).astype(np.uint8)


def encode_images(x: np.ndarray) -> dict[str, Any]:
    """Images as base64 of their uint8 pixels (compact in JSON) and their shape."""
    pixels = np.ascontiguousarray(_images_uint8(x))
    return {"shape": list(pixels.shape), "pixels": base64.b64encode(pixels.tobytes()).decode()}


def decode_images(encoded: dict[str, Any]) -> np.ndarray:
    """The uint8 images of :func:`encode_images`."""
    data = base64.b64decode(encoded["pixels"])
    shape = tuple(int(s) for s in encoded["shape"])
    if math.prod(shape) != len(data):
        raise ValueError(f"the image data holds {len(data)} bytes, not {math.prod(shape)}")
    return np.frombuffer(data, np.uint8).reshape(shape)


def image_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``(height, width, channels)`` of an input: itself for an image, a square greyscale image
    for a vector of a square number of values (784 -> 28x28x1), else ``(1, d, 1)``."""
    if len(input_shape) == 3:
        return tuple(int(s) for s in input_shape)
    d = math.prod(input_shape)
    side = math.isqrt(d)
    return (side, side, 1) if side * side == d else (1, d, 1)


def grid_indices(y: np.ndarray, per_class: int = GRID_PER_CLASS) -> np.ndarray:
    """The first ``per_class`` images of every class, in order of class then position."""
    y = np.asarray(y)
    picks = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y)]
    return np.concatenate(picks) if picks else np.zeros(0, int)


@contextmanager
def gradient_arrays(layers: Sequence[Layer]):
    """Gradient arrays for layers that have none (a model outside ``fit``), dropped afterwards;
    layers that have them (during training) keep theirs."""
    attached = []
    for layer in layers:
        if layer.param_names and not layer.grads:
            layer.grads = [np.zeros(s, layer.dtype) for s in layer.param_shapes()]
            attached.append(layer)
    try:
        yield
    finally:
        for layer in attached:
            layer.grads = []


def forward(layers: Sequence[Layer], x: np.ndarray, keep: bool, on_output=None) -> np.ndarray:
    """The stack's output for a float batch, in prediction mode; ``on_output(i, layer, out)``
    sees every layer's output as it is made."""
    a = x.reshape(x.shape[0], *layers[0].input_shape)
    for i, layer in enumerate(layers):
        a = layer.forward(a, False, keep, None)
        if on_output is not None:
            on_output(i, layer, a)
    return a


def backward(layers: Sequence[Layer], dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
    """Every layer's gradients from dL/d(output), back to dL/d(input) (returned; ``None``
    without ``need_dx``, which spares the first layer's input gradient)."""
    for i in range(len(layers) - 1, -1, -1):
        dy = layers[i].backward(dy, need_dx=need_dx or i > 0)
    return dy


def multiply_adds(layers: Sequence[Layer]) -> int:
    """Multiply-adds of one image's forward pass through the trained layers (a weight entry is
    used once per output position: once for a dense layer, H x W times for a convolution)."""
    return int(
        sum(
            layer.params[0].size * math.prod(layer.output_shape[:-1])
            for layer in layers
            if layer.param_names
        )
    )


def probe_count(layers: Sequence[Layer], available: int) -> int:
    """How many of ``available`` probe images one epoch's probe pass uses (see
    :data:`PROBE_MACS`)."""
    fits = PROBE_MACS // max(multiply_adds(layers), 1)
    return int(min(available, max(MIN_PROBE, fits)))


def release(layers: Sequence[Layer]) -> None:
    for layer in layers:
        layer.clear_buffers()


def describe_layers(model: Any) -> list[dict[str, Any]]:
    """Index, type, name, output shape and parameter count of every layer."""
    return [
        {
            "index": i,
            "kind": layer.kind,
            "name": f"{i} {layer.kind}",
            "output_shape": [int(s) for s in layer.output_shape],
            "n_parameters": int(layer.n_parameters),
            "trained": bool(layer.param_names),
        }
        for i, layer in enumerate(model.layers_)
    ]


def empty_record(start: dict[str, Any]) -> dict[str, Any]:
    """A record holding ``start``'s description and no epoch yet."""
    record = {**start, "epochs": [], "probe_loss": [], "probe_accuracy": [], "grid_accuracy": []}
    record["series"] = [{key: [] for key in LAYER_SERIES} for _ in start["layers"]]
    record["grid_top"] = None
    record["diverged"] = None
    return record


def append_epoch(record: dict[str, Any], epoch: dict[str, Any]) -> dict[str, Any]:
    """Add one epoch (from :meth:`InsideRecorder.epoch`) to ``record``, in place; returns it.
    A point taken where training diverged also sets ``record["diverged"]`` (see
    :meth:`InsideRecorder.observe`)."""
    if epoch.get("diverged") is not None:
        record["diverged"] = epoch["diverged"]
    record["epochs"].append(epoch["epoch"])
    record["probe_loss"].append(epoch["probe_loss"])
    record["probe_accuracy"].append(epoch["probe_accuracy"])
    record["grid_accuracy"].append(epoch.get("grid_accuracy"))
    for series, values in zip(record["series"], epoch["layers"], strict=True):
        for key in LAYER_SERIES:
            series[key].append(values.get(key))
    if epoch.get("grid_top") is not None:
        record["grid_top"] = epoch["grid_top"]
    return record


class InsideRecorder:
    """Records what happens inside ``model`` while it trains (see the module docstring).

    ``probe_x``/``probe_y``: the probe batch (use :data:`PROBE_SIZE` validation images);
    ``grid_x``/``grid_y``: the test grid (see :func:`grid_indices`), optional.
    Call :meth:`observe` from the training callback with every event; it returns the
    ``(stage, payload)`` pairs to send on (``inside_start`` once, ``inside_epoch`` per epoch)
    and keeps the whole record in :attr:`record`.

    A ``diverged`` event (training stops: the loss exploded) adds one more point, measured on
    the weights that diverged, before ``fit`` puts the last good ones back. Its ``epoch`` is
    where in training it happened (``2.25``: a quarter into the third epoch), its update ratio
    compares the weights with those of the epoch's start (or of the step before the epoch's
    last), and ``record["diverged"]`` says where and at which loss.
    """

    def __init__(self, probe_x, probe_y, grid_x=None, grid_y=None):
        self.probe_x = np.asarray(probe_x)
        self.probe_y = np.asarray(probe_y)
        self.grid_x = None if grid_x is None else np.asarray(grid_x)
        self.grid_y = None if grid_y is None else np.asarray(grid_y)
        self.record: dict[str, Any] | None = None
        self._before_step: list[np.ndarray | None] | None = None

    # ------------------------------------------------------------------ the callback side
    def observe(self, model: Any, event: Any) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if self.record is None:
            start = self.start(model)
            self.record = empty_record(start)
            out.append(("inside_start", start))
            self.keep_weights(model)  # what a divergence in the first epoch compares with
        if event.kind == "batch" and event.batch == event.n_batches - 1:
            self.keep_weights(model)
        elif event.kind == "epoch":
            payload = self.epoch(model, int(event.epoch))
            append_epoch(self.record, payload)
            out.append(("inside_epoch", payload))
            self.keep_weights(model)  # an epoch of one batch compares with the last epoch's end
        elif event.kind == "diverged":
            at = round(event.epoch - 1 + event.batch / max(event.n_batches, 1), 3)
            payload = self.epoch(model, at)
            payload["diverged"] = {
                "at": at,
                "epoch": int(event.epoch),
                "batch": int(event.batch),
                "n_batches": int(event.n_batches),
                "loss": _finite(event.loss),
                "learning_rate": _finite(event.learning_rate),
            }
            append_epoch(self.record, payload)
            out.append(("inside_epoch", payload))
        return out

    def start(self, model: Any) -> dict[str, Any]:
        """The layers, the probe size and the test grid's images and labels."""
        start: dict[str, Any] = {
            "version": RECORD_VERSION,
            "layers": describe_layers(model),
            "input_shape": [int(s) for s in model.input_shape_],
            "probe_size": probe_count(model.layers_, int(self.probe_x.shape[0])),
            "classes": np.asarray(model.classes_).tolist(),
            "grid": None,
        }
        if self.grid_x is not None and self.grid_x.shape[0]:
            # a dense network on a data set's images sees flat rows; input_shape gives their shape
            shape = image_shape(getattr(model, "input_shape", None) or model.input_shape_)
            images = self.grid_x.reshape(self.grid_x.shape[0], *shape)
            start["grid"] = {**encode_images(images), "labels": self.grid_y.tolist()}
        return start

    def keep_weights(self, model: Any) -> None:
        """Remember the weights, to measure the next step's update."""
        self._before_step = [
            layer.params[0].copy() if layer.param_names else None for layer in model.layers_
        ]

    # ------------------------------------------------------------------ the measurements
    def epoch(self, model: Any, epoch: float) -> dict[str, Any]:
        """One epoch's measurements on the probe batch (and the grid's predictions)."""
        layers = model.layers_
        dtype = layers[0].dtype
        n = probe_count(layers, int(self.probe_x.shape[0]))
        x = _as_float(self.probe_x[:n], dtype)
        y_idx = np.searchsorted(np.asarray(model.classes_), self.probe_y[:n])
        outputs: list[dict[str, Any]] = [{} for _ in layers]
        with np.errstate(all="ignore"), gradient_arrays(layers):
            logits = forward(
                layers,
                x,
                keep=True,
                on_output=lambda i, layer, a: outputs[i].update(_output(layer, a)),
            )
            accuracy = float(np.mean(logits.argmax(axis=1) == y_idx))
            loss, delta = softmax_cross_entropy(logits, y_idx, grad_out=logits.copy())
            backward(layers, delta, need_dx=False)
            for i, layer in enumerate(layers):
                if layer.param_names:
                    outputs[i].update(self._trained(layer, i))
            grid = self._grid(model, layers, dtype)
        payload = {
            "epoch": epoch,
            "probe_loss": _finite(loss),
            "probe_accuracy": accuracy,
            "layers": [{key: values.get(key) for key in LAYER_SERIES} for values in outputs],
            "grid_accuracy": None,
            "grid_top": None,
        }
        if grid is not None:
            payload.update(grid)
        return payload

    def _trained(self, layer: Layer, index: int) -> dict[str, Any]:
        weight, grads = layer.params[0], layer.grads
        weight_q, weight_hist = distribution(weight)
        grad_q, grad_hist = distribution(grads[0])
        weight_norm = _norm([weight])
        values = {
            "weight_q": weight_q,
            "weight_hist": weight_hist,
            "grad_q": grad_q,
            "grad_hist": grad_hist,
            "grad_norm": _finite(_norm(grads)),
            "weight_norm": _finite(weight_norm),
            "update_ratio": None,
            "weight_unit_spread": unit_spread(weight) if weight.ndim > 1 else None,
        }
        before = None if self._before_step is None else self._before_step[index]
        if before is not None and before.shape == weight.shape:
            with np.errstate(all="ignore"):
                before_norm = _norm([before])
                step = _norm([weight - before])
            if before_norm > 0:
                values["update_ratio"] = _finite(step / before_norm)
            elif step > 0:
                values["update_ratio"] = None  # from all-zero weights: no ratio
            else:
                values["update_ratio"] = 0.0
        return values

    def _grid(self, model: Any, layers: Sequence[Layer], dtype) -> dict[str, Any] | None:
        if self.grid_x is None or not self.grid_x.shape[0]:
            return None
        logits = forward(layers, _as_float(self.grid_x, dtype), keep=False)
        proba = softmax(logits.astype(np.float64))
        top = np.argsort(-proba, axis=1)[:, :TOP_K]
        classes = np.asarray(model.classes_)
        labels = classes[top]
        correct = float(np.mean(classes[top[:, 0]] == self.grid_y))
        return {
            "grid_accuracy": correct,
            "grid_top": {
                "labels": labels.tolist(),
                "proba": [[_finite(p) for p in row] for row in np.take_along_axis(proba, top, 1)],
            },
        }


def _output(layer: Layer, out: np.ndarray) -> dict[str, Any]:
    """Statistics of one layer's output on the probe batch."""
    act_q, act_hist = distribution(out)
    values: dict[str, Any] = {
        "act_q": act_q,
        "act_hist": act_hist,
        "act_unit_spread": unit_spread(out),
    }
    if isinstance(layer, ActivationLayer):
        if layer.kind == "relu":
            fired = (out > 0).reshape(-1, out.shape[-1]).any(axis=0)
            values["dead_fraction"] = float(1.0 - fired.mean())
        elif layer.kind in SATURATED:
            low, high = SATURATED[layer.kind]
            values["saturated_fraction"] = float(np.mean((out < low) | (out > high)))
    return values


def snapshot(model: Any, probe_x, probe_y, grid_x=None, grid_y=None) -> dict[str, Any]:
    """A one-epoch record of a model as it is now (for a saved model trained without one)."""
    recorder = InsideRecorder(probe_x, probe_y, grid_x, grid_y)
    record = empty_record(recorder.start(model))
    append_epoch(record, recorder.epoch(model, int(getattr(model, "n_iter_", 0) or 0)))
    release(model.layers_)
    return record
