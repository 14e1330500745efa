"""``python -m nn tune``: hyperparameter search from the command line (see :mod:`nn.search`).

Examples::

    python -m nn tune --trials 12 --epochs-per-trial 3 --train-size 10000 \\
        --param learning_rate=loguniform:1e-4:1e-1 --param "hidden_layers=choice:[128]|[256,128]" \\
        --param batch_size=choice:64|128|256 --n-jobs 2
    python -m nn tune --space space.json --strategy grid --grid-points 3 --json

Bad settings print ``error: ...`` on stderr and return 2 (never a traceback). With ``--json``
the last line of stdout is the result (``SearchResult.to_dict()``) as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from nn.cli.common import NUMBER, WHOLE_NUMBER
from nn.core.bounded_json import JSONSyntaxError, loads, read_json_file
from nn.core.limits import (
    MAX_EPOCHS,
    MAX_GRID_POINTS,
    MAX_NAME_LENGTH,
    MAX_SEED,
    MAX_TIMEOUT,
    MAX_TRIALS,
)
from nn.core.params import PARAMS, searchable
from nn.search.engine import STRATEGIES
from nn.search.results import SearchEvent
from nn.search.space import SearchSpace, parse_dimension
from nn.services.training import (
    check_size_on_set,
    check_sizes_of_choices,
    data_set_info,
    resolve_data_source,
)
from nn.services.tuning import SearchJob, run_search_job

HELP = "search hyperparameters (grid/random + successive halving)"

__all__ = [
    "default_space",
    "add_tune_arguments",
    "parse_param",
    "parse_set",
    "build_space",
    "run_tune",
]


def default_space() -> dict[str, Any]:
    """The space searched when neither --space nor --param is given: every hyperparameter
    whose default search (``nn.core.params.Search``) is on, as the Tune page starts."""
    return {name: p.search.dimension() for name, p in PARAMS.items() if p.search and p.search.on}


def add_tune_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``tune`` options to ``parser`` (a sub-parser)."""
    space = parser.add_argument_group(f"search space (default: {', '.join(default_space())})")
    space.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a searched hyperparameter, repeatable. SPEC: loguniform:LOW:HIGH, "
        "uniform:LOW:HIGH, int:LOW:HIGH[:log], choice:A|B|... (values in "
        "JSON, e.g. choice:[128]|[256,128] or choice:adam|sgd) or JSON. NAME: one of "
        f"{', '.join(searchable())}",
    )
    space.add_argument(
        "--space",
        metavar="FILE.json",
        help="a JSON object {name: dimension} (as recorded with a search); "
        "--param entries are added to it",
    )
    space.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="fixed",
        help="a fixed NeuralNetwork setting for every trial (VALUE in JSON, "
        "e.g. --set optimizer=adam --set dropout=0.1), repeatable",
    )
    budget = parser.add_argument_group("strategy and budget")
    budget.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="random",
        help="random sampling or a grid (default: random)",
    )
    budget.add_argument(
        "--trials",
        type=WHOLE_NUMBER,
        default=None,
        help="number of trials (random: default 10; grid: all grid points)",
    )
    budget.add_argument(
        "--grid-points",
        type=WHOLE_NUMBER,
        default=3,
        help="points per range for --strategy grid (default: 3)",
    )
    budget.add_argument(
        "--epochs-per-trial",
        type=WHOLE_NUMBER,
        default=3,
        help="epochs of a trial that is never pruned (default: 3)",
    )
    budget.add_argument(
        "--no-halving",
        dest="halving",
        action="store_false",
        help="train every trial for the whole budget (no successive halving)",
    )
    budget.add_argument(
        "--eta",
        type=WHOLE_NUMBER,
        default=3,
        help="successive halving keeps the best 1/eta per rung (default: 3)",
    )
    budget.add_argument(
        "--timeout",
        type=NUMBER,
        default=None,
        help="stop launching trials after this many seconds",
    )
    budget.add_argument(
        "--n-jobs",
        type=WHOLE_NUMBER,
        default=1,
        help="trials trained at once (joblib; -1 = all cores; default: 1)",
    )
    budget.add_argument(
        "--backend", default=None, help="joblib backend: loky (default), threading, dask or ray"
    )
    budget.add_argument(
        "--seed",
        type=WHOLE_NUMBER,
        default=0,
        help="seed of the trial configurations and of the trials (default: 0)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--train-size",
        type=WHOLE_NUMBER,
        default=10_000,
        help="training images per trial, a stratified subset (0 = all; default: 10000)",
    )
    data.add_argument(
        "--val-size",
        type=WHOLE_NUMBER,
        default=0,
        help="validation images used for scoring (0 = the whole validation part; default: 0)",
    )
    data.add_argument(
        "--split",
        default="standard",
        help="split scheme: standard, 80:10:10 or custom (default: standard)",
    )
    data.add_argument(
        "--data-seed", type=WHOLE_NUMBER, default=0, help="seed of the split (default: 0)"
    )
    data.add_argument(
        "--data",
        default=None,
        metavar="PATH|NAME",
        help="a dataset for nn.data.load_dataset, or the name of a data set (python -m nn data "
        "list), instead of the bundled MNIST",
    )
    out = parser.add_argument_group("recording and output")
    out.add_argument("--name", default=None, help="name of the search in the run store")
    out.add_argument(
        "--runs-db",
        default=None,
        metavar="PATH",
        help="run database (default: $NN_RUNS_DB or ./runs.sqlite)",
    )
    out.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="do not record the search and its trials in the run store",
    )
    out.add_argument(
        "--json", action="store_true", help="print the result as JSON on the last line"
    )
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def parse_param(text: str):
    """``"NAME=SPEC"`` -> ``(name, Dimension)``; ``ValueError`` with a clear message."""
    name, sep, spec = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(
            f"--param {text!r}: write NAME=SPEC, e.g. learning_rate=loguniform:1e-4:1e-1"
        )
    return name, parse_dimension(spec, name)


