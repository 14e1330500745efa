"""Train the same network with nn, PyTorch (CPU) and scikit-learn, interleaved, and print figures.

    pip install -r bench/requirements.txt     # torch 2.13.0 (CPU) and scikit-learn, bench only
    python bench/benchmark.py                 # 3 epochs each, ~2 minutes on 2 cores
    python bench/benchmark.py --epochs 5 --json bench/results.json

The network: 784-256-128-10, ReLU, softmax cross-entropy, Adam at 1e-3, batch 128, float32,
inputs in [0, 1], the full 60,000 training images, no L2 (scikit-learn's alpha=0). The three
trainers run one epoch each in turn (nn, torch, torch with a DataLoader, sklearn, nn, ...) so that a
change in the machine's load touches all of them alike; each one's median seconds per epoch is
reported with the ratios and the test accuracy after the last epoch. Interleaved with them, the
network's matrix products alone (no trainer can do the same dense float32 work faster with NumPy's
BLAS) show how much of each epoch is anything else.

Also measured: predict_proba on the 10,000 test images; one drawing from canvas pixels to
probabilities (preprocessing included); training in a worker thread with the dashboard's callback
against the main thread; the peak memory of `python -m nn train` with the default preset.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nn import NeuralNetwork  # noqa: E402
from nn.data import load_mnist  # noqa: E402

HIDDEN = (256, 128)
LR, BATCH = 1e-3, 128


# --------------------------------------------------------------------------- trainers
class NNTrainer:
    name = "nn"

    def __init__(self, seed: int):
        self.model = NeuralNetwork(
            hidden_layers=HIDDEN,
            activation="relu",
            optimizer="adam",
            learning_rate=LR,
            batch_size=BATCH,
            epochs=1,
            warm_start=True,
            random_state=seed,
        )

    def epoch(self, x, y):
        self.model.fit(x, y)  # uint8 in, scaled to [0, 1] float32 per batch

    def accuracy(self, x, y):
        return self.model.score(x, y)


class TorchTrainer:
    """Idiomatic PyTorch with the data as a float32 tensor indexed by a random permutation."""

    name = "torch"

    def __init__(self, seed: int, x_train: np.ndarray):
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, HIDDEN[0]),
            torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN[0], HIDDEN[1]),
            torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN[1], 10),
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loss = torch.nn.CrossEntropyLoss()
        self.x = torch.from_numpy(x_train.astype(np.float32) / 255.0)

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
        torch = self.torch
        with torch.no_grad():
            logits = self.model(torch.from_numpy(x.astype(np.float32) / 255.0))
        return float((logits.argmax(1).numpy() == y).mean())


class TorchLoaderTrainer(TorchTrainer):
    """The tutorial way: TensorDataset + DataLoader(shuffle=True)."""

    name = "torch-dataloader"

    def epoch(self, x, y):
        torch = self.torch
        if not hasattr(self, "loader"):
            ds = torch.utils.data.TensorDataset(self.x, torch.from_numpy(y.astype(np.int64)))
            self.loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True)
        self.model.train()
        for xb, yb in self.loader:
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(xb), yb)
            loss.backward()
            self.opt.step()


class SklearnTrainer:
    name = "sklearn"

    def __init__(self, seed: int, x_train: np.ndarray):
        from sklearn.neural_network import MLPClassifier

        self.model = MLPClassifier(
            hidden_layer_sizes=HIDDEN,
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=BATCH,
            learning_rate_init=LR,
            max_iter=1,
            warm_start=True,
            shuffle=True,
            random_state=seed,
        )
        self.x = x_train.astype(np.float32) / 255.0

    def epoch(self, x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after every one-epoch fit
            self.model.fit(self.x, y)

    def accuracy(self, x, y):
        return float(self.model.score(x.astype(np.float32) / 255.0, y))


class GemmFloor:
    """Not a trainer: only the eight matrix products per batch that one epoch of this network needs
    (three forward, five backward; none for the input's gradient), plus scaling each batch to
    float32, each into a preallocated array with NumPy's BLAS (the one nn and scikit-learn both
    use). No trainer that does the same dense float32 products can be faster than this; it shows
    how much of each trainer's epoch is left to remove at all."""

    name = "matrix products only"

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        sizes = (784, *HIDDEN, 10)
        self.w = [
            rng.standard_normal((a, b), np.float32) * 0.05 for a, b in itertools.pairwise(sizes)
        ]

    def epoch(self, x, y):
        w0, w1, w2 = self.w
        gw = [np.empty_like(w) for w in self.w]
        xb = np.empty((BATCH, 784), np.float32)
        h1, h2, out = (np.empty((BATCH, n), np.float32) for n in (*HIDDEN, 10))
        d1, d2 = np.empty_like(h1), np.empty_like(h2)
        for start in range(0, x.shape[0], BATCH):
            n = min(BATCH, x.shape[0] - start)
            a, b1, b2, o, e1, e2 = xb[:n], h1[:n], h2[:n], out[:n], d1[:n], d2[:n]
            np.multiply(x[start : start + n], np.float32(1 / 255), out=a)
            np.matmul(a, w0, out=b1)  # forward
            np.matmul(b1, w1, out=b2)
            np.matmul(b2, w2, out=o)
            np.matmul(b2.T, o, out=gw[2])  # backward
            np.matmul(o, w2.T, out=e2)
            np.matmul(b1.T, e2, out=gw[1])
            np.matmul(e2, w1.T, out=e1)
            np.matmul(a.T, e1, out=gw[0])

    def accuracy(self, x, y):
        return None


