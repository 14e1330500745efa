"""``python -m nn train``: train a network from a preset, with any hyperparameter overridden by a
flag; record the run; save the model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from nn.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    NUMBER,
    WHOLE_NUMBER,
    Out,
    UsageError,
    add_common,
    fmt_duration,
    fmt_pct,
    models_dir,
    none_or,
    print_json,
    shown_errors,
    widths_describe,
)
from nn.cli.progress import Progress, StopOnInterrupt
from nn.core import augment
from nn.core.layer_spec import compact, parse_layers, parse_shape
from nn.core.limits import MAX_SEED
from nn.core.network import NeuralNetwork
from nn.core.params import PARAMS, Param, json_params
from nn.data.splits import SPLITS
from nn.io.model_files import SUPPORTED_FORMATS
from nn.io.models_folder import check_writable_folder, model_path, sanitize_model_name
from nn.services.control import JobControl
from nn.services.presets import DEFAULT_PRESET, PRESETS, fitting_presets, get_preset, resolve_config
from nn.services.settings import augment_overrides, for_images
from nn.services.training import (
    TrainingJob,
    TrainingOutcome,
    check_data_kwargs,
    check_model_kwargs,
    check_network_size,
    data_set_info,
    resolve_data_source,
    run_training_job,
)

HELP = "train a network and save it"
DESCRIPTION = (
    "Train a network from a preset, with any hyperparameter overridden by a flag. "
    "The run is recorded in the run database; the model is saved to "
    "<models-dir>/NAME.npz (or --out). Exit codes: 0 done, 2 bad arguments, "
    "3 diverged, 130 Ctrl-C."
)


# ----------------------------------------------------------------------------- hyperparameter flags

# how a flag reads each kind of hyperparameter (nn.core.params.Param.kind), and its metavar
_READERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "float": (NUMBER, "X"),
    "int": (WHOLE_NUMBER, "N"),
    "choice": (str, "NAME"),
    "widths": (WHOLE_NUMBER, "N"),
    "stack": (shown_errors(parse_layers), "SPEC"),
    "shape": (shown_errors(parse_shape), "HxWxC"),
}


def _shown_default(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default))
    return str(default)


def _flag_arguments(param: Param) -> dict[str, Any]:
    """argparse keywords of one hyperparameter's flag, from its entry in ``PARAMS``. Defaults
    are suppressed so that only the flags given override the preset; a switch is
    ``--x/--no-x``; ``none`` switches an optional setting off; a per-layer setting takes one
    value for every layer or one per layer, and the widths a list that may be empty."""
    kw: dict[str, Any] = {
        "dest": f"model__{param.name}",
        "default": argparse.SUPPRESS,
        "help": f"{param.help.rstrip('.')} (default: {_shown_default(param.default)})".replace(
            "%", "%%"
        ),
    }
    if param.kind == "bool":
        kw["action"] = argparse.BooleanOptionalAction
        return kw
    read, metavar = _READERS[param.kind]
    kw["type"] = none_or(read) if param.optional else read
    if param.kind == "widths":
        kw["nargs"] = "*"
    elif param.per_layer:
        kw["nargs"] = "+"
    if param.choices is not None:
        kw["choices"] = list(param.choices)
        if not param.per_layer:
            metavar = "{" + ",".join(param.choices) + "}"
    kw["metavar"] = "P" if param.per_layer and param.kind == "float" else metavar
    return kw


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "hyperparameters (each overrides the preset; defaults are NeuralNetwork's)"
    )
    for param in PARAMS.values():
        if param.flag:
            group.add_argument(param.option, *param.aliases, **_flag_arguments(param))


def _add_augment_flags(parser: argparse.ArgumentParser) -> None:
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
    for name, setting in augment.SETTINGS.items():
        group.add_argument(
            "--augment-" + name.replace("_", "-"),
            dest=f"augment__{name}",
            type=NUMBER,
            metavar="X",
            default=argparse.SUPPRESS,
            help=f"{setting.meaning} (Augmenter default: {setting.default})".replace("%", "%%"),
        )


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        dest="data__path",
        metavar="PATH|NAME",
        default=argparse.SUPPRESS,
        help="a dataset file or folder (IDX, .npz, .npy, Kaggle .csv; see "
        "nn.data.load_dataset) or the name of a data set (python -m nn data list); default: "
        "the bundled MNIST",
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
        type=NUMBER,
        metavar="F",
        default=argparse.SUPPRESS,
        help="validation fraction for --split custom",
    )
    group.add_argument(
        "--test-fraction",
        dest="data__test_fraction",
        type=NUMBER,
        metavar="F",
        default=argparse.SUPPRESS,
        help="test fraction for --split custom",
    )
    group.add_argument(
        "--train-size",
        dest="data__train_size",
        type=none_or(WHOLE_NUMBER),
        metavar="N",
        default=argparse.SUPPRESS,
        help="train on a stratified subset of N images ('none': all)",
    )
    group.add_argument(
        "--split-seed",
        dest="data__seed",
        type=none_or(WHOLE_NUMBER),
        metavar="S",
        default=argparse.SUPPRESS,
        help="seed of the split (default 0; kept apart from --seed so runs with "
        "different model seeds are scored on the same images)",
    )


def _overrides(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def _model_overrides(args: argparse.Namespace, base_augment: dict | None) -> dict[str, Any]:
    out = _overrides(args, "model__")
    for name, value in out.items():
        if PARAMS[name].per_layer and isinstance(value, list) and len(value) == 1:
            out[name] = value[0]
    aug = _overrides(args, "augment__")
    on = aug.pop("on", None)
    if on is False and aug:
        raise UsageError("--no-augment cannot be combined with --augment-* settings")
    return {**out, **augment_overrides(on, aug, base_augment)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    out.add_argument(
        "--out",
        metavar="PATH",
        help="save the model to this file (.npz or .pkl), or into this existing folder "
        "(as NAME.npz)",
    )
    out.add_argument("--no-save", action="store_true", help="do not save the model")
    add_common(out, models=True, runs_db=True, quiet=True)
    _add_model_flags(parser)
    _add_augment_flags(parser)
    _add_data_flags(parser)


def _save_target(args: argparse.Namespace, default_name: str) -> tuple[Path | None, str]:
    """Where the model is saved (None with --no-save) and the model's name."""
    if args.name is not None and not args.name.strip():
        raise UsageError("--name is empty: give the model a name, or leave --name out")

    if args.no_save:
        if args.out:
            raise UsageError("--no-save and --out contradict each other")
        return None, sanitize_model_name(args.name or default_name)
    if args.out:
        path = Path(args.out).expanduser()
        if path.is_dir():  # like cp and mv: a folder receives the file, named as without --out
            path = model_path(_writable(path, "--out"), args.name or default_name)
            return path, path.stem
        if path.exists() and not path.is_file():
            raise UsageError(
                f"--out {args.out}: is not a regular file (a device, a socket or a pipe); "
                "give a .npz or .pkl file name, or a folder to save into"
            )
        if path.suffix.lower() not in ("", *SUPPORTED_FORMATS):
            raise UsageError(f"--out {args.out}: use a .npz or .pkl file name, or a folder")
        if path.suffix == "":
            path = path.with_suffix(".npz")
            if path.exists() and not path.is_file():
                raise UsageError(f"--out {args.out}: {path} exists and is not a regular file")
        _writable(path.parent, "--out")
        return path, sanitize_model_name(args.name) if args.name else path.stem
    folder = _writable(models_dir(args.models_dir), "--models-dir")
    path = model_path(folder, args.name or default_name)
    return path, path.stem


