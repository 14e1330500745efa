"""The search job shared by ``python -m nn tune`` and the dashboard (in a runner's worker).

:func:`run_search_job` takes a :class:`SearchJob` (plain, JSON-able settings): it loads and
splits the data, opens the run store and runs :func:`nn.search.run_search`; progress arrives as
``SearchEvent``s, a stop through a :class:`~nn.services.control.JobControl`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nn.search.engine import run_search
from nn.search.results import SearchResult
from nn.search.space import SearchSpace
from nn.services.control import JobControl
from nn.services.recorder import RunRecorder
from nn.services.settings import for_images
from nn.services.training import data_set_info, load_data, make_split, resolve_data_source

__all__ = ["SearchJob", "run_search_job"]


@dataclass
class SearchJob:
    """Everything one search needs, as plain values (:meth:`to_dict` is JSON-able).

    ``base``: the ``NeuralNetwork`` settings every trial shares; ``space``: ``{name:
    dimension}`` as :meth:`SearchSpace.to_dict` writes it; ``data``: split settings
    (:data:`nn.services.training.DATA_DEFAULTS` keys); ``val_size``: validation images used for
    scoring (0: the whole validation part). The rest are :func:`nn.search.run_search`'s
    budget, and where (and whether) the search is recorded.
    """

    base: dict[str, Any]
    space: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    val_size: int = 0
    strategy: str = "random"
    trials: int | None = 10
    grid_points: int = 3
    epochs_per_trial: int = 3
    halving: bool = True
    eta: int = 3
    n_jobs: int = 1
    backend: str | None = None
    seed: int = 0
    timeout: float | None = None
    record: bool = True
    runs_db: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchJob:
        return cls(**dict(values))


Listener = Callable[[str, dict[str, Any]], Any]


def run_search_job(
    job: SearchJob,
    *,
    data: Any = None,
    on_event: Callable[[Any], Any] | None = None,
    listener: Listener | None = None,
    control: JobControl | None = None,
) -> SearchResult:
    """Run ``job``. ``data``: an ``MNIST``/``ImageSet`` already loaded (else loaded from
    ``job.data["path"]``). ``on_event`` receives every ``SearchEvent``; ``listener(stage, info)``
    hears ``prepared`` (``n_train``, ``n_val``, ``load_seconds``) before the first trial. Bad
    settings raise ``ValueError`` before the data is loaded."""
    listener = listener or (lambda stage, info: None)
    control = control or JobControl()
    space = SearchSpace.from_dict(job.space) if isinstance(job.space, Mapping) else job.space
    data_kwargs = resolve_data_source(job.data)
    info = data_set_info(data_kwargs)
    base, _ = for_images(job.base, info.image_shape, info.name, switch_off=False)
    space.check(base)
    started = time.perf_counter()
    split = make_split(data_kwargs, data if data is not None else load_data(data_kwargs))
    x_val, y_val = split.x_val, split.y_val
    if job.val_size:
        x_val, y_val = x_val[: job.val_size], y_val[: job.val_size]
    record = RunRecorder(job.runs_db, record=job.record, listener=listener)
    recorded = {k: v for k, v in data_kwargs.items() if v is not None}
    if job.val_size:
        recorded["val_size"] = job.val_size
    listener(
        "prepared",
        {
            "n_train": int(len(split.y_train)),
            "n_val": int(len(y_val)),
            "load_seconds": time.perf_counter() - started,
            "runs_db": record.path,
        },
    )

    def callback(event: Any) -> bool:
        if on_event is not None:
            on_event(event)
        return control.stop_requested

    return run_search(
        base,
        space,
        split.x_train,
        split.y_train,
        x_val,
        y_val,
        strategy=job.strategy,
        n_trials=job.trials,
        epochs_per_trial=job.epochs_per_trial,
        halving=job.halving,
        eta=job.eta,
        grid_points=job.grid_points,
        n_jobs=job.n_jobs,
        backend=job.backend,
        seed=job.seed,
        record=record.search_record(),
        name=job.name,
        data_config=recorded,
        callback=callback,
        timeout=job.timeout,
    )
