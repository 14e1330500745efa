"""``python -m nn predict``: classify PNG/JPEG images of digits with a saved model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nn.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Out,
    UsageError,
    add_common,
    fmt_pct,
    print_json,
    resolve_model_path,
    text_table,
)
from nn.data.preprocess import load_image_file
from nn.io.model_files import load_model

HELP = "classify images of handwritten digits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    add_common(parser, models=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    if args.top < 1:
        raise UsageError(f"--top {args.top}: use 1 or more")
    out = Out(args)
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
            top = ", ".join(f"{t['digit']} {fmt_pct(t['probability'], 1)}" for t in row["top"])
            table.append([row["file"], row["digit"], fmt_pct(row["confidence"], 1), top])
    out(text_table(["file", "digit", "confidence", f"top-{args.top}"], table, "lrrl"))
    if args.json:
        name = (getattr(model, "metadata_", None) or {}).get("name") or path.stem
        print_json({"model": name, "path": str(path), "predictions": results})
    return EXIT_USAGE if failed else EXIT_OK
