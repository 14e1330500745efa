"""``python -m nn export``: a saved model as an ONNX file, a single offline HTML page or a NumPy
program."""

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
from nn.io.export import EXPORT_FORMATS, FORMAT_SUFFIXES, export_model
from nn.io.model_files import load_model, read_metadata
from nn.io.numpy_export import module_name
from nn.io.plan import MissingExportExtraError

HELP = "export a saved model as ONNX, an offline HTML digit reader or a NumPy program"
DESCRIPTION = (
    "Write a saved model as an ONNX file (input 'pixels' float32 (n, 784) in [0, 1], output "
    "'probabilities' (n, 10); needs the export extra: pip install -r requirements-export.txt) "
    "or as one self-contained HTML page that reads digits drawn on it, offline, or as a readable "
    "Python program that needs only NumPy (-o reader.py writes reader.py and its weights "
    "reader.npz; 'import reader; reader.predict_proba(x)', or 'python reader.py digit.png')."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, help="onnx, html or numpy (required)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write, a file name ending in the format's extension (default: the "
        "model's name with .onnx, .html or .py, here)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the file if it exists already"
    )
    add_common(parser, models=True)


def _target(args: argparse.Namespace, model_path: Path) -> Path:
    """The file to write: a new (or, with --overwrite, an existing regular) file whose extension
    is the format's, in an existing folder; a device, a pipe, a folder or a model file is
    never replaced."""
    suffixes = FORMAT_SUFFIXES.get(args.format, (f".{args.format}",))
    if args.output is None:
        stem = module_name(model_path.stem) if args.format == "numpy" else model_path.stem
        target, given = Path.cwd() / f"{stem}{suffixes[0]}", "the default file"
    else:
        target, given = Path(args.output).expanduser(), f"-o {args.output}"
        if target.suffix.lower() not in suffixes:
            raise UsageError(
                f"{given}: a {args.format} export is written to a file ending in "
                f"{' or '.join(suffixes)}"
            )
    if target.is_dir():
        raise UsageError(f"{given}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise UsageError(f"{given}: the folder {target.parent} does not exist")
    written = [target, target.with_suffix(".npz")] if args.format == "numpy" else [target]
    for each in written:
        _check_replaceable(each, given, args.overwrite)
    return target


def _check_replaceable(target: Path, given: str, overwrite: bool) -> None:
    """A file the export may write: new, or (with --overwrite) a regular file that is not a
    saved model (the NumPy program's weights are an .npz, as a model is)."""
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_file() or target.is_symlink():
        raise UsageError(
            f"{given}: {target} is not a regular file (a device, a pipe, a socket or a "
            "link); give the name of a new file"
        )
    if not overwrite:
        raise UsageError(
            f"{given}: {target} exists already; give --overwrite to replace it, or another "
            "file name"
        )
    if target.suffix.lower() == ".npz":
        try:
            read_metadata(target)
        except (ValueError, OSError):
            return
        raise UsageError(f"{given}: {target} is a saved model; give another file name")


def run(args: argparse.Namespace) -> int:
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
    if args.format == "numpy":
        out(f"wrote its weights {written.with_suffix('.npz')} (load with allow_pickle=False)")
    if args.json:
        print_json({"path": written.resolve(), "format": args.format, "bytes": size, "model": path})
    return EXIT_OK
