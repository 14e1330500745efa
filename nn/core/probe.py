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

What is exact and what is estimated: the norms, the update ratio and the dead and saturated
fractions are computed on every entry; the quantiles and histograms of an array of more than
``MAX_SAMPLE`` values are those of a fixed random sample of that many (drawn once per recorder,
the same positions every epoch), and the spread across units averages at most ``MAX_ROWS``
evenly spaced positions (``nn.core.probe_stats`` computes them). The statistics of all layers
are computed together, in a workspace made once per model (:class:`_Workspace`): an array made
anew every epoch costs page faults, which cost more than the arithmetic.

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
from nn.core.live_map import LiveMap
from nn.core.losses import softmax, softmax_cross_entropy
from nn.core.probe_stats import (
    MAX_SAMPLE,
    SAMPLE_SEED,
    RowBlocks,
    SampleMatrix,
    draw_positions,
    fired_units,
    norm_of,
    rounded,
    rounded_value,
)

RECORD_VERSION = 1
PROBE_SIZE = 64
"""Validation images given to the probe batch."""
PROBE_MACS = 16_000_000
"""Multiply-adds one forward pass of the probe batch may cost: the probe uses as many of its
images as fit (all 64 for a dense 784-256-128-10 net, about 0.2 M multiply-adds an image), but
at least :data:`MIN_PROBE`. A CNN such as C32k3-P2-C64k3-P2-D128 costs about 4.2 M an image, so
its probe runs on :data:`MIN_PROBE` images: the pass forward and back then costs ~5 ms, not
the ~40 of 64 images (bench/README.md)."""
MIN_PROBE = 8
GRID_PER_CLASS = 5
"""Test images per class in the live test grid (50 for MNIST)."""
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
    record["map_frames"] = None
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
    if epoch.get("map_frames") is not None:  # every frame so far (nn.core.live_map)
        record["map_frames"] = epoch["map_frames"]
    return record


class _Workspace:
    """Where one model's probe statistics are computed, made once for its layout and the probe's
    size and reused every epoch: the sample matrix (each layer's output, then each trained
    layer's weight and gradient, a sample of the same positions for both), the row blocks of
    the spreads across units (each output and weight of at least 2 units), an array the size of
    the largest weight for a step, and the fixed sample positions, drawn here once per
    recorder's ``rng``."""

    def __init__(self, layers: Sequence[Layer], n: int, rng: np.random.Generator):
        self.key = _layout(layers, n)
        self.row: dict[tuple[int, str], int] = {}
        self.positions: list[np.ndarray | None] = []
        self.block: dict[tuple[int, str], int] = {}
        block_shapes: list[tuple[int, int]] = []
        sizes: list[int] = []

        def add_row(key: tuple[int, str], size: int, positions) -> None:
            self.row[key] = len(sizes)
            sizes.append(size if positions is None else MAX_SAMPLE)
            self.positions.append(positions)

        def add_block(key: tuple[int, str], shape: tuple[int, ...]) -> None:
            if len(shape) > 1 and shape[-1] >= 2:
                self.block[key] = len(block_shapes)
                block_shapes.append((math.prod(shape[:-1]), shape[-1]))

        for i, layer in enumerate(layers):
            shape = (n, *layer.output_shape)
            add_row((i, "act"), math.prod(shape), draw_positions(rng, math.prod(shape)))
            add_block((i, "act_unit_spread"), shape)
        largest = 0
        for i, layer in enumerate(layers):
            if layer.param_names:
                weight = layer.params[0]
                positions = draw_positions(rng, weight.size)
                add_row((i, "weight"), weight.size, positions)
                add_row((i, "grad"), weight.size, positions)
                add_block((i, "weight_unit_spread"), weight.shape)
                largest = max(largest, weight.size)
        self.step = np.empty(largest, layers[0].dtype)
        self.samples = SampleMatrix(sizes, layers[0].dtype)
        self.blocks = RowBlocks(block_shapes)
        self.values: list[dict[str, Any]] = [{} for _ in layers]

    def begin(self) -> None:
        self.values = [{} for _ in self.values]

    def take(self, layer: int, kind: str, values: np.ndarray) -> None:
        """Copy the sample of ``values`` (kind "act", "weight" or "grad") into its row."""
        row = self.row[(layer, kind)]
        self.samples.put(row, values, self.positions[row])

    def take_rows(self, layer: int, key: str, values: np.ndarray) -> None:
        """Copy the rows of ``values`` its spread ``key`` is measured on, if it has one."""
        block = self.block.get((layer, key))
        if block is not None:
            self.blocks.put(block, values)

    def summarise(self) -> list[dict[str, Any]]:
        """Every layer's values with the distributions and spreads, each kind computed in one
        go over all layers."""
        for (i, kind), (q, hist) in zip(self.row, self.samples.distributions(), strict=True):
            self.values[i][f"{kind}_q"], self.values[i][f"{kind}_hist"] = q, hist
        for (i, key), spread in zip(self.block, self.blocks.spreads(), strict=True):
            self.values[i][key] = spread
        return self.values


