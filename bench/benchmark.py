"""Train one network with nn, PyTorch (CPU), JAX and scikit-learn, interleaved; print figures.

    pip install -r bench/requirements.txt     # torch 2.13.0 (CPU), JAX and scikit-learn, bench only
    python bench/benchmark.py                 # 3 epochs each, ~2 minutes on 2 cores
    python bench/benchmark.py --epochs 5 --json bench/results.json

The network: 784-256-128-10, ReLU, softmax cross-entropy, Adam at 1e-3, batch 128, float32,
inputs in [0, 1], the full 60,000 training images, no L2 (scikit-learn's alpha=0). The trainers
run one epoch each in turn (nn, torch, torch with fused Adam, torch with a DataLoader, JAX,
sklearn, nn, ...) so that a change in the machine's load touches all of them alike; each one's
median seconds per epoch is reported with the ratios and the test accuracy after the last epoch.
A peer whose package is not installed is skipped with a note. The cores column is each
trainer's CPU seconds over wall seconds per epoch (median): how many of the cores it kept busy,
which tells how a shared machine's load reaches it. Interleaved with them, the network's matrix
products alone (no trainer can do the same dense float32 work faster with NumPy's BLAS) show how
much of each epoch is anything else.

The strongest peers: PyTorch with ``torch.optim.Adam(fused=True)`` (one fused update kernel per
step; ``foreach=True`` where a build refuses fused on CPU, as the table then says), and JAX with a
whole epoch as one ``jax.jit``-compiled ``jax.lax.scan`` over the batches, the data on the device
once, Adam written out by hand. JAX's compile is paid by a discarded warm-up epoch before the timed
ones, and each timed epoch ends with ``block_until_ready``.

Also measured: predict_proba on the 10,000 test images; one drawing from canvas pixels to
probabilities (preprocessing included); training in a worker thread with the dashboard's callback
against the main thread; the peak memory of `python -m nn train` with the default preset.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from itertools import pairwise
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
    """Idiomatic PyTorch with the data as a float32 tensor indexed by a random permutation, and
    ``torch.optim.Adam``'s default update (on CPU one tensor at a time)."""

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
        self.opt = self._optimizer()
        self.loss = torch.nn.CrossEntropyLoss()
        self.x = torch.from_numpy(x_train.astype(np.float32) / 255.0)

    def _optimizer(self):
        return self.torch.optim.Adam(self.model.parameters(), lr=LR)

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


