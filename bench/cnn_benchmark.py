"""Train one small CNN with nn's layer API and PyTorch (CPU), interleaved, and print figures.

    pip install -r bench/requirements.txt     # torch 2.13.0 (CPU), bench only
    python bench/cnn_benchmark.py             # 2 epochs each
    python bench/cnn_benchmark.py --epochs 3 --threads 2 --json bench/cnn_results.json

The network: conv 5x5x16 (valid) - ReLU - max-pool 2 - conv 5x5x32 (valid) - ReLU - max-pool 2 -
flatten - dense 10 with softmax cross-entropy (28x28x1 -> 24x24x16 -> 12x12x16 -> 8x8x32 ->
4x4x32 = 512 -> 10; 18,378 parameters), Adam at 1e-3, batch 128, float32, inputs in [0, 1], the
full 60,000 training images. The trainers run one epoch each in turn; each one's median seconds
per epoch, nn's ratio to PyTorch and the test accuracy after the last epoch are printed.

nn: ``NeuralNetwork(layers=[...])`` fitted on the ``(n, 784)`` uint8 images, which the model reads
as 28x28x1. A ``NeuralNetwork`` that rejects ``layers`` (TypeError or ValueError, from the
constructor or from a fit on 256 images, since hyperparameters may be checked only in ``fit``) is
skipped with a note and the message, and so is its peak-memory measurement: the script then runs
with PyTorch alone. PyTorch: the images as one channels-first ``(n, 1, 28, 28)`` float32 tensor,
made once before any timing, batches indexed by a random permutation, ``Adam(fused=True)``
(``foreach=True`` where this build refuses fused on CPU, as the table then says).

Threads: NumPy's OpenBLAS runs two threads on this two-core machine. ``--threads N`` (default:
OpenBLAS's own thread count) limits BLAS to N threads through threadpoolctl and calls
``torch.set_num_threads(N)``, so both trainers get the same cores; the peak-memory child gets
``OPENBLAS_NUM_THREADS=N``. The BLAS library, the kernel OpenBLAS picked for this CPU and the
OPENBLAS_* variables in force are printed with the figures.

Peak memory: a separate ``python -c`` child loads MNIST and trains nn's CNN for one epoch, then
reads its own high-water mark (VmHWM from /proc/self/status, not getrusage, which would charge it
the size of the parent that forked it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark import (  # noqa: E402
    BATCH,
    LR,
    adam_note,
    blas_info,
    fused_adam_refusal,
    run_interleaved,
    torch_adam,
    training_table,
)

from nn import NeuralNetwork  # noqa: E402
from nn.data import load_mnist  # noqa: E402

CNN_LAYERS = [
    {"type": "conv2d", "filters": 16, "kernel": 5},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 32, "kernel": 5},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "flatten"},
]
NETWORK = "conv5x5x16-relu-maxpool2-conv5x5x32-relu-maxpool2-flatten-dense10"


def nn_cnn_kwargs(seed: int) -> dict:
    """nn's CNN, one epoch per ``fit``, continuing from the last one (plain JSON, for the child)."""
    return {
        "layers": CNN_LAYERS,
        "optimizer": "adam",
        "learning_rate": LR,
        "batch_size": BATCH,
        "epochs": 1,
        "warm_start": True,
        "random_state": seed,
    }


def nn_cnn_refusal(seed: int, data) -> str | None:
    """Why ``NeuralNetwork`` does not train the CNN, or None when it does: a throwaway model is
    built and fitted on 256 images."""
    try:
        NeuralNetwork(**nn_cnn_kwargs(seed)).fit(data.x_train[:256], data.y_train[:256])
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class NNCNNTrainer:
    name = "nn"

    def __init__(self, seed: int):
        self.model = NeuralNetwork(**nn_cnn_kwargs(seed))

    def epoch(self, x, y):
        self.model.fit(x, y)  # uint8 (n, 784) in, read as 28x28x1

    def accuracy(self, x, y):
        return float(self.model.score(x, y))


class TorchCNNTrainer:
    """The same CNN in PyTorch, channels-first, the images as one float32 tensor indexed by a
    random permutation each epoch."""

    name = "torch"

    def __init__(self, seed: int, x_train: np.ndarray):
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        nn = torch.nn
        self.model = nn.Sequential(
            nn.Conv2d(1, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        )
        refusal = fused_adam_refusal(torch)
        if refusal is not None:
            self.name = "torch (foreach Adam)"
        self.note = adam_note(refusal, self.name)
        self.opt = torch_adam(torch, self.model.parameters(), refusal)
        self.loss = nn.CrossEntropyLoss()
        self.x = self.images(x_train)
        self._warm_up()

    def _warm_up(self):
        """One forward and backward pass on a batch, gradients then dropped and no step taken:
        PyTorch sets up its convolution kernels on the first call, a one-time cost kept out of
        the timed epochs as nn's is by its probe fit; the weights stay as initialised."""
        self.loss(
            self.model(self.x[:BATCH]), self.torch.zeros(BATCH, dtype=self.torch.int64)
        ).backward()
        self.opt.zero_grad(set_to_none=True)

    def images(self, x: np.ndarray):
        """(n, 784) uint8 to an (n, 1, 28, 28) float32 tensor in [0, 1]."""
        return self.torch.from_numpy((x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))

    def epoch(self, x, y):
        torch = self.torch
        yt = torch.from_numpy(y.astype(np.int64))
        perm = torch.randperm(self.x.shape[0])
        self.model.train()
        for start in range(0, self.x.shape[0], BATCH):
            idx = perm[start : start + BATCH]
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x[idx]), yt[idx])
            loss.backward()
            self.opt.step()

    def accuracy(self, x, y):
        """Test accuracy in chunks of 1,000 images, which keeps the first layer's activations to
        about 37 MB."""
        self.model.eval()
        hits = 0
        with self.torch.no_grad():
            for start in range(0, x.shape[0], 1000):
                logits = self.model(self.images(x[start : start + 1000]))
                hits += int((logits.argmax(1).numpy() == y[start : start + 1000]).sum())
        return hits / x.shape[0]


