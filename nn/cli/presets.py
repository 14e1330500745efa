"""``python -m nn presets``: the named training configurations."""

from __future__ import annotations

import argparse
import json

from nn.cli.common import (
    EXIT_OK,
    Out,
    add_common,
    print_json,
    text_table,
)
from nn.core.layer_spec import compact
from nn.services.presets import DEFAULT_PRESET, PRESETS, get_preset

HELP = "list the named training configurations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one preset's full settings")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    chosen = [get_preset(args.name)] if args.name else list(PRESETS.values())
    if args.name:
        p = chosen[0]
        out(f"{p.name}: {p.description}")
        if p.reference:
            out(f"  reference: {p.reference}")
        for key, value in p.model.items():
            out(f"  {key:<20} {json.dumps(value)}")
        for key, value in p.data.items():
            out(f"  data.{key:<15} {json.dumps(value)}")
    else:
        rows = []
        for p in chosen:
            stack = p.model.get("layers")
            hidden = p.model.get("hidden_layers", [128])
            layers = f"{compact(stack)}-D10" if stack else "-".join(map(str, [784, *hidden, 10]))
            rows.append(
                [
                    p.name + (" (default)" if p.name == DEFAULT_PRESET else ""),
                    layers,
                    p.model.get("epochs", 10),
                    p.description,
                ]
            )
        out(text_table(["preset", "layers", "epochs", "description"], rows, "llrl"))
        refs = [p for p in chosen if p.reference]
        if refs:
            out()
            for p in refs:
                out(f"{p.name}: reference: {p.reference}")
        out()
        out("train one with: python -m nn train --preset NAME  (any flag overrides it)")
    if args.json:
        print_json(
            [
                {
                    "name": p.name,
                    "description": p.description,
                    "model": p.model,
                    "data": p.data,
                    "reference": p.reference,
                    "default": p.name == DEFAULT_PRESET,
                }
                for p in chosen
            ]
        )
    return EXIT_OK
