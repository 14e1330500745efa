"""What the live layer map (``nn.core.live_map``) costs a training epoch, for the default preset
(fast: 784-256-128-10) and a CNN.

    python bench/live_map_cost.py [--train 5000] [--epochs 4] [--rounds 3] [--only dense|cnn]

Trains each model on ``--train`` MNIST images with an ``InsideRecorder`` carrying a ``LiveMap``
of 500 test images (50 per digit), as a training job does, and reports, per model:

- ``map``: the live map's time per epoch inside ``fit`` (the forward pass of its images to the
  last hidden layer, the PCA, the projection of every frame so far onto the new basis and the
  encoding), median over the epochs after the first;
- ``epoch``: the epoch's time on ``--train`` images (the recorder's own time left out), and that
  time scaled to a full 55,000-image epoch;
- ``share``: the map's time over the full epoch's.

The map's cost grows with the epochs (every frame is projected again): the last epoch's time is
reported too. ``--rounds`` repeats the models in turn (interleaved), so that a machine shared
with other jobs slows both sides of a ratio alike; the medians over rounds are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nn.core.layer_spec import parse_layers  # noqa: E402
from nn.core.live_map import MAX_IMAGES, LiveMap, map_indices  # noqa: E402
from nn.core.network import NeuralNetwork  # noqa: E402
from nn.core.probe import PROBE_SIZE, InsideRecorder, grid_indices  # noqa: E402
from nn.data import load_mnist  # noqa: E402
from nn.services.presets import PRESETS  # noqa: E402

CNN = parse_layers("conv32k3same,relu,pool2,conv64k3same,relu,pool2,dense128,relu")
MODELS = {
    "dense 784-256-128-10 (preset fast, the default)": PRESETS["fast"].model_kwargs(),
    "CNN C32k3-P2-C64k3-P2-D128-D10": {"layers": CNN, "random_state": 0},
}
FULL_EPOCH = 55_000


def _measure(settings: dict, data, n_train: int, epochs: int) -> dict[str, float]:
    picks = map_indices(data.y_test, MAX_IMAGES)
    live = LiveMap(data.x_test[picks], data.y_test[picks])
    grid = grid_indices(data.y_test)
    recorder = InsideRecorder(
        data.x_train[-PROBE_SIZE:],
        data.y_train[-PROBE_SIZE:],
        data.x_test[grid],
        data.y_test[grid],
        live_map=live,
    )
    map_seconds: list[float] = []
    recorder_seconds: list[float] = []
    epoch_starts: list[float] = [time.perf_counter()]
    timed_epoch = live.epoch

    def map_epoch(model, epoch):
        start = time.perf_counter()
        out = timed_epoch(model, epoch)
        map_seconds.append(time.perf_counter() - start)
        return out

    live.epoch = map_epoch
    model = NeuralNetwork(**{**settings, "epochs": epochs})

    def callback(event):
        start = time.perf_counter()
        recorder.observe(model, event)
        recorder_seconds.append(time.perf_counter() - start)
        if event.kind == "epoch":
            epoch_starts.append(time.perf_counter())

    model.fit(data.x_train[:n_train], data.y_train[:n_train], callback=callback)
    walls = [b - a for a, b in zip(epoch_starts, epoch_starts[1:], strict=False)]
    per_epoch_recorder = sum(recorder_seconds) / max(len(walls), 1)
    epoch = statistics.median(walls[1:] or walls) - per_epoch_recorder
    full = epoch * FULL_EPOCH / n_train
    cost = statistics.median(map_seconds[1:] or map_seconds)
    return {
        "map": cost,
        "map_last": map_seconds[-1],
        "epoch": epoch,
        "full_epoch": full,
        "share": cost / full,
        "share_last": map_seconds[-1] / full,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("dense", "cnn"), help="measure one of the two models")
    args = parser.parse_args()
    data = load_mnist()
    models = {
        name: settings
        for name, settings in MODELS.items()
        if args.only is None or name.lower().startswith(args.only)
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, settings in models.items():
            results[name].append(_measure(settings, data, args.train, args.epochs))
    print(f"{args.train:,} training images, {args.epochs} epochs, {args.rounds} rounds (medians)")
    for name, rows in results.items():
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print(
            f"{name}: map {1000 * med['map']:.1f} ms/epoch (last epoch "
            f"{1000 * med['map_last']:.1f} ms); epoch {med['epoch']:.2f} s on {args.train:,} "
            f"images, {med['full_epoch']:.1f} s on {FULL_EPOCH:,}; share {100 * med['share']:.2f}%"
            f" (last epoch {100 * med['share_last']:.2f}%)"
        )


if __name__ == "__main__":
    main()