# --------------------------------------------------------------------------- threads
def blas_threads() -> int | None:
    """NumPy's BLAS thread count as threadpoolctl sees it, or None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return max(counts) if counts else None


def set_threads(requested: int | None, torch_ok: bool) -> dict:
    """BLAS and PyTorch both on ``requested`` threads (default: BLAS's own count, else the CPU
    count). The threadpoolctl limit object is returned with the figures' entry so that it lives
    as long as the run."""
    threads = requested or blas_threads() or os.cpu_count() or 1
    info: dict = {"threads": threads}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        info["blas_limit"] = "not set (threadpoolctl is not installed)"
    else:
        info["_limiter"] = threadpool_limits(threads, user_api="blas")
        info["blas_limit"] = f"{threads} (threadpoolctl)"
    if torch_ok:
        import torch

        torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
    return info


# --------------------------------------------------------------------------- peak memory
_PEAK_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from nn import NeuralNetwork
from nn.data import load_mnist
data = load_mnist()
NeuralNetwork(**json.loads(sys.argv[2])).fit(data.x_train, data.y_train)
try:
    with open("/proc/self/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"PEAK_KB {kb}")
"""


def bench_peak_memory(seed: int, threads: int) -> dict:
    """Peak resident memory of a fresh process that loads MNIST and trains nn's CNN one epoch."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-c", _PEAK_CHILD, str(ROOT), json.dumps(nn_cnn_kwargs(seed))]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peaks = [
        int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_KB ")
    ]
    if proc.returncode != 0 or not peaks:
        return {"peak_memory_error": proc.stderr[-2000:]}
    return {"peak_memory_mb": peaks[-1] / 1024, "process_seconds": seconds}


# --------------------------------------------------------------------------- main
def torch_available(figures: dict) -> bool:
    """Whether PyTorch imports; its version goes in the machine's figures, its absence in a note."""
    try:
        import torch
    except ImportError as exc:
        figures["notes"].append(f"torch skipped: {exc} (pip install -r bench/requirements.txt)")
        return False
    figures["machine"]["torch"] = torch.__version__
    return True


def make_trainers(data, seed: int, torch_ok: bool, figures: dict) -> list:
    """nn (when it takes ``layers``) and PyTorch (when installed), in the rotation's order."""
    trainers: list = []
    refusal = nn_cnn_refusal(seed, data)
    if refusal is None:
        trainers.append(NNCNNTrainer(seed))
    else:
        figures["notes"].append(
            f"nn skipped: NeuralNetwork does not train this CNN yet "
            f"({refusal}); its peak memory is skipped too"
        )
    if torch_ok:
        torch_trainer = TorchCNNTrainer(seed, data.x_train)
        figures["notes"] += [torch_trainer.note] if torch_trainer.note else []
        trainers.append(torch_trainer)
    return trainers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trainer (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="BLAS threads (threadpoolctl) and torch.set_num_threads(N); "
        "default: OpenBLAS's own count",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    data = load_mnist()
    figures: dict = {"machine": {"cpus": os.cpu_count(), "numpy": np.__version__}, "notes": []}
    torch_ok = torch_available(figures)
    threads = set_threads(args.threads, torch_ok)
    figures["threads"] = {k: v for k, v in threads.items() if not k.startswith("_")}
    figures["blas"] = blas_info()

    trainers = make_trainers(data, args.seed, torch_ok, figures)
    print(f"training {args.epochs} epochs each, interleaved ...", file=sys.stderr)
    figures["training"] = run_interleaved(trainers, data, args.epochs)
    if "nn" in figures["training"]:
        for name in figures["training"]:
            if name != "nn":
                figures.setdefault("ratios", {})[f"nn/{name}"] = (
                    figures["training"]["nn"]["seconds_per_epoch"]
                    / figures["training"][name]["seconds_per_epoch"]
                )
        print("peak memory of a child training nn's CNN one epoch ...", file=sys.stderr)
        figures["memory"] = bench_peak_memory(args.seed, threads["threads"])

    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def report(f: dict) -> str:
    lines = [
        f"machine: {f['machine']}",
        *(f"  {line}" for line in f["blas"]),
        f"  threads: {f['threads']}",
        f"training {NETWORK}, Adam 1e-3, batch 128, float32, 60,000 images",
        *training_table(f["training"]),
    ]
    for name, ratio in f.get("ratios", {}).items():
        lines.append(f"  ratio {name:22s} {ratio:6.2f}x")
    memory = f.get("memory", {})
    if "peak_memory_mb" in memory:
        lines.append(
            f"  peak memory, a child training nn's CNN one epoch: "
            f"{memory['peak_memory_mb']:.0f} MB ({memory['process_seconds']:.1f} s)"
        )
    elif "peak_memory_error" in memory:
        lines.append(f"  peak memory: failed: {memory['peak_memory_error']}")
    lines += [f"  note: {note}" for note in f["notes"]]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
