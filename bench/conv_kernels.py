"""Time nn.core.conv's kernels on the project's CNN workload against the same ops in PyTorch.

    python bench/conv_kernels.py                  # 50 interleaved rounds, ~30 s on 2 cores
    python bench/conv_kernels.py --repeats 100 --dtype float64
    python bench/conv_kernels.py --threads 1 --cpu-time   # one thread each, CPU time (busy machine)

The workload: batch 128 of MNIST-sized inputs (28x28x1), conv5x5x16 (valid) - maxpool2 -
conv5x5x32 (valid) - maxpool2, float32; the ReLUs and the dense layer of the project's CNN are not
kernels of this module and are left out. Each kernel's forward and backward is timed alone on fixed
random inputs; the first convolution's backward skips dx, as a first layer's does. PyTorch (if
installed) runs the same ops on NCHW tensors, its backward by ``torch.autograd.grad`` on a kept
graph. Both sides run in turn, round after round, so that a change in the machine's load touches
them alike; the table gives each one's median milliseconds per batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nn.core import blas  # noqa: E402
from nn.core.conv import Conv2DKernel  # noqa: E402
from nn.core.pooling import Pool2DKernel  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the table then has nn's column only
    torch = None

Op = Callable[[], object]


def numpy_ops(batch: int, dtype) -> list[tuple[str, Op]]:
    """``(name, call)`` of each kernel's forward and backward on the reference workload."""
    rng = np.random.default_rng(0)
    conv1 = Conv2DKernel((28, 28, 1), 16, 5, dtype=dtype)
    pool1 = Pool2DKernel(conv1.output_shape, 2, dtype=dtype)
    conv2 = Conv2DKernel(pool1.output_shape, 32, 5, dtype=dtype)
    pool2 = Pool2DKernel(conv2.output_shape, 2, dtype=dtype)

    def sample(*shape):
        return rng.normal(size=shape).astype(dtype)

    x1, w1, b1 = sample(batch, 28, 28, 1), sample(*conv1.weight_shape), sample(16)
    x2, w2, b2 = sample(batch, *pool1.output_shape), sample(*conv2.weight_shape), sample(32)
    p1, p2 = sample(batch, *conv1.output_shape), sample(batch, *conv2.output_shape)
    dy1, dy2 = sample(batch, *conv1.output_shape), sample(batch, *conv2.output_shape)
    dp1, dp2 = sample(batch, *pool1.output_shape), sample(batch, *pool2.output_shape)
    dw1, db1, dw2, db2 = np.empty_like(w1), np.empty_like(b1), np.empty_like(w2), np.empty_like(b2)
    for kernel, args in (
        (conv1, (x1, w1, b1)),
        (conv2, (x2, w2, b2)),
        (pool1, (p1,)),
        (pool2, (p2,)),
    ):
        kernel.forward(*args)
    return [
        ("conv1 forward", lambda: conv1.forward(x1, w1, b1)),
        ("conv1 backward (no dx)", lambda: conv1.backward(dy1, w1, dw1, db1, need_dx=False)),
        ("maxpool1 forward", lambda: pool1.forward(p1)),
        ("maxpool1 backward", lambda: pool1.backward(dp1)),
        ("conv2 forward", lambda: conv2.forward(x2, w2, b2)),
        ("conv2 backward", lambda: conv2.backward(dy2, w2, dw2, db2)),
        ("maxpool2 forward", lambda: pool2.forward(p2)),
        ("maxpool2 backward", lambda: pool2.backward(dp2)),
    ]