# --------------------------------------------------------------------------- measurements
def bench_training(data, epochs: int, seed: int, peers: list[str]) -> dict:
    trainers = [NNTrainer(seed), GemmFloor(seed)]
    if "torch" in peers:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        trainers += [TorchTrainer(seed, data.x_train), TorchLoaderTrainer(seed, data.x_train)]
    if "sklearn" in peers:
        trainers.append(SklearnTrainer(seed, data.x_train))
    times = {t.name: [] for t in trainers}
    for epoch in range(epochs):
        for t in trainers:
            # the previous trainer's idle threads (OpenMP's, OpenBLAS's) spin for a while after
            # its last parallel region: let them go to sleep before timing the next one
            time.sleep(0.5)
            start = time.perf_counter()
            t.epoch(data.x_train, data.y_train)
            times[t.name].append(time.perf_counter() - start)
            print(
                f"  epoch {epoch + 1}/{epochs} {t.name:22s} {times[t.name][-1]:6.2f} s",
                file=sys.stderr,
            )
    return {
        t.name: {
            "seconds_per_epoch": statistics.median(times[t.name]),
            "epoch_seconds": times[t.name],
            "test_accuracy": t.accuracy(data.x_test, data.y_test),
        }
        for t in trainers
    }


def _median_time(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_inference(data, model: NeuralNetwork, torch_trainer=None) -> dict:
    out = {
        "nn_predict_proba_10k_seconds": _median_time(lambda: model.predict_proba(data.x_test), 7)
    }
    if torch_trainer is not None:
        torch = torch_trainer.torch

        def torch_proba():
            with torch.no_grad():
                x = torch.from_numpy(data.x_test.astype(np.float32) / 255.0)
                torch.softmax(torch_trainer.model(x), dim=1)

        out["torch_predict_proba_10k_seconds"] = _median_time(torch_proba, 7)
    return out


def bench_drawing(data, model: NeuralNetwork) -> dict:
    """A 280x280 RGBA canvas (a real test digit scaled up 10x) to ten probabilities."""
    from nn.data.preprocess import preprocess_drawing

    digit = data.x_test[0].reshape(28, 28)
    big = np.kron(digit, np.ones((10, 10), np.uint8))
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 0] = canvas[..., 1] = canvas[..., 2] = big
    canvas[..., 3] = 255

    def one():
        result = preprocess_drawing(canvas)
        model.predict_proba(result.x[None, :])

    return {"drawing_to_probabilities_ms": 1000 * _median_time(one, 200)}


def bench_worker_thread(data, epochs: int, seed: int, repeats: int = 3) -> dict:
    """Seconds per epoch of the fast preset's network trained as the command line does (main
    thread, ``nn.training.run_training``) and as the dashboard does (``ui.worker.TrainingWorker``:
    a thread whose callback updates a snapshot under a lock after every batch and records epochs
    in SQLite), alternating the two."""
    import tempfile

    from nn.services.presets import get_preset
    from nn.services.training import run_training
    from ui.worker import TrainingWorker

    preset = get_preset("fast")
    model_kwargs = preset.model_kwargs(epochs=epochs, random_state=seed)
    data_kwargs = preset.data_kwargs()
    main_t, thread_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            result = run_training(model_kwargs, data_kwargs, mnist=data)
            main_t += result.model.history_["seconds"]
            worker = TrainingWorker(
                model_kwargs, data_kwargs, data, runs_path=str(Path(tmp) / "runs.sqlite")
            )
            worker.start()
            worker.join()
            if worker.model is None:
                raise RuntimeError(f"the worker failed: {worker.snapshot().get('error')}")
            thread_t += worker.model.history_["seconds"]
    main_s, thread_s = statistics.median(main_t), statistics.median(thread_t)
    return {
        "main_thread_seconds_per_epoch": main_s,
        "worker_thread_seconds_per_epoch": thread_s,
        "worker_overhead_percent": 100 * (thread_s / main_s - 1),
    }