def parse_set(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` (VALUE in JSON, else a string) -> ``(name, value)``."""
    name, sep, value = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--set {text!r}: write NAME=VALUE, e.g. optimizer=adam")
    try:
        return name, loads(value, f"--set {name}")
    except JSONSyntaxError:
        return name, value.strip()


def build_space(args: argparse.Namespace) -> SearchSpace:
    """The search space from ``--space`` and ``--param`` (``default_space()`` if neither)."""
    dims: dict[str, Any] = {}
    if getattr(args, "space", None):
        data = read_json_file(args.space, f"--space {args.space}")
        if isinstance(data, dict) and isinstance(data.get("space"), dict):
            data = data["space"]  # a recorded search (its "space" field)
        if not isinstance(data, dict):
            raise ValueError(f"--space {args.space}: expected a JSON object {{name: dimension}}")
        dims.update(data)
    for text in getattr(args, "param", None) or []:
        name, dim = parse_param(text)
        dims[name] = dim
    fixed = [parse_set(t)[0] for t in getattr(args, "fixed", None) or []]
    if not dims:  # a --set parameter is fixed, so the default space leaves it out
        dims = {k: v for k, v in default_space().items() if k not in fixed}
        if not dims:
            raise ValueError("--set fixes every parameter of the default space: add --param")
    both = sorted(set(fixed) & set(dims))
    if both:
        raise ValueError(
            f"--set {both[0]}: {both[0]} is searched too (--param or --space); fix it or "
            "search it, not both"
        )
    return SearchSpace(dims)


def _say(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return json.dumps(value)


def _progress(args):
    def callback(event: SearchEvent) -> None:
        if event.kind == "trial_finished" and event.trial is not None:
            t = event.trial
            acc = "-" if t["val_accuracy"] is None else f"{t['val_accuracy']:.4f}"
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
            state = t["status"] if t["status"] != "running" else f"rung {event.rung + 1} done"
            why = f"  ({t.get('message') or 'diverged'})" if t["status"] == "diverged" else ""
            _say(
                args,
                f"trial {t['index']:>3}  {state:<14} epochs {t['epochs']:>3}  "
                f"val acc {acc}  {t['seconds']:6.1f}s  {params}{why}",
            )
        elif event.kind == "rung_finished":
            _say(args, f"-- rung {event.rung + 1}/{event.n_rungs} done: {event.message}")
        return None

    return callback


def run_tune(args: argparse.Namespace) -> int:
    """Run a search with the parsed options; returns the exit code (0 ok, 1 no trial
    succeeded, 2 bad settings, 3 every trial diverged, 130 interrupted)."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _check_numbers(args: argparse.Namespace) -> None:
    """The search's numbers within bounds: a finite positive timeout, seeds up to MAX_SEED,
    epochs up to MAX_EPOCHS, a name up to MAX_NAME_LENGTH characters."""
    timeout = args.timeout
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(
            f"--timeout {timeout}: use a number of seconds above 0 and at most {MAX_TIMEOUT:,}"
        )
    for flag, seed in (("--seed", args.seed), ("--data-seed", args.data_seed)):
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"{flag} {seed}: use a whole number from 0 to {MAX_SEED}")
    if args.epochs_per_trial > MAX_EPOCHS:
        raise ValueError(f"--epochs-per-trial {args.epochs_per_trial}: use 1 to {MAX_EPOCHS:,}")
    if args.name is not None and len(args.name) > MAX_NAME_LENGTH:
        raise ValueError(f"--name: {len(args.name):,} characters; use at most {MAX_NAME_LENGTH}")


def _job(args: argparse.Namespace) -> SearchJob:
    """The search job of these flags; bad flags raise ``ValueError``."""
    space = build_space(args)
    base = dict(parse_set(t) for t in getattr(args, "fixed", None) or [])
    _check_numbers(args)
    space.check(base)  # before any data is loaded
    info = data_set_info(resolve_data_source({"path": args.data}))
    try:
        check_size_on_set(base, info)
    except ValueError as exc:
        raise ValueError(f"the fixed settings (--set): {exc}") from None
    for name, dim in space:
        check_sizes_of_choices(name, dim.values_to_check(), base, info)
    if args.trials is not None and not 1 <= args.trials <= MAX_TRIALS:
        raise ValueError(f"--trials {args.trials}: use 1 to {MAX_TRIALS:,} trials")
    cores = os.cpu_count() or 1
    if args.n_jobs == 0 or args.n_jobs > cores or args.n_jobs < -1:
        raise ValueError(
            f"--n-jobs {args.n_jobs}: this machine has {cores} core(s); use 1 to {cores}, "
            "or -1 for all"
        )
    if args.strategy == "grid":
        if not 1 <= args.grid_points <= MAX_GRID_POINTS:
            raise ValueError(f"--grid-points {args.grid_points}: use 1 to {MAX_GRID_POINTS:,}")
        size = space.grid_size(args.grid_points)
        if args.trials is None and size > MAX_TRIALS:
            raise ValueError(
                f"--grid-points {args.grid_points}: the grid has {size:,} points, more than "
                f"the {MAX_TRIALS:,} trials a search runs; use fewer grid points, or --trials N "
                "to sample N of them"
            )
    if args.epochs_per_trial < 1:
        raise ValueError(
            f"--epochs-per-trial (the budget) must be at least 1, got {args.epochs_per_trial}"
        )
    if args.train_size < 0 or args.val_size < 0:
        raise ValueError("--train-size and --val-size must be >= 0 (0 = all)")
    n_trials = (
        args.trials if args.trials is not None else (10 if args.strategy == "random" else None)
    )
    data = {
        "split": args.split,
        "seed": args.data_seed,
        "train_size": args.train_size or None,
        "path": args.data,
    }
    return SearchJob(
        base=base,
        space=space.to_dict(),
        data=data,
        val_size=args.val_size,
        strategy=args.strategy,
        trials=n_trials,
        grid_points=args.grid_points,
        epochs_per_trial=args.epochs_per_trial,
        halving=args.halving,
        eta=args.eta,
        n_jobs=args.n_jobs,
        backend=args.backend,
        seed=args.seed,
        timeout=args.timeout,
        record=args.record,
        runs_db=args.runs_db,
        name=args.name,
    )


def _run(args: argparse.Namespace) -> int:
    job = _job(args)
    space = SearchSpace.from_dict(job.space)
    where: dict[str, Any] = {}

    def prepared(stage: str, info: dict[str, Any]) -> None:
        if stage == "run_error":  # the search goes on (nn.services.recorder)
            print(f"warning: run database: {info['message']}", file=sys.stderr)
            return
        where["runs_db"] = info["runs_db"]
        _say(args, f"searching {', '.join(f'{k} ({d.describe()})' for k, d in space)}")
        _say(
            args,
            f"{job.strategy} search, {job.trials or 'all grid'} trials, "
            f"{job.epochs_per_trial} epochs per trial, halving "
            f"{'on' if job.halving else 'off'}, n_jobs {job.n_jobs}; "
            f"{info['n_train']} training / {info['n_val']} validation images "
            f"(loaded in {info['load_seconds']:.1f}s)",
        )

    result = run_search_job(job, on_event=_progress(args), listener=prepared)
    counts: dict[str, int] = {}
    for t in result.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    _say(
        args,
        f"search {result.status} in {result.seconds:.1f}s: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
    )
    if result.best_config is not None:
        _say(
            args,
            f"best: trial {result.best_trial}, val accuracy "
            f"{result.best_val_accuracy:.4f}, "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items()),
        )
        _say(args, "train it: " + json.dumps(result.best_config))
    if result.search_id is not None:
        _say(args, f"recorded as search {result.search_id} in {where['runs_db']}")
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    if result.best_config is not None:
        return 0
    ran = [t for t in result.trials if t.status not in ("cancelled", "pruned")]
    return 3 if ran and all(t.status == "diverged" for t in ran) else 1
