"""``python -m nn runs``: the recorded training runs."""

from __future__ import annotations

import argparse
from datetime import datetime

from nn.cli.common import (
    EXIT_OK,
    Out,
    UsageError,
    add_common,
    fmt_duration,
    fmt_pct,
    open_run_store,
    print_json,
    suppress_db_errors,
    text_table,
)
from nn.services.runs import SOURCES, STATUSES

HELP = "list the recorded training runs"


MAX_LISTED = 1_000_000
"""Largest --limit (the run database counts its rows in 64-bit integers)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--source", choices=SOURCES, help="only runs started from here")
    parser.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="show the N most recent runs (default 20; 0 for all)",
    )
    add_common(parser, runs_db=True)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.limit <= MAX_LISTED:
        raise UsageError(f"--limit {args.limit}: use 0 (all) to {MAX_LISTED:,}")
    out = Out(args)
    store = open_run_store(args.runs_db)
    with suppress_db_errors():  # listing must work on a read-only database too
        store.mark_interrupted()
    runs = store.list_runs(status=args.status, source=args.source, limit=args.limit or None)
    rows = []
    for r in runs:
        started = datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M")
        rows.append(
            [
                r.id,
                started,
                r.source,
                r.status,
                r.epochs_done,
                fmt_pct(r.metrics.get("val_accuracy")),
                fmt_pct(r.metrics.get("test_accuracy")),
                fmt_duration(r.duration_seconds),
                r.name or "",
            ]
        )
    if rows:
        out(
            text_table(
                ["id", "started", "source", "status", "epochs", "val", "test", "duration", "name"],
                rows,
                "rlllrrrrl",
            )
        )
    else:
        out(f"no runs recorded in {store.path}")
    if args.json:
        items = []
        for r in runs:
            row = r.summary()
            row["started"] = datetime.fromtimestamp(r.started_at).isoformat(timespec="seconds")
            row["config"] = r.config
            items.append(row)
        print_json({"runs_db": str(store.path), "runs": items})
    return EXIT_OK
