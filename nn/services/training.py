"""The training job shared by ``python -m nn train`` and the dashboard (in a runner's worker).

:func:`run_training_job` takes a :class:`TrainingJob` (plain, JSON-able settings): it loads and
splits the data, builds the model, fits it with a callback (progress as ``TrainingEvent``s, pause
and stop through a :class:`~nn.services.control.JobControl`), scores it, records the run and
saves the model if asked. :func:`run_training` is the fit-and-score step on its own:

    from nn.services.training import run_training
    result = run_training({"hidden_layers": [256, 128], "epochs": 5},
                          {"split": "standard", "seed": 0, "train_size": 10_000})
    result.model, result.test_accuracy, result.val_accuracy, result.train_seconds

Data settings (all optional, see :data:`DATA_DEFAULTS`):
    ``split``          ``"standard"`` (official test set; 10,000 validation images carved from the
                       60,000 training images), ``"80:10:10"`` or ``"custom"`` (pooled), see
                       :func:`nn.data.split_dataset`.
    ``seed``           the split's seed (kept apart from the model's ``random_state`` so that runs
                       with different model seeds are scored on the same images).
    ``train_size``     a stratified subset of the training part (``None``: all of it).
    ``val_fraction``, ``test_fraction``   for ``split="custom"``.
    ``path``           a user dataset for :func:`nn.data.load_dataset` (``None``: bundled MNIST).
    ``set``            a data set of :mod:`nn.data.registry` by name (``None``: ``path``/MNIST).

A model trained on a set of another shape than MNIST's gets the set's ``input_shape`` (unless
its settings give one), and a saved model records the set (``DataSetInfo.record()``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.config import check_memory, stack_for
from nn.core.live_map import MAX_IMAGES, LiveMap, map_indices
from nn.core.network import NeuralNetwork
from nn.core.params import PARAMS, json_params
from nn.core.probe import PROBE_SIZE, InsideRecorder, grid_indices
from nn.data.arrays import DataError
from nn.data.datasets import load_dataset
from nn.data.idx import load_mnist
from nn.data.registry import check_model_fits, get_info, has_set, list_sets, load_set, mnist_info
from nn.data.splits import split_dataset
from nn.io.models_folder import SaveRecord, save_named
from nn.services.control import JobControl
from nn.services.recorder import RunRecorder
from nn.services.runs import run_status
from nn.services.settings import for_images

__all__ = [
    "DATA_DEFAULTS",
    "TrainingJob",
    "TrainingOutcome",
    "TrainResult",
    "part_sizes",
    "run_training_job",
    "check_model_kwargs",
    "check_data_kwargs",
    "data_set_info",
    "load_data",
    "make_split",
    "resolve_data_source",
    "run_training",
]

DATA_DEFAULTS: dict[str, Any] = {
    "split": "standard",
    "seed": 0,
    "train_size": None,
    "val_fraction": 0.1,
    "test_fraction": 0.1,
    "path": None,
    "set": None,
    "sets_dir": None,  # the folder of added sets (a person's workspace); None: the default one
}


@dataclass
class TrainResult:
    """The outcome of :func:`run_training`. Accuracies are ``None`` when that part is empty."""

    model: NeuralNetwork
    split: Any  # nn.data.Split
    test_accuracy: float | None
    val_accuracy: float | None
    train_seconds: float

    @property
    def stop_reason(self) -> str | None:
        return self.model.stop_reason_

    @property
    def diverged(self) -> bool:
        return self.model.stop_reason_ == "diverged"

    def metrics(self) -> dict[str, float | int]:
        """Numeric final metrics, for ``save_model(metrics=...)`` and ``RunStore.finish_run``."""
        hist = self.model.history_
        out: dict[str, float | int] = {}
        if self.test_accuracy is not None:
            out["test_accuracy"] = self.test_accuracy
        if self.val_accuracy is not None:
            out["val_accuracy"] = self.val_accuracy
        for key in ("train_accuracy", "loss", "val_loss"):
            values = [v for v in hist.get(key, []) if v is not None]
            if values:
                out[key] = float(values[-1])
        out["train_seconds"] = round(self.train_seconds, 3)
        out["epochs"] = int(self.model.n_iter_)
        out["train_size"] = int(self.split.x_train.shape[0])
        return out


def check_model_kwargs(model_kwargs: Mapping[str, Any]) -> NeuralNetwork:
    """An unfitted NeuralNetwork with these settings, validated (``ValueError`` naming the bad
    parameter otherwise, unknown names included)."""
    known = set(PARAMS)
    unknown = sorted(set(model_kwargs) - known)
    if unknown:
        raise ValueError(
            f"unknown model setting(s) {', '.join(map(repr, unknown))}; "
            f"NeuralNetwork takes {', '.join(sorted(known))}"
        )
    model = NeuralNetwork(**dict(model_kwargs))
    shape = model.input_shape  # a data set's images (nn.data.registry), else MNIST's
    check_network_size(model, tuple(int(d) for d in shape) if shape else MNIST_FEATURES)
    return model


MNIST_FEATURES = 784
MNIST_CLASSES = 10


def check_network_size(
    model: NeuralNetwork, n_features: int = MNIST_FEATURES, n_classes: int = MNIST_CLASSES
) -> dict[str, int]:
    """The bytes training ``model`` on ``n_features`` inputs and ``n_classes`` needs
    (``nn.core.config.memory``: from the shapes, nothing allocated). ``ParameterError``
    naming the layer parameter above ``MAX_PARAMETERS`` or ``MAX_TRAINING_BYTES``, with the
    estimate, so a job is refused before its data is loaded."""
    return check_memory(*stack_for(model.get_params(), n_features, n_classes))


def check_size_on_set(model_kwargs: Mapping[str, Any], info: Any = None) -> dict[str, int]:
    """:func:`check_network_size` of these settings on the images and classes of the data set
    ``info`` (``nn.data.registry.DataSetInfo``; None: MNIST's): a stack sees the image shape,
    dense layers the flattened pixels."""
    if info is None:
        return check_memory(*stack_for(model_kwargs, MNIST_FEATURES, MNIST_CLASSES))
    stacked = model_kwargs.get("layers") is not None
    shape = tuple(info.image_shape) if stacked else info.n_features
    return check_memory(*stack_for(model_kwargs, shape, info.n_classes))


_SIZE_PARAMS = ("hidden_layers", "layers", "batch_size")
"""The hyperparameters that decide a network's memory (searched values are sized up front)."""


def check_sizes_of_choices(
    name: str, values: Any, base: Mapping[str, Any] | None = None, info: Any = None
) -> None:
    """:func:`check_size_on_set` for every value a search may give ``name`` (with the fixed
    settings ``base``), when ``name`` is one of :data:`_SIZE_PARAMS`; ``ValueError`` naming the
    value otherwise."""
    if name not in _SIZE_PARAMS:
        return
    for value in values:
        try:
            check_size_on_set({**(base or {}), name: value}, info)
        except ValueError as exc:
            raise ValueError(f"{name}: the value {value!r} is too big ({exc})") from None


def check_data_kwargs(data_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DATA_DEFAULTS` updated with ``data_kwargs``; ``ValueError`` for unknown keys."""
    data_kwargs = dict(data_kwargs or {})
    unknown = sorted(set(data_kwargs) - set(DATA_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown data setting(s) {', '.join(map(repr, unknown))}; "
            f"use {', '.join(DATA_DEFAULTS)}"
        )
    return {**DATA_DEFAULTS, **data_kwargs}


def resolve_data_source(data_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The data settings with ``path`` read as a set's name when no file or folder has that
    name (what ``--data NAME`` means); ``DataError`` when it is neither, or names an unknown
    set."""
    cfg = check_data_kwargs(data_kwargs)
    path = cfg["path"]
    if path is not None and cfg["set"] is not None:
        raise DataError(f"give a data file ({path}) or a data set ({cfg['set']}), not both")
    if path is not None and not str(path).strip():
        raise DataError("the data is named by an empty text: give a data file, a folder or a set")
    sets_dir = cfg["sets_dir"]
    if path is not None and not Path(path).expanduser().exists():
        if not has_set(str(path), sets_dir):
            names = [info.name for info in list_sets(sets_dir)]
            raise DataError(
                f"{path}: no such file or folder, and no data set of that name "
                f"(the data sets: {', '.join(names)}; add one with 'python -m nn data add')"
            )
        cfg["path"], cfg["set"] = None, str(path).strip().lower()
    if cfg["set"] is not None:
        cfg["set"] = get_info(cfg["set"], sets_dir).name
    return cfg


def data_set_info(data_kwargs: Mapping[str, Any] | None = None):
    """The ``nn.data.registry.DataSetInfo`` of these settings: the named set, MNIST, or for a
    data file an MNIST-shaped description named by its path (its SHA-256 unknown)."""
    cfg = check_data_kwargs(data_kwargs)
    if cfg["set"] is not None:
        return get_info(cfg["set"], cfg["sets_dir"])
    info = mnist_info()
    if cfg["path"] is None:
        return info
    return dataclasses.replace(
        info, name=str(cfg["path"]), sha256="", source=str(cfg["path"]), builtin=False
    )


def load_data(data_kwargs: Mapping[str, Any] | None = None):
    """The dataset named by ``data_kwargs["set"]`` (``nn.data.registry``), by
    ``data_kwargs["path"]`` (``nn.data.load_dataset``) or the bundled MNIST."""
    cfg = check_data_kwargs(data_kwargs)
    if cfg["set"] is not None:
        return load_set(cfg["set"], cfg["sets_dir"]).data
    return load_mnist() if cfg["path"] is None else load_dataset(cfg["path"])


def make_split(data_kwargs: Mapping[str, Any] | None = None, mnist: Any = None):
    """``nn.data.split_dataset`` with these settings; ``mnist`` (an ``MNIST`` or ``ImageSet``)
    avoids loading the data again."""
    cfg = check_data_kwargs(data_kwargs)
    data = mnist if mnist is not None else load_data(cfg)
    return split_dataset(
        data,
        scheme=cfg["split"],
        seed=cfg["seed"],
        val_fraction=cfg["val_fraction"],
        test_fraction=cfg["test_fraction"],
        train_size=cfg["train_size"],
    )


def part_sizes(
    split: str,
    n_images: int,
    n_test_images: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> tuple[int, int, int]:
    """``(train, validation, test)`` sizes of ``nn.data.split_dataset``'s parts before
    ``train_size``: ``n_images`` training images (all images for a dataset of one part) and
    ``n_test_images`` in a separate test part."""
    if split == "standard":
        n_val = round(n_images * 10_000 / 60_000)
        return n_images - n_val, n_val, n_test_images
    if split == "80:10:10":
        val_fraction = test_fraction = 0.1
    n = n_images + n_test_images
    n_val, n_test = int(np.floor(n * val_fraction + 0.5)), int(np.floor(n * test_fraction + 0.5))
    return n - n_val - n_test, n_val, n_test


def run_training(
    model_kwargs: Mapping[str, Any],
    data_kwargs: Mapping[str, Any] | None = None,
    *,
    mnist: Any = None,
    split: Any = None,
    callback: Callable[[Any], Any] | None = None,
) -> TrainResult:
    """Validate the settings, load and split the data, ``fit`` (with the validation part) and
    score the result on the validation and test parts.

    ``mnist``: data already loaded (``MNIST`` or ``ImageSet``); ``split``: an ``nn.data.Split``
    to use as is (then ``data_kwargs`` and ``mnist`` are ignored). ``callback`` goes to
    ``fit``. A diverged run returns normally with ``result.diverged`` true (the model keeps the
    weights of its last finished epoch). Raises ``ValueError`` (``DataError`` included) for bad
    settings or data, before any training starts.
    """
    model = check_model_kwargs(model_kwargs)
    if split is None:
        split = make_split(data_kwargs, mnist)
    return _fit_and_score(model, split, callback)


def _score(model: NeuralNetwork, x: np.ndarray, y: np.ndarray) -> float:
    return float(model.score(x, y))


# ----------------------------------------------------------------------------- the training job
STOPPED_BEFORE_START = "Stopped before training started."
SOURCE_LABELS = {"cli": "python -m nn train", "dashboard": "dashboard", "tune": "tune"}


@dataclass
class TrainingJob:
    """Everything one training run needs, as plain values (:meth:`to_dict` is JSON-able).

    ``model``: ``NeuralNetwork`` settings; ``data``: :data:`DATA_DEFAULTS` keys. ``save_path``: save
    a finished model there. ``record`` the run in the run store at ``runs_db`` (default store if
    None; a database error is noted and training goes on, ``nn.services.recorder``). ``train_limit``
    caps the training images on top of ``train_size``. ``keep_split`` False lets a ``standard``
    split of a dataset without a test part fall back to ``80:10:10``. ``inside`` records the layers'
    statistics every epoch on a probe batch of validation images (``nn.core.probe``), sent to the
    listener as ``inside_start``/``inside_epoch`` and saved with the model.
    """

    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    preset: str | None = None
    source: str = "cli"
    save_path: str | None = None
    record: bool = True
    runs_db: str | None = None
    train_limit: int | None = None
    keep_split: bool = True
    inside: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingJob:
        return cls(**dict(values))


@dataclass
class TrainingOutcome:
    """How a training job ended. ``status`` is a run status (``finished``, ``stopped``,
    ``diverged``); ``result`` holds the model and its scores (None when stopped before the
    first batch)."""

    status: str
    message: str | None
    result: TrainResult | None
    data: dict[str, Any]
    run_id: int | None = None
    runs_db: str | None = None
    model_path: Path | None = None
    replaced: bool = False
    run_errors: list[str] = field(default_factory=list)
    inside: dict[str, Any] | None = None
    save_record: SaveRecord | None = None  # what a saved model records (None: no result)

    def metrics(self) -> dict[str, Any]:
        """What the run store records as the run's final metrics."""
        if self.result is None:
            return {}
        model = self.result.model
        return {
            **self.result.metrics(),
            "n_parameters": model.n_parameters_,
            "stop_reason": model.stop_reason_,
        }


Listener = Callable[[str, dict[str, Any]], Any]


def _capped_data(job: TrainingJob, data: Any, listener: Listener) -> dict[str, Any]:
    """The data settings to split with: the split fallback and ``train_limit`` applied."""
    cfg = check_data_kwargs(job.data)
    has_test = hasattr(data, "x_test")
    if cfg["split"] == "standard" and not has_test and not job.keep_split:
        cfg["split"] = "80:10:10"  # "standard" needs separate train and test parts
        listener("split_changed", {"split": cfg["split"]})
    if job.train_limit:
        n_images = len(data.y_train) if has_test else len(data.y)
        n_test = len(data.y_test) if has_test else 0
        part = part_sizes(
            cfg["split"], n_images, n_test, cfg["val_fraction"], cfg["test_fraction"]
        )[0]
        limit = min(int(job.train_limit), part)
        cfg["train_size"] = min(int(cfg["train_size"]), limit) if cfg["train_size"] else limit
    return cfg


def _job_model(job: TrainingJob, model: NeuralNetwork | None) -> NeuralNetwork:
    if model is None:
        return check_model_kwargs(job.model)
    model.set_params(warm_start=True, epochs=int(job.model.get("epochs", model.epochs)))
    return model


def _fit_callback(
    record: RunRecorder,
    run_id: int | None,
    on_event: Callable[[Any], Any] | None,
    control: JobControl,
    observe: Callable[[Any], Any] | None = None,
) -> Callable[[Any], bool]:
    def callback(event: Any) -> bool:
        if observe is not None:
            observe(event)
        if event.kind == "diverged":  # for the inside record; training stops anyway
            return False
        if on_event is not None:
            on_event(event)
        record.log_event(run_id, event)
        return control.checkpoint()

    return callback


def inside_recorder(split: Any):
    """An ``nn.core.probe.InsideRecorder`` on the split's first validation images (training
    images when there is no validation part) and a grid of test images (validation images
    when there is no test part), and the live layer map on up to 500 of the grid's images
    (``nn.core.live_map``)."""
    has_val = split.x_val.shape[0] > 0
    probe = "validation" if has_val else "training"
    probe_x, probe_y = (split.x_val, split.y_val) if has_val else (split.x_train, split.y_train)
    grid = "test" if split.x_test.shape[0] else "validation"
    grid_x, grid_y = (split.x_test, split.y_test) if grid == "test" else (split.x_val, split.y_val)
    picks = grid_indices(grid_y)
    map_picks = map_indices(grid_y, MAX_IMAGES)
    return InsideRecorder(
        probe_x[:PROBE_SIZE],
        probe_y[:PROBE_SIZE],
        grid_x[picks],
        grid_y[picks],
        probe_images=probe,
        grid_images=grid,
        live_map=LiveMap(grid_x[map_picks], grid_y[map_picks], images=grid),
    )


def _fit_and_score(model: NeuralNetwork, split: Any, callback: Callable) -> TrainResult:
    has_val = split.x_val.shape[0] > 0
    start = time.perf_counter()
    model.fit(
        split.x_train,
        split.y_train,
        split.x_val if has_val else None,
        split.y_val if has_val else None,
        callback=callback,
    )
    seconds = time.perf_counter() - start
    test_acc = val_acc = None
    if model.n_iter_ > 0 or model.stop_reason_ != "diverged":
        if has_val:
            val_acc = _score(model, split.x_val, split.y_val)
        if split.x_test.shape[0] > 0:
            test_acc = _score(model, split.x_test, split.y_test)
    return TrainResult(model, split, test_acc, val_acc, seconds)


def _save_record(job: TrainingJob, outcome: TrainingOutcome, info: Any) -> SaveRecord:
    """What the model file records about this training, whoever saves it (this job, or the
    Train page's Save button afterwards)."""
    cfg, n_train = outcome.data, int(outcome.result.split.x_train.shape[0])
    preset = "" if job.preset is None else f"preset {job.preset}, "
    notes = (
        f"{SOURCE_LABELS.get(job.source, job.source)}: {preset}"
        f"{cfg['split']} split (seed {cfg['seed']}), {n_train} training images"
    )
    if not info.builtin:
        notes += f", data set {info.name}"
    return SaveRecord(
        metrics=outcome.result.metrics(),
        notes=notes,
        inside=outcome.inside,
        dataset=info.record(),
    )


def _save(job: TrainingJob, outcome: TrainingOutcome) -> None:
    path = Path(job.save_path)
    outcome.replaced = path.exists()
    outcome.model_path = save_named(outcome.result.model, path, job.name, outcome.save_record)


def run_training_job(
    job: TrainingJob,
    *,
    data: Any = None,
    model: NeuralNetwork | None = None,
    on_event: Callable[[Any], Any] | None = None,
    listener: Listener | None = None,
    control: JobControl | None = None,
) -> TrainingOutcome:
    """Run ``job``: split, model, fit, score, record, save (if ``job.save_path``).

    ``data``: an ``MNIST``/``ImageSet`` already loaded (else loaded from ``job.data["path"]``).
    ``model``: continue training this fitted model. ``on_event`` receives every batch and
    epoch ``TrainingEvent``; ``listener(stage, info)`` hears ``loading``, ``split_changed``,
    ``prepared`` (part sizes), ``started`` (run id, epochs), ``run_error`` and, with
    ``job.inside``, ``inside_start`` and ``inside_epoch`` (see :func:`inside_recorder`). Bad
    settings raise ``ValueError`` before anything is recorded. An exception during training is
    recorded as a failed run and re-raised.
    """
    listener = listener or (lambda stage, info: None)
    control = control or JobControl()
    job, info = _job_for_set(job, model)
    trained = _job_model(job, model)  # settings checked before any data is loaded
    if data is None:
        listener("loading", {"source": job.data.get("path") or "the bundled MNIST"})
        data = load_data(job.data)
    cfg = _capped_data(job, data, listener)
    split = make_split(cfg, data)
    n_train = int(split.x_train.shape[0])
    if trained.batch_size > n_train:
        raise ValueError(
            f"batch_size={trained.batch_size} is larger than the {n_train} training images: "
            "use a smaller batch"
        )
    listener(
        "prepared",
        {
            "n_train": n_train,
            "n_val": len(split.y_val),
            "n_test": len(split.y_test),
            "n_features": int(split.x_train.shape[1]),
            "n_classes": len(set(split.y_train.tolist())),
            "split": cfg["split"],
            "model": json_params(trained.get_params()),
            "dataset": info.name,
            "image_shape": list(info.image_shape),
            "class_names": list(info.class_names),
        },
    )
    record = RunRecorder(job.runs_db, record=job.record, listener=listener)
    config = {"model": json_params(trained.get_params()), "data": cfg}
    if job.preset is not None:
        config["preset"] = job.preset
    if job.train_limit:
        config["train_limit"] = job.train_limit
    if model is not None:
        config["continued"] = True
    seed = job.model.get("random_state")
    run_id = record.start_run(
        config, name=job.name, source=job.source, seed=seed, dataset=info.name
    )
    first_epoch = int(getattr(trained, "n_iter_", 0) or 0) if model is not None else 0
    listener(
        "started",
        {"run_id": run_id, "first_epoch": first_epoch, "epochs": int(trained.epochs)},
    )
    if control.stop_requested:
        record.finish_run(run_id, "stopped", message=STOPPED_BEFORE_START)
        return TrainingOutcome(
            "stopped",
            STOPPED_BEFORE_START,
            None,
            cfg,
            run_id,
            record.path,
            run_errors=record.errors,
        )
    recorder = inside_recorder(split) if job.inside else None

    def observe(event: Any) -> None:
        for stage, payload in recorder.observe(trained, event):
            listener(stage, payload)

    try:
        callback = _fit_callback(record, run_id, on_event, control, observe if recorder else None)
        result = _fit_and_score(trained, split, callback)
        outcome = _outcome(result, cfg, control)
        outcome.run_id, outcome.runs_db, outcome.run_errors = run_id, record.path, record.errors
        outcome.inside = None if recorder is None else recorder.record
        outcome.save_record = _save_record(job, outcome, info)
        if outcome.status == "finished" and job.save_path:
            _save(job, outcome)
    except BaseException as exc:
        status = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
        message = "aborted with Ctrl-C" if status == "stopped" else f"{type(exc).__name__}: {exc}"
        record.finish_run(run_id, status, message=message)
        raise
    record.finish_run(
        run_id,
        outcome.status,
        metrics=outcome.metrics(),
        model_path=outcome.model_path,
        message=outcome.message,
    )
    return outcome


def _job_for_set(job: TrainingJob, model: NeuralNetwork | None) -> tuple[TrainingJob, Any]:
    """The job with its data settings resolved (``path`` may name a set) and, for a set of
    another shape than MNIST's, the set's ``input_shape``; and the set's description. A model
    to continue must fit the set."""
    cfg = resolve_data_source(job.data)
    info = data_set_info(cfg)
    if model is not None:
        check_model_fits(model, info)
    settings, _ = for_images(job.model, info.image_shape, info.name, switch_off=False)
    if model is not None:  # a model to continue keeps its own input shape
        settings["input_shape"] = job.model.get("input_shape")
    return dataclasses.replace(job, model=settings, data=cfg), info


def _outcome(result: TrainResult, cfg: dict, control: JobControl) -> TrainingOutcome:
    model = result.model
    status = run_status(model.stop_reason_, stop_requested=control.stop_requested)
    message = model.stop_message_ or None
    if status == "stopped" and control.stop_note:
        message = f"{control.stop_note}; {model.stop_message_}"
    return TrainingOutcome(status, message, result, cfg)
