"""Command line: ``python -m nn COMMAND ...``.

Commands
    train      train a network (a preset, with any hyperparameter overridden by a flag), record the
               run, save the model
    evaluate   accuracy, per-class precision/recall and the confusion matrix of a saved model
    predict    classify PNG/JPEG images of digits with a saved model
    info       what a saved model is: layers, parameters, hyperparameters, metrics, dates
    presets    the named configurations
    runs       the recorded training runs
    tune       hyperparameter search (nn/search_cli.py)

Every command takes ``--json`` (one JSON object as the last line of stdout; the human text then
goes to stderr or is left out). MODEL arguments are a file path or the name of a model in the
models folder (``$NN_MODELS_DIR`` or ``saved_models/`` next to the ``nn`` package;
``--models-dir`` overrides).

Exit codes
    0    success
    1    an unexpected internal error (a bug: the traceback is printed)
    2    bad arguments or input: unknown flags, invalid hyperparameters, missing or corrupt model,
         data or image files (a one-line ``error: ...`` on stderr, never a traceback)
    3    training diverged (the loss became NaN or infinite); nothing is saved
    130  interrupted with Ctrl-C; a training run is recorded as ``stopped`` and not saved

Adding a command: write ``add_arguments(parser)`` and ``handler(args) -> exit code`` and call
:func:`register_command` (or add an entry to :data:`COMMANDS`); ``main`` builds the parser from
the registry.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from nn.core.network import NeuralNetwork

__all__ = [
    "main",
    "build_parser",
    "register_command",
    "COMMANDS",
    "Command",
    "UsageError",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "models_dir",
    "resolve_model_path",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

PROG = "python -m nn"
REPO_DIR = Path(__file__).resolve().parents[2]
MODELS_DIR_ENV = "NN_MODELS_DIR"


class UsageError(ValueError):
    """A bad command-line value: reported with the command's usage line, exit code 2."""


# ============================================================================ command registry
@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]
    description: str = ""


COMMANDS: dict[str, Command] = {}


def register_command(
    name: str, help: str, add_arguments: Callable, handler: Callable, description: str = ""
) -> None:
    """Add (or replace) a subcommand of ``python -m nn``."""
    COMMANDS[name] = Command(help, add_arguments, handler, description or help)


# ============================================================================ small helpers
def models_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$NN_MODELS_DIR``, else ``saved_models/`` in the repository."""
    if override:
        return Path(override).expanduser()
    value = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else REPO_DIR / "saved_models"


def resolve_model_path(spec: str, folder: str | os.PathLike | None = None) -> Path:
    """A model file from a path or a saved model's name; ``FileNotFoundError`` if neither."""
    from nn.io.model_files import SUPPORTED_FORMATS, model_path

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise IsADirectoryError(f"{spec}: is a folder, not a model file")
    folder = models_dir(folder)
    try:
        for ext in SUPPORTED_FORMATS:
            candidate = model_path(folder, spec, ext[1:])
            if candidate.is_file():
                return candidate
    except ValueError:  # not a valid model name: it was meant as a path
        pass
    raise FileNotFoundError(
        f"{spec}: no such model file, and no saved model of that name in {folder}"
    )


def _fmt_pct(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.{digits}f}%"


