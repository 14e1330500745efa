"""python -m nn: in-process through ``main([...])`` and end to end through ``subprocess``.

Subprocesses run with one BLAS thread: on the shared two-core machine, multi-threaded OpenBLAS
slows down by an order of magnitude when the cores are busy, which would make timings erratic.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_support import call
from PIL import Image

from nn.cli.common import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from nn.cli.main import build_parser
from nn.cli.progress import Progress
from nn.cli.train import train_plan
from nn.core.config import configure
from nn.core.network import NeuralNetwork
from nn.core.params import PARAMS
from nn.data import load_mnist
from nn.io.model_files import save_model
from nn.services.presets import PRESETS
from nn.services.runs import RunStore

REPO = Path(__file__).resolve().parent.parent
TINY = ["--train-size", "2000", "--epochs", "1", "--hidden-layers", "32"]


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NN_MODELS_DIR=str(tmp / "models"),
        NN_RUNS_DB=str(tmp / "default-runs.sqlite"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


def run_cli(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nn", *args],
        cwd=REPO,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(stdout: str) -> object:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Nothing a test does in-process lands in the repository's saved_models/ or runs.sqlite."""
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "default-runs.sqlite"))


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """The brief's end-to-end run: tiny training in a subprocess, JSON on the last line."""
    tmp = tmp_path_factory.mktemp("e2e")
    proc = run_cli(
        tmp,
        "train",
        *TINY,
        "--json",
        "--out",
        str(tmp / "m.npz"),
        "--runs-db",
        str(tmp / "r.sqlite"),
    )
    return SimpleNamespace(tmp=tmp, proc=proc, model=tmp / "m.npz", db=tmp / "r.sqlite")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A model trained in-process through main(), good enough to read a clear digit."""
    tmp = tmp_path_factory.mktemp("good")
    code, out, err = call(
        "train",
        "--train-size",
        "5000",
        "--epochs",
        "3",
        "--hidden-layers",
        "64",
        "--learning-rate",
        "0.003",
        "--name",
        "good",
        "--models-dir",
        str(tmp),
        "--runs-db",
        str(tmp / "r.sqlite"),
        "--json",
        "--quiet",
    )
    assert code == EXIT_OK, err
    assert err == ""  # --quiet: no progress, no summary
    return SimpleNamespace(
        tmp=tmp, result=last_json(out), model=tmp / "good.npz", db=tmp / "r.sqlite"
    )


def write_digit_png(path: Path, image28: np.ndarray, size: int = 140) -> Path:
    Image.fromarray(image28.reshape(28, 28)).resize((size, size), Image.Resampling.BILINEAR).save(
        path
    )
    return path


# --------------------------------------------------------------------------------------- train
def test_train_end_to_end_subprocess(e2e):
    proc = e2e.proc
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "Traceback" not in proc.stderr
    result = last_json(proc.stdout)
    for key in (
        "test_accuracy",
        "val_accuracy",
        "train_seconds",
        "epochs",
        "parameters",
        "model_path",
        "preset",
        "seed",
        "stop_reason",
    ):
        assert key in result, key
    assert result["epochs"] == 1
    assert result["parameters"] == 784 * 32 + 32 + 32 * 10 + 10
    assert result["preset"] == "fast" and result["seed"] == 0
    assert result["stop_reason"] == "completed" and result["status"] == "finished"
    assert 0.0 <= result["test_accuracy"] <= 1.0 and 0.0 <= result["val_accuracy"] <= 1.0
    assert result["train_seconds"] > 0 and result["train_size"] == 2000
    assert Path(result["model_path"]) == e2e.model and e2e.model.is_file()
    # human output went to stderr: per-epoch line and summary
    assert "epoch 1/1" in proc.stderr and "test accuracy" in proc.stderr
    # the run is recorded with its history, metrics and model path
    run = RunStore(e2e.db).get_run(result["run_id"])
    assert run.source == "cli" and run.status == "finished" and run.seed == 0
    assert run.epochs_done == 1 and run.history["epoch"] == [1]
    assert run.metrics["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert run.model_path == str(e2e.model)
    assert run.config["preset"] == "fast"
    assert run.config["model"]["hidden_layers"] == [32]
    assert run.config["data"]["train_size"] == 2000
    assert run.duration_seconds is not None


def test_train_in_process_saves_by_name(good):
    result = good.result
    assert result["model_path"] == str(good.model) and good.model.is_file()
    assert result["name"] == "good" and result["epochs"] == 3
    assert result["test_accuracy"] > 0.85


def test_fast_preset_reaches_95_percent_on_10000_images(tmp_path):
    """End-to-end accuracy: the fast preset's network on 10,000 bundled MNIST images for five
    epochs scores >= 95% on the full official test set (seconds, far under a minute)."""
    proc = run_cli(
        tmp_path,
        "train",
        "--preset",
        "fast",
        "--epochs",
        "5",
        "--batch-size",
        "64",
        "--learning-rate",
        "0.002",
        "--train-size",
        "10000",
        "--no-save",
        "--json",
        "--quiet",
        "--runs-db",
        str(tmp_path / "r.sqlite"),
    )
    assert proc.returncode == EXIT_OK, proc.stderr
    result = last_json(proc.stdout)
    assert result["train_size"] == 10_000 and result["epochs"] == 5
    assert result["layers"] == [784, 256, 128, 10] and result["stack"] == "D256-D128-D10"
    assert result["test_accuracy"] >= 0.95, result
    assert result["model_path"] is None and result["name"].startswith("fast-")


def test_diverged_training_exits_3(tmp_path):
    out = tmp_path / "d.npz"
    code, stdout, stderr = call(
        "train",
        "--train-size",
        "1000",
        "--epochs",
        "2",
        "--hidden-layers",
        "16",
        "--optimizer",
        "sgd",
        "--learning-rate",
        "1e30",
        "--schedule",
        "constant",
        "--out",
        str(out),
        "--runs-db",
        str(tmp_path / "r.sqlite"),
        "--json",
    )
    assert code == EXIT_DIVERGED == 3
    assert "diverged" in stderr and "Traceback" not in stderr
    result = last_json(stdout)
    assert result["stop_reason"] == "diverged" and result["model_path"] is None
    assert not out.exists()
    (run,) = RunStore(tmp_path / "r.sqlite").list_runs()
    assert run.status == "diverged" and "diverged" in run.message


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly(tmp_path, signum):
    """Ctrl-C, and SIGTERM (a service manager's stop, kill's default) alike."""
    db = tmp_path / "r.sqlite"
    out = tmp_path / "s.npz"
    with open(tmp_path / "stdout", "w") as so, open(tmp_path / "stderr", "w") as se:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nn",
                "train",
                "--train-size",
                "500",
                "--epochs",
                "100000",
                "--hidden-layers",
                "8",
                "--batch-size",
                "100",
                "--out",
                str(out),
                "--runs-db",
                str(db),
                "--json",
            ],
            cwd=REPO,
            env=_env(tmp_path),
            stdout=so,
            stderr=se,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                if db.exists():
                    runs = RunStore(db).list_runs()
                    if runs and runs[0].epochs_done >= 2:
                        break
                time.sleep(0.2)
            assert proc.poll() is None, "training ended before it could be interrupted"
            proc.send_signal(signum)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = (tmp_path / "stderr").read_text()
    assert code == EXIT_INTERRUPTED == 130, stderr
    assert "Traceback" not in stderr
    result = last_json((tmp_path / "stdout").read_text())
    assert result["status"] == "stopped" and result["stop_reason"] == "callback"
    (run,) = RunStore(db).list_runs()
    assert run.status == "stopped" and run.epochs_done >= 2
    assert not out.exists()


def test_train_on_a_user_dataset(mnist, tmp_path):
    data = tmp_path / "digits.npz"
    np.savez(data, x=mnist.x_train[:1500], y=mnist.y_train[:1500])
    code, out, err = call(
        "train",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--hidden-layers",
        "16",
        "--no-save",
        "--runs-db",
        str(tmp_path / "r.sqlite"),
        "--json",
    )
    assert code == EXIT_OK, err
    result = last_json(out)
    assert result["split"] == "80:10:10"  # a single-part dataset cannot use "standard"
    assert result["train_size"] == 1200
    assert "no separate test part" in err
    code, out, err = call(
        "evaluate", "--data", str(data), "--json", str(_tiny_model(mnist, tmp_path))
    )
    assert code == EXIT_OK, err
    assert last_json(out)["n"] == 1500


def _tiny_model(mnist, tmp_path) -> Path:
    model = NeuralNetwork(hidden_layers=[8], epochs=1, random_state=0)
    model.fit(mnist.x_train[:500], mnist.y_train[:500])
    return save_model(model, tmp_path / "tiny.npz")


def test_flags_cover_every_hyperparameter():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {s for action in train._actions for s in action.option_strings}
    for name in PARAMS:
        if name in ("warm_start", "augment"):
            continue
        assert "--" + name.replace("_", "-") in options, name
    for extra in (
        "--preset",
        "--seed",
        "--split",
        "--val-fraction",
        "--test-fraction",
        "--train-size",
        "--data",
        "--name",
        "--out",
        "--no-save",
        "--runs-db",
        "--json",
        "--quiet",
        "--augment-shift",
        "--augment-elastic-alpha",
        "--no-augment",
        "--clip-norm",
        "--early-stopping",
    ):
        assert extra in options, extra


def _plan(*args: str):
    parser = build_parser()
    ns = parser.parse_args(["train", "--no-save", *args])
    return train_plan(ns)


def test_flags_override_the_preset():
    plan = _plan(
        "--preset",
        "fast",
        "--hidden-layers",
        "8",
        "8",
        "--activation",
        "relu",
        "tanh",
        "--dropout",
        "0.2",
        "--seed",
        "5",
        "--clip-norm",
        "2.5",
        "--early-stopping",
        "--train-size",
        "300",
        "--split",
        "80:10:10",
        "--split-seed",
        "3",
    )
    m, d = plan.model, plan.data
    assert m["hidden_layers"] == [8, 8] and m["activation"] == ["relu", "tanh"]
    assert m["dropout"] == 0.2 and m["random_state"] == 5 and m["clip_norm"] == 2.5
    assert m["early_stopping"] is True
    assert m["epochs"] == 12 and m["schedule"] == "cosine"  # kept from the preset
    assert d["train_size"] == 300 and d["split"] == "80:10:10" and d["seed"] == 3
    # no hidden layer at all: softmax regression
    assert _plan("--hidden-layers").model["hidden_layers"] == []
    # 'none' switches an optional setting off
    assert _plan("--preset", "reference-he-relu", "--clip-norm", "none").model["clip_norm"] is None


def test_augment_flags():
    assert _plan("--augment-shift", "1").model["augment"] == {
        "shift": 1.0,
        "rotation": 0.0,
        "scale": 0.0,
        "elastic_alpha": 0.0,
    }
    on = _plan("--augment").model["augment"]  # the Augmenter's defaults: {} would augment nothing
    assert on["shift"] == 2.0 and on["rotation"] == 10.0 and on["scale"] == 0.1
    assert configure({"augment": on}).augmenter is not None
    best = _plan("--preset", "best", "--augment-rotation", "5").model["augment"]
    assert best == {**PRESETS["best"].model["augment"], "rotation": 5.0}
    assert _plan("--preset", "best", "--no-augment").model["augment"] is None
    assert PRESETS["best"].model["augment"]["rotation"] == 10.0  # the preset is unchanged


# --------------------------------------------------------------------------------------- evaluate
def test_evaluate(e2e, good):
    code, out, err = call("evaluate", str(good.model))
    assert code == EXIT_OK, err
    assert "accuracy" in out and "precision" in out and "recall" in out
    assert "confusion matrix" in out and "true\\pred" in out
    code, out, err = call("evaluate", str(e2e.model), "--json")
    assert code == EXIT_OK, err
    report = last_json(out)
    assert report["n"] == 10_000
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10_000
    assert report["accuracy"] == pytest.approx(np.trace(cm) / 10_000)
    # the same official test set the training command scored
    assert report["accuracy"] == pytest.approx(last_json(e2e.proc.stdout)["test_accuracy"])
    assert [row["class"] for row in report["per_class"]] == list(range(10))
    assert all(
        0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1 for row in report["per_class"]
    )


def test_model_by_name(good):
    code, out, err = call("info", "good", "--models-dir", str(good.tmp), "--json")
    assert code == EXIT_OK, err
    assert last_json(out)["path"] == str(good.model)


# --------------------------------------------------------------------------------------- info
def test_info(e2e):
    code, out, err = call("info", str(e2e.model), "--json")
    assert code == EXIT_OK, err
    info = last_json(out)
    assert info["name"] == "m" and info["layers"] == [784, 32, 10]
    assert info["activations"] == ["relu", "softmax"]
    assert info["parameters"] == 784 * 32 + 32 + 32 * 10 + 10
    assert info["epochs"] == 1 and info["size_bytes"] == e2e.model.stat().st_size
    assert info["hyperparameters"]["hidden_layers"] == [32]
    assert info["metrics"]["test_accuracy"] == pytest.approx(
        last_json(e2e.proc.stdout)["test_accuracy"]
    )
    assert info["created"] and info["saved"]
    code, out, err = call("info", str(e2e.model), "--history")
    assert code == EXIT_OK and "784-32-10" in out and "val_accuracy" in out


# --------------------------------------------------------------------------------------- predict
def test_predict_digit_and_blank(good, mnist, tmp_path):
    digit = write_digit_png(tmp_path / "seven.png", mnist.x_test[0])
    assert mnist.y_test[0] == 7
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((120, 120), np.uint8)).save(blank)
    code, out, err = call("predict", str(good.model), str(digit), str(blank), "--json")
    assert code == EXIT_OK, err
    first, second = last_json(out)["predictions"]
    assert first["digit"] == 7 and not first["blank"]
    assert len(first["top"]) == 3 and first["top"][0]["digit"] == 7
    probs = [t["probability"] for t in first["top"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    assert first["confidence"] == pytest.approx(probs[0])
    assert second["blank"] and second["digit"] is None
    code, out, err = call("predict", str(good.model), str(digit), str(blank))
    assert code == EXIT_OK
    assert "nothing drawn" in out and "seven.png" in out and "top-3" in out


def test_predict_subprocess_on_dark_ink_jpeg(e2e, mnist, tmp_path):
    """A dark-on-light JPEG (like a scan) through a real process, with the tiny model."""
    path = tmp_path / "scan.jpg"
    Image.fromarray(255 - mnist.x_test[1].reshape(28, 28)).resize((200, 200)).convert("RGB").save(
        path
    )
    proc = run_cli(tmp_path, "predict", str(e2e.model), str(path), "--json")
    assert proc.returncode == EXIT_OK, proc.stderr
    (row,) = last_json(proc.stdout)["predictions"]
    assert 0 <= row["digit"] <= 9 and len(row["top"]) == 3


def test_predict_reports_unreadable_images(good, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, out, err = call("predict", str(good.model), str(bad), str(tmp_path / "missing.png"))
    assert code == EXIT_USAGE
    assert "bad.png" in err and "missing.png" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------- presets, runs
def test_presets_command():
    code, out, err = call("presets")
    assert code == EXIT_OK
    for name, p in PRESETS.items():
        assert name in out and p.description in out
    code, out, err = call("presets", "--json")
    assert [p["name"] for p in last_json(out)] == list(PRESETS)
    code, out, err = call("presets", "best")
    assert code == EXIT_OK and "800" in out


def test_runs_lists_the_run(e2e, tmp_path):
    code, out, err = call("runs", "--runs-db", str(e2e.db))
    assert code == EXIT_OK, err
    assert "cli" in out and "finished" in out and " m" in out
    code, out, err = call("runs", "--runs-db", str(e2e.db), "--json")
    runs = last_json(out)["runs"]
    assert len(runs) == 1 and runs[0]["name"] == "m" and runs[0]["source"] == "cli"
    assert runs[0]["status"] == "finished" and runs[0]["epochs_done"] == 1
    code, out, err = call("runs", "--runs-db", str(e2e.db), "--status", "diverged", "--json")
    assert last_json(out)["runs"] == []
    code, out, err = call("runs", "--runs-db", str(tmp_path / "empty.sqlite"))
    assert code == EXIT_OK and "no runs" in out


# --------------------------------------------------------------------------------------- errors
@pytest.fixture
def corrupt(tmp_path):
    zipped = tmp_path / "corrupt.npz"
    zipped.write_bytes(b"PK\x03\x04" + os.urandom(200))
    noise = tmp_path / "noise.npz"
    noise.write_bytes(os.urandom(300))
    return zipped, noise


def _bad_cases(tmp: Path, corrupt: tuple[Path, Path]) -> list[list[str]]:
    db = ["--runs-db", str(tmp / "r.sqlite"), "--no-save"]
    return [
        ["train", "--bogus-flag"],
        ["train", "--learning-rate", "0", *db],
        ["train", "--hidden-layers", "0", *db],
        ["train", "--hidden-layers", "10", "--dropout", "0.1", "0.2", *db],
        ["train", "--learning-rate", "fast", *db],
        ["train", "--preset", "nope", *db],
        ["train", "--epochs", "-1", *db],
        ["train", "--train-size", "0", *db],
        ["train", "--name", "../escape"],
        ["train", "--data", str(tmp / "missing.csv"), *db],
        ["train", "--split", "custom", "--val-fraction", "0.6", "--test-fraction", "0.6", *db],
        ["evaluate", str(tmp / "missing.npz")],
        ["evaluate", "no-such-saved-model"],
        ["evaluate", str(corrupt[0])],
        ["info", str(corrupt[1])],
        ["predict", str(corrupt[0]), str(tmp / "x.png")],
        ["info", str(tmp)],
        ["runs", "--limit", "-1"],
        ["runs", "--status", "bogus"],
        ["nosuchcommand"],
        [],
    ]


def test_bad_arguments_in_process(tmp_path, corrupt):
    for args in _bad_cases(tmp_path, corrupt):
        code, out, err = call(*args)
        assert code == EXIT_USAGE, (args, code, err)
        assert "Traceback" not in err, (args, err)
        if args:
            assert "error" in err, (args, err)
    assert not (tmp_path / "r.sqlite").exists()  # rejected before any run was recorded


def test_bad_arguments_subprocess(tmp_path, corrupt):
    for args in (
        ["train", "--learning-rate", "0", "--no-save"],
        ["evaluate", str(corrupt[0])],
        ["info", str(tmp_path / "missing.npz")],
    ):
        proc = run_cli(tmp_path, *args)
        assert proc.returncode == EXIT_USAGE, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_help_and_no_command():
    code, out, err = call("--help")
    assert code == EXIT_OK and "train" in out and "Exit codes" in out
    code, out, err = call("train", "--help")
    assert code == EXIT_OK and "--hidden-layers" in out
    code, out, err = call()
    assert code == EXIT_USAGE


# --------------------------------------------------------------------------------------- progress
def _event(kind, epoch, batch, n_batches=4, val=None, elapsed=1.0):
    return SimpleNamespace(
        kind=kind,
        epoch=epoch,
        epochs=2,
        batch=batch,
        n_batches=n_batches,
        loss=0.5,
        train_accuracy=0.9,
        val_loss=None if val is None else 0.3,
        val_accuracy=val,
        learning_rate=1e-3,
        samples_per_second=1000.0,
        elapsed=elapsed,
    )


def test_progress_on_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream, n_train=400, batch_size=100, live=True, min_interval=0)
    for b in range(1, 5):
        progress(_event("batch", 1, b, elapsed=0.1 * b))
    progress(_event("epoch", 1, 4, val=0.95, elapsed=0.5))
    progress(_event("batch", 2, 1, elapsed=0.6))
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "epoch 1/2 [" in text and "img/s" in text and "ETA" in text
    assert "4/4" in text and "val_acc 95.00%" in text and "val 95.00%" in text


def test_progress_in_a_log_file():
    stream = io.StringIO()
    progress = Progress(stream, n_train=400, batch_size=100, live=False)
    progress(_event("batch", 1, 1))
    progress(_event("epoch", 1, 4, val=0.5))
    text = stream.getvalue()
    assert "\r" not in text and text.count("\n") == 1 and text.startswith("epoch 1/2")


def test_train_a_cnn_from_the_one_line_syntax_and_describe_it(tmp_path):
    out_path = tmp_path / "cnn.npz"
    code, out, err = call(
        "train",
        "--train-size",
        "600",
        "--epochs",
        "1",
        "--layers",
        "conv4k5s2same,bn,relu,pool2,dense16,relu,dropout0.2",
        "--out",
        str(out_path),
        "--runs-db",
        str(tmp_path / "runs.sqlite"),
        "--json",
    )
    assert code == EXIT_OK, err
    result = last_json(out)
    assert result["model_path"] == str(out_path)
    # widths do not describe a convolutional stack: the compact form and the layers do
    assert result["layers"] is None and result["stack"] == "C4k5s2same-BN-P2-D16-D10"
    assert [spec["type"] for spec in result["layer_specs"]] == [
        "conv2d", "batchnorm", "relu", "maxpool", "dense", "relu", "dropout", "dense"
    ]  # fmt: skip
    assert result["layer_specs"][-1] == {"type": "dense", "units": 10}
    assert "C4k5s2same-BN-P2-D16-D10, adam" in err  # the line before training (--json: stderr)
    code, out, err = call("info", str(out_path))
    assert code == EXIT_OK, err
    assert re.search(r"layers +C4k5s2same-BN-P2-D16-D10\n", out), out  # not 784-16-10
    assert "conv4k5s2same  14x14x4" in out and "dense10" in out
    # the layers numbered from 1 as the train command's faults name them, the output layer last
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "output"))]
    assert rows[0][:3] == ["1", "conv4k5s2same", "14x14x4"] and rows[0][3] == "104"
    assert rows[-1][:3] == ["output", "dense10", "10"]
    code, out, err = call("info", str(out_path), "--json")
    assert code == EXIT_OK and last_json(out)["layers"] is None
    assert last_json(out)["stack"][0]["spec"]["type"] == "conv2d"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("conv4k3,relu,pool2,pool2,pool2,pool2,pool2", "layer 7 (maxpool): pool size 2"),
        ("conv4k3,blob", "layer 2 of 'conv4k3,blob': 'blob' is not a layer"),
        ("flatten,conv4k3", "layer 2 (conv2d): conv2d needs an image input"),
    ],
)
def test_train_refuses_a_bad_stack_with_the_layer_and_fault(tmp_path, spec, fragment):
    code, out, err = call(
        "train",
        "--train-size",
        "200",
        "--epochs",
        "1",
        "--layers",
        spec,
        "--no-save",
        "--runs-db",
        str(tmp_path / "runs.sqlite"),
    )
    assert code == EXIT_USAGE and fragment in err and "Traceback" not in err, err


def test_a_failing_run_database_is_a_warning_and_the_model_is_saved(tmp_path):
    """The run database's rule (nn.services.recorder): training goes on, the model is saved, the
    command line warns and exits 0."""
    broken = tmp_path / "runs.sqlite"
    broken.write_bytes(b"this is no database" * 100)
    code, out, err = call(
        "train", *TINY, "--out", str(tmp_path / "m.npz"), "--runs-db", str(broken), "--json"
    )
    assert code == EXIT_OK, err
    assert "warning: run database:" in err and "runs.sqlite" in err and "Traceback" not in err
    assert (tmp_path / "m.npz").is_file()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["run_id"] is None
