"""``python -m nn workspaces``: the people's workspaces on this server (when the dashboard has
sign-in), for teachers and scripts; any command acts on one with ``--workspace ID``."""

from __future__ import annotations

import argparse

from nn.cli.common import EXIT_OK, Out, add_common, print_json
from nn.services.workspace import list_workspaces, summarize, workspaces_dir

HELP = "the people's workspaces (with sign-in): who, models, runs, disk used"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    rows = [summarize(w) for w in list_workspaces()]
    if args.json:
        print_json({"folder": str(workspaces_dir()), "workspaces": rows})
        return EXIT_OK
    out = Out(args)
    if not rows:
        out(f"no workspace in {workspaces_dir()} (nobody has signed in)")
        return EXIT_OK
    out(f"{'id':26} {'name':20} {'email':28} {'models':>6} {'runs':>5} {'MiB':>8}")
    for row in rows:
        mib = (row["disk_bytes"] or 0) / 2**20
        out(
            f"{row['id']:26} {row.get('name', '')[:20]:20} {row.get('email', '')[:28]:28} "
            f"{row['models']:>6} {row['runs']:>5} {mib:>8.1f}"
        )
    return EXIT_OK