def _writable(folder: Path, flag: str) -> Path:
    """``folder``, created if missing, after a test file was written and removed there: an
    unusable folder is found before the training, not after it."""
    try:
        return check_writable_folder(folder)
    except OSError as exc:
        raise UsageError(
            f"{flag} {folder}: cannot save models there ({exc.strerror or exc})"
        ) from None


def _fit_to_set(preset: Any, overrides: dict[str, Any], model_kwargs: dict, info: Any) -> list[str]:
    """Fit the settings to the data set ``info`` (``nn.data.registry.DataSetInfo``): a preset's
    augmentation (not one asked for by a flag) is switched off for images other than 28x28
    greyscale, with a note; a network that cannot take the set's images or classes is refused,
    naming the presets that fit. Returns the notes; ``model_kwargs`` is changed in place."""
    notes: list[str] = []
    if "augment" not in overrides:  # augmentation asked for by a flag is refused by the job
        fitted, notes = for_images(model_kwargs, info.image_shape, info.name)
        model_kwargs["augment"] = fitted.get("augment")
        notes = [f"preset {preset.name}: {note}" for note in notes]
    shaped, _ = for_images({**model_kwargs, "augment": None}, info.image_shape)
    layer_flags = [p.option for p in PARAMS.values() if p.kind in ("widths", "stack")]
    try:
        check_network_size(check_model_kwargs(shaped), tuple(info.image_shape), info.n_classes)
    except ValueError as exc:
        where = f"{info.name} ({info.shape_text} images, {info.n_classes} classes)"
        if any(PARAMS[name].kind in ("widths", "stack") for name in overrides):
            raise UsageError(f"the network does not fit {where}: {exc}") from None
        fit = [
            name
            for name, problem in fitting_presets(info.image_shape, info.n_classes).items()
            if problem is None
        ]
        raise UsageError(
            f"preset {preset.name} does not fit {where}: {exc} The presets that fit "
            f"{info.name}: {', '.join(fit) or 'none'}; or give the layers "
            f"({', '.join(layer_flags)})."
        ) from None
    return notes