def fused_adam_refusal(torch) -> str | None:
    """Why this torch build refuses ``Adam(fused=True)`` on CPU tensors, or None when it takes it.
    One step on a throwaway parameter: a build may accept the flag and refuse only at the step."""
    param = torch.zeros(4, requires_grad=True)
    param.grad = torch.ones(4)
    try:
        torch.optim.Adam([param], lr=LR, fused=True).step()
    except (RuntimeError, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def torch_adam(torch, params, refusal: str | None):
    """The fastest Adam this torch build runs on CPU: fused, or the multi-tensor (foreach) update
    when fused is refused."""
    if refusal is None:
        return torch.optim.Adam(params, lr=LR, fused=True)
    return torch.optim.Adam(params, lr=LR, foreach=True)


def adam_note(refusal: str | None, name: str) -> str | None:
    """The table's note for a trainer that wanted fused Adam and fell back to foreach."""
    if refusal is None:
        return None
    return f"{name}: torch refuses Adam(fused=True) on CPU ({refusal}); it runs foreach=True"


class TorchFusedTrainer(TorchTrainer):
    """TorchTrainer with ``Adam(fused=True)``: the whole update as one kernel per step over all
    parameters (``foreach=True`` where this build refuses fused on CPU, then named so)."""

    name = "torch-fused-adam"

    def __init__(self, seed: int, x_train: np.ndarray):
        import torch

        self.refusal = fused_adam_refusal(torch)
        if self.refusal is not None:
            self.name = "torch-foreach-adam"
        self.note = adam_note(self.refusal, self.name)
        super().__init__(seed, x_train)

    def _optimizer(self):
        return torch_adam(self.torch, self.model.parameters(), self.refusal)


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


class JaxTrainer:
    """JAX on CPU with one whole epoch as a single compiled XLA program: ``jax.jit`` over a
    ``jax.lax.scan`` whose steps are the batches, so Python runs once per epoch, not per batch.

    The uint8 images and the labels go to the device once; each epoch draws its permutation inside
    the program, gathers a batch by index and scales it to float32 there. 60,000 is not a multiple
    of 128, and scan's steps all have one shape, so the last batch is padded and its padding rows
    carry weight zero in the mean loss: 469 updates over every image, as the other trainers make.
    Adam is written out (PyTorch's formula, bias-corrected, eps 1e-8) to need nothing but JAX. The
    initialisation is nn's: He normal for the hidden layers, Glorot uniform for the output, zero
    biases. The compile happens in a warm-up epoch from the initial weights whose result is thrown
    away, so the timed epochs train from the same start as the others."""

    name = "jax-jit-scan"

    def __init__(self, seed: int, x_train: np.ndarray, y_train: np.ndarray):
        import jax

        self.jax = jax
        self.params = self._init_params(seed)
        zeros = jax.tree_util.tree_map(jax.numpy.zeros_like, self.params)
        self.state = (zeros, zeros, jax.numpy.zeros((), np.float32))
        self.x = jax.device_put(x_train)
        self.y = jax.device_put(y_train.astype(np.int32))
        self.key = jax.random.PRNGKey(seed)
        self.epochs_done = 0
        self._epoch = jax.jit(self._epoch_program)
        self._logits = jax.jit(self._forward)
        warm = self._epoch(self.params, self.state, self.x, self.y, jax.random.PRNGKey(seed + 1))
        jax.block_until_ready(warm)

    def _init_params(self, seed: int) -> list:
        rng = np.random.default_rng(seed)
        sizes = (784, *HIDDEN, 10)
        params = []
        for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
            if i < len(HIDDEN):
                w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                w = rng.uniform(-limit, limit, (fan_in, fan_out))
            params.append(
                (self.jax.numpy.asarray(w, np.float32), self.jax.numpy.zeros(fan_out, np.float32))
            )
        return params

    def _forward(self, params, x):
        for w, b in params[:-1]:
            x = self.jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def _loss(self, params, x, y, weight):
        logits = self._forward(params, x)
        picked = self.jax.numpy.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        nll = self.jax.nn.logsumexp(logits, axis=1) - picked
        return (nll * weight).sum() / weight.sum()

    def _adam(self, params, grads, state):
        tree_map = self.jax.tree_util.tree_map
        m, v, t = state
        t = t + 1
        m = tree_map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
        v = tree_map(lambda a, g: 0.999 * a + 0.001 * g * g, v, grads)
        step, root = LR / (1 - 0.9**t), self.jax.numpy.sqrt(1 - 0.999**t)
        params = tree_map(
            lambda p, a, b: p - step * a / (self.jax.numpy.sqrt(b) / root + 1e-8), params, m, v
        )
        return params, (m, v, t)

    def _epoch_program(self, params, state, x, y, key):
        jnp = self.jax.numpy
        n = x.shape[0]
        batches = -(-n // BATCH)
        order = self.jax.random.permutation(key, n)
        index = jnp.concatenate([order, jnp.zeros(batches * BATCH - n, order.dtype)])
        weight = (jnp.arange(batches * BATCH) < n).astype(np.float32)

        def step(carry, batch):
            p, s = carry
            idx, w = batch
            grads = self.jax.grad(self._loss)(p, x[idx].astype(np.float32) / 255.0, y[idx], w)
            return self._adam(p, grads, s), None

        batched = (index.reshape(batches, BATCH), weight.reshape(batches, BATCH))
        (params, state), _ = self.jax.lax.scan(step, (params, state), batched)
        return params, state

    def epoch(self, x, y):
        key = self.jax.random.fold_in(self.key, self.epochs_done)
        self.params, self.state = self._epoch(self.params, self.state, self.x, self.y, key)
        self.jax.block_until_ready(self.params)
        self.epochs_done += 1

    def accuracy(self, x, y):
        logits = self._logits(self.params, self.jax.numpy.asarray(x, np.float32) / 255.0)
        return float((np.asarray(logits).argmax(1) == y).mean())


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
        self.w = [rng.standard_normal((a, b), np.float32) * 0.05 for a, b in pairwise(sizes)]

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
def make_trainers(data, seed: int, peers: list[str], notes: list[str]) -> list:
    """nn and the matrix-product floor, then each requested peer, in the rotation's order."""
    trainers = [NNTrainer(seed), GemmFloor(seed)]
    if "torch" in peers:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        fused = TorchFusedTrainer(seed, data.x_train)
        notes += [fused.note] if fused.note else []
        trainers += [
            TorchTrainer(seed, data.x_train),
            fused,
            TorchLoaderTrainer(seed, data.x_train),
        ]
    if "jax" in peers:
        print("  compiling JAX's epoch (a warm-up epoch, not timed) ...", file=sys.stderr)
        trainers.append(JaxTrainer(seed, data.x_train, data.y_train))
    if "sklearn" in peers:
        trainers.append(SklearnTrainer(seed, data.x_train))
    return trainers


def bench_training(data, epochs: int, seed: int, peers: list[str], notes: list[str]) -> dict:
    """Each trainer's figures from ``run_interleaved``."""
    return run_interleaved(make_trainers(data, seed, peers, notes), data, epochs)


def run_interleaved(trainers: list, data, epochs: int) -> dict:
    """Each trainer's median seconds per epoch, every epoch's seconds, its median CPU seconds over
    wall seconds (how many cores it kept busy: 2 is all of this machine, 1 one thread), and its
    test accuracy after the last epoch; one epoch per trainer in turn, so that a change in the
    machine's load touches all of them alike."""
    times = {t.name: [] for t in trainers}
    cores = {t.name: [] for t in trainers}
    for epoch in range(epochs):
        for t in trainers:
            # the previous trainer's idle threads (OpenMP's, OpenBLAS's, XLA's) spin for a while
            # after its last parallel region: let them go to sleep before timing the next one
            time.sleep(0.5)
            start, cpu = time.perf_counter(), time.process_time()
            t.epoch(data.x_train, data.y_train)
            times[t.name].append(time.perf_counter() - start)
            cores[t.name].append((time.process_time() - cpu) / times[t.name][-1])
            print(
                f"  epoch {epoch + 1}/{epochs} {t.name:22s} {times[t.name][-1]:6.2f} s",
                file=sys.stderr,
            )
    return {
        t.name: {
            "seconds_per_epoch": statistics.median(times[t.name]),
            "epoch_seconds": times[t.name],
            "cores_busy": statistics.median(cores[t.name]),
            "test_accuracy": t.accuracy(data.x_test, data.y_test),
        }
        for t in trainers
    }


def training_table(train: dict) -> list[str]:
    """The trainers' rows: median seconds per epoch, cores kept busy, test accuracy."""
    lines = [f"  {'trainer':22s} {'s/epoch':>8s} {'cores':>6s} {'test acc':>9s}"]
    for name, r in train.items():
        acc = "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        lines.append(f"  {name:22s} {r['seconds_per_epoch']:8.2f} {r['cores_busy']:6.2f} {acc:>9s}")
    return lines


def training_ratios(train: dict) -> dict:
    """nn's and the floor's seconds per epoch over each peer's."""
    peers = [name for name in train if name not in ("nn", GemmFloor.name)]
    return {
        f"{mine}/{peer}": train[mine]["seconds_per_epoch"] / train[peer]["seconds_per_epoch"]
        for mine in ("nn", GemmFloor.name)
        for peer in peers
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
    thread, ``nn.services.training.run_training``) and as the dashboard does
    (``ui.session_jobs``: a job of a ``JobRunner`` in a worker process that streams every batch
    back and records epochs in SQLite, its messages folded into a snapshot), alternating the
    two."""
    import tempfile

    from nn.services.jobs import JobRunner
    from nn.services.presets import get_preset
    from nn.services.training import run_training
    from ui.session_jobs import JobBoard, start_training

    preset = get_preset("fast")
    model_kwargs = preset.model_kwargs(epochs=epochs, random_state=seed)
    data_kwargs = preset.data_kwargs()
    main_t, thread_t = [], []
    runner = JobRunner(max_jobs=1, blas_threads=1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                result = run_training(model_kwargs, data_kwargs, mnist=data)
                main_t += result.model.history_["seconds"]
                job = start_training(
                    JobBoard(),
                    runner,
                    None,
                    model_kwargs,
                    data_kwargs,
                    runs_path=str(Path(tmp) / "runs.sqlite"),
                )
                job.wait()
                job.snapshot()
                if job.result is None:
                    raise RuntimeError(f"the job failed: {job.snapshot().get('error')}")
                thread_t += job.result.history_["seconds"]
    finally:
        runner.shutdown()
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


def bench_peak_memory(preset: str, *extra: str) -> dict:
    """Peak resident memory of a whole `python -m nn train` process with the preset (and the
    flags ``extra``, e.g. ``"--epochs", "1"``)."""
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
            *extra,
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


PEER_MODULES = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}


def available_peers(requested: list[str], machine: dict, notes: list[str]) -> list[str]:
    """The requested peers whose package imports, their versions put in ``machine``; each missing
    one is skipped with a note. JAX is kept to the CPU, the only device this benchmark compares."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    found = []
    for peer in requested:
        try:
            module = importlib.import_module(PEER_MODULES[peer])
        except ImportError as exc:
            notes.append(f"{peer} skipped: {exc} (pip install -r bench/requirements.txt)")
            continue
        machine[peer] = module.__version__
        found.append(peer)
    return found


def blas_info() -> list[str]:
    """The BLAS libraries this process loaded, each with its version, the kernel it picked for
    this CPU and its thread count (threadpoolctl's view), and the OPENBLAS_* variables in force
    (OPENBLAS_CORETYPE overrides the kernel choice): the figures depend on both."""
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    lines = [f"OPENBLAS_* environment: {env or 'none set'}"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [*lines, "BLAS kernel: unknown (threadpoolctl is not installed)"]
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            lines.append(
                f"BLAS: {lib.get('internal_api')} {lib.get('version')}, kernel "
                f"{lib.get('architecture')}, {lib.get('num_threads')} threads "
                f"({lib.get('threading_layer')}), {_lib_label(lib['filepath'])}"
            )
    return lines


def _lib_label(filepath: str) -> str:
    """A library's file with its folder, which names the package that ships it (numpy.libs/...,
    scipy.libs/...): NumPy's copy is the one nn uses."""
    path = Path(filepath)
    return f"{path.parent.name}/{path.name}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trainer (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers",
        nargs="*",
        default=list(PEER_MODULES),
        choices=PEER_MODULES,
        help="which peers to run (default: torch jax sklearn)",
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
    figures: dict = {"machine": {"cpus": os.cpu_count(), "numpy": np.__version__}, "notes": []}
    args.peers = available_peers(args.peers, figures["machine"], figures["notes"])
    figures["blas"] = blas_info()

    if "training" not in args.skip:
        print(f"training {args.epochs} epochs each, interleaved ...", file=sys.stderr)
        figures["training"] = bench_training(
            data, args.epochs, args.seed, args.peers, figures["notes"]
        )
        figures["ratios"] = training_ratios(figures["training"])
    figures.update(bench_others(data, args))

    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def bench_others(data, args) -> dict:
    """Inference, one drawing, the worker thread and peak memory, each unless skipped."""
    figures: dict = {}
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
    return figures


def report(f: dict) -> str:
    lines = [f"machine: {f['machine']}", *(f"  {line}" for line in f.get("blas", []))]
    if "training" in f:
        lines.append("training, 784-256-128-10 ReLU, Adam 1e-3, batch 128, float32, 60,000 images")
        lines += training_table(f["training"])
        for name, ratio in f.get("ratios", {}).items():
            lines.append(f"  ratio {name:38s} {ratio:6.2f}x")
    lines += [f"  note: {note}" for note in f.get("notes", [])]
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