def _fmt_num(value: Any, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain text table; ``align`` has one character per column, ``l`` or ``r``."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" * len(headers)
    lines = []
    for k, row in enumerate(cells):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    """Strict-JSON values: NumPy scalars/arrays to Python, paths to str, NaN/inf to None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _print_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), allow_nan=False), flush=True)


class _Out:
    """Human-readable output: stdout normally, stderr under ``--json``, nothing under
    ``--quiet``."""

    def __init__(self, args: argparse.Namespace):
        self.quiet = getattr(args, "quiet", False)
        self.stream = sys.stderr if getattr(args, "json", False) else sys.stdout

    def __call__(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)


def _add_common(
    parser: argparse.ArgumentParser,
    *,
    models: bool = False,
    runs_db: bool = False,
    quiet: bool = False,
) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line of stdout"
    )
    if quiet:
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no progress bar or summary (errors are still printed)",
        )
    if models:
        parser.add_argument(
            "--models-dir",
            metavar="DIR",
            help=f"folder of saved models (default: ${MODELS_DIR_ENV} or saved_models/)",
        )
    if runs_db:
        parser.add_argument(
            "--runs-db",
            metavar="PATH",
            help="run database file (default: $NN_RUNS_DB or ./runs.sqlite)",
        )


# ============================================================================ hyperparameter flags
def _param_docs() -> dict[str, str]:
    """One-line help per NeuralNetwork parameter, from the class docstring's Parameters list."""
    doc = inspect.getdoc(NeuralNetwork) or ""
    docs: dict[str, str] = {}
    current: list[str] = []
    text: list[str] = []

    def flush():
        sentence = " ".join(text).split(". ")[0].rstrip(".")
        for name in current:
            docs.setdefault(name, sentence)

    for line in doc.splitlines():
        m = re.match(r"^    ([a-z_0-9]+(?:, [a-z_0-9]+)*): (.*)$", line)
        if m:
            flush()
            current, text = [n.strip() for n in m.group(1).split(",")], [m.group(2).strip()]
        elif line.startswith("        ") and current:
            text.append(line.strip())
        elif current and not line.strip():
            flush()
            current, text = [], []
    flush()
    return {k: v.replace("%", "%%") for k, v in docs.items()}


def _none_or(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text.strip().lower() in ("none", "null", "off"):
            return None
        return conv(text)

    parse.__name__ = conv.__name__  # argparse names the type in "invalid float value"
    return parse


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


_json_value.__name__ = "value"

_SCALAR_TYPES = {"int": int, "float": float, "str": str}


@dataclass
class _Flag:
    param: str  # NeuralNetwork parameter
    dest: str
    per_layer: bool  # a list of one value means the scalar


def _model_choices() -> dict[str, Sequence[str]]:
    from nn.core.activations import ACTIVATIONS
    from nn.core.initializers import INIT_CHOICES
    from nn.core.network import DTYPES, MONITORS
    from nn.core.optimizers import OPTIMIZERS
    from nn.core.schedules import SCHEDULES

    return {
        "activation": list(ACTIVATIONS),
        "init": list(INIT_CHOICES),
        "optimizer": list(OPTIMIZERS),
        "schedule": list(SCHEDULES),
        "monitor": list(MONITORS),
        "dtype": list(DTYPES),
    }


# Short help per hyperparameter; a parameter added to NeuralNetwork later still gets a flag, with
# help taken from the class docstring.
_MODEL_HELP = {
    "hidden_layers": "widths of the hidden layers, e.g. 256 128; give none for softmax regression",
    "activation": "hidden activation: one for all layers or one per layer",
    "leaky_slope": "slope of leaky_relu for negative inputs, in [0, 1)",
    "init": "weight initialisation; auto: He for ReLU-like layers, Xavier otherwise",
    "optimizer": "update rule",
    "learning_rate": "initial learning rate (> 0)",
    "momentum": "momentum of the momentum and nesterov optimizers, in [0, 1)",
    "beta1": "Adam's first-moment decay, in [0, 1)",
    "beta2": "Adam's second-moment decay, in [0, 1)",
    "rho": "RMSprop's decay, in [0, 1)",
    "epsilon": "numerical floor of RMSprop and Adam",
    "schedule": "learning-rate schedule (see nn.schedules)",
    "lr_decay": "decay of the inverse_time schedule: lr / (1 + decay * epoch)",
    "step_size": "epochs between the step schedule's drops",
    "gamma": "factor of the step and exponential schedules, in (0, 1]",
    "warmup_epochs": "linear warm-up from 0 over this many epochs (fractions allowed)",
    "min_lr": "floor of the cosine schedule",
    "batch_size": "images per mini-batch",
    "epochs": "passes over the training set",
    "shuffle": "reshuffle the training set every epoch",
    "l2": "L2 weight penalty (l2/2 * sum of squared weights)",
    "dropout": "drop probability of hidden units: one for all layers or one per layer",
    "input_dropout": "drop probability of input pixels",
    "clip_norm": "clip the gradient to this global L2 norm",
    "early_stopping": "stop when the validation metric stops improving; keep the best weights",
    "patience": "epochs without improvement before early stopping",
    "monitor": "validation metric watched by early stopping",
    "min_delta": "smallest change that counts as an improvement",
    "validation_fraction": "held-out fraction for early stopping when there is no validation set",
    "dtype": "float32 (fast) or float64",
    "random_state": "seed of initialisation, shuffling, dropout and augmentation",
}

# not offered as plain flags: augment is expanded to --augment-*, warm_start needs a loaded model
_MODEL_SKIP = {"augment", "warm_start"}
_MODEL_ALIASES = {"random_state": ["--seed"]}
_MODEL_METAVARS = {"hidden_layers": "N", "dropout": "P", "activation": "NAME"}


def _add_model_flags(parser: argparse.ArgumentParser) -> list[_Flag]:
    """One flag per NeuralNetwork.__init__ parameter, typed from its annotation and default.
    Defaults are suppressed so that only the flags given override the preset."""
    group = parser.add_argument_group(
        "hyperparameters (each overrides the preset; defaults are NeuralNetwork's)"
    )
    docs = _param_docs()
    choices = _model_choices()
    flags: list[_Flag] = []
    sig = inspect.signature(NeuralNetwork.__init__)
    for name, p in sig.parameters.items():
        if name == "self" or name in _MODEL_SKIP:
            continue
        ann = (
            p.annotation
            if isinstance(p.annotation, str)
            else getattr(p.annotation, "__name__", str(p.annotation))
        )
        default = p.default
        option = "--" + name.replace("_", "-")
        names = [option, *_MODEL_ALIASES.get(name, [])]
        dest = f"model__{name}"
        help_text = _MODEL_HELP.get(name) or docs.get(name, name.replace("_", " "))
        kw: dict[str, Any] = dict(dest=dest, default=argparse.SUPPRESS)
        per_layer = False
        seq = re.search(r"Sequence\[(\w+)\]", ann)
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
            help_text += f" (default: {'on' if default else 'off'})"
        elif seq:
            kw["type"] = _SCALAR_TYPES.get(seq.group(1), str)
            scalar_too = re.search(rf"(^|\|)\s*{seq.group(1)}\s*(\||$)", ann) is not None
            per_layer = scalar_too
            kw["nargs"] = "+" if scalar_too else "*"
            kw["metavar"] = _MODEL_METAVARS.get(name, seq.group(1).upper())
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            help_text += f" (default: {shown})"
        else:
            base = (
                type(default)
                if default is not None and default is not inspect.Parameter.empty
                else None
            )
            if base is None:
                m = re.match(r"^\s*(int|float|str)\s*\|\s*None\s*$", ann)
                base = _SCALAR_TYPES[m.group(1)] if m else None
            conv = base if base in (int, float, str) else _json_value
            if default is None or "None" in ann:
                conv = _none_or(conv)
                help_text += (
                    "; 'none' for an unseeded run"
                    if name == "random_state"
                    else "; 'none' to switch off"
                )
            kw["type"] = conv
            kw["metavar"] = {int: "N", float: "X"}.get(base, "VALUE")
            help_text += f" (default: {default})"
        if name in choices:
            kw["choices"] = choices[name]
            kw["metavar"] = kw.get("metavar") if seq else "{" + ",".join(choices[name]) + "}"
        kw["help"] = help_text
        group.add_argument(*names, **kw)
        flags.append(_Flag(name, dest, per_layer))
    return flags


def _augment_params() -> list[tuple[str, Any, str]]:
    from nn.data import augment

    meanings = {k: v[-1] for k, v in getattr(augment, "_PARAMS", {}).items()}
    sig = inspect.signature(augment.Augmenter.__init__)
    return [
        (n, p.default, meanings.get(n, n.replace("_", " ")))
        for n, p in sig.parameters.items()
        if n not in ("self", "random_state")
    ]


_AUGMENT_OFF = {"shift": 0.0, "rotation": 0.0, "scale": 0.0, "elastic_alpha": 0.0}


def _add_augment_flags(parser: argparse.ArgumentParser) -> list[str]:
    group = parser.add_argument_group(
        "augmentation (random distortions of each training batch)",
        "--augment switches on the Augmenter defaults (shift 2, rotation 10, scale 0.1); each "
        "--augment-* flag sets one transform, the others stay as the preset has them (off if "
        "the preset has no augmentation, unless --augment is given). --no-augment switches "
        "augmentation off.",
    )
    group.add_argument(
        "--augment",
        dest="augment__on",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="augment the training batches",
    )
    names = []
    for name, default, meaning in _augment_params():
        group.add_argument(
            "--augment-" + name.replace("_", "-"),
            dest=f"augment__{name}",
            type=float,
            metavar="X",
            default=argparse.SUPPRESS,
            help=f"{meaning} (Augmenter default: {default})",
        )
        names.append(name)
    return names


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    from nn.data.datasets import SPLITS

    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        dest="data__path",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="a dataset file or folder (IDX, .npz, .npy, Kaggle .csv; see "
        "nn.data.load_dataset); default: the bundled MNIST",
    )
    group.add_argument(
        "--split",
        dest="data__split",
        choices=SPLITS,
        default=argparse.SUPPRESS,
        help="standard: official test set, 10,000 validation images from the "
        "training set; 80:10:10 or custom: everything pooled and split",
    )
    group.add_argument(
        "--val-fraction",
        dest="data__val_fraction",
        type=float,
        metavar="F",
        default=argparse.SUPPRESS,
        help="validation fraction for --split custom",
    )
    group.add_argument(
        "--test-fraction",
        dest="data__test_fraction",
        type=float,
        metavar="F",
        default=argparse.SUPPRESS,
        help="test fraction for --split custom",
    )
    group.add_argument(
        "--train-size",
        dest="data__train_size",
        type=_none_or(int),
        metavar="N",
        default=argparse.SUPPRESS,
        help="train on a stratified subset of N images ('none': all)",
    )
    group.add_argument(
        "--split-seed",
        dest="data__seed",
        type=_none_or(int),
        metavar="S",
        default=argparse.SUPPRESS,
        help="seed of the split (default 0; kept apart from --seed so runs with "
        "different model seeds are scored on the same images)",
    )


def _overrides(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _model_overrides(args: argparse.Namespace, base_augment: dict | None) -> dict[str, Any]:
    out = {}
    for flag in args._model_flags:
        if hasattr(args, flag.dest):
            value = getattr(args, flag.dest)
            if flag.per_layer and isinstance(value, list) and len(value) == 1:
                value = value[0]
            out[flag.param] = value
    aug = _overrides(args, "augment__")
    on = aug.pop("on", None)
    if on is False:
        if aug:
            raise UsageError("--no-augment cannot be combined with --augment-* settings")
        out["augment"] = None
    elif on or aug:
        base = dict(base_augment) if base_augment else ({} if on else dict(_AUGMENT_OFF))
        base.update(aug)
        out["augment"] = base
    return out


# ============================================================================ progress display
class Progress:
    """Training progress on a text stream.

    On a terminal: one line redrawn with ``\\r`` (epoch x/y, a bar over the epoch's batches, the
    epoch's running loss and accuracy, the last validation accuracy, images/s, time left) plus a
    line per finished epoch.
    Elsewhere (a log file, a pipe): only the line per epoch.
    """

    BAR = 20

    def __init__(
        self,
        stream: TextIO,
        n_train: int,
        batch_size: int,
        *,
        live: bool | None = None,
        min_interval: float = 0.1,
    ):
        self.stream = stream
        self.n_train = int(n_train)
        self.batch_size = int(batch_size)
        isatty = getattr(stream, "isatty", lambda: False)
        self.live = bool(isatty()) if live is None else live
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._drawn = 0
        self._first_epoch: int | None = None
        self._epochs_done = 0
        self._last_val: float | None = None
        self._last_elapsed = 0.0
        self._loss_sum, self._loss_n = 0.0, 0

    def __call__(self, event: Any) -> None:
        if self._first_epoch is None:
            self._first_epoch = event.epoch
        if event.kind == "batch":
            self._batch(event)
        elif event.kind == "epoch":
            self._epoch(event)

    def _eta(self, event: Any, done_in_epoch: int) -> float | None:
        run_epochs = event.epochs - self._first_epoch + 1
        total = run_epochs * self.n_train
        done = self._epochs_done * self.n_train + done_in_epoch
        if done <= 0 or event.elapsed <= 0:
            return None
        rate = done / event.elapsed  # includes validation passes
        return max(0.0, (total - done) / rate)

    def _width(self) -> int:
        return max(40, shutil.get_terminal_size((100, 20)).columns - 1)

    def _batch(self, event: Any) -> None:
        if not self.live:
            return
        if event.batch == 1:
            self._loss_sum, self._loss_n = 0.0, 0
        self._loss_sum += event.loss
        self._loss_n += 1
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and event.batch != event.n_batches:
            return
        self._last_draw = now
        done = min(event.batch * self.batch_size, self.n_train)
        filled = int(self.BAR * event.batch / max(event.n_batches, 1))
        bar = "#" * filled + "." * (self.BAR - filled)
        width = len(str(event.epochs))
        line = (
            f"epoch {event.epoch:>{width}}/{event.epochs} [{bar}] "
            f"{event.batch}/{event.n_batches}  loss {self._loss_sum / self._loss_n:.4f}  "
            f"acc {_fmt_pct(event.train_accuracy)}  val {_fmt_pct(self._last_val)}  "
            f"{event.samples_per_second:,.0f} img/s  "
            f"ETA {_fmt_duration(self._eta(event, done))}"
        )
        self._draw(line)

    def _draw(self, line: str) -> None:
        line = line[: self._width()]
        pad = max(0, self._drawn - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._drawn = len(line)

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _epoch(self, event: Any) -> None:
        self._epochs_done += 1
        self._last_val = event.val_accuracy
        seconds = event.elapsed - self._last_elapsed
        self._last_elapsed = event.elapsed
        width = len(str(event.epochs))
        parts = [
            f"epoch {event.epoch:>{width}}/{event.epochs}",
            f"loss {event.loss:.4f}",
            f"acc {_fmt_pct(event.train_accuracy)}",
        ]
        if event.val_accuracy is not None:
            parts += [
                f"val_loss {_fmt_num(event.val_loss)}",
                f"val_acc {_fmt_pct(event.val_accuracy)}",
            ]
        parts += [
            f"lr {event.learning_rate:.3g}",
            f"{seconds:.1f}s",
            f"{event.samples_per_second:,.0f} img/s",
        ]
        eta = self._eta(event, 0)
        if eta and event.epoch < event.epochs:
            parts.append(f"ETA {_fmt_duration(eta)}")
        self._clear()
        self.stream.write("  ".join(parts) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._clear()
        self.stream.flush()


class _StopOnInterrupt:
    """First Ctrl-C: ask training to stop after the current batch. Second: KeyboardInterrupt."""

    def __init__(self, stream: TextIO | None):
        self.requested = False
        self.stream = stream
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.stream is not None:
            self.stream.write("\nstopping after this batch (press Ctrl-C again to abort)\n")
            self.stream.flush()

    def __enter__(self) -> _StopOnInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


# ============================================================================ train
class _suppress_db_errors:
    """Housekeeping writes (marking dead runs interrupted) must not stop a command."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, (sqlite3.Error, OSError)):
            print(f"warning: run database: {exc}", file=sys.stderr)
            return True
        return False


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from nn.services.presets import DEFAULT_PRESET, PRESETS

    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=list(PRESETS),
        metavar="NAME",
        help=f"start from this configuration (default: {DEFAULT_PRESET}; "
        f"one of {', '.join(PRESETS)}; see 'python -m nn presets')",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--name",
        help="model name; saved as <models-dir>/NAME.npz (default: <preset>-<date>-<time>)",
    )
    out.add_argument("--out", metavar="PATH", help="save the model to this file (.npz or .pkl)")
    out.add_argument("--no-save", action="store_true", help="do not save the model")
    _add_common(out, models=True, runs_db=True, quiet=True)
    parser.set_defaults(_model_flags=_add_model_flags(parser))
    _add_augment_flags(parser)
    _add_data_flags(parser)


def _train_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the run needs, validated before any data is loaded."""
    from nn.io.model_files import SUPPORTED_FORMATS, model_path, sanitize_model_name
    from nn.services.presets import get_preset, resolve_config
    from nn.services.training import check_data_kwargs, check_model_kwargs

    preset = get_preset(args.preset)
    overrides = _model_overrides(args, preset.model.get("augment"))
    model_kwargs, data_kwargs = resolve_config(preset, overrides, _overrides(args, "data__"))
    try:
        model = check_model_kwargs(model_kwargs)
        data_kwargs = check_data_kwargs(data_kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ts = data_kwargs["train_size"]
    if ts is not None and ts < 1:
        raise UsageError(f"--train-size {ts}: use a positive number of images")
    default_name = f"{preset.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if args.no_save:
        if args.out:
            raise UsageError("--no-save and --out contradict each other")
        path = None
        name = sanitize_model_name(args.name or default_name)
    elif args.out:
        path = Path(args.out).expanduser()
        if path.suffix.lower() not in ("", *SUPPORTED_FORMATS):
            raise UsageError(f"--out {args.out}: use a .npz or .pkl file name")
        if path.suffix == "":
            path = path.with_suffix(".npz")
        if path.is_dir():
            raise UsageError(f"--out {args.out}: is a folder")
        name = sanitize_model_name(args.name) if args.name else path.stem
    else:
        path = model_path(models_dir(args.models_dir), args.name or default_name)
        name = path.stem
    return {
        "preset": preset,
        "model": model,
        "model_kwargs": model.get_params(),
        "data_kwargs": data_kwargs,
        "path": path,
        "name": name,
    }


def _cmd_train(args: argparse.Namespace) -> int:
    from nn.services.runs import RunRecorder, RunStore
    from nn.services.training import load_data, make_split, run_training

    out = _Out(args)
    plan = _train_plan(args)
    model_kwargs, data_kwargs = plan["model_kwargs"], plan["data_kwargs"]
    source = data_kwargs["path"] or "the bundled MNIST"
    out(f"loading {source} ...")
    data = load_data(data_kwargs)
    if (
        data_kwargs["split"] == "standard"
        and not hasattr(data, "x_test")
        and not hasattr(args, "data__split")
    ):
        data_kwargs["split"] = "80:10:10"  # "standard" needs separate train and test parts
        out(f"{source} has no separate test part: using the 80:10:10 split")
    split = make_split(data_kwargs, data)
    store = RunStore(args.runs_db) if args.runs_db else RunStore()
    with _suppress_db_errors():
        store.mark_interrupted()
    n_train = int(split.x_train.shape[0])
    if model_kwargs["batch_size"] > n_train:
        raise UsageError(
            f"--batch-size {model_kwargs['batch_size']} is larger than the "
            f"{n_train} training images"
        )
    layers = "-".join(
        str(s)
        for s in [
            split.x_train.shape[1],
            *model_kwargs["hidden_layers"],
            len(set(split.y_train.tolist())),
        ]
    )
    out(
        f"preset {plan['preset'].name}: {layers}, {model_kwargs['optimizer']} "
        f"lr {model_kwargs['learning_rate']:g}, {model_kwargs['epochs']} epochs, batch "
        f"{model_kwargs['batch_size']}; {n_train:,} training, {split.x_val.shape[0]:,} "
        f"validation, {split.x_test.shape[0]:,} test images ({data_kwargs['split']} split)"
    )

    config = {"preset": plan["preset"].name, "model": model_kwargs, "data": data_kwargs}
    seed = model_kwargs.get("random_state")
    run_id = store.start_run(config, name=plan["name"], source="cli", seed=seed)
    recorder = RunRecorder(store, run_id)
    progress = None if out.quiet else Progress(sys.stderr, n_train, model_kwargs["batch_size"])
    status, message, model_path, result, replaced = "failed", None, None, None, False
    try:
        with _StopOnInterrupt(None if out.quiet else sys.stderr) as stop:

            def callback(event):
                if progress is not None:
                    progress(event)
                if event.kind == "epoch":
                    recorder.callback(event)
                return stop.requested

            try:
                result = run_training(model_kwargs, split=split, callback=callback)
            finally:
                if progress is not None:
                    progress.close()
        model = result.model
        if stop.requested:
            status, message = "stopped", f"stopped with Ctrl-C; {model.stop_message_}"
        elif model.stop_reason_ == "diverged":
            status, message = "diverged", model.stop_message_
        else:
            status, message = "finished", model.stop_message_ or None
            if plan["path"] is not None:
                replaced = Path(plan["path"]).exists()
                notes = (
                    f"python -m nn train: preset {plan['preset'].name}, "
                    f"{data_kwargs['split']} split (seed {data_kwargs['seed']}), "
                    f"{n_train} training images"
                )
                model_path = model.save(
                    plan["path"], name=plan["name"], metrics=result.metrics(), notes=notes
                )
    except KeyboardInterrupt:
        status, message = "stopped", "aborted with Ctrl-C"
        raise
    except BaseException as exc:
        status, message = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        metrics = result.metrics() if result is not None else {}
        if result is not None:
            metrics.update(
                n_parameters=result.model.n_parameters_, stop_reason=result.model.stop_reason_
            )
        try:
            store.finish_run(
                run_id, status, metrics=metrics, model_path=model_path, message=message
            )
        except (sqlite3.Error, OSError) as db_error:
            print(f"warning: could not record run {run_id}: {db_error}", file=sys.stderr)

    model = result.model
    summary = {
        "status": status,
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.val_accuracy,
        "train_accuracy": (model.history_["train_accuracy"] or [None])[-1],
        "train_seconds": round(result.train_seconds, 3),
        "epochs": int(model.n_iter_),
        "parameters": int(model.n_parameters_),
        "layers": model.layer_sizes_,
        "model_path": str(model_path) if model_path is not None else None,
        "name": plan["name"],
        "preset": plan["preset"].name,
        "seed": seed,
        "split": data_kwargs["split"],
        "train_size": n_train,
        "stop_reason": model.stop_reason_,
        "stop_message": model.stop_message_,
        "run_id": run_id,
        "runs_db": str(store.path),
    }
    if status == "diverged":
        print(f"error: {model.stop_message_}", file=sys.stderr)
    elif status == "stopped":
        print(
            f"stopped after {model.n_iter_} epoch(s); the model was not saved "
            f"(run #{run_id} recorded as stopped)",
            file=sys.stderr,
        )
    if status == "finished":
        speed = n_train * model.n_iter_ / max(result.train_seconds, 1e-9)
        out(
            f"test accuracy {_fmt_pct(result.test_accuracy)}  validation "
            f"{_fmt_pct(result.val_accuracy)}  ({model.n_iter_} epochs in "
            f"{_fmt_duration(result.train_seconds)}, {speed:,.0f} img/s, "
            f"{model.n_parameters_:,} parameters)"
        )
        if model.stop_reason_ == "early_stopping":
            out(model.stop_message_)
        out(
            f"saved {model_path}{' (replaced the previous file)' if replaced else ''}"
            if model_path
            else "not saved (--no-save)"
        )
        out(f"run #{run_id} recorded in {store.path}")
    if args.json:
        _print_json(summary)
    return {"finished": EXIT_OK, "diverged": EXIT_DIVERGED}.get(status, EXIT_INTERRUPTED)


# ============================================================================ evaluate
def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from nn.data.datasets import SPLITS

    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="evaluate on this dataset (its test part if it has one, else all "
        "of it); default: the official MNIST test set",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        help="evaluate on the test part of this split instead (use the split "
        "the model was trained with: 80:10:10 pools the official test set "
        "into training)",
    )
    parser.add_argument(
        "--split-seed", type=int, default=0, metavar="S", help="seed of --split (default 0)"
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F")
    parser.add_argument("--test-fraction", type=float, default=0.1, metavar="F")
    _add_common(parser, models=True)


def _evaluation_set(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from nn.data.datasets import MNIST, load_dataset, load_mnist, split_dataset

    data = load_dataset(args.data) if args.data else load_mnist()
    source = args.data or "MNIST"
    if args.split:
        split = split_dataset(
            data,
            scheme=args.split,
            seed=args.split_seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
        )
        return split.x_test, split.y_test, f"{source} test part of the {args.split} split"
    if isinstance(data, MNIST):
        return data.x_test, data.y_test, f"{source} test set"
    if data.y is None:
        raise UsageError(f"{args.data}: has no labels, so accuracy cannot be measured")
    return data.x, data.y, source


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from nn.core.metrics import classification_report, confusion_matrix
    from nn.io.model_files import load_model

    out = _Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    x, y, described = _evaluation_set(args)
    if x.shape[0] == 0:
        raise UsageError("the evaluation set is empty")
    if x.shape[1] != model.n_features_in_:
        raise UsageError(
            f"the model takes {model.n_features_in_} inputs, the data has {x.shape[1]}"
        )
    start = time.perf_counter()
    pred = model.predict(x)
    seconds = time.perf_counter() - start
    n_classes = int(max(len(model.classes_), int(np.max(y)) + 1, int(np.max(pred)) + 1))
    report = classification_report(y, pred, n_classes)
    cm = confusion_matrix(y, pred, n_classes)
    name = (getattr(model, "metadata_", None) or {}).get("name") or path.stem
    out(f"model {name} ({path}) on {described}: {x.shape[0]:,} images")
    out(
        f"accuracy {_fmt_pct(report['accuracy'])}  ({int(np.trace(cm)):,} of {x.shape[0]:,} "
        f"correct, {x.shape[0] - int(np.trace(cm)):,} errors; {seconds:.2f} s)"
    )
    out()
    rows = [
        [c, f"{p:.4f}", f"{r:.4f}", f"{f:.4f}", s]
        for c, p, r, f, s in zip(
            report["classes"],
            report["precision"],
            report["recall"],
            report["f1"],
            report["support"],
        )
    ]
    for label in ("macro", "weighted"):
        avg = report[label]
        rows.append(
            [
                label,
                f"{avg['precision']:.4f}",
                f"{avg['recall']:.4f}",
                f"{avg['f1']:.4f}",
                report["n"],
            ]
        )
    out(_table(["class", "precision", "recall", "f1", "support"], rows, "rrrrr"))
    out()
    out("confusion matrix (rows: true digit, columns: predicted digit)")
    out(
        _table(
            ["true\\pred", *range(n_classes)],
            [[i, *row] for i, row in enumerate(cm.tolist())],
            "r" * (n_classes + 1),
        )
    )
    if args.json:
        _print_json(
            {
                "model": name,
                "path": str(path),
                "data": described,
                "n": int(x.shape[0]),
                "accuracy": report["accuracy"],
                "per_class": [
                    {"class": c, "precision": p, "recall": r, "f1": f, "support": s}
                    for c, p, r, f, s in zip(
                        report["classes"],
                        report["precision"],
                        report["recall"],
                        report["f1"],
                        report["support"],
                    )
                ],
                "macro": report["macro"],
                "weighted": report["weighted"],
                "confusion_matrix": cm.tolist(),
            }
        )
    return EXIT_OK


# ============================================================================ predict
def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "images",
        metavar="IMAGE",
        nargs="+",
        help="PNG/JPEG files, one digit each (dark on light or light on dark)",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=3,
        metavar="K",
        help="how many of the most likely digits to show (default 3)",
    )
    _add_common(parser, models=True)


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from nn.data.preprocess import load_image_file
    from nn.io.model_files import load_model

    if args.top < 1:
        raise UsageError(f"--top {args.top}: use 1 or more")
    out = _Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    if model.n_features_in_ != 784:
        raise UsageError(f"{path}: the model takes {model.n_features_in_} inputs, not 28x28 images")
    results, failed = [], 0
    for image in args.images:
        row: dict[str, Any] = {
            "file": image,
            "blank": False,
            "digit": None,
            "confidence": None,
            "top": [],
            "error": None,
        }
        try:
            drawing = load_image_file(image)
        except (ValueError, OSError) as exc:
            row["error"] = str(exc)
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            results.append(row)
            continue
        if drawing.blank:
            row["blank"] = True
            row["message"] = drawing.message or "nothing drawn"
        else:
            proba = model.predict_proba(drawing.x[None, :])[0]
            order = np.argsort(-proba, kind="stable")[: args.top]
            row["top"] = [
                {"digit": int(model.classes_[i]), "probability": float(proba[i])} for i in order
            ]
            row["digit"] = row["top"][0]["digit"]
            row["confidence"] = row["top"][0]["probability"]
        results.append(row)
    table = []
    for row in results:
        if row["error"]:
            table.append([row["file"], "-", "-", "error (see above)"])
        elif row["blank"]:
            table.append([row["file"], "-", "-", row["message"]])
        else:
            top = ", ".join(f"{t['digit']} {_fmt_pct(t['probability'], 1)}" for t in row["top"])
            table.append([row["file"], row["digit"], _fmt_pct(row["confidence"], 1), top])
    out(_table(["file", "digit", "confidence", f"top-{args.top}"], table, "lrrl"))
    if args.json:
        name = (getattr(model, "metadata_", None) or {}).get("name") or path.stem
        _print_json({"model": name, "path": str(path), "predictions": results})
    return EXIT_USAGE if failed else EXIT_OK


# ============================================================================ info
def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--history", action="store_true", help="also show the per-epoch training history"
    )
    _add_common(parser, models=True)


def _cmd_info(args: argparse.Namespace) -> int:
    from nn.io.model_files import read_metadata

    out = _Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    meta = read_metadata(path)
    arch = meta.get("architecture") or {}
    params = meta.get("params") or {}
    history = {k: v for k, v in (meta.get("history") or {}).items() if k != "batch_loss"}
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    info = {
        "name": meta.get("name") or path.stem,
        "path": str(path),
        "format": "pkl" if path.suffix.lower() == ".pkl" else "npz",
        "size_bytes": path.stat().st_size,
        "layers": arch.get("layer_sizes"),
        "activations": arch.get("activations"),
        "parameters": meta.get("n_parameters"),
        "hyperparameters": params,
        "epochs": meta.get("n_iter", (meta.get("state_shadowed") or {}).get("n_iter")),
        "stop_reason": meta.get("stop_reason"),
        "stop_message": meta.get("stop_message"),
        "best_val_accuracy": meta.get("best_val_accuracy"),
        "metrics": metrics,
        "notes": meta.get("notes"),
        "created": meta.get("created"),
        "saved": meta.get("saved"),
        "format_version": meta.get("format_version"),
        "history": history,
    }
    layers = info["layers"] or []
    out(f"{info['name']}  ({path}, {_fmt_bytes(info['size_bytes'])})")
    out(f"  layers       {'-'.join(map(str, layers)) or '?'}")
    out(f"  activations  {', '.join(info['activations'] or []) or '?'}")
    out(
        f"  parameters   {info['parameters']:,}"
        if isinstance(info["parameters"], int)
        else "  parameters   ?"
    )
    out(f"  epochs       {info['epochs']}  (stop reason: {info['stop_reason'] or '-'})")
    if metrics:
        shown = []
        for key, value in metrics.items():
            if key.endswith("accuracy") and isinstance(value, (int, float)):
                shown.append(f"{key} {_fmt_pct(value)}")
            elif isinstance(value, float):
                shown.append(f"{key} {value:.4g}")
            else:
                shown.append(f"{key} {value}")
        out(f"  metrics      {', '.join(shown)}")
    out(f"  created      {info['created'] or '-'}")
    out(f"  saved        {info['saved'] or '-'}")
    if info["notes"]:
        out(f"  notes        {info['notes']}")
    if params:
        defaults = NeuralNetwork().get_params()
        out("  hyperparameters (* = not the default)")
        for key, value in params.items():
            mark = "*" if key in defaults and defaults[key] != value else " "
            out(f"   {mark} {key:<20} {json.dumps(_jsonable(value))}")
    if args.history and history.get("epoch"):
        keys = [
            k
            for k in (
                "epoch",
                "loss",
                "train_accuracy",
                "val_loss",
                "val_accuracy",
                "learning_rate",
                "seconds",
            )
            if k in history
        ]
        rows = []
        for i in range(len(history["epoch"])):
            row = []
            for k in keys:
                v = history[k][i] if i < len(history[k]) else None
                if k == "epoch":
                    row.append(v)
                elif k.endswith("accuracy"):
                    row.append(_fmt_pct(v))
                elif k == "learning_rate":
                    row.append(_fmt_num(v, ".3g"))
                elif k == "seconds":
                    row.append(_fmt_num(v, ".1f"))
                else:
                    row.append(_fmt_num(v))
            rows.append(row)
        out()
        out(_table(keys, rows, "r" * len(keys)))
    if args.json:
        _print_json(info)
    return EXIT_OK


# ============================================================================ presets
def _presets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one preset's full settings")
    _add_common(parser)


def _cmd_presets(args: argparse.Namespace) -> int:
    from nn.services.presets import DEFAULT_PRESET, PRESETS, get_preset

    out = _Out(args)
    chosen = [get_preset(args.name)] if args.name else list(PRESETS.values())
    if args.name:
        p = chosen[0]
        out(f"{p.name}: {p.description}")
        if p.reference:
            out(f"  reference: {p.reference}")
        for key, value in p.model.items():
            out(f"  {key:<20} {json.dumps(value)}")
        for key, value in p.data.items():
            out(f"  data.{key:<15} {json.dumps(value)}")
    else:
        rows = []
        for p in chosen:
            layers = "-".join(str(s) for s in [784, *p.model.get("hidden_layers", [128]), 10])
            rows.append(
                [
                    p.name + (" (default)" if p.name == DEFAULT_PRESET else ""),
                    layers,
                    p.model.get("epochs", 10),
                    p.description,
                ]
            )
        out(_table(["preset", "layers", "epochs", "description"], rows, "llrl"))
        refs = [p for p in chosen if p.reference]
        if refs:
            out()
            for p in refs:
                out(f"{p.name}: reference: {p.reference}")
        out()
        out("train one with: python -m nn train --preset NAME  (any flag overrides it)")
    if args.json:
        _print_json(
            [
                {
                    "name": p.name,
                    "description": p.description,
                    "model": p.model,
                    "data": p.data,
                    "reference": p.reference,
                    "default": p.name == DEFAULT_PRESET,
                }
                for p in chosen
            ]
        )
    return EXIT_OK


# ============================================================================ runs
def _runs_arguments(parser: argparse.ArgumentParser) -> None:
    from nn.services.runs import SOURCES, STATUSES

    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--source", choices=SOURCES, help="only runs started from here")
    parser.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="show the N most recent runs (default 20; 0 for all)",
    )
    _add_common(parser, runs_db=True)


def _cmd_runs(args: argparse.Namespace) -> int:
    from nn.services.runs import RunStore

    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: use 0 (all) or more")
    out = _Out(args)
    store = RunStore(args.runs_db) if args.runs_db else RunStore()
    with _suppress_db_errors():  # listing must work on a read-only database too
        store.mark_interrupted()
    runs = store.list_runs(status=args.status, source=args.source, limit=args.limit or None)
    rows = []
    for r in runs:
        started = datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M")
        rows.append(
            [
                r.id,
                started,
                r.source,
                r.status,
                r.epochs_done,
                _fmt_pct(r.metrics.get("val_accuracy")),
                _fmt_pct(r.metrics.get("test_accuracy")),
                _fmt_duration(r.duration_seconds),
                r.name or "",
            ]
        )
    if rows:
        out(
            _table(
                ["id", "started", "source", "status", "epochs", "val", "test", "duration", "name"],
                rows,
                "rlllrrrrl",
            )
        )
    else:
        out(f"no runs recorded in {store.path}")
    if args.json:
        items = []
        for r in runs:
            row = r.summary()
            row["started"] = datetime.fromtimestamp(r.started_at).isoformat(timespec="seconds")
            row["config"] = r.config
            items.append(row)
        _print_json({"runs_db": str(store.path), "runs": items})
    return EXIT_OK


# ============================================================================ registry and main
register_command(
    "train",
    "train a network and save it",
    _train_arguments,
    _cmd_train,
    "Train a network from a preset, with any hyperparameter overridden by a flag. "
    "The run is recorded in the run database; the model is saved to "
    "<models-dir>/NAME.npz (or --out). Exit codes: 0 done, 2 bad arguments, "
    "3 diverged, 130 Ctrl-C.",
)
register_command(
    "evaluate",
    "accuracy, per-class precision/recall and confusion matrix",
    _evaluate_arguments,
    _cmd_evaluate,
)
register_command(
    "predict", "classify images of handwritten digits", _predict_arguments, _cmd_predict
)
register_command("info", "describe a saved model", _info_arguments, _cmd_info)
register_command(
    "presets", "list the named training configurations", _presets_arguments, _cmd_presets
)
register_command("runs", "list the recorded training runs", _runs_arguments, _cmd_runs)


def _register_tune() -> None:
    """``tune`` lives in nn/search_cli.py (hyperparameter search); registered when present."""
    try:
        from nn.cli.tune import add_tune_arguments, run_tune
    except ImportError:  # pragma: no cover - a checkout without the search module
        return
    register_command(
        "tune",
        "search hyperparameters (grid/random + successive halving)",
        add_tune_arguments,
        run_tune,
    )


_register_tune()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A from-scratch NumPy neural network for MNIST.",
        epilog="Exit codes: 0 success, 1 internal error, 2 bad arguments or input, "
        "3 training diverged, 130 interrupted. 'python -m nn COMMAND --help' for more.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description)
        cmd.add_arguments(p)
        p.set_defaults(_handler=cmd.handler, _parser=p)
    return parser


_INPUT_ERRORS = (ValueError, OSError, sqlite3.Error)  # DataError, ModelFileError are ValueErrors


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises SystemExit)."""
    from nn.services.runs import RunStoreError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._handler(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except (*_INPUT_ERRORS, RunStoreError) as exc:
        if isinstance(exc, UsageError):
            args._parser.print_usage(sys.stderr)
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        print(f"{args._parser.prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
