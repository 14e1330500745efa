"""``python -m nn data add|list|remove``: the data sets kept in the data folder (``$NN_DATA_DIR``
or ``data/sets/``), beside the bundled MNIST; ``--data NAME`` of train, evaluate and tune uses
them."""

from __future__ import annotations

import argparse

from nn.cli.common import (
    EXIT_OK,
    Out,
    UsageError,
    add_common,
    fmt_bytes,
    print_json,
    text_table,
)
from nn.data.registry import (
    SetExistsError,
    add_set,
    clean_leftovers,
    data_dir,
    list_sets,
    parse_class_names,
    parse_image_shape,
    remove_set,
)

HELP = "add, list and remove data sets (any image classification set)"
DESCRIPTION = (
    "Data sets beside the bundled MNIST, stored validated in the data folder ($NN_DATA_DIR or "
    "data/sets/). 'add' reads IDX pairs (raw or .gz), a labelled CSV (label, then the pixels), "
    "an .npz with x_train, y_train, x_test, y_test (or x, y), .npy pairs, or a folder holding "
    "any of these; a set without a test part gets a seeded stratified test part of 20%. Train, "
    "evaluate and tune on a set with --data NAME."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    add = sub.add_parser("add", help="validate a data set and store it", description=DESCRIPTION)
    add.add_argument(
        "path",
        metavar="PATH",
        nargs="+",
        help="a data file, a folder, or an images file and its labels file (two .npy or IDX)",
    )
    add.add_argument(
        "--name", required=True, help="the set's name (lowercase letters, digits, -_.)"
    )
    add.add_argument(
        "--classes",
        metavar="A,B,...",
        help="class names in label order, comma-separated (default: 0, 1, ..., K-1)",
    )
    add.add_argument(
        "--shape",
        metavar="HxWxC",
        help="image shape of flat rows of pixels (CSV, 2-D arrays), e.g. 32x32x3; default: a "
        "square greyscale or square colour image",
    )
    add.add_argument("--overwrite", action="store_true", help="replace a set of that name")
    add_common(add)
    listing = sub.add_parser("list", help="the data sets")
    add_common(listing)
    remove = sub.add_parser("remove", help="delete an added data set")
    remove.add_argument("name", metavar="NAME")
    add_common(remove)
    for p in (add, listing, remove):
        p.set_defaults(_parser=p)
    parser.set_defaults(_data_parser=parser)


def _row(info) -> dict:
    return {
        "name": info.name,
        "image_shape": list(info.image_shape),
        "classes": list(info.class_names),
        "n_train": info.n_train,
        "n_test": info.n_test,
        "counts": info.counts,
        "source": info.source,
        "sha256": info.sha256,
        "added": info.added or None,
        "test_split": info.test_split,
        "builtin": info.builtin,
    }


def _add(args: argparse.Namespace, out: Out) -> int:
    if len(args.path) > 2:
        raise UsageError(
            f"give one data file or folder, or an images file and a labels file; "
            f"got {len(args.path)} paths"
        )
    source = args.path[0] if len(args.path) == 1 else tuple(args.path)
    _report_leftovers(out)
    try:
        info = add_set(
            source,
            args.name,
            class_names=parse_class_names(args.classes),
            image_shape=parse_image_shape(args.shape),
            overwrite=args.overwrite,
            source_label=" + ".join(args.path),
        )
    except SetExistsError as exc:
        raise UsageError(f"{exc}, or replace it with --overwrite") from None
    out(f"added {info.describe()}")
    if info.test_split:
        out(
            f"{args.path[0]} has no test part: {info.n_test:,} images "
            f"({info.test_split['fraction']:.0%}, stratified, seed {info.test_split['seed']}) "
            "were set aside as its test part"
        )
    out(f"classes: {', '.join(info.class_names)}")
    out(f"stored in {info.path}")
    if args.json:
        print_json(_row(info))
    return EXIT_OK


def _report_leftovers(out: Out) -> None:
    for path, size in clean_leftovers():
        out(f"removed {path} ({fmt_bytes(size)}), left by an add or a removal that was interrupted")


def _list(args: argparse.Namespace, out: Out) -> int:
    _report_leftovers(out)
    errors: list[str] = []
    sets = list_sets(errors=errors)
    rows = [
        [
            s.name,
            s.shape_text,
            s.n_classes,
            f"{s.n_train:,}",
            f"{s.n_test:,}",
            ", ".join(s.class_names[:4]) + (", ..." if s.n_classes > 4 else ""),
        ]
        for s in sets
    ]
    out(text_table(["name", "shape", "classes", "train", "test", "class names"], rows, "llrrrl"))
    out(f"\ndata folder: {data_dir()}")
    for message in errors:
        out(f"left out: {message}")
    if args.json:
        print_json({"sets": [_row(s) for s in sets], "errors": errors})
    return EXIT_OK


def _remove(args: argparse.Namespace, out: Out) -> int:
    path = remove_set(args.name)
    out(f"removed {path.name} ({path})")
    if args.json:
        print_json({"removed": path.name, "path": str(path)})
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    action = getattr(args, "data_command", None)
    if action is None:
        raise UsageError("choose an action: add, list or remove")
    return {"add": _add, "list": _list, "remove": _remove}[action](args, out)
