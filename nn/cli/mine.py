"""``python -m nn mine list|export FILE|import FILE``: the user's kept drawings."""

from __future__ import annotations

import argparse
from pathlib import Path

from nn.cli.common import EXIT_OK, Out, UsageError, print_json, text_table
from nn.services.mine import MineStore

HELP = "the digits you drew and kept (list, export to .npz, import)"
DESCRIPTION = (
    "The drawings kept on the dashboard's Draw page, in the drawings database "
    "($NN_MINE_DB, or mine.sqlite beside the run database). 'export' writes an .npz "
    "(x uint8 (n, 784), y) that nn.data.load_dataset reads; 'import' adds a labelled data file, "
    "validated, all of it or nothing."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the drawings per digit, and the newest ones")
    listing.add_argument("--label", type=int, choices=range(10), help="only this digit")
    listing.add_argument(
        "--limit", type=int, default=20, metavar="N", help="rows to show (default 20; 0 for all)"
    )
    export = actions.add_parser("export", help="write every drawing to an .npz file")
    export.add_argument("file", metavar="FILE", help="the .npz to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    imports = actions.add_parser("import", help="add the drawings of a labelled data file")
    imports.add_argument("file", metavar="FILE", help=".npz with x and y, or a labelled CSV")
    for sub in (listing, export, imports):
        sub.add_argument(
            "--db", metavar="PATH", help="drawings database (default: $NN_MINE_DB or mine.sqlite)"
        )
        sub.add_argument(
            "--json", action="store_true", help="print one JSON object as the last line of stdout"
        )
        sub.set_defaults(_parser=sub)


def _store(args: argparse.Namespace):
    return MineStore(args.db) if args.db else MineStore()


def _list(args: argparse.Namespace, out: Out) -> int:
    if args.limit < 0:
        raise UsageError(f"--limit {args.limit}: use 0 (all) or more")
    store = _store(args)
    counts = store.counts()
    drawings = store.list(label=args.label)
    shown = drawings[::-1][: args.limit or None]
    out(f"{sum(counts.values())} drawings in {store.path}")
    out(text_table([str(d) for d in range(10)], [[counts[d] for d in range(10)]], "r" * 10))
    if shown:
        rows = [
            [
                d.id,
                d.label,
                "" if d.predicted is None else d.predicted,
                d.model_name or "",
                d.source,
                d.created_at,
            ]
            for d in shown
        ]
        out()
        out(text_table(["id", "digit", "said", "model", "source", "kept"], rows, "rrrlll"))
    if args.json:
        print_json(
            {
                "db": str(store.path),
                "counts": {str(k): v for k, v in counts.items()},
                "drawings": [
                    {
                        "id": d.id,
                        "label": d.label,
                        "predicted": d.predicted,
                        "model": d.model_name,
                        "source": d.source,
                        "created_at": d.created_at,
                    }
                    for d in shown
                ],
            }
        )
    return EXIT_OK


def _export(args: argparse.Namespace, out: Out) -> int:
    target = Path(args.file).expanduser()
    if target.suffix.lower() != ".npz":
        raise UsageError(f"{args.file}: the export is an .npz file; end the name with .npz")
    if target.exists() and not args.force:
        raise UsageError(f"{target}: exists already (use --force to replace it)")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such folder")
    store = _store(args)
    n = store.count()
    store.export_npz(target)
    out(f"wrote {n} drawings to {target}")
    if args.json:
        print_json({"db": str(store.path), "file": str(target), "drawings": n})
    return EXIT_OK


def _import(args: argparse.Namespace, out: Out) -> int:
    store = _store(args)
    ids = store.import_file(Path(args.file).expanduser())
    out(f"imported {len(ids)} drawings from {args.file} into {store.path}")
    if args.json:
        print_json({"db": str(store.path), "file": args.file, "imported": len(ids)})
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    return {"list": _list, "export": _export, "import": _import}[args.action](args, out)