def train_plan(args: argparse.Namespace, notes: list[str] | None = None) -> TrainingJob:
    """The training job of these flags, validated before any data is loaded. Notes on how the
    preset was fitted to the data set (``_fit_to_set``) are appended to ``notes``."""
    preset = get_preset(args.preset)
    overrides = _model_overrides(args, preset.model.get("augment"))
    model_kwargs, data_kwargs = resolve_config(preset, overrides, _overrides(args, "data__"))
    for flag, seed in (
        ("--seed", model_kwargs.get("random_state")),
        ("--split-seed", data_kwargs.get("seed")),
    ):
        if isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
            raise UsageError(f"{flag} {seed}: use a whole number from 0 to {MAX_SEED}, or 'none'")
    try:  # the settings first; a stack is checked against the data set's images (_fit_to_set)
        check_model_kwargs({k: v for k, v in model_kwargs.items() if k != "layers"})
        data_kwargs = resolve_data_source(check_data_kwargs(data_kwargs))
        set_notes = _fit_to_set(preset, overrides, model_kwargs, data_set_info(data_kwargs))
        model = NeuralNetwork(**model_kwargs)  # checked on the set's images by _fit_to_set
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if notes is not None:
        notes.extend(set_notes)
    ts = data_kwargs["train_size"]
    if ts is not None and ts < 1:
        raise UsageError(f"--train-size {ts}: use a positive number of images")
    path, name = _save_target(args, f"{preset.name}-{datetime.now():%Y%m%d-%H%M%S}")
    return TrainingJob(
        model=json_params(model.get_params()),
        data=data_kwargs,
        name=name,
        preset=preset.name,
        source="cli",
        save_path=None if path is None else str(path),
        runs_db=args.runs_db,
        keep_split=hasattr(args, "data__split"),
    )


class _Console:
    """The job's stages as lines of text, its events as the progress display."""

    def __init__(self, out: Out, job: TrainingJob):
        self.out = out
        self.job = job
        self.source = job.data["path"] or job.data.get("set") or "the bundled MNIST"
        self.progress: Progress | None = None

    def listen(self, stage: str, info: dict[str, Any]) -> None:
        if stage == "loading":
            self.out(f"loading {self.source} ...")
        elif stage == "split_changed":
            self.out(f"{self.source} has no separate test part: using the {info['split']} split")
        elif stage == "run_error":
            print(f"warning: run database: {info['message']}", file=sys.stderr)
        elif stage == "prepared":
            self._prepared(info)

    def _prepared(self, info: dict[str, Any]) -> None:
        m = info["model"]
        if m.get("layers") is not None:
            layers = compact([*m["layers"], {"type": "dense", "units": info["n_classes"]}])
        else:
            layers = "-".join(
                str(s) for s in [info["n_features"], *m["hidden_layers"], info["n_classes"]]
            )
        self.out(
            f"preset {self.job.preset}: {layers}, {m['optimizer']} "
            f"lr {m['learning_rate']:g}, {m['epochs']} epochs, batch "
            f"{m['batch_size']}; {info['n_train']:,} training, {info['n_val']:,} "
            f"validation, {info['n_test']:,} test images ({info['split']} split)"
        )
        if not self.out.quiet:
            self.progress = Progress(sys.stderr, info["n_train"], m["batch_size"])

    def on_event(self, event: Any) -> None:
        if self.progress is not None:
            self.progress(event)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _layer_report(model: NeuralNetwork) -> dict[str, Any]:
    """The fitted stack three ways: ``layers``, the widths ``[784, 256, 128, 10]`` of a net of
    dense layers only (None when it holds convolutions, pooling or batch norm, which widths do
    not describe); ``stack``, the compact form (``C32k5-P2-C64k5-P2-D128-D10``, ``D256-D128-D10``);
    ``layer_specs``, every layer's dict, the output layer last."""
    specs = [layer.spec() for layer in model.layers_]
    return {
        "layers": model.layer_sizes_ if widths_describe(specs) else None,
        "stack": compact(specs),
        "layer_specs": specs,
    }


