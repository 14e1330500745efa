"""``python -m nn map``: a 2-D map of one layer's outputs for test images (PCA or UMAP)."""

from __future__ import annotations

import argparse

from nn.cli.common import EXIT_OK, Out, add_common, fmt_pct, print_json, resolve_model_path
from nn.cli.evaluate import evaluation_set
from nn.io.model_files import load_model
from nn.services.layer_map import DEFAULT_IMAGES, METHODS, UMAP_INSTALL, layer_map

HELP = "a 2-D map (PCA or UMAP) of one layer's outputs for test images"
DESCRIPTION = (
    "Run test images through a saved model up to one layer and lay that layer's outputs out in "
    "two dimensions: PCA (NumPy, instant) or UMAP (umap-learn: " + UMAP_INSTALL + "). Prints "
    "how well the map keeps the digits apart: the fraction of images whose label a vote of "
    "their 5 nearest neighbours in the map recovers. --json prints points as [x, y, label, "
    "predicted]."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--layer",
        type=int,
        metavar="L",
        help="the layer's index as 'python -m nn info MODEL' numbers it (default: the last "
        "hidden layer)",
    )
    parser.add_argument("--method", choices=METHODS, default="pca", help="default: pca")
    parser.add_argument(
        "--images",
        type=int,
        default=DEFAULT_IMAGES,
        metavar="N",
        help=f"the first N test images (default {DEFAULT_IMAGES:,})",
    )
    parser.add_argument(
        "--data",
        metavar="PATH|NAME",
        help="this data set's test part (python -m nn data list); default: the MNIST test set",
    )
    add_common(parser, models=True)


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    args.split = None  # evaluation_set's flags: the data set's own test part
    x, y, described = evaluation_set(args, model, path.stem)
    result = layer_map(model, x, y, layer=args.layer, method=args.method, images=args.images)
    out(
        f"model {path.stem}, layer {result.layer_name}, {result.method.upper()} of "
        f"{len(result.labels):,} images of {described} ({result.seconds:.2f} s)"
    )
    out(f"  5-nearest-neighbour vote in the map recovers {fmt_pct(result.agreement)} of labels")
    if result.explained:
        shares = ", ".join(fmt_pct(v, 1) for v in result.explained)
        out(f"  variance along the two axes: {shares}")
    if args.json:
        print_json(result.to_json())
    return EXIT_OK