def _layout(layers: Sequence[Layer], n: int) -> tuple:
    """What a workspace is made for: the probe's size, the layers' output and weight shapes."""
    return (
        n,
        layers[0].dtype,
        tuple(layer.output_shape for layer in layers),
        tuple(layer.params[0].shape if layer.param_names else None for layer in layers),
    )


class InsideRecorder:
    """Records what happens inside ``model`` while it trains (see the module docstring).

    ``probe_x``/``probe_y``: the probe batch (use :data:`PROBE_SIZE` validation images);
    ``grid_x``/``grid_y``: the test grid (see :func:`grid_indices`), optional. ``probe_images``
    and ``grid_images`` say which part of the data set they come from ("validation", "test",
    "training"), for the page to say so.
    Call :meth:`observe` from the training callback with every event; it returns the
    ``(stage, payload)`` pairs to send on (``inside_start`` once, ``inside_epoch`` per epoch)
    and keeps the whole record in :attr:`record`. ``live_map`` (``nn.core.live_map.LiveMap``)
    adds the live layer map: ``map`` in the start, ``map_frames`` every epoch.

    A ``diverged`` event (training stops: the loss exploded) adds one more point, measured on
    the weights that diverged, before ``fit`` puts the last good ones back. Its ``epoch`` is
    where in training it happened (``2.25``: a quarter into the third epoch), its update ratio
    compares the weights with those of the epoch's start (or of the step before the epoch's
    last), and ``record["diverged"]`` says where and at which loss.
    """

    def __init__(
        self,
        probe_x,
        probe_y,
        grid_x=None,
        grid_y=None,
        *,
        probe_images: str = "validation",
        grid_images: str = "test",
        live_map: LiveMap | None = None,
    ):
        self.live_map = live_map
        self.probe_x = np.asarray(probe_x)
        self.probe_y = np.asarray(probe_y)
        self.grid_x = None if grid_x is None else np.asarray(grid_x)
        self.grid_y = None if grid_y is None else np.asarray(grid_y)
        self.probe_images = probe_images
        self.grid_images = grid_images
        self.record: dict[str, Any] | None = None
        self._before_step: list[np.ndarray | None] | None = None
        self._rng = np.random.default_rng(SAMPLE_SEED)
        self._work: _Workspace | None = None
        self._floats: dict[tuple[str, int, np.dtype], np.ndarray] = {}

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
                "loss": rounded_value(event.loss),
                "learning_rate": rounded_value(event.learning_rate),
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
            "probe_images": self.probe_images,
            "classes": np.asarray(model.classes_).tolist(),
            "grid": None,
        }
        if self.grid_x is not None and self.grid_x.shape[0]:
            # a dense network on a data set's images sees flat rows; input_shape gives their shape
            shape = image_shape(getattr(model, "input_shape", None) or model.input_shape_)
            images = self.grid_x.reshape(self.grid_x.shape[0], *shape)
            start["grid"] = {
                **encode_images(images),
                "labels": self.grid_y.tolist(),
                "images": self.grid_images,
            }
        if self.live_map is not None:
            start["map"] = self.live_map.start(model)
        return start

    def keep_weights(self, model: Any) -> None:
        """Remember the weights, to measure the next step's update (copied into the arrays
        kept from the last time when the shapes match)."""
        weights = [layer.params[0] if layer.param_names else None for layer in model.layers_]
        kept = self._before_step
        if kept is None or [None if k is None else k.shape for k in kept] != [
            None if w is None else w.shape for w in weights
        ]:
            self._before_step = [None if w is None else w.copy() for w in weights]
            return
        for before, weight in zip(kept, weights, strict=True):
            if weight is not None:
                np.copyto(before, weight)

    # ------------------------------------------------------------------ the measurements
    def _workspace(self, layers: Sequence[Layer], n: int) -> _Workspace:
        if self._work is None or self._work.key != _layout(layers, n):
            self._work = _Workspace(layers, n, self._rng)
        self._work.begin()
        return self._work

    def _float(self, name: str, images: np.ndarray, n: int, dtype) -> np.ndarray:
        """The first ``n`` of the probe's or grid's ``images`` as floats, converted once (the
        passes never write into the stack's input)."""
        key = (name, n, np.dtype(dtype))
        if key not in self._floats:
            self._floats[key] = _as_float(images[:n], np.dtype(dtype))
        return self._floats[key]

    def epoch(self, model: Any, epoch: float) -> dict[str, Any]:
        """One epoch's measurements on the probe batch (and the grid's predictions)."""
        layers = model.layers_
        dtype = layers[0].dtype
        n = probe_count(layers, int(self.probe_x.shape[0]))
        x = self._float("probe", self.probe_x, n, dtype)
        y_idx = np.searchsorted(np.asarray(model.classes_), self.probe_y[:n])
        work = self._workspace(layers, n)
        with np.errstate(all="ignore"), gradient_arrays(layers):
            logits = forward(
                layers, x, keep=True, on_output=lambda i, layer, a: _output(work, i, layer, a)
            )
            accuracy = float(np.mean(logits.argmax(axis=1) == y_idx))
            loss, delta = softmax_cross_entropy(logits, y_idx, grad_out=logits.copy())
            backward(layers, delta, need_dx=False)
            for i, layer in enumerate(layers):
                if layer.param_names:
                    self._trained(work, i, layer)
            grid = self._grid(model, layers, dtype)
            measured = work.summarise()
        payload = {
            "epoch": epoch,
            "probe_loss": rounded_value(loss),
            "probe_accuracy": accuracy,
            "layers": [{key: values.get(key) for key in LAYER_SERIES} for values in measured],
            "grid_accuracy": None,
            "grid_top": None,
        }
        if grid is not None:
            payload.update(grid)
        if self.live_map is not None:
            payload["map_frames"] = self.live_map.epoch(model, epoch)
        return payload

    def _trained(self, work: _Workspace, index: int, layer: Layer) -> None:
        """The weight's and gradient's samples and rows; the norms and the update ratio, exact
        (on every entry)."""
        weight, grads = layer.params[0], layer.grads
        work.take(index, "weight", weight)
        work.take(index, "grad", grads[0])
        work.take_rows(index, "weight_unit_spread", weight)
        values = work.values[index]
        values["grad_norm"] = rounded_value(norm_of(grads))
        values["weight_norm"] = rounded_value(norm_of([weight]))
        values["update_ratio"] = None
        before = None if self._before_step is None else self._before_step[index]
        if before is not None and before.shape == weight.shape:
            before_norm = norm_of([before])
            step = work.step[: weight.size].reshape(weight.shape)
            step_norm = norm_of([np.subtract(weight, before, out=step)])
            if before_norm > 0:
                values["update_ratio"] = rounded_value(step_norm / before_norm)
            elif step_norm == 0:
                values["update_ratio"] = 0.0  # all-zero weights that did not move
            # all-zero weights that moved: no ratio

    def _grid(self, model: Any, layers: Sequence[Layer], dtype) -> dict[str, Any] | None:
        if self.grid_x is None or not self.grid_x.shape[0]:
            return None
        x = self._float("grid", self.grid_x, self.grid_x.shape[0], dtype)
        logits = forward(layers, x, keep=False)
        proba = softmax(logits.astype(np.float64))
        top = np.argsort(-proba, axis=1)[:, :TOP_K]
        classes = np.asarray(model.classes_)
        correct = float(np.mean(classes[top[:, 0]] == self.grid_y))
        top_proba = rounded(np.take_along_axis(proba, top, 1))
        return {
            "grid_accuracy": correct,
            "grid_top": {
                "labels": classes[top].tolist(),
                "proba": [top_proba[i : i + TOP_K] for i in range(0, len(top_proba), TOP_K)],
            },
        }


