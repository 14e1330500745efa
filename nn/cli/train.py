"""``python -m nn train``: train a network from a preset, with any hyperparameter overridden by a
flag; record the run; save the model."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nn.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Out,
    UsageError,
    add_common,
    fmt_duration,
    fmt_pct,
    models_dir,
    none_or,
    open_run_store,
    print_json,
    suppress_db_errors,
)
from nn.cli.progress import Progress, StopOnInterrupt
from nn.core.activations import ACTIVATIONS
from nn.core.initializers import INIT_CHOICES
from nn.core.network import DTYPES, MONITORS, NeuralNetwork
from nn.core.optimizers import OPTIMIZERS
from nn.core.schedules import SCHEDULES

HELP = "train a network and save it"
DESCRIPTION = (
    "Train a network from a preset, with any hyperparameter overridden by a flag. "
    "The run is recorded in the run database; the model is saved to "
    "<models-dir>/NAME.npz (or --out). Exit codes: 0 done, 2 bad arguments, "
    "3 diverged, 130 Ctrl-C."
)


# ----------------------------------------------------------------------------- hyperparameter flags
@dataclass(frozen=True)
class ModelFlag:
    """The command-line flag of one ``NeuralNetwork`` hyperparameter.

    ``type`` None makes a ``--x/--no-x`` switch. ``nargs`` ``"+"`` takes one value for every layer
    or one per layer (a single value is passed on as the scalar); ``"*"`` takes a list that may be
    empty. ``optional`` accepts ``none`` to switch the setting off.
    """

    param: str
    help: str
    type: Callable[[str], Any] | None = None
    nargs: str | None = None
    choices: Sequence[str] | None = None
    optional: bool = False
    metavar: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return f"model__{self.param}"

    @property
    def per_layer(self) -> bool:
        return self.nargs == "+"


# augment is set through the --augment-* flags; warm_start needs a loaded model, so has no flag
MODEL_FLAGS: tuple[ModelFlag, ...] = (
    ModelFlag(
        "hidden_layers",
        "widths of the hidden layers, e.g. 256 128; give none for softmax regression",
        int,
        nargs="*",
        metavar="N",
    ),
    ModelFlag(
        "activation",
        "hidden activation: one for all layers or one per layer",
        str,
        nargs="+",
        choices=list(ACTIVATIONS),
        metavar="NAME",
    ),
    ModelFlag("leaky_slope", "slope of leaky_relu for negative inputs, in [0, 1)", float),
    ModelFlag(
        "init",
        "weight initialisation; auto: He for ReLU-like layers, Xavier otherwise",
        str,
        choices=list(INIT_CHOICES),
    ),
    ModelFlag("optimizer", "update rule", str, choices=list(OPTIMIZERS)),
    ModelFlag("learning_rate", "initial learning rate (> 0)", float),
    ModelFlag("momentum", "momentum of the momentum and nesterov optimizers, in [0, 1)", float),
    ModelFlag("beta1", "Adam's first-moment decay, in [0, 1)", float),
    ModelFlag("beta2", "Adam's second-moment decay, in [0, 1)", float),
    ModelFlag("rho", "RMSprop's decay, in [0, 1)", float),
    ModelFlag("epsilon", "numerical floor of RMSprop and Adam", float),
    ModelFlag(
        "schedule", "learning-rate schedule (see nn.schedules)", str, choices=list(SCHEDULES)
    ),
    ModelFlag("lr_decay", "decay of the inverse_time schedule: lr / (1 + decay * epoch)", float),
    ModelFlag("step_size", "epochs between the step schedule's drops", int),
    ModelFlag("gamma", "factor of the step and exponential schedules, in (0, 1]", float),
    ModelFlag(
        "warmup_epochs", "linear warm-up from 0 over this many epochs (fractions allowed)", float
    ),
    ModelFlag("min_lr", "floor of the cosine schedule", float),
    ModelFlag("batch_size", "images per mini-batch", int),
    ModelFlag("epochs", "passes over the training set", int),
    ModelFlag("shuffle", "reshuffle the training set every epoch"),
    ModelFlag("l2", "L2 weight penalty (l2/2 * sum of squared weights)", float),
    ModelFlag(
        "dropout",
        "drop probability of hidden units: one for all layers or one per layer",
        float,
        nargs="+",
        metavar="P",
    ),
    ModelFlag("input_dropout", "drop probability of input pixels", float),
    ModelFlag(
        "clip_norm",
        "clip the gradient to this global L2 norm; 'none' to switch off",
        float,
        optional=True,
    ),
    ModelFlag(
        "early_stopping", "stop when the validation metric stops improving; keep the best weights"
    ),
    ModelFlag("patience", "epochs without improvement before early stopping", int),
    ModelFlag(
        "monitor", "validation metric watched by early stopping", str, choices=list(MONITORS)
    ),
    ModelFlag("min_delta", "smallest change that counts as an improvement", float),
    ModelFlag(
        "validation_fraction",
        "held-out fraction for early stopping when there is no validation set",
        float,
    ),
    ModelFlag("dtype", "float32 (fast) or float64", str, choices=list(DTYPES)),
    ModelFlag(
        "random_state",
        "seed of initialisation, shuffling, dropout and augmentation; 'none' for an unseeded run",
        int,
        optional=True,
        aliases=("--seed",),
    ),
)


def _shown_default(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default))
    return str(default)


def _flag_arguments(flag: ModelFlag, default: Any) -> dict[str, Any]:
    """argparse keywords of one flag. Defaults are suppressed so that only the flags given
    override the preset."""
    kw: dict[str, Any] = {
        "dest": flag.dest,
        "default": argparse.SUPPRESS,
        "help": f"{flag.help} (default: {_shown_default(default)})".replace("%", "%%"),
    }
    if flag.type is None:
        kw["action"] = argparse.BooleanOptionalAction
        return kw
    kw["type"] = none_or(flag.type) if flag.optional else flag.type
    if flag.nargs:
        kw["nargs"] = flag.nargs
    if flag.choices is not None:
        kw["choices"] = flag.choices
    if flag.metavar:
        kw["metavar"] = flag.metavar
    elif flag.choices is not None:
        kw["metavar"] = "{" + ",".join(flag.choices) + "}"
    else:
        kw["metavar"] = {int: "N", float: "X"}.get(flag.type, "VALUE")
    return kw


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "hyperparameters (each overrides the preset; defaults are NeuralNetwork's)"
    )
    defaults = NeuralNetwork().get_params()
    for flag in MODEL_FLAGS:
        option = "--" + flag.param.replace("_", "-")
        group.add_argument(option, *flag.aliases, **_flag_arguments(flag, defaults[flag.param]))


_AUGMENT_OFF = {"shift": 0.0, "rotation": 0.0, "scale": 0.0, "elastic_alpha": 0.0}


def _add_augment_flags(parser: argparse.ArgumentParser) -> None:
    from nn.data import augment

    group = parser.add_argument_group(
        "augmentation (random distortions of each training batch)",
        "--augment switches on the Augmenter defaults (shift 2, rotation 10, scale 0.1); each "
        "--augment-* flag sets one transform, the others stay as the preset has them (off if "
        "the preset has no augmentation, unless --augment is given). --no-augment switches "
        "augmentation off.",
    )
    group.add_argument(
        "--augment",
        dest="augment__on",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="augment the training batches",
    )
    for name, (_, _, _, default, meaning) in augment._PARAMS.items():
        group.add_argument(
            "--augment-" + name.replace("_", "-"),
            dest=f"augment__{name}",
            type=float,
            metavar="X",
            default=argparse.SUPPRESS,
            help=f"{meaning} (Augmenter default: {default})",
        )


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    from nn.data.datasets import SPLITS

    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        dest="data__path",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="a dataset file or folder (IDX, .npz, .npy, Kaggle .csv; see "
        "nn.data.load_dataset); default: the bundled MNIST",
    )
    group.add_argument(
        "--split",
        dest="data__split",
        choices=SPLITS,
        default=argparse.SUPPRESS,
        help="standard: official test set, 10,000 validation images from the "
        "training set; 80:10:10 or custom: everything pooled and split",
    )
    group.add_argument(
        "--val-fraction",
        dest="data__val_fraction",
        type=float,
        metavar="F",
        default=argparse.SUPPRESS,
        help="validation fraction for --split custom",
    )
    group.add_argument(
        "--test-fraction",
        dest="data__test_fraction",
        type=float,
        metavar="F",
        default=argparse.SUPPRESS,
        help="test fraction for --split custom",
    )
    group.add_argument(
        "--train-size",
        dest="data__train_size",
        type=none_or(int),
        metavar="N",
        default=argparse.SUPPRESS,
        help="train on a stratified subset of N images ('none': all)",
    )
    group.add_argument(
        "--split-seed",
        dest="data__seed",
        type=none_or(int),
        metavar="S",
        default=argparse.SUPPRESS,
        help="seed of the split (default 0; kept apart from --seed so runs with "
        "different model seeds are scored on the same images)",
    )


def _overrides(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _model_overrides(args: argparse.Namespace, base_augment: dict | None) -> dict[str, Any]:
    out = {}
    for flag in MODEL_FLAGS:
        if hasattr(args, flag.dest):
            value = getattr(args, flag.dest)
            if flag.per_layer and isinstance(value, list) and len(value) == 1:
                value = value[0]
            out[flag.param] = value
    aug = _overrides(args, "augment__")
    on = aug.pop("on", None)
    if on is False:
        if aug:
            raise UsageError("--no-augment cannot be combined with --augment-* settings")
        out["augment"] = None
    elif on or aug:
        base = dict(base_augment) if base_augment else ({} if on else dict(_AUGMENT_OFF))
        base.update(aug)
        out["augment"] = base
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nn.services.presets import DEFAULT_PRESET, PRESETS

    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=list(PRESETS),
        metavar="NAME",
        help=f"start from this configuration (default: {DEFAULT_PRESET}; "
        f"one of {', '.join(PRESETS)}; see 'python -m nn presets')",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--name",
        help="model name; saved as <models-dir>/NAME.npz (default: <preset>-<date>-<time>)",
    )
    out.add_argument("--out", metavar="PATH", help="save the model to this file (.npz or .pkl)")
    out.add_argument("--no-save", action="store_true", help="do not save the model")
    add_common(out, models=True, runs_db=True, quiet=True)
    _add_model_flags(parser)
    _add_augment_flags(parser)
    _add_data_flags(parser)


def train_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the run needs, validated before any data is loaded."""
    from nn.io.model_files import SUPPORTED_FORMATS, model_path, sanitize_model_name
    from nn.services.presets import get_preset, resolve_config
    from nn.services.training import check_data_kwargs, check_model_kwargs

    preset = get_preset(args.preset)
    overrides = _model_overrides(args, preset.model.get("augment"))
    model_kwargs, data_kwargs = resolve_config(preset, overrides, _overrides(args, "data__"))
    try:
        model = check_model_kwargs(model_kwargs)
        data_kwargs = check_data_kwargs(data_kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ts = data_kwargs["train_size"]
    if ts is not None and ts < 1:
        raise UsageError(f"--train-size {ts}: use a positive number of images")
    default_name = f"{preset.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if args.no_save:
        if args.out:
            raise UsageError("--no-save and --out contradict each other")
        path = None
        name = sanitize_model_name(args.name or default_name)
    elif args.out:
        path = Path(args.out).expanduser()
        if path.suffix.lower() not in ("", *SUPPORTED_FORMATS):
            raise UsageError(f"--out {args.out}: use a .npz or .pkl file name")
        if path.suffix == "":
            path = path.with_suffix(".npz")
        if path.is_dir():
            raise UsageError(f"--out {args.out}: is a folder")
        name = sanitize_model_name(args.name) if args.name else path.stem
    else:
        path = model_path(models_dir(args.models_dir), args.name or default_name)
        name = path.stem
    return {
        "preset": preset,
        "model": model,
        "model_kwargs": model.get_params(),
        "data_kwargs": data_kwargs,
        "path": path,
        "name": name,
    }


def run(args: argparse.Namespace) -> int:
    from nn.services.runs import RunRecorder
    from nn.services.training import load_data, make_split, run_training

    out = Out(args)
    plan = train_plan(args)
    model_kwargs, data_kwargs = plan["model_kwargs"], plan["data_kwargs"]
    source = data_kwargs["path"] or "the bundled MNIST"
    out(f"loading {source} ...")
    data = load_data(data_kwargs)
    if (
        data_kwargs["split"] == "standard"
        and not hasattr(data, "x_test")
        and not hasattr(args, "data__split")
    ):
        data_kwargs["split"] = "80:10:10"  # "standard" needs separate train and test parts
        out(f"{source} has no separate test part: using the 80:10:10 split")
    split = make_split(data_kwargs, data)
    store = open_run_store(args.runs_db)
    with suppress_db_errors():
        store.mark_interrupted()
    n_train = int(split.x_train.shape[0])
    if model_kwargs["batch_size"] > n_train:
        raise UsageError(
            f"--batch-size {model_kwargs['batch_size']} is larger than the "
            f"{n_train} training images"
        )
    layers = "-".join(
        str(s)
        for s in [
            split.x_train.shape[1],
            *model_kwargs["hidden_layers"],
            len(set(split.y_train.tolist())),
        ]
    )
    out(
        f"preset {plan['preset'].name}: {layers}, {model_kwargs['optimizer']} "
        f"lr {model_kwargs['learning_rate']:g}, {model_kwargs['epochs']} epochs, batch "
        f"{model_kwargs['batch_size']}; {n_train:,} training, {split.x_val.shape[0]:,} "
        f"validation, {split.x_test.shape[0]:,} test images ({data_kwargs['split']} split)"
    )

    config = {"preset": plan["preset"].name, "model": model_kwargs, "data": data_kwargs}
    seed = model_kwargs.get("random_state")
    run_id = store.start_run(config, name=plan["name"], source="cli", seed=seed)
    recorder = RunRecorder(store, run_id)
    progress = None if out.quiet else Progress(sys.stderr, n_train, model_kwargs["batch_size"])
    status, message, model_path, result, replaced = "failed", None, None, None, False
    try:
        with StopOnInterrupt(None if out.quiet else sys.stderr) as stop:

            def callback(event):
                if progress is not None:
                    progress(event)
                if event.kind == "epoch":
                    recorder.callback(event)
                return stop.requested

            try:
                result = run_training(model_kwargs, split=split, callback=callback)
            finally:
                if progress is not None:
                    progress.close()
        model = result.model
        if stop.requested:
            status, message = "stopped", f"stopped with Ctrl-C; {model.stop_message_}"
        elif model.stop_reason_ == "diverged":
            status, message = "diverged", model.stop_message_
        else:
            status, message = "finished", model.stop_message_ or None
            if plan["path"] is not None:
                replaced = Path(plan["path"]).exists()
                notes = (
                    f"python -m nn train: preset {plan['preset'].name}, "
                    f"{data_kwargs['split']} split (seed {data_kwargs['seed']}), "
                    f"{n_train} training images"
                )
                model_path = model.save(
                    plan["path"], name=plan["name"], metrics=result.metrics(), notes=notes
                )
    except KeyboardInterrupt:
        status, message = "stopped", "aborted with Ctrl-C"
        raise
    except BaseException as exc:
        status, message = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        metrics = result.metrics() if result is not None else {}
        if result is not None:
            metrics.update(
                n_parameters=result.model.n_parameters_, stop_reason=result.model.stop_reason_
            )
        try:
            store.finish_run(
                run_id, status, metrics=metrics, model_path=model_path, message=message
            )
        except (sqlite3.Error, OSError) as db_error:
            print(f"warning: could not record run {run_id}: {db_error}", file=sys.stderr)

    model = result.model
    summary = {
        "status": status,
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.val_accuracy,
        "train_accuracy": (model.history_["train_accuracy"] or [None])[-1],
        "train_seconds": round(result.train_seconds, 3),
        "epochs": int(model.n_iter_),
        "parameters": int(model.n_parameters_),
        "layers": model.layer_sizes_,
        "model_path": str(model_path) if model_path is not None else None,
        "name": plan["name"],
        "preset": plan["preset"].name,
        "seed": seed,
        "split": data_kwargs["split"],
        "train_size": n_train,
        "stop_reason": model.stop_reason_,
        "stop_message": model.stop_message_,
        "run_id": run_id,
        "runs_db": str(store.path),
    }
    if status == "diverged":
        print(f"error: {model.stop_message_}", file=sys.stderr)
    elif status == "stopped":
        print(
            f"stopped after {model.n_iter_} epoch(s); the model was not saved "
            f"(run #{run_id} recorded as stopped)",
            file=sys.stderr,
        )
    if status == "finished":
        speed = n_train * model.n_iter_ / max(result.train_seconds, 1e-9)
        out(
            f"test accuracy {fmt_pct(result.test_accuracy)}  validation "
            f"{fmt_pct(result.val_accuracy)}  ({model.n_iter_} epochs in "
            f"{fmt_duration(result.train_seconds)}, {speed:,.0f} img/s, "
            f"{model.n_parameters_:,} parameters)"
        )
        if model.stop_reason_ == "early_stopping":
            out(model.stop_message_)
        out(
            f"saved {model_path}{' (replaced the previous file)' if replaced else ''}"
            if model_path
            else "not saved (--no-save)"
        )
        out(f"run #{run_id} recorded in {store.path}")
    if args.json:
        print_json(summary)
    return {"finished": EXIT_OK, "diverged": EXIT_DIVERGED}.get(status, EXIT_INTERRUPTED)
