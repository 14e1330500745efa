"""``python -m nn info``: what a saved model is: layers, parameters, hyperparameters, metrics,
dates."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nn.cli.common import (
    EXIT_OK,
    Out,
    add_common,
    fmt_bytes,
    fmt_num,
    fmt_pct,
    jsonable,
    print_json,
    resolve_model_path,
    text_table,
    widths_describe,
)
from nn.core.confidence import threshold_value
from nn.core.config import describe_stack
from nn.core.events import EPOCH_KEYS
from nn.core.layer_spec import compact, token
from nn.core.params import PARAMS, defaults
from nn.io.model_files import read_metadata

HELP = "describe a saved model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file or saved model name")
    parser.add_argument(
        "--history", action="store_true", help="also show the per-epoch training history"
    )
    add_common(parser, models=True)


def _metrics_line(metrics: dict[str, Any]) -> str:
    shown = []
    for key, value in metrics.items():
        if key.endswith("accuracy") and isinstance(value, (int, float)):
            shown.append(f"{key} {fmt_pct(value)}")
        elif isinstance(value, float):
            shown.append(f"{key} {value:.4g}")
        else:
            shown.append(f"{key} {value}")
    return ", ".join(shown)


def _history_cell(key: str, value: Any) -> Any:
    if key == "epoch":
        return value
    if key.endswith("accuracy"):
        return fmt_pct(value)
    if key == "learning_rate":
        return fmt_num(value, ".3g")
    if key == "seconds":
        return fmt_num(value, ".1f")
    return fmt_num(value)


def _history_table(history: dict[str, list]) -> str:
    keys = [k for k in EPOCH_KEYS if k in history]
    rows = [
        [_history_cell(k, history[k][i] if i < len(history[k]) else None) for k in keys]
        for i in range(len(history["epoch"]))
    ]
    return text_table(keys, rows, "r" * len(keys))


def _stack_rows(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Every layer of the saved network with its output shape and parameter count, rebuilt
    from the hyperparameters and input shape in the metadata (nothing allocated); empty when the
    metadata does not describe a network this version builds."""
    params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    known = set(PARAMS)
    shape = meta.get("input_shape") or meta.get("n_features_in")
    classes = meta.get("classes")
    if shape is None or not isinstance(classes, list):
        return []
    try:
        return describe_stack({k: v for k, v in params.items() if k in known}, shape, len(classes))
    except (TypeError, ValueError):
        return []


def _stack_table(rows: list[dict[str, Any]]) -> str:
    cells = [
        [
            r["label"],
            token(r["spec"]),
            "x".join(map(str, r["output_shape"])),
            f"{r['parameters']:,}",
        ]
        for r in rows
    ]
    return text_table(["#", "layer", "output", "parameters"], cells, "rllr")


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    path = resolve_model_path(args.model, args.models_dir)
    meta = read_metadata(path, check_arrays=True)
    arch = meta.get("architecture") or {}
    params = meta.get("params") or {}
    history = {k: v for k, v in (meta.get("history") or {}).items() if k != "batch_loss"}
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    info = {
        "name": meta.get("name") or path.stem,
        "path": str(path),
        "format": "pkl" if path.suffix.lower() == ".pkl" else "npz",
        "size_bytes": path.stat().st_size,
        "layers": arch.get("layer_sizes"),
        "activations": arch.get("activations"),
        "parameters": meta.get("n_parameters"),
        "hyperparameters": params,
        "epochs": meta.get("n_iter", (meta.get("state_shadowed") or {}).get("n_iter")),
        "stop_reason": meta.get("stop_reason"),
        "stop_message": meta.get("stop_message"),
        "best_val_accuracy": meta.get("best_val_accuracy"),
        "metrics": metrics,
        "notes": meta.get("notes"),
        "dataset": meta.get("dataset"),
        "confidence_threshold": threshold_value(meta),
        "created": meta.get("created"),
        "saved": meta.get("saved"),
        "format_version": meta.get("format_version"),
        "history": history,
        "stack": _stack_rows(meta),
    }
    specs = [r["spec"] for r in info["stack"]]
    if not widths_describe(specs):  # convolutions, pooling or batch norm: the stack says it
        info["layers"] = None
    layers = "-".join(map(str, info["layers"] or [])) or (compact(specs) if specs else "?")
    out(f"{info['name']}  ({path}, {fmt_bytes(info['size_bytes'])})")
    out(f"  layers       {layers}")
    out(f"  activations  {', '.join(info['activations'] or []) or '?'}")
    if info["stack"]:
        if info["layers"]:  # for a CNN the line above holds the compact form already
            out(f"  stack        {compact(specs)}")
        for line in _stack_table(info["stack"]).splitlines():
            out(f"    {line}")
    out(
        f"  parameters   {info['parameters']:,}"
        if isinstance(info["parameters"], int)
        else "  parameters   ?"
    )
    out(f"  epochs       {info['epochs']}  (stop reason: {info['stop_reason'] or '-'})")
    if metrics:
        out(f"  metrics      {_metrics_line(metrics)}")
    out(f"  created      {info['created'] or '-'}")
    out(f"  saved        {info['saved'] or '-'}")
    if info["confidence_threshold"] is not None:
        out(f"  not sure     below {fmt_pct(info['confidence_threshold'], 0)} confidence")
    record = info["dataset"] or {"name": "mnist", "image_shape": [28, 28, 1], "class_names": []}
    shape = "x".join(str(d) for d in record["image_shape"])
    classes = len(record["class_names"]) or 10
    out(f"  data set     {record['name']} ({shape}, {classes} classes)")
    if info["notes"]:
        out(f"  notes        {info['notes']}")
    if params:
        default = defaults()
        out("  hyperparameters (* = not the default)")
        for key, value in params.items():
            mark = "*" if key in default and default[key] != value else " "
            out(f"   {mark} {key:<20} {json.dumps(jsonable(value))}")
    if args.history and history.get("epoch"):
        out()
        out(_history_table(history))
    if args.json:
        print_json(info)
    return EXIT_OK