def _output(work: _Workspace, index: int, layer: Layer, out: np.ndarray) -> None:
    """Take what the statistics of one layer's output on the probe batch need (copies: the next
    layer may overwrite the buffer); the dead and saturated fractions are counted here, exactly,
    on the whole output."""
    work.take(index, "act", out)
    work.take_rows(index, "act_unit_spread", out)
    values = work.values[index]
    if isinstance(layer, ActivationLayer):
        if layer.kind == "relu":
            values["dead_fraction"] = float(1.0 - fired_units(out).mean())
        elif layer.kind in SATURATED:
            low, high = SATURATED[layer.kind]
            saturated = np.count_nonzero((out < low) | (out > high))
            values["saturated_fraction"] = saturated / out.size


def snapshot(
    model: Any, probe_x, probe_y, grid_x=None, grid_y=None, **images: str
) -> dict[str, Any]:
    """A one-epoch record of a model as it is now (for a saved model trained without one);
    ``images``: the recorder's ``probe_images`` and ``grid_images``."""
    recorder = InsideRecorder(probe_x, probe_y, grid_x, grid_y, **images)
    record = empty_record(recorder.start(model))
    append_epoch(record, recorder.epoch(model, int(getattr(model, "n_iter_", 0) or 0)))
    release(model.layers_)
    return record