def _summary(job: TrainingJob, outcome: TrainingOutcome) -> dict[str, Any]:
    result, model = outcome.result, outcome.result.model
    return {
        "status": outcome.status,
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.val_accuracy,
        "train_accuracy": (model.history_["train_accuracy"] or [None])[-1],
        "train_seconds": round(result.train_seconds, 3),
        "epochs": int(model.n_iter_),
        "parameters": int(model.n_parameters_),
        **_layer_report(model),
        "model_path": str(outcome.model_path) if outcome.model_path is not None else None,
        "name": job.name,
        "preset": job.preset,
        "seed": job.model.get("random_state"),
        "split": outcome.data["split"],
        "train_size": int(result.split.x_train.shape[0]),
        "stop_reason": model.stop_reason_,
        "stop_message": model.stop_message_,
        "run_id": outcome.run_id,
        "runs_db": outcome.runs_db,
    }


def _report(out: Out, outcome: TrainingOutcome) -> None:
    result, model = outcome.result, outcome.result.model
    if outcome.status == "diverged":
        print(f"error: {model.stop_message_}", file=sys.stderr)
    elif outcome.status == "stopped":
        print(
            f"stopped after {model.n_iter_} epoch(s); the model was not saved "
            f"(run #{outcome.run_id} recorded as stopped)",
            file=sys.stderr,
        )
    if outcome.status != "finished":
        return
    n_train = int(result.split.x_train.shape[0])
    speed = n_train * model.n_iter_ / max(result.train_seconds, 1e-9)
    out(
        f"test accuracy {fmt_pct(result.test_accuracy)}  validation "
        f"{fmt_pct(result.val_accuracy)}  ({model.n_iter_} epochs in "
        f"{fmt_duration(result.train_seconds)}, {speed:,.0f} img/s, "
        f"{model.n_parameters_:,} parameters)"
    )
    if model.stop_reason_ == "early_stopping":
        out(model.stop_message_)
    if outcome.model_path:
        replaced = " (replaced the previous file)" if outcome.replaced else ""
        out(f"saved {outcome.model_path}{replaced}")
    else:
        out("not saved (--no-save)")
    if outcome.run_id is not None:
        out(f"run #{outcome.run_id} recorded in {outcome.runs_db}")
    else:
        out("the run is not recorded (the run database failed: see the warning)")


def run(args: argparse.Namespace) -> int:
    out = Out(args)
    notes: list[str] = []
    job = train_plan(args, notes)
    for note in notes:
        out(note)
    console = _Console(out, job)
    control = JobControl()
    try:
        with StopOnInterrupt(None if out.quiet else sys.stderr, control):
            outcome = run_training_job(
                job, on_event=console.on_event, listener=console.listen, control=control
            )
    finally:
        console.close()
    if outcome.result is None:  # Ctrl-C before the first batch
        print(f"{outcome.message} (run #{outcome.run_id} recorded as stopped)", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(out, outcome)
    if args.json:
        print_json(_summary(job, outcome))
    return {"finished": EXIT_OK, "diverged": EXIT_DIVERGED}.get(outcome.status, EXIT_INTERRUPTED)
