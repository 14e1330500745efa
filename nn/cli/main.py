"""Command line: ``python -m nn COMMAND ...``; one module per command in this package.

Commands
    train      train a network (a preset, with any hyperparameter overridden by a flag), record the
               run, save the model
    evaluate   accuracy, per-class precision/recall and the confusion matrix of a saved model
    predict    classify PNG/JPEG images of digits with a saved model
    info       what a saved model is: layers, parameters, hyperparameters, metrics, dates
    presets    the named configurations
    runs       the recorded training runs
    tune       hyperparameter search
    mine       the digits the user drew and kept: list, export to .npz, import
    finetune   continue training a saved model on MNIST plus the user's drawings
    export     a saved model as ONNX or as a single offline HTML page that reads drawn digits
    data       the data sets beside MNIST: add (validated, stored in $NN_DATA_DIR), list, remove
    workspaces the people's workspaces, when the dashboard has sign-in

``--workspace ID`` (before or after the command) makes a command act on that person's workspace
instead of the local one.
    explain    the arithmetic of one unit on one example: forward, backward, gradient check, a step
    map        a 2-D map (PCA or UMAP) of one layer's outputs for test images
    robustness test accuracy as corruptions grow; the accuracy/coverage curve of a threshold

Every command takes ``--json`` (one JSON object as the last line of stdout; the human text then
goes to stderr or is left out). MODEL arguments are a file path or the name of a model in the
models folder (``$NN_MODELS_DIR`` or ``saved_models/`` next to the ``nn`` package;
``--models-dir`` overrides). ``--data`` takes a data file or folder, or the name of a data set
(``python -m nn data list``).

Exit codes
    0    success
    1    an unexpected internal error (a bug: the traceback is printed)
    2    bad arguments or input: unknown flags, invalid hyperparameters, missing or corrupt model,
         data or image files (a one-line ``error: ...`` on stderr, never a traceback)
    3    training diverged (the loss became NaN or infinite); nothing is saved
    130  interrupted with Ctrl-C; a training run is recorded as ``stopped`` and not saved

A command is a module with ``add_arguments(parser)`` and ``run(args) -> exit code``, listed in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from collections.abc import Sequence

from nn.cli import (
    data,
    evaluate,
    explain,
    export,
    finetune,
    info,
    mine,
    predict,
    presets,
    robustness,
    runs,
    train,
    tune,
    workspaces,
)
from nn.cli import map as map_command
from nn.cli.common import (
    EXIT_DIVERGED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Command,
    UsageError,
    models_dir,
    resolve_model_path,
)
from nn.services.mine import MineStoreError
from nn.services.runs import RunStoreError
from nn.services.workspace import Workspace

__all__ = [
    "main",
    "build_parser",
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

COMMANDS: dict[str, Command] = {
    "train": Command(train.HELP, train.add_arguments, train.run, train.DESCRIPTION),
    "evaluate": Command(evaluate.HELP, evaluate.add_arguments, evaluate.run),
    "predict": Command(predict.HELP, predict.add_arguments, predict.run),
    "info": Command(info.HELP, info.add_arguments, info.run),
    "presets": Command(presets.HELP, presets.add_arguments, presets.run),
    "runs": Command(runs.HELP, runs.add_arguments, runs.run),
    "tune": Command(tune.HELP, tune.add_tune_arguments, tune.run_tune),
    "mine": Command(mine.HELP, mine.add_arguments, mine.run, mine.DESCRIPTION),
    "finetune": Command(finetune.HELP, finetune.add_arguments, finetune.run, finetune.DESCRIPTION),
    "export": Command(export.HELP, export.add_arguments, export.run, export.DESCRIPTION),
    "data": Command(data.HELP, data.add_arguments, data.run, data.DESCRIPTION),
    "explain": Command(explain.HELP, explain.add_arguments, explain.run, explain.DESCRIPTION),
    "map": Command(
        map_command.HELP, map_command.add_arguments, map_command.run, map_command.DESCRIPTION
    ),
    "robustness": Command(
        robustness.HELP, robustness.add_arguments, robustness.run, robustness.DESCRIPTION
    ),
    "workspaces": Command(workspaces.HELP, workspaces.add_arguments, workspaces.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A from-scratch NumPy neural network for MNIST.",
        epilog="Exit codes: 0 success, 1 internal error, 2 bad arguments or input, "
        "3 training diverged, 130 interrupted. 'python -m nn COMMAND --help' for more.",
    )
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument(
        "--workspace",
        metavar="ID",
        default=argparse.SUPPRESS,
        help="act on a signed-in person's workspace (its models, runs, drawings and data sets; "
        "the shared models stay readable) instead of the local one; 'python -m nn workspaces' "
        "lists the ids",
    )
    parser.add_argument("--workspace", metavar="ID", help=workspace._actions[0].help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name, help=cmd.help, description=cmd.description or cmd.help, parents=[workspace]
        )
        cmd.add_arguments(p)
        p.set_defaults(_handler=cmd.handler, _parser=p)
    return parser


# DataError and ModelFileError are ValueErrors
_INPUT_ERRORS = (ValueError, OSError, sqlite3.Error, RunStoreError, MineStoreError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises SystemExit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.workspace is not None:  # an empty id is refused, not read as the local one
            Workspace.of(args.workspace).activate()
        return int(args._handler(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into head
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout until exit
        return EXIT_OK
    except _INPUT_ERRORS as exc:
        if isinstance(exc, UsageError):
            args._parser.print_usage(sys.stderr)
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        print(f"{args._parser.prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
