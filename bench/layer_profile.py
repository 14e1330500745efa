"""Where each millisecond of a CNN training batch goes: every layer's forward and backward pass,
the loss and the optimizer's step, timed separately over many batches.

    python bench/layer_profile.py                    # 200 batches, OpenBLAS's own thread count
    python bench/layer_profile.py --threads 1 --batches 300 --json profile.json

The network is ``bench/cnn_benchmark.py``'s: conv 5x5x16 - ReLU - max-pool 2 - conv 5x5x32 -
ReLU - max-pool 2 - flatten - dense 10, softmax cross-entropy, Adam at 1e-3, batch 128, float32,
on real MNIST batches (a fresh random permutation of the 60,000 training images). It runs the
stack the way ``NeuralNetwork.fit`` does (``nn.core.sequential.Sequential`` with one flat
parameter and one flat gradient array, ``Optimizer.step(..., flat=...)``), with a clock read
between the parts; a ReLU before max pooling runs inside the pooling, and a convolution before 2x2
max pooling writes its output in pool order, as ``Sequential`` plans them.
The first batches (``--warm-up``) make the buffers and are not counted.

Each part's figure is its MEDIAN over the counted batches: the machine may be shared, and a median
of many batches is robust to another process taking a core for a while (the mean is printed too,
and the spread between them says how busy the machine was). The CPU column is the median of the
process's CPU seconds over the part (all its threads): on one thread and a busy machine it is
the closest figure to the part's own cost. The sum of the medians is close to, but not exactly,
the median batch.

``--threads N`` runs the profile with OpenBLAS (and so ``nn.core.threads``) limited to N threads.
At more than one thread ``NeuralNetwork.fit`` splits this network's batches across the threads
(``nn.core.data_parallel``); the parts above are then the whole batch's passes (as a stack with
batch normalisation runs them), and the last line times the same batches split, as fit runs them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark import BATCH, LR, blas_info  # noqa: E402
from cnn_benchmark import CNN_LAYERS, NETWORK  # noqa: E402

from nn.core import blas  # noqa: E402
from nn.core.data_parallel import DataParallel  # noqa: E402
from nn.core.losses import softmax_cross_entropy  # noqa: E402
from nn.core.optimizers import Adam  # noqa: E402
from nn.core.sequential import Sequential  # noqa: E402
from nn.data import load_mnist  # noqa: E402


def build(seed: int) -> tuple[Sequential, Adam]:
    """The benchmark's CNN with a dense 10 output, initialised as ``NeuralNetwork`` does."""
    stack = Sequential([*CNN_LAYERS, {"type": "dense", "units": 10}], (28, 28, 1), np.float32)
    stack.allocate()
    stack.attach_gradients()
    stack.initialize(np.random.default_rng(seed), "auto")
    return stack, Adam()


def part_names(stack: Sequential) -> list[str]:
    """The parts in the order a batch runs them; a ReLU that ``Sequential`` runs inside the
    pooling after it (``relu_before_pool``) says so, and its own parts then take no time."""
    deferred = set(stack.relu_before_pool)
    pool_order = stack.pool_order
    in_order = set(pool_order) | set(pool_order.values())
    names = [
        f"{i} {layer.kind}"
        + (" (in the pooling)" if i in deferred else "")
        + (" (pool order)" if i in in_order else "")
        for i, layer in enumerate(stack.layers)
    ]
    return [
        "input (uint8 -> float32)",
        *(f"forward  {name}" for name in names),
        "loss (softmax cross-entropy)",
        *(f"backward {name}" for name in reversed(names)),
        "optimizer step (Adam)",
    ]


