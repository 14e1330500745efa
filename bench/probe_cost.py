"""What the inside recording (``nn.core.probe``) costs a training epoch, for the dense default
and a CNN.

    python bench/probe_cost.py [--train 4000] [--epochs 4] [--repeat 30] [--kept 4,6]
                               [--grid-per-class 5] [--all-probe-images]

Trains each model on ``--train`` MNIST images with a validation part (5,000 images), an
``InsideRecorder`` on the callback as the training job uses it, and reports:

- ``in fit``: the recorder's time per epoch inside ``fit`` (the epoch's probe pass and test grid
  plus the weight copies for the update ratio), median over the epochs after the first (the
  first makes the recorder's arrays and the probe's and grid's buffers);
- ``made again``: the conv and pool kernels' buffers made per epoch after the first, which is
  what evicting batch sizes costs (``nn.core.conv.BATCH_SIZES_KEPT``: each ``--kept`` value is a
  run, interleaved per model), and ``held``: their bytes at the end of an epoch;
- ``probe`` and ``grid``: the probe pass (forward and backward, the statistics) and the test
  grid's prediction alone, medians of ``--repeat`` calls on the trained model;
- the epoch's time on those images and scaled to a full 55,000-image epoch, and the recording's
  share of that.

``--grid-per-class`` sizes the grid (5: the 50 digits the pages show); ``--all-probe-images``
runs the probe on all 64 images whatever the model costs (the cost before the probe was sized by
:data:`nn.core.probe.PROBE_MACS`). Timings need an idle machine: run it under the exclusive CPU
lock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nn.core import conv, probe  # noqa: E402
from nn.core.layer_spec import parse_layers  # noqa: E402
from nn.core.losses import softmax_cross_entropy  # noqa: E402
from nn.core.network import NeuralNetwork  # noqa: E402
from nn.core.probe import (  # noqa: E402
    PROBE_SIZE,
    InsideRecorder,
    backward,
    forward,
    gradient_arrays,
    grid_indices,
    release,
)
from nn.data import load_mnist  # noqa: E402

CNN = parse_layers("conv32k3same,relu,pool2,conv64k3same,relu,pool2,dense128,relu")
MODELS = {
    "dense 784-256-128-10 (preset fast)": {"hidden_layers": [256, 128]},
    "CNN C32k3-P2-C64k3-P2-D128-D10": {"layers": CNN},
}
FULL_EPOCH = 55_000
MADE = {"arrays": 0, "bytes": 0}
"""Kernel buffers made since the last epoch (counted by :func:`count_buffers`)."""


def count_buffers() -> None:
    """Count every buffer the conv and pool kernels make, into :data:`MADE`."""
    get = conv.BatchBuffers.get

    def counting(self, n, name, make):
        def made():
            array = make()
            MADE["arrays"] += 1
            MADE["bytes"] += array.nbytes
            return array

        return get(self, n, name, made)

    conv.BatchBuffers.get = counting


def held_bytes(model) -> int:
    """Bytes the model's conv and pool kernels hold in buffers now."""
    return sum(layer.kernel.buffer_bytes() for layer in model.layers_ if hasattr(layer, "kernel"))


class TimedRecorder(InsideRecorder):
    """An ``InsideRecorder`` that adds up the time its ``observe`` takes in each epoch, and
    notes the kernel buffers made and held in each."""

    def __init__(self, *args):
        super().__init__(*args)
        self.epoch_seconds: list[float] = []
        self.made: list[tuple[int, int]] = []
        self.held: list[int] = []
        self._running = 0.0

    def observe(self, model, event):
        start = time.perf_counter()
        out = super().observe(model, event)
        self._running += time.perf_counter() - start
        if event.kind == "epoch":
            self.epoch_seconds.append(self._running)
            self._running = 0.0
            self.made.append((MADE["arrays"], MADE["bytes"]))
            self.held.append(held_bytes(model))
            MADE["arrays"] = MADE["bytes"] = 0
        return out


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def train(settings: dict, data, args) -> tuple[NeuralNetwork, TimedRecorder]:
    grid = grid_indices(data.y_test, args.grid_per_class)
    val = slice(50_000, 50_000 + 5_000)
    x_val, y_val = data.x_train[val], data.y_train[val]
    recorder = TimedRecorder(
        x_val[:PROBE_SIZE], y_val[:PROBE_SIZE], data.x_test[grid], data.y_test[grid]
    )
    model = NeuralNetwork(epochs=args.epochs, random_state=0, **settings)

    def callback(event):
        recorder.observe(model, event)

    MADE["arrays"] = MADE["bytes"] = 0
    model.fit(data.x_train[: args.train], data.y_train[: args.train], x_val, y_val, callback)
    return model, recorder