# Run `python -m nn ...` and report the process's own peak resident memory on exit. Read from
# /proc/self/status (VmHWM, the high-water mark of this process image) rather than getrusage: a
# child forked from this benchmark process, which holds PyTorch and the data, would be charged
# the parent's size by ru_maxrss.
_PEAK_WRAPPER = """
import atexit, resource, sys
def report():
    try:
        with open("/proc/self/status") as f:
            kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stderr.write(f"PEAK_KB {kb}\\n")
atexit.register(report)
from nn.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def bench_peak_memory(preset: str) -> dict:
    """Peak resident memory of a whole `python -m nn train` process with the preset."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-c",
            _PEAK_WRAPPER,
            "train",
            "--preset",
            preset,
            "--no-save",
            "--json",
            "--quiet",
            "--runs-db",
            str(Path(tmp) / "runs.sqlite"),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peaks = [
        int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB ")
    ]
    if proc.returncode != 0 or not peaks:
        return {"peak_memory_error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "peak_memory_mb": peaks[-1] / 1024,
        "preset": preset,
        "preset_test_accuracy": result.get("test_accuracy"),
        "preset_train_seconds": result.get("train_seconds"),
        "process_seconds": seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trainer (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers",
        nargs="*",
        default=["torch", "sklearn"],
        help="which peers to run (torch, sklearn)",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="parts to skip: training inference drawing worker memory",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    data = load_mnist()
    figures: dict = {"machine": {"cpus": os.cpu_count(), "numpy": np.__version__}}
    try:
        import torch

        figures["machine"]["torch"] = torch.__version__
    except ImportError:
        args.peers = [p for p in args.peers if p != "torch"]
    try:
        import sklearn

        figures["machine"]["sklearn"] = sklearn.__version__
    except ImportError:
        args.peers = [p for p in args.peers if p != "sklearn"]

    reference = None
    if "training" not in args.skip:
        print(f"training {args.epochs} epochs each, interleaved ...", file=sys.stderr)
        train = bench_training(data, args.epochs, args.seed, args.peers)
        figures["training"] = train
        for mine in ("nn", GemmFloor.name):
            for peer in ("torch", "torch-dataloader", "sklearn"):
                if peer in train:
                    figures.setdefault("ratios", {})[f"{mine}/{peer}"] = (
                        train[mine]["seconds_per_epoch"] / train[peer]["seconds_per_epoch"]
                    )
    reference = NeuralNetwork(hidden_layers=HIDDEN, epochs=2, random_state=args.seed).fit(
        data.x_train, data.y_train
    )
    if "inference" not in args.skip:
        torch_trainer = TorchTrainer(args.seed, data.x_test) if "torch" in args.peers else None
        figures["inference"] = bench_inference(data, reference, torch_trainer)
    if "drawing" not in args.skip:
        figures["drawing"] = bench_drawing(data, reference)
    if "worker" not in args.skip:
        print("worker thread against main thread ...", file=sys.stderr)
        figures["worker"] = bench_worker_thread(data, 2, args.seed)
    if "memory" not in args.skip:
        print("peak memory of `python -m nn train --preset fast` ...", file=sys.stderr)
        figures["memory"] = bench_peak_memory("fast")

    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def report(f: dict) -> str:
    lines = [f"machine: {f['machine']}"]
    if "training" in f:
        lines.append("training, 784-256-128-10 ReLU, Adam 1e-3, batch 128, float32, 60,000 images")
        lines.append(f"  {'trainer':22s} {'s/epoch':>8s} {'test acc':>9s}")
        for name, r in f["training"].items():
            acc = "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
            lines.append(f"  {name:22s} {r['seconds_per_epoch']:8.2f} {acc:>9s}")
        for name, ratio in f.get("ratios", {}).items():
            lines.append(f"  ratio {name:38s} {ratio:6.2f}x")
    if "inference" in f:
        for k, v in f["inference"].items():
            lines.append(f"  {k}: {1000 * v:.1f} ms")
    if "drawing" in f:
        lines.append(
            f"  one drawing, canvas to probabilities: "
            f"{f['drawing']['drawing_to_probabilities_ms']:.2f} ms"
        )
    if "worker" in f:
        w = f["worker"]
        lines.append(
            f"  main thread {w['main_thread_seconds_per_epoch']:.2f} s/epoch, worker "
            f"thread {w['worker_thread_seconds_per_epoch']:.2f} s/epoch "
            f"({w['worker_overhead_percent']:+.1f}%)"
        )
    if "memory" in f:
        m = f["memory"]
        if "peak_memory_mb" in m:
            lines.append(
                f"  peak memory, `python -m nn train --preset {m['preset']}`: "
                f"{m['peak_memory_mb']:.0f} MB (test accuracy "
                f"{m['preset_test_accuracy']}, {m['preset_train_seconds']:.1f} s)"
            )
        else:
            lines.append(f"  peak memory: failed: {m['peak_memory_error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