class Stopwatch:
    """Wall and process-CPU seconds of consecutive parts (``lap`` ends one, starts the next)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start = (time.perf_counter(), time.process_time())

    def lap(self) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall.append(now[0] - self._start[0])
        self.cpu.append(now[1] - self._start[1])
        self._start = (time.perf_counter(), time.process_time())


def images(x_uint8: np.ndarray) -> np.ndarray:
    """MNIST rows as float32 28x28x1 images in [0, 1], as ``NeuralNetwork`` reads them."""
    return np.multiply(x_uint8, np.float32(1 / 255), dtype=np.float32).reshape(-1, 28, 28, 1)


def one_batch(stack: Sequential, optimizer: Adam, x_uint8: np.ndarray, y: np.ndarray) -> Stopwatch:
    """Seconds of every part of one training batch, in ``part_names`` order."""
    watch = Stopwatch()
    a = images(x_uint8)
    watch.lap()
    stack.plan_pass(a.shape[0], keep=True, recording=False)  # as Sequential.forward plans it
    for i in range(len(stack.layers)):
        a = stack.forward_layer(i, a, True, True, None)
        watch.lap()
    _, dy = softmax_cross_entropy(a, y, grad_out=a)
    watch.lap()
    first = stack.trained[0]
    for i in range(len(stack.layers) - 1, -1, -1):
        if i >= first:
            dy = stack.backward_layer(i, dy, need_dx=i > first)
        watch.lap()
    optimizer.step(stack.params, stack.grads, LR, flat=(stack.flat_params, stack.flat_grads))
    watch.lap()
    return watch


def split_batch(parallel: DataParallel, optimizer: Adam, x_uint8, y) -> float:
    """Seconds of one training batch split across threads as ``NeuralNetwork.fit`` runs it at
    more than one thread (``nn.core.data_parallel``): every part's forward and backward side by
    side, then the optimizer's step."""
    start = time.perf_counter()
    parallel.loss_and_gradients(images(x_uint8), y)
    stack = parallel.stack
    optimizer.step(stack.params, stack.grads, LR, flat=(stack.flat_params, stack.flat_grads))
    return time.perf_counter() - start


def profile(batches: int, warm_up: int, seed: int) -> dict:
    """Median and mean milliseconds of every part over ``batches`` counted batches."""
    data = load_mnist()
    stack, optimizer = build(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.x_train.shape[0])
    watches: list[Stopwatch] = []
    batch_rows = [
        order[(b * BATCH) % (order.size - BATCH) :][:BATCH] for b in range(warm_up + batches)
    ]
    for b, idx in enumerate(batch_rows):
        watch = one_batch(stack, optimizer, data.x_train[idx], data.y_train[idx])
        if b >= warm_up:
            watches.append(watch)
    parallel = DataParallel(stack)
    split_ms = None
    if parallel.parts(BATCH) > 1:  # the same batches again, as NeuralNetwork.fit runs them
        split_s = [
            split_batch(parallel, optimizer, data.x_train[idx], data.y_train[idx])
            for idx in batch_rows
        ]
        split_ms = 1e3 * statistics.median(split_s[warm_up:])
    wall = list(zip(*(w.wall for w in watches), strict=True))
    cpu = list(zip(*(w.cpu for w in watches), strict=True))
    totals = [sum(w.wall) for w in watches]
    return {
        "parts": {
            name: {
                "median_ms": 1e3 * statistics.median(wall_s),
                "mean_ms": 1e3 * statistics.fmean(wall_s),
                "cpu_median_ms": 1e3 * statistics.median(cpu_s),
            }
            for name, wall_s, cpu_s in zip(part_names(stack), wall, cpu, strict=True)
        },
        "batch_median_ms": 1e3 * statistics.median(totals),
        "split_batch_median_ms": split_ms,
        "batch_mean_ms": 1e3 * statistics.fmean(totals),
        "batches": batches,
    }


def report(figures: dict) -> str:
    parts = figures["parts"]
    total = sum(p["median_ms"] for p in parts.values())
    lines = [
        *figures["blas"],
        f"{NETWORK}, Adam, batch {BATCH}, float32, OpenBLAS threads: {figures['threads']}",
        f"median and mean of {figures['batches']} batches each (the machine may be shared: "
        f"medians are what to read)",
        f"{'part':40s} {'median ms':>10s} {'share':>7s} {'mean ms':>9s} {'CPU ms':>8s}",
    ]
    for name, p in parts.items():
        share = 100 * p["median_ms"] / total if total else 0.0
        lines.append(
            f"{name:40s} {p['median_ms']:10.3f} {share:6.1f}% {p['mean_ms']:9.3f} "
            f"{p['cpu_median_ms']:8.3f}"
        )
    lines += [
        f"{'sum of the medians':40s} {total:10.3f}",
        f"{'median batch':40s} {figures['batch_median_ms']:10.3f}"
        f"  (x {60000 // BATCH + 1} batches = "
        f"{figures['batch_median_ms'] * (60000 / BATCH) / 1e3:.2f} s per epoch)",
    ]
    split = figures.get("split_batch_median_ms")
    if split is not None:
        lines.append(
            f"{'median batch split across threads':40s} {split:10.3f}  (as fit runs it: "
            f"{split * (60000 / BATCH) / 1e3:.2f} s per epoch)"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches counted (default 200)")
    parser.add_argument("--warm-up", type=int, default=10, help="batches not counted (10)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.warm_up < 0:
        parser.error("--batches must be at least 1 and --warm-up at least 0")
    with blas.limit_threads(args.threads):
        figures = profile(args.batches, args.warm_up, args.seed)
        figures["threads"] = blas.get_threads()
    figures["blas"] = blas_info()
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
