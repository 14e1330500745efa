"""``python -m nn explain``: the forward and backward arithmetic of one unit on one example."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from nn.cli.common import EXIT_OK, Out, UsageError, add_common, print_json, resolve_model_path
from nn.io.model_files import load_model
from nn.services.maths import DEFAULT_LR, explain, load_example

HELP = "the arithmetic of one unit on one example: forward, backward, gradient check, one step"
DESCRIPTION = (
    "For layer L (its index as 'python -m nn info MODEL' prints it) and unit U of a saved model, "
    "on one example (a test image or an image file): the values the unit reads and its weights, "
    "its bias, z = sum(w*x) + b, the activation a that follows (the softmax probability for the "
    "output layer), the loss -log p[label], dL/dz, dL/dw and dL/db by backpropagation, float64 "
    "central differences beside them for the largest gradients, and the loss after one SGD step "
    "on this example. A convolution's unit is a filter at --position R,C of its output (default: "
    "where it is largest); dL/dkernel sums over every position. Units exist in dense, conv2d, "
    "batchnorm and pooling layers."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--image",
        required=True,
        metavar="test:N|FILE",
        help="test:N for the N-th MNIST test image, or a PNG/JPEG of one digit",
    )
    parser.add_argument(
        "--label",
        type=int,
        metavar="D",
        help="the true digit (default: the test image's label; for a file, the predicted digit)",
    )
    parser.add_argument("--layer", type=int, required=True, metavar="L", help="layer index")
    parser.add_argument("--unit", type=int, required=True, metavar="U", help="unit or filter")
    parser.add_argument(
        "--position",
        type=_position,
        metavar="R,C",
        help="row,column on a conv/pool/batchnorm feature map (default: the largest value)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        metavar="LR",
        help=f"learning rate of the one SGD step (default {DEFAULT_LR})",
    )
    add_common(parser, models=True)


def _position(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(re.fullmatch(r"[0-9]{1,9}", p.strip()) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give the row and column as R,C, e.g. 3,7")
    return int(parts[0]), int(parts[1])


def _summary(result: dict[str, Any]) -> list[str]:
    checked = result["numeric_grad"]
    error = result["max_rel_error"]
    return [
        f"layer {result['layer']} ({result['kind']}) unit {result['unit']}"
        + (" (output)" if result["is_output"] else ""),
        f"  z = sum(w*x) + b = {result['z']:.6g} over {len(result['inputs'])} inputs, "
        f"bias {result['bias']:.6g}; a = {result['a']:.6g}",
        f"  label {result['label']}, loss {result['loss']:.6g}, dL/dz {result['delta']:.6g}",
        f"  gradient check: {len(checked)} values, max relative error "
        + ("-" if error is None else f"{error:.2e}"),
        f"  loss after one SGD step: {result['loss_after_step']:.6g}",
    ]


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.lr) and 0 < args.lr <= 10):
        raise UsageError(f"--lr {args.lr}: use a number in (0, 10]")
    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    example = load_example(args.image)
    result = explain(
        model, example, args.layer, args.unit, args.position, args.lr, label=args.label
    )
    for line in _summary(result):
        out(line)
    if args.json:
        print_json(result)
    return EXIT_OK
