"""What the inside recording (``nn.core.probe``) costs a training epoch, for the dense default
and a CNN.

    python bench/probe_cost.py [--train 6000] [--epochs 3] [--repeat 20] [--all-probe-images]

Trains each model on ``--train`` MNIST images with a validation part, an ``InsideRecorder`` on
the callback as the training job uses it, and reports:

- ``in fit``: the recorder's time per epoch inside ``fit`` (the epoch's probe pass and test grid
  plus the weight copies for the update ratio), median over the epochs;
- ``probe`` and ``grid``: the probe pass (forward and backward, the statistics) and the 50-digit
  test grid's prediction alone, medians of ``--repeat`` calls on the trained model;
- the epoch's time on those images and scaled to a full 55,000-image epoch, and the recording's
  share of that.

``--all-probe-images`` runs the probe on all 64 images whatever the model costs (the cost before
the probe was sized by :data:`nn.core.probe.PROBE_MACS`). Timings need an idle machine: run it
under the exclusive CPU lock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nn.core import probe  # noqa: E402
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


class TimedRecorder(InsideRecorder):
    """An ``InsideRecorder`` that adds up the time its ``observe`` takes in each epoch."""

    def __init__(self, *args):
        super().__init__(*args)
        self.epoch_seconds: list[float] = []
        self._running = 0.0

    def observe(self, model, event):
        start = time.perf_counter()
        out = super().observe(model, event)
        self._running += time.perf_counter() - start
        if event.kind == "epoch":
            self.epoch_seconds.append(self._running)
            self._running = 0.0
        return out


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(name: str, settings: dict, data, args) -> None:
    grid = grid_indices(data.y_test)
    val = slice(50_000, 50_000 + 5_000)
    x_val, y_val = data.x_train[val], data.y_train[val]
    recorder = TimedRecorder(
        x_val[:PROBE_SIZE], y_val[:PROBE_SIZE], data.x_test[grid], data.y_test[grid]
    )
    model = NeuralNetwork(epochs=args.epochs, random_state=0, **settings)

    def callback(event):
        recorder.observe(model, event)

    model.fit(data.x_train[: args.train], data.y_train[: args.train], x_val, y_val, callback)
    in_fit = 1000 * statistics.median(recorder.epoch_seconds)
    epoch_s = statistics.median(model.history_["seconds"])
    full_s = epoch_s * FULL_EPOCH / args.train
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
    print(f"{name}")
    print(
        f"  probe of {n} images ({probe.multiply_adds(layers) / 1e6:.2f} M multiply-adds an image)"
    )
    print(f"  recording in fit {in_fit:7.1f} ms an epoch (median of {len(recorder.epoch_seconds)})")
    print(
        f"  probe            {probe_ms - grid_only:7.1f} ms (forward and backward {passes:.1f} ms, "
        f"statistics {probe_ms - grid_only - passes:.1f} ms)   test grid {grid_only:6.1f} ms"
    )
    print(
        f"  epoch            {epoch_s:7.2f} s on {args.train} images, ~{full_s:.1f} s on "
        f"{FULL_EPOCH}: the recording is {100 * in_fit / 1000 / full_s:.3f}% of a full epoch"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--all-probe-images", action="store_true")
    args = parser.parse_args()
    if args.all_probe_images:
        probe.MIN_PROBE = PROBE_SIZE
    data = load_mnist()
    for name, settings in MODELS.items():
        measure(name, settings, data, args)


if __name__ == "__main__":
    main()
