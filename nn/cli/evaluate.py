"""``python -m nn evaluate``: accuracy, per-class precision/recall and the confusion matrix of a
saved model."""

from __future__ import annotations

import argparse
import time
from typing import Any

from nn.cli.common import (
    EXIT_OK,
    Out,
    UsageError,
    add_common,
    fmt_pct,
    print_json,
    resolve_model_path,
    text_table,
)
from nn.core.metrics import classification_report, confusion_matrix
from nn.data.arrays import MNIST
from nn.data.registry import check_model_fits
from nn.data.splits import SPLITS, split_dataset
from nn.io.model_files import load_model
from nn.services.training import data_set_info, load_data, resolve_data_source

HELP = "accuracy, per-class precision/recall and confusion matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--data",
        metavar="PATH|NAME",
        help="evaluate on this data file or folder, or this data set (python -m nn data "
        "list): its test part if it has one, else all of it; default: the official MNIST "
        "test set",
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
    add_common(parser, models=True)


def evaluation_set(args: argparse.Namespace, model: Any, label: str) -> tuple[Any, Any, str]:
    """The images, labels and their description; the model must fit the data set."""
    cfg = resolve_data_source({"path": args.data})
    info = data_set_info(cfg)
    check_model_fits(model, info, f"model {label}")
    data = load_data(cfg)
    source = info.name if cfg["set"] else (args.data or "MNIST")
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


def _per_class(report: dict[str, Any]) -> list[dict[str, Any]]:
    columns = ("classes", "precision", "recall", "f1", "support")
    return [
        {"class": c, "precision": p, "recall": r, "f1": f, "support": n}
        for c, p, r, f, n in zip(*(report[k] for k in columns), strict=True)
    ]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    model = load_model(path)
    x, y, described = evaluation_set(args, model, path.stem)
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
        f"accuracy {fmt_pct(report['accuracy'])}  ({int(np.trace(cm)):,} of {x.shape[0]:,} "
        f"correct, {x.shape[0] - int(np.trace(cm)):,} errors; {seconds:.2f} s)"
    )
    out()
    per_class = _per_class(report)
    rows = [
        [
            row["class"],
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            row["support"],
        ]
        for row in per_class
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
    out(text_table(["class", "precision", "recall", "f1", "support"], rows, "rrrrr"))
    out()
    out("confusion matrix (rows: true class, columns: predicted class)")
    out(
        text_table(
            ["true\\pred", *range(n_classes)],
            [[i, *row] for i, row in enumerate(cm.tolist())],
            "r" * (n_classes + 1),
        )
    )
    if args.json:
        print_json(
            {
                "model": name,
                "path": str(path),
                "data": described,
                "n": int(x.shape[0]),
                "accuracy": report["accuracy"],
                "per_class": per_class,
                "macro": report["macro"],
                "weighted": report["weighted"],
                "confusion_matrix": cm.tolist(),
            }
        )
    return EXIT_OK
