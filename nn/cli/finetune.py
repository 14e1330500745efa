"""``python -m nn finetune MODEL --mine DB_OR_NPZ --name NEW``: fine-tune on your drawings."""

from __future__ import annotations

import argparse
import sys

from nn.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Out,
    UsageError,
    add_common,
    fmt_pct,
    models_dir,
    print_json,
    resolve_model_path,
)
from nn.cli.progress import Progress, StopOnInterrupt
from nn.io.model_files import load_model
from nn.io.models_folder import model_path, sanitize_model_name
from nn.services.control import JobControl
from nn.services.finetune import (
    AUGMENT_MODES,
    DEFAULTS,
    MNIST_TRAIN_SIZE,
    check_settings,
    check_user_set,
    run_finetune,
    split_user_set,
    user_repeats,
)
from nn.services.mine import load_drawings

HELP = "continue training a saved model on MNIST plus your own drawn digits"
DESCRIPTION = (
    "Fine-tune MODEL on the MNIST training images plus the drawings in DB_OR_NPZ (a drawings "
    "database, or an .npz with x and y), the drawings repeated to be about 8% of each epoch, "
    "augmentation on. A seeded part of the drawings is held out: the accuracy on it and on the "
    "MNIST test set is shown before and after. The result is saved as NEW and recorded as a run."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a saved model's name or file")
    parser.add_argument(
        "--mine",
        metavar="DB_OR_NPZ",
        help="drawings database (.sqlite) or labelled data file (.npz); default: $NN_MINE_DB "
        "or mine.sqlite beside the run database",
    )
    parser.add_argument("--name", required=True, metavar="NEW", help="name of the new model")
    parser.add_argument("--force", action="store_true", help="replace a model called NEW")
    parser.add_argument(
        "--epochs", type=int, default=DEFAULTS["epochs"], help="epochs (default %(default)s)"
    )
    parser.add_argument(
        "--lr-factor",
        type=float,
        default=DEFAULTS["learning_rate_factor"],
        metavar="F",
        help="learning rate as a fraction of the model's own (default %(default)s)",
    )
    parser.add_argument(
        "--user-share",
        type=float,
        default=DEFAULTS["user_share"],
        metavar="S",
        help="share of each epoch made of your drawings (default %(default)s)",
    )
    parser.add_argument(
        "--held-out",
        type=float,
        default=DEFAULTS["held_out"],
        metavar="F",
        help="fraction of your drawings held out to measure (default %(default)s)",
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENT_MODES,
        default=DEFAULTS["augment"],
        help="augment every batch, or only your drawings (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="default %(default)s")
    parser.add_argument(
        "--train-limit",
        type=int,
        metavar="N",
        default=DEFAULTS["train_limit"],
        help="use N MNIST training images, a stratified subset (default %(default)s; 60000: all)",
    )
    add_common(parser, models=True, runs_db=True, quiet=True)


def _summary(result, out: Out) -> None:
    out(
        f"held-out drawings ({result.n_user_held_out}): {fmt_pct(result.held_out_before)} -> "
        f"{fmt_pct(result.held_out_after)}"
    )
    out(
        f"MNIST test: {fmt_pct(result.mnist_before)} -> {fmt_pct(result.mnist_after)} "
        f"({-100 * result.mnist_drop:+.2f} points)"
    )
    for warning in result.warnings:
        out(f"warning: {warning}")


def _epoch_size(source, y_user, settings: dict) -> tuple[int, int]:
    """Images per epoch and the model's batch size, for the progress bar."""
    n_mnist = min(settings["train_limit"] or MNIST_TRAIN_SIZE, MNIST_TRAIN_SIZE)
    train, _ = split_user_set(y_user, settings["held_out"], settings["seed"])
    repeats = user_repeats(len(train), n_mnist, settings["user_share"])
    return n_mnist + repeats * len(train), int(load_model(source).batch_size)


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    settings = check_settings(
        {
            "epochs": args.epochs,
            "learning_rate_factor": args.lr_factor,
            "user_share": args.user_share,
            "held_out": args.held_out,
            "augment": args.augment,
            "seed": args.seed,
            "train_limit": args.train_limit,
        }
    )
    name = sanitize_model_name(args.name)
    folder = models_dir(args.models_dir)
    if model_path(folder, name).exists() and not args.force:
        raise UsageError(f"--name {name}: a model of that name exists (use --force to replace)")
    source = resolve_model_path(args.model, args.models_dir)
    x_user, y_user = load_drawings(args.mine)
    check_user_set(x_user, y_user)
    out(f"fine-tuning {source.stem} on {len(y_user)} drawings and MNIST ...")
    n_train, batch_size = _epoch_size(source, y_user, settings)
    progress = None if out.quiet else Progress(sys.stderr, n_train, batch_size)
    control = JobControl()
    with StopOnInterrupt(None if out.quiet else sys.stderr, control):
        try:
            result, saved, run_id = run_finetune(
                source,
                name,
                x_user,
                y_user,
                models_dir=folder,
                settings=settings,
                runs_path=args.runs_db,
                on_event=progress,
                control=control,
                overwrite=True,
                listener=_warn_run_error,
            )
        finally:
            if progress is not None:
                progress.close()
    _summary(result, out)
    if saved is not None:
        out(f"saved {saved}" + ("" if run_id is None else f" (run {run_id})"))
    if args.json:
        print_json(
            {
                "model": str(saved) if saved else None,
                "run_id": run_id,
                "stop_reason": result.stop_reason,
                **result.metrics(),
                "repeats": result.repeats,
                "warnings": result.warnings,
            }
        )
    if control.stop_requested:
        return EXIT_INTERRUPTED
    return EXIT_DIVERGED if result.stop_reason == "diverged" else EXIT_OK


def _warn_run_error(stage: str, info: dict) -> None:
    """A run-database problem: a warning, and the fine-tuning goes on (nn.services.recorder)."""
    if stage == "run_error":
        print(f"warning: run database: {info['message']}", file=sys.stderr)