def torch_ops(batch: int, dtype) -> list[tuple[str, Op]]:
    """The same ops in PyTorch on NCHW tensors, in the order of ``numpy_ops``."""
    gen = torch.Generator().manual_seed(0)
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64

    def sample(*shape, grad=False):
        return torch.randn(*shape, generator=gen, dtype=tdtype).requires_grad_(grad)

    x1, w1, b1 = sample(batch, 1, 28, 28), sample(16, 1, 5, 5, grad=True), sample(16, grad=True)
    x2, w2 = sample(batch, 16, 12, 12, grad=True), sample(32, 16, 5, 5, grad=True)
    b2 = sample(32, grad=True)
    p1, p2 = sample(batch, 16, 24, 24, grad=True), sample(batch, 32, 8, 8, grad=True)
    y1, y2 = F.conv2d(x1, w1, b1), F.conv2d(x2, w2, b2)
    q1, q2 = F.max_pool2d(p1, 2), F.max_pool2d(p2, 2)
    dy1, dy2, dq1, dq2 = (torch.randn_like(t) for t in (y1, y2, q1, q2))

    def grad(out, inputs, dout):
        return lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True)

    return [
        ("conv1 forward", lambda: F.conv2d(x1, w1, b1)),
        ("conv1 backward (no dx)", grad(y1, (w1, b1), dy1)),
        ("maxpool1 forward", lambda: F.max_pool2d(p1, 2)),
        ("maxpool1 backward", grad(q1, (p1,), dq1)),
        ("conv2 forward", lambda: F.conv2d(x2, w2, b2)),
        ("conv2 backward", grad(y2, (x2, w2, b2), dy2)),
        ("maxpool2 forward", lambda: F.max_pool2d(p2, 2)),
        ("maxpool2 backward", grad(q2, (p2,), dq2)),
    ]


def _no_grad(call: Op) -> Op:
    """``call`` run without autograd recording (forward ops are timed as inference)."""

    def run():
        with torch.no_grad():
            return call()

    return run


def time_interleaved(
    sides: list[list[tuple[str, Op]]], repeats: int, pause: float, clock=time.perf_counter
) -> list[list[float]]:
    """Median milliseconds of every op of every side.

    Each round runs every side's ops in turn, after a pause that lets the other side's idle
    threads (OpenBLAS's and PyTorch's OpenMP pool spin a while before sleeping) let go of the cores.
    The first two rounds warm caches and buffers up and are not counted."""
    samples = [[[] for _ in ops] for ops in sides]
    for repeat in range(repeats + 2):
        for side, ops in enumerate(sides):
            time.sleep(pause)
            for index, (_, call) in enumerate(ops):
                start = clock()
                call()
                if repeat >= 2:
                    samples[side][index].append((clock() - start) * 1e3)
    return [[statistics.median(s) for s in side] for side in samples]


def print_table(names: list[str], medians: list[list[float]], headers: list[str]) -> None:
    """One row per op and a total, the ratio nn / torch when torch ran."""
    columns = [*headers, "nn / torch"] if len(headers) == 2 else headers
    print(f"{'op (ms per batch)':<24}" + "".join(f"{h:>12}" for h in columns))
    rows = [*zip(names, *medians, strict=True), ("total", *(sum(side) for side in medians))]
    for name, *values in rows:
        cells = [f"{v:12.2f}" for v in values]
        if len(values) == 2:
            cells.append(f"{values[0] / values[1]:12.2f}")
        print(f"{name:<24}" + "".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between sides")
    parser.add_argument(
        "--threads", type=int, help="threads for OpenBLAS and PyTorch (default: as they start)"
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the calling thread's CPU time, not wall time: with --threads 1, less "
        "sensitive to other processes on the machine",
    )
    args = parser.parse_args(argv)
    with blas.limit_threads(args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Builds both sides' ops, times them and prints the table."""
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    ours = numpy_ops(args.batch, args.dtype)
    sides, headers = [ours], ["nn"]
    if torch is not None:
        theirs = torch_ops(args.batch, args.dtype)
        theirs = [(name, _no_grad(call) if "forward" in name else call) for name, call in theirs]
        sides.append(theirs)
        headers.append("torch")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"numpy {np.__version__}, OpenBLAS {blas.get_threads()} threads, batch {args.batch}, "
        f"{args.dtype}, {args.repeats} rounds"
    )
    clock = time.thread_time if args.cpu_time else time.perf_counter
    medians = time_interleaved(sides, args.repeats, args.pause, clock)
    print_table([name for name, _ in ours], medians, headers)


if __name__ == "__main__":
    main()
