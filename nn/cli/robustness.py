"""``python -m nn robustness``: test accuracy as corruptions grow, and the accuracy/coverage
curve of a confidence threshold."""

from __future__ import annotations

import argparse

from nn.cli.common import EXIT_OK, Out, add_common, fmt_pct, print_json, resolve_model_path
from nn.data.idx import load_mnist
from nn.io.model_files import load_model
from nn.services.robustness import DEFAULT_IMAGES, robustness

HELP = "test accuracy under noise, rotation, shift, thickness, blur and contrast"
DESCRIPTION = (
    "Measure a saved model (28x28 greyscale digits) on the first N MNIST test images as each "
    "corruption grows (level 0 = the clean images), and the accuracy/coverage curve: answering "
    "only when the top probability reaches a threshold, which fraction is answered and how "
    "accurately."
)
COVERAGE_SHOWN = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--images",
        type=int,
        default=DEFAULT_IMAGES,
        metavar="N",
        help=f"the first N MNIST test images (default {DEFAULT_IMAGES:,})",
    )
    add_common(parser, models=True)


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    data = load_mnist()
    result = robustness(model, data.x_test, data.y_test, images=args.images)
    out(f"model {path.stem} on the first {result.images:,} MNIST test images")
    out(f"  clean accuracy {fmt_pct(result.test_accuracy)}")
    for name, curve in result.curves.items():
        points = "  ".join(f"{level:g}: {fmt_pct(acc, 1)}" for level, acc in curve)
        out(f"  {name:<9} {points}")
    out("  threshold  coverage  accuracy")
    for threshold, coverage, accuracy in result.coverage:
        if round(threshold, 2) in COVERAGE_SHOWN:
            out(f"  {threshold:9.2f}  {fmt_pct(coverage, 1):>8}  {fmt_pct(accuracy, 2):>8}")
    if args.json:
        print_json(result.to_json())
    return EXIT_OK