def report_fit(kept: int, model: NeuralNetwork, recorder: TimedRecorder, args) -> None:
    later = slice(1, None) if len(recorder.epoch_seconds) > 1 else slice(None)
    in_fit = 1000 * statistics.median(recorder.epoch_seconds[later])
    arrays = statistics.median(a for a, _ in recorder.made[later])
    made_mb = statistics.median(b for _, b in recorder.made[later]) / 1e6
    epoch_s = statistics.median(model.history_["seconds"])
    full_s = epoch_s * FULL_EPOCH / args.train
    print(
        f"  {kept} sizes kept: recording in fit {in_fit:6.1f} ms an epoch (median of "
        f"{len(recorder.epoch_seconds[later])}); kernel buffers made again {arrays:.0f} "
        f"({made_mb:.1f} MB) an epoch, held {max(recorder.held) / 1e6:.1f} MB; epoch "
        f"{epoch_s:.2f} s on {args.train} images, ~{full_s:.1f} s on {FULL_EPOCH}: the "
        f"recording is {100 * in_fit / 1000 / full_s:.3f}% of a full epoch"
    )


def report_parts(model: NeuralNetwork, recorder: TimedRecorder, args) -> None:
    layers = model.layers_
    n = probe.probe_count(layers, PROBE_SIZE)
    probe_ms = _median_ms(lambda: recorder.epoch(model, 1), args.repeat)
    grid_only = _median_ms(lambda: recorder._grid(model, layers, layers[0].dtype), args.repeat)
    x = recorder.probe_x[:n].astype(layers[0].dtype) / 255
    y_idx = np.searchsorted(model.classes_, recorder.probe_y[:n])

    def forward_and_backward():
        logits = forward(layers, x, keep=True)
        _, delta = softmax_cross_entropy(logits, y_idx, grad_out=logits.copy())
        backward(layers, delta, need_dx=False)

    with gradient_arrays(layers):
        passes = _median_ms(forward_and_backward, args.repeat)
    release(layers)
    grid_size = 0 if recorder.grid_x is None else recorder.grid_x.shape[0]
    probe_mb = sum(layer.buffer_bytes(n, keep=True) for layer in layers) / 1e6
    grid_mb = sum(layer.buffer_bytes(grid_size, keep=False) for layer in layers) / 1e6
    print(
        f"  buffers the probe's and grid's batch sizes keep: {probe_mb:.1f} MB and {grid_mb:.1f} MB"
    )
    print(
        f"  probe of {n} images ({probe.multiply_adds(layers) / 1e6:.2f} M multiply-adds an "
        f"image) alone {probe_ms - grid_only:6.1f} ms (forward and backward {passes:.1f} ms, "
        f"statistics {probe_ms - grid_only - passes:.1f} ms); test grid of {grid_size} "
        f"{grid_only:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--kept", default=f"{conv.BATCH_SIZES_KEPT}")
    parser.add_argument("--grid-per-class", type=int, default=probe.GRID_PER_CLASS)
    parser.add_argument("--all-probe-images", action="store_true")
    args = parser.parse_args()
    if args.all_probe_images:
        probe.MIN_PROBE = PROBE_SIZE
    kept_values = [int(k) for k in args.kept.split(",")]
    count_buffers()
    data = load_mnist()
    for name, settings in MODELS.items():
        print(name)
        for kept in kept_values:
            conv.BATCH_SIZES_KEPT = kept
            model, recorder = train(settings, data, args)
            report_fit(kept, model, recorder, args)
        report_parts(model, recorder, args)


if __name__ == "__main__":
    main()
