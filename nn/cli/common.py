"""What every command shares: exit codes, the usage error, the common flags, the models folder,
and the plain-text and JSON output helpers."""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nn.core.activations import ACTIVATIONS
from nn.core.plain_numbers import plain_float, plain_int
from nn.io import models_folder
from nn.io.models_folder import MODELS_DIR_ENV, models_dir
from nn.services.runs import RunStore
from nn.services.workspace import SHARED_MODELS_ENV, shared_models_dir

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "Out",
    "UsageError",
    "add_common",
    "models_dir",
    "resolve_model_path",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

PROG = "python -m nn"


class UsageError(ValueError):
    """A bad command-line value: reported with the command's usage line, exit code 2."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, how it adds its flags, and the handler returning the exit
    code."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]
    description: str = ""


# ----------------------------------------------------------------------------- common flags
def add_common(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    models: bool = False,
    runs_db: bool = False,
    quiet: bool = False,
) -> None:
    """``--json`` always; ``--quiet``, ``--models-dir`` and ``--runs-db`` on request."""
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


def resolve_model_path(spec: str, folder: str | None = None) -> Path:
    """A model file from a path or a saved model's name: in ``folder`` (default the models
    folder), else, in a command run with ``--workspace``, among the shared models."""
    try:
        return models_folder.resolve_model_path(spec, folder)
    except FileNotFoundError:
        if folder or not os.environ.get(SHARED_MODELS_ENV):
            raise
        found = models_folder.find_model(shared_models_dir(), spec)
        if found is None:
            raise
        return found


def shown_errors(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type whose ``ValueError`` message is shown as it is (argparse would say
    only "invalid float value")."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


NUMBER = shown_errors(plain_float)
"""The argparse type of a number: ASCII digits only, finite (``nn.core.plain_numbers``)."""
WHOLE_NUMBER = shown_errors(plain_int)
"""The argparse type of a whole number: ASCII digits only, at most 30 of them."""


def none_or(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that reads ``none``/``null``/``off`` as None and anything else with
    ``conv``."""

    def parse(text: str) -> Any:
        if text.strip().lower() in ("none", "null", "off"):
            return None
        return conv(text)

    parse.__name__ = conv.__name__  # argparse names the type in "invalid float value"
    return parse


def open_run_store(path: str | None):
    """The run database at ``path``, else the default one."""
    return RunStore(path) if path else RunStore()


class suppress_db_errors:
    """Housekeeping writes (marking dead runs interrupted) warn instead of stopping a command."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, (sqlite3.Error, OSError)):
            print(f"warning: run database: {exc}", file=sys.stderr)
            return True
        return False


# ----------------------------------------------------------------------------- output
def fmt_pct(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.{digits}f}%"


def fmt_num(value: Any, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


WIDTH_LAYER_KINDS = frozenset({"dense", "flatten", "dropout"})
"""Layer kinds besides the activations that a list of widths describes."""


def widths_describe(specs: Sequence[dict]) -> bool:
    """Whether a stack's widths (``[784, 256, 128, 10]``) describe it: only dense layers,
    activations, dropout and flatten -- no convolution, pooling or batch norm."""
    return all(
        spec.get("type") in WIDTH_LAYER_KINDS or spec.get("type") in ACTIVATIONS for spec in specs
    )


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A plain text table; ``align`` has one character per column, ``l`` or ``r``."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" * len(headers)
    lines = []
    for k, row in enumerate(cells):
        parts = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def jsonable(obj: Any) -> Any:
    """Strict-JSON values: NumPy scalars/arrays to Python, paths to str, NaN/inf to None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def print_json(obj: Any) -> None:
    print(json.dumps(jsonable(obj), allow_nan=False), flush=True)


class Out:
    """Human-readable output: stdout normally, stderr under ``--json``, nothing under
    ``--quiet``."""

    def __init__(self, args: argparse.Namespace):
        self.quiet = getattr(args, "quiet", False)
        self.stream = sys.stderr if getattr(args, "json", False) else sys.stdout

    def __call__(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)
