"""``python -m nn export``: a saved model as an ONNX file or as a single offline HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nn.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Out,
    UsageError,
    add_common,
    print_json,
    resolve_model_path,
)

HELP = "export a saved model as ONNX or as an offline HTML digit reader"
DESCRIPTION = (
    "Write a saved model as an ONNX file (input 'pixels' float32 (n, 784) in [0, 1], output "
    "'probabilities' (n, 10); needs the export extra: pip install -r requirements-export.txt) "
    "or as one self-contained HTML page that reads digits drawn on it, offline."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nn.io.export import EXPORT_FORMATS

    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, help="onnx or html (required)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write (default: the model's name with .onnx or .html, here)",
    )
    add_common(parser, models=True)


def _target(args: argparse.Namespace, model_path: Path) -> Path:
    if args.output is None:
        return Path.cwd() / f"{model_path.stem}.{args.format}"
    target = Path(args.output).expanduser()
    if target.is_dir():
        raise UsageError(f"-o {args.output}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise UsageError(f"-o {args.output}: the folder {target.parent} does not exist")
    return target


def run(args: argparse.Namespace) -> int:
    from nn.io.export import MissingExportExtraError, export_model
    from nn.io.model_files import load_model

    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    target = _target(args, path)
    model = load_model(path)
    try:
        written = export_model(model, target, args.format, title=f"Digit reader: {path.stem}")
    except MissingExportExtraError as exc:
        print(f"{PROG} export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = written.stat().st_size
    out(f"wrote {written} ({args.format}, {size:,} bytes) from {path}")
    if args.json:
        print_json({"path": written.resolve(), "format": args.format, "bytes": size, "model": path})
    return EXIT_OK
