"""Hyperparameter search: grid or random search with successive halving, run through joblib.

NumPy and joblib only (never Streamlit). The pieces:

``SearchSpace({"learning_rate": LogUniform(1e-4, 1e-1), "batch_size": Choice([64, 128]),
"hidden_layers": Choice([[128], [256, 128]]), "dropout": Uniform(0.0, 0.5)})``
    One dimension per ``NeuralNetwork`` hyperparameter: :class:`LogUniform` (rates, penalties),
    :class:`Uniform`, :class:`IntRange` (``log=True`` for sizes), :class:`Choice` (layers,
    activations, optimizers, ...). Every dimension validates itself (``ValueError`` naming the
    parameter) and round-trips through JSON (``to_dict`` / ``dimension_from_dict``), so a search
    is recorded in the run store and can be shown again. ``parse_dimension("loguniform:1e-4:1e-1")``
    reads the compact command-line form.

``grid_search(space, n=3)`` / ``random_search(space, n_trials, seed)``
    The trial configurations (dicts of the searched parameters only).

``run_search(base_config, space, X_train, y_train, X_val, y_val, ...) -> SearchResult``
    Trains every trial on the training split, scores it on the validation split (accuracy), and
    with ``halving=True`` runs successive halving: all trials start with a few epochs, the best
    ``1/eta`` (by validation accuracy) continue with ``warm_start=True`` for more epochs, until
    the survivors have had ``epochs_per_trial`` epochs. Trials run through
    ``joblib.Parallel(n_jobs)``: ``n_jobs=1`` trains in this process; otherwise under
    ``joblib.parallel_config(backend=backend, inner_max_num_threads=1)`` (loky locally by default;
    ``"dask"`` or ``"ray"`` spread the same code over a cluster), one BLAS thread per trial.
    Trials are launched in batches of ``n_jobs``; between batches the ``callback`` may cancel
    the search and the ``timeout`` is checked.

Reproducibility: trial ``i`` gets ``random_state = trial_seed(seed, i)`` (unless the space or the
base config sets ``random_state``), the configurations are drawn from ``seed`` in the parent, and
a continued trial carries its own generator state, so serial and parallel runs with the same
seed give the same configurations and the same validation accuracies.

Recording: with a ``store`` (:class:`nn.runs.RunStore`) the parent process records the search in
``searches`` and every trial as a run (``source="tune"``, ``search_id``) with its epochs; workers
never touch the database. A trial's run config is ``{"model": <all NeuralNetwork params>,
"data": data_config, "search": {"search_id", "trial", "params"}}``.

"Train the best": ``SearchResult.best_config`` is ``base_config`` with the best trial's
parameters, ``epochs = epochs_per_trial`` (unless the base config sets ``epochs``) and the
trial's ``random_state``; ``NeuralNetwork(**result.best_config)`` trains it again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nn.core.bounded_json import JSONSyntaxError, loads
from nn.core.config import configure
from nn.core.limits import MAX_CHOICES, MAX_GRID_POINTS, MAX_TRIALS
from nn.core.network import NeuralNetwork
from nn.core.params import PARAMS, json_params

__all__ = [
    "Dimension",
    "LogUniform",
    "Uniform",
    "IntRange",
    "Choice",
    "SearchSpace",
    "SearchEvent",
    "Trial",
    "SearchResult",
    "STRATEGIES",
    "TRIAL_STATUSES",
    "FORBIDDEN_PARAMS",
    "dimension_from_dict",
    "parse_dimension",
    "grid_search",
    "random_search",
    "trial_seed",
    "halving_schedule",
    "run_search",
]

STRATEGIES = ("random", "grid")
TRIAL_STATUSES = ("running", "finished", "diverged", "pruned", "failed", "cancelled")
FORBIDDEN_PARAMS = {name: p.fixed_in_search for name, p in PARAMS.items() if p.fixed_in_search}
"""The hyperparameters a search may not vary, and why (``nn.core.params``)."""


def _number(name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: {what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: {what} must be finite, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    """JSON-able plain Python (tuples -> lists, NumPy scalars -> numbers)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------- dimensions
class Dimension:
    """One searched hyperparameter. ``name`` is filled in by :class:`SearchSpace` (it is only
    used in messages)."""

    kind = ""
    name = "parameter"

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def grid(self, n: int) -> list:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def values_to_check(self) -> list:
        """Values that must be acceptable to NeuralNetwork (the ends of a range, every choice)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _named(self, name: str) -> Dimension:
        self.name = name
        self._check()
        return self

    def _check(self) -> None:
        pass

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        args = {k: v for k, v in self.to_dict().items() if k != "type"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


class _Range(Dimension):
    log = False

    def __init__(self, low: float, high: float, name: str | None = None):
        self.low, self.high = low, high
        if name:
            self.name = name
        self._check()

    def _check(self) -> None:
        self.low = _number(self.name, "low", self.low)
        self.high = _number(self.name, "high", self.high)
        if self.low > self.high:
            raise ValueError(f"{self.name}: low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log range needs low > 0, got low={self.low:g}")

    def values_to_check(self) -> list:
        return [self.low, self.high]


class LogUniform(_Range):
    """A number drawn log-uniformly from ``[low, high]`` (``low > 0``): learning rates, l2."""

    kind = "loguniform"
    log = True

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def grid(self, n):
        return (
            [float(v) for v in np.geomspace(self.low, self.high, max(1, n))]
            if n > 1
            else [float(math.sqrt(self.low * self.high))]
        )

    def to_dict(self):
        return {"type": self.kind, "low": self.low, "high": self.high}

    def describe(self):
        return f"log-uniform {self.low:g} .. {self.high:g}"


class Uniform(_Range):
    """A number drawn uniformly from ``[low, high]``: dropout, momentum."""

    kind = "uniform"

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def grid(self, n):
        return (
            [float(v) for v in np.linspace(self.low, self.high, n)]
            if n > 1
            else [(self.low + self.high) / 2]
        )

    def to_dict(self):
        return {"type": self.kind, "low": self.low, "high": self.high}

    def describe(self):
        return f"uniform {self.low:g} .. {self.high:g}"


class IntRange(_Range):
    """A whole number in ``[low, high]`` (both included), log-spaced with ``log=True``."""

    kind = "int"

    def __init__(self, low: int, high: int, log: bool = False, name: str | None = None):
        self.log = bool(log)
        super().__init__(low, high, name)

    def _check(self) -> None:
        super()._check()
        for what, v in (("low", self.low), ("high", self.high)):
            if v != int(v):
                raise ValueError(f"{self.name}: {what} must be a whole number, got {v:g}")
        self.low, self.high = int(self.low), int(self.high)

    def sample(self, rng):
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(self.high, max(self.low, math.floor(v))))
        return int(rng.integers(self.low, self.high + 1))

    def grid(self, n):
        points = (
            (
                np.geomspace(self.low, self.high, n)
                if self.log
                else np.linspace(self.low, self.high, n)
            )
            if n > 1
            else [math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2]
        )
        out: list[int] = []
        for p in points:
            v = int(round(float(p)))
            if v not in out:
                out.append(v)
        return out

    def to_dict(self):
        return {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}

    def describe(self):
        return f"{'log-spaced ' if self.log else ''}whole numbers {self.low} .. {self.high}"


class Choice(Dimension):
    """One of a list of values: ``Choice([[128], [256, 128]])``, ``Choice(["adam", "sgd"])``."""

    kind = "choice"

    def __init__(self, values: Sequence[Any], name: str | None = None):
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(
                f"{name or self.name}: choices must be a list of values, got {values!r}"
            )
        self.values = [_plain(v) for v in values]
        if name:
            self.name = name
        self._check()

    def _check(self) -> None:
        if not self.values:
            raise ValueError(f"{self.name}: give at least one choice (the list is empty)")
        if len(self.values) > MAX_CHOICES:
            raise ValueError(
                f"{self.name}: {len(self.values):,} choices; a parameter has at most "
                f"{MAX_CHOICES:,}"
            )
        try:
            json.dumps(self.values, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.name}: choices must be JSON values ({exc})") from None

    def sample(self, rng):
        return copy.deepcopy(self.values[int(rng.integers(len(self.values)))])

    def grid(self, n):
        return copy.deepcopy(self.values)

    def to_dict(self):
        return {"type": self.kind, "values": copy.deepcopy(self.values)}

    def values_to_check(self):
        return copy.deepcopy(self.values)

    def describe(self):
        shown = [json.dumps(v) for v in self.values[:8]]
        text = " | ".join(v if len(v) <= 60 else v[:57] + "..." for v in shown)
        more = len(self.values) - len(shown)
        return text + (f" | ... ({more:,} more)" if more else "")


_KINDS = {"loguniform": LogUniform, "uniform": Uniform, "int": IntRange, "choice": Choice}


def dimension_from_dict(data: Mapping[str, Any] | Sequence, name: str = "parameter") -> Dimension:
    """The inverse of ``Dimension.to_dict``; a plain list means ``Choice(list)``."""
    if isinstance(data, (list, tuple)):
        return Choice(data, name=name)
    if not isinstance(data, Mapping):
        raise ValueError(
            f'{name}: a dimension is a dict like {{"type": "loguniform", '
            f'"low": 1e-4, "high": 0.1}} or a list of choices; got {data!r}'
        )
    kind = str(data.get("type", "")).lower()
    aliases = {
        "log_uniform": "loguniform",
        "log": "loguniform",
        "intrange": "int",
        "integer": "int",
        "int_range": "int",
        "intlog": "int",
    }
    kind = aliases.get(kind, kind)
    if kind not in _KINDS:
        raise ValueError(
            f"{name}: unknown dimension type {data.get('type')!r}; use one of {', '.join(_KINDS)}"
        )
    extra = set(data) - {"type", "low", "high", "log", "values"}
    if extra:
        raise ValueError(f"{name}: unknown key(s) {', '.join(sorted(extra))} in {data!r}")
    if kind == "choice":
        if "values" not in data:
            raise ValueError(f'{name}: a choice needs "values": [...]')
        return Choice(data["values"], name=name)
    for key in ("low", "high"):
        if key not in data:
            raise ValueError(f'{name}: a {kind} range needs "low" and "high"')
    if kind == "int":
        log = bool(data.get("log", False)) or str(data.get("type")).lower() == "intlog"
        return IntRange(data["low"], data["high"], log=log, name=name)
    return _KINDS[kind](data["low"], data["high"], name=name)


def _parse_value(text: str, name: str) -> Any:
    """A choice's value: JSON when it parses, else the text itself (``adam``); JSON beyond the
    bounds of :mod:`nn.core.bounded_json` is refused."""
    text = text.strip()
    try:
        return loads(text, f"{name}: the choice {text[:40]!r}")
    except JSONSyntaxError:
        return text


def parse_dimension(spec: str, name: str = "parameter") -> Dimension:
    """Read a dimension from its command-line form.

    ``loguniform:1e-4:1e-1`` (alias ``log:``), ``uniform:0:0.5``, ``int:16:256`` (``int:16:256:log``
    or ``intlog:16:256`` for log spacing), ``choice:[128]|[256,128]`` or ``choice:adam|sgd``
    (each value JSON when it parses, else a string), or JSON: a list of choices or a dict as
    written by ``to_dict``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{name}: empty specification")
    spec = spec.strip()
    if spec[0] in "[{":
        return dimension_from_dict(loads(spec, name), name)
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "choice":
        if not rest.strip():
            raise ValueError(f"{name}: give at least one choice (the list is empty)")
        return Choice([_parse_value(v, name) for v in rest.split("|")], name=name)
    if kind in ("loguniform", "log", "uniform", "int", "intlog"):
        parts = [p.strip() for p in rest.split(":")]
        log = kind == "intlog"
        if kind == "int" and len(parts) == 3 and parts[2].lower() == "log":
            parts, log = parts[:2], True
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{name}: write {kind}:LOW:HIGH, got {spec!r}")
        try:
            low, high = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name}: LOW and HIGH must be numbers in {spec!r}") from None
        if kind in ("int", "intlog"):
            return IntRange(low, high, log=log, name=name)
        return (Uniform if kind == "uniform" else LogUniform)(low, high, name=name)
    raise ValueError(
        f"{name}: unknown specification {spec!r}; use loguniform:LOW:HIGH, "
        "uniform:LOW:HIGH, int:LOW:HIGH[:log], choice:A|B|... or JSON"
    )


# --------------------------------------------------------------------------------- the space
class SearchSpace:
    """The searched hyperparameters: ``{NeuralNetwork parameter name: Dimension}``.

    Values may also be given as ``to_dict`` dicts or plain lists (choices). Unknown names,
    ``epochs`` and ``warm_start`` (set by the search itself) are refused with a ``ValueError``.
    """

    def __init__(self, dimensions: Mapping[str, Any] | None = None, **more: Any):
        dims = dict(dimensions or {})
        dims.update(more)
        if not dims:
            raise ValueError(
                "the search space is empty: give at least one hyperparameter to search"
            )
        known = set(PARAMS)
        self.dimensions: dict[str, Dimension] = {}
        for name, dim in dims.items():
            if name not in known:
                raise ValueError(
                    f"{name!r} is not a hyperparameter of NeuralNetwork; use one of "
                    f"{', '.join(sorted(known - set(FORBIDDEN_PARAMS)))}"
                )
            if name in FORBIDDEN_PARAMS:
                raise ValueError(f"{name!r} cannot be searched: {FORBIDDEN_PARAMS[name]}")
            if isinstance(dim, Dimension):
                dim = copy.deepcopy(dim)._named(name)
            else:
                dim = dimension_from_dict(dim, name)
            self.dimensions[name] = dim

    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    def __iter__(self):
        return iter(self.dimensions.items())

    def __len__(self) -> int:
        return len(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        return self.dimensions[name]

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, SearchSpace) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"SearchSpace({self.dimensions!r})"

    def to_dict(self) -> dict[str, dict]:
        return {name: dim.to_dict() for name, dim in self.dimensions.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a search space is a JSON object {{name: dimension}}, got {type(data).__name__}"
            )
        return cls(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        return cls.from_dict(loads(text, "the search space"))

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {name: dim.sample(rng) for name, dim in self.dimensions.items()}

    def grid(self, n: int = 3) -> list[dict[str, Any]]:
        """Every combination of the choices and ``n`` points per range (first name varies
        slowest); refused above MAX_TRIALS combinations (see :meth:`iter_grid`)."""
        size = self.grid_size(n)
        if size > MAX_TRIALS:
            raise ValueError(
                f"the grid has {size:,} points; a search runs at most {MAX_TRIALS:,} trials "
                "(use fewer grid points, or sample the grid with a number of trials)"
            )
        return list(self.iter_grid(n))

    def _axes(self, n: Any) -> list[tuple[str, list]]:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"grid points per range must be a whole number >= 1, got {n!r}")
        if n > MAX_GRID_POINTS:
            raise ValueError(
                f"grid points per range: {n:,} is more than the {MAX_GRID_POINTS:,} allowed"
            )
        return [(name, dim.grid(int(n))) for name, dim in self.dimensions.items()]

    def grid_size(self, n: int = 3) -> int:
        """Number of grid combinations, counted without building them."""
        return math.prod(len(values) for _, values in self._axes(n))

    def grid_point(self, index: int, n: int = 3, axes: list | None = None) -> dict[str, Any]:
        """Combination number ``index`` of :meth:`iter_grid`, built alone (mixed radix)."""
        axes = self._axes(n) if axes is None else axes
        point: dict[str, Any] = {}
        for name, values in reversed(axes):
            index, digit = divmod(int(index), len(values))
            point[name] = copy.deepcopy(values[digit])
        return {name: point[name] for name, _ in axes}

    def iter_grid(self, n: int = 3, indices: Iterable[int] | None = None) -> Iterator[dict]:
        """The grid's combinations one at a time (all of them, or those at ``indices``)."""
        axes = self._axes(n)
        for index in range(math.prod(len(v) for _, v in axes)) if indices is None else indices:
            yield self.grid_point(index, n, axes)

    def check(self, base_config: Mapping[str, Any] | None = None) -> None:
        """Make sure NeuralNetwork accepts every choice and both ends of every range together
        with ``base_config`` (``ValueError`` naming the parameter otherwise)."""
        base = _check_base(base_config)
        fixed = {k: v for k, v in base.items() if k not in self.dimensions}
        try:  # the fixed settings alone first: a fault there is not the searched parameter's
            configure(fixed)
        except ValueError as exc:
            raise ValueError(f"a fixed setting is not accepted by the network: {exc}") from None
        for name, dim in self.dimensions.items():
            for value in dim.values_to_check():
                try:  # with the fixed settings only: the other searched values vary anyway
                    configure({**fixed, name: value})
                except ValueError as exc:
                    raise ValueError(
                        f"{name}: the value {value!r} is not accepted by the network ({exc})"
                    ) from None


def _check_base(base_config: Mapping[str, Any] | None) -> dict[str, Any]:
    base = dict(base_config or {})
    known = set(PARAMS)
    unknown = sorted(set(base) - known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} in the base config; "
            f"NeuralNetwork takes {', '.join(sorted(known))}"
        )
    return {k: _plain(v) for k, v in base.items()}


def _as_space(space: SearchSpace | Mapping[str, Any]) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace(space)


def _check_n_jobs(n_jobs: Any) -> int:
    """``n_jobs`` as joblib takes it, bounded by this machine's cores (-1: all of them)."""
    cores = os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero whole number (-1: all cores), got {n_jobs!r}")
    if n_jobs > cores or n_jobs < -1:
        raise ValueError(
            f"n_jobs {n_jobs}: this machine has {cores} core(s); use 1 to {cores}, or -1 for all"
        )
    return int(n_jobs)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def grid_search(space: SearchSpace | Mapping[str, Any], n: int = 3) -> list[dict[str, Any]]:
    """Trial configurations of a grid search: every combination of the choices and ``n``
    points per range (log-spaced for log ranges)."""
    return _as_space(space).grid(n)


def random_search(
    space: SearchSpace | Mapping[str, Any], n_trials: int, seed: int | None = 0
) -> list[dict[str, Any]]:
    """``n_trials`` configurations drawn from ``space`` with ``np.random.default_rng(seed)``."""
    space = _as_space(space)
    n_trials = _positive_int("n_trials", n_trials)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n_trials)]


def trial_seed(seed: int | None, index: int) -> int:
    """The ``random_state`` of trial ``index`` of a search seeded with ``seed``."""
    entropy = [0 if seed is None else int(seed), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % (2**31 - 1))


def halving_schedule(n_trials: int, epochs: int, eta: int = 3) -> list[tuple[int, int]]:
    """Successive-halving rungs as ``[(trials in the rung, total epochs after it), ...]``.

    The last rung reaches ``epochs``; every earlier rung has ``1/eta`` of the next one's epochs
    (at least 1) and ``eta`` times as many trials. One rung means no halving.
    """
    n_trials, epochs = _positive_int("n_trials", n_trials), _positive_int("epochs", epochs)
    if isinstance(eta, bool) or not isinstance(eta, (int, np.integer)) or eta < 2:
        raise ValueError(f"eta must be a whole number >= 2, got {eta!r}")
    by_trials = 0
    while eta ** (by_trials + 1) <= n_trials:
        by_trials += 1
    by_epochs = 0
    while eta**by_epochs < epochs:
        by_epochs += 1
    rungs = min(by_trials, by_epochs)
    schedule: list[tuple[int, int]] = []
    n = n_trials
    for k in range(rungs, -1, -1):
        total = max(1, int(round(epochs / eta**k)))
        if schedule and total <= schedule[-1][1]:
            continue
        schedule.append((n, total))
        n = max(1, n // eta)
    if schedule[-1][1] != epochs:
        schedule[-1] = (schedule[-1][0], epochs)
    return schedule


# --------------------------------------------------------------------------------- results
@dataclasses.dataclass
class Trial:
    """One trial of a search. ``params`` are the searched values, ``config`` the full
    ``NeuralNetwork`` keyword arguments (``epochs`` = the budget ``epochs_per_trial``; the
    epochs it actually trained, fewer when pruned, are ``epochs``)."""

    index: int
    params: dict
    config: dict
    status: str = "running"
    val_accuracy: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    rung: int = 0
    run_id: int | None = None
    stop_reason: str | None = None
    message: str = ""
    history: dict = dataclasses.field(default_factory=dict)

    def to_dict(self, history: bool = False) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not history:
            out.pop("history")
        return out


@dataclasses.dataclass
class SearchResult:
    trials: list[Trial]
    best_config: dict | None
    best_val_accuracy: float | None
    best_trial: int | None
    status: str  # "finished", "cancelled", "timeout"
    search_id: int | None
    space: dict
    strategy: str
    seconds: float
    message: str = ""

    @property
    def best_params(self) -> dict | None:
        return None if self.best_trial is None else dict(self.trials[self.best_trial].params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "search_id": self.search_id,
            "strategy": self.strategy,
            "space": self.space,
            "seconds": round(self.seconds, 3),
            "best_trial": self.best_trial,
            "best_val_accuracy": self.best_val_accuracy,
            "best_params": self.best_params,
            "best_config": self.best_config,
            "message": self.message,
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclasses.dataclass
class SearchEvent:
    """What ``run_search``'s callback receives; a truthy return cancels the search.

    ``kind``: ``search_started``, ``trial_started``, ``trial_epoch`` (only when trials run in
    this process, ``n_jobs=1``; cancelling there stops the running trial too),
    ``trial_finished`` (after each rung: ``trial.status`` is ``running`` when it may go on),
    ``rung_finished``, ``search_finished``. ``trials`` is a snapshot of every trial as dicts.
    """

    kind: str
    trial: dict | None
    trials: list[dict]
    rung: int
    n_rungs: int
    n_trials: int
    elapsed: float
    best_val_accuracy: float | None
    epoch: int | None = None
    val_accuracy: float | None = None
    message: str = ""


# --------------------------------------------------------------------------------- workers
def _limit_threads(n: int | None):
    if not n:
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional on cluster workers
        return None
    return threadpool_limits(limits=n)


def _train_trial(
    config: dict,
    model: Any,
    epochs: int,
    X_train,
    y_train,
    X_val,
    y_val,
    max_threads: int | None = None,
    callback: Callable | None = None,
) -> dict:
    """Train one trial for ``epochs`` more epochs (a new model, or ``model`` continued).
    Runs in a joblib worker: returns plain values and the model; never raises."""
    start = time.perf_counter()
    limiter = _limit_threads(max_threads)
    try:
        if model is None:
            model = NeuralNetwork(**config)
        model.set_params(epochs=int(epochs), warm_start=True)
        first = len(model.history_["epoch"]) if hasattr(model, "history_") else 0
        model.fit(X_train, y_train, X_val, y_val, callback=callback)
        hist = model.history_
        new = {
            k: list(hist.get(k, []))[first:]
            for k in (
                "epoch",
                "loss",
                "train_accuracy",
                "val_loss",
                "val_accuracy",
                "learning_rate",
                "seconds",
            )
        }
        vals = [v for v in hist.get("val_accuracy", []) if v is not None]
        return {
            "ok": True,
            "model": model,
            "history": new,
            "val_accuracy": float(vals[-1]) if vals else None,
            "epochs": int(model.n_iter_),
            "stop_reason": model.stop_reason_,
            "message": model.stop_message_ or "",
            "seconds": time.perf_counter() - start,
        }
    except Exception as exc:  # noqa: BLE001 - a failed trial is a result, not a crash
        return {
            "ok": False,
            "model": None,
            "history": {},
            "val_accuracy": None,
            "epochs": int(getattr(model, "n_iter_", 0) or 0),
            "stop_reason": None,
            "message": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - start,
        }
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _check_backend(backend: str | None) -> None:
    if backend in (None, "loky", "threading", "multiprocessing", "sequential"):
        return
    if backend == "dask":
        if importlib.util.find_spec("distributed") is None:
            raise ValueError(
                "backend='dask' needs dask.distributed (pip install "
                "'dask[distributed]') and a connected Client, e.g. "
                "Client('tcp://scheduler:8786')"
            )
        return
    if backend == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ValueError(
                "backend='ray' needs ray (pip install 'ray[default]') and ray.init(address='auto')"
            )
        from joblib.parallel import BACKENDS

        if "ray" not in BACKENDS:
            from ray.util.joblib import register_ray

            register_ray()
        return
    from joblib.parallel import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(
            f"backend={backend!r} is not a joblib backend; use loky (default), "
            f"threading, dask or ray"
        )


# --------------------------------------------------------------------------------- the search
class _Recorder:
    """Writes trials to the run store from the parent process; a database error never stops the
    search (it is kept in ``errors``)."""

    def __init__(self, store, data_config):
        self.store = store
        self.data_config = data_config
        self.errors: list[str] = []
        self.search_id: int | None = None

    def _do(self, fn, *args, **kwargs):
        if self.store is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return None

    def start_search(self, record: dict, name: str | None):
        self.search_id = self._do(lambda: self.store.start_search(record, name=name))
        return self.search_id

    def run_config(self, trial: Trial) -> dict:
        model = json_params(NeuralNetwork(**trial.config).get_params())
        return {
            "model": model,
            "data": self.data_config,
            "search": {"search_id": self.search_id, "trial": trial.index, "params": trial.params},
        }

    def start_trial(self, trial: Trial, name: str) -> None:
        if trial.run_id is None:
            trial.run_id = self._do(
                lambda: self.store.start_run(
                    self.run_config(trial),
                    name=name,
                    source="tune",
                    seed=trial.config.get("random_state"),
                    search_id=self.search_id,
                )
            )

    def log(self, trial: Trial, history: dict) -> None:
        if trial.run_id is None:
            return
        keys = ("loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
        for i, epoch in enumerate(history.get("epoch", [])):
            values = {k: history[k][i] for k in keys if i < len(history.get(k, []))}
            self._do(self.store.log_epoch, trial.run_id, int(epoch), **values)

    def finish_trial(self, trial: Trial) -> None:
        if trial.run_id is None:
            return
        status = {
            "finished": "finished",
            "pruned": "stopped",
            "cancelled": "stopped",
            "failed": "failed",
            "diverged": "diverged",
        }.get(trial.status, "finished")
        metrics = {
            "train_accuracy": (trial.history.get("train_accuracy") or [None])[-1],
            "loss": (trial.history.get("loss") or [None])[-1],
            "val_loss": (trial.history.get("val_loss") or [None])[-1],
            "val_accuracy": trial.val_accuracy,
            "epochs": trial.epochs,
            "trial": trial.index,
            "train_seconds": round(trial.seconds, 3),
        }
        metrics = {k: v for k, v in metrics.items() if v is not None}
        message = trial.message or None
        if trial.status == "pruned":
            message = f"pruned by successive halving after {trial.epochs} epoch(s)"
        self._do(
            lambda: self.store.finish_run(trial.run_id, status, metrics=metrics, message=message)
        )


def run_search(
    base_config: Mapping[str, Any] | None,
    space: SearchSpace | Mapping[str, Any],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    strategy: str = "random",
    n_trials: int | None = 10,
    epochs_per_trial: int = 3,
    halving: bool = True,
    eta: int = 3,
    grid_points: int = 3,
    n_jobs: int = 1,
    backend: str | None = None,
    seed: int | None = 0,
    store: Any = None,
    name: str | None = None,
    data_config: Mapping[str, Any] | None = None,
    callback: Callable[[SearchEvent], Any] | None = None,
    timeout: float | None = None,
) -> SearchResult:
    """Search ``space`` around ``base_config`` (NeuralNetwork keyword arguments).

    ``strategy="random"`` draws ``n_trials`` configurations; ``"grid"`` takes the whole grid
    (``grid_points`` per range), or ``n_trials`` of it picked at random (seeded) when smaller.
    ``epochs_per_trial`` is the budget: the epochs of a trial that is never pruned. ``halving``:
    successive halving with ``eta`` (see :func:`halving_schedule`). ``n_jobs``/``backend``:
    joblib. ``store``: an ``nn.runs.RunStore`` (or ``None``: nothing recorded); ``name`` names
    the search; ``data_config`` is recorded with every trial (e.g. split settings). ``callback``
    gets :class:`SearchEvent`s; a truthy return cancels. ``timeout`` (seconds) stops launching
    trials once exceeded. Bad settings raise ``ValueError`` before anything trains.
    """
    started = time.perf_counter()
    space = _as_space(space)
    base = _check_base(base_config)
    base.pop("warm_start", None)
    n_trials = _check_budget(strategy, n_trials, n_jobs, timeout, halving)
    epochs_per_trial = _positive_int("epochs_per_trial (budget)", epochs_per_trial)
    _check_backend(backend)
    space.check(base)
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    X_val, y_val = np.asarray(X_val), np.asarray(y_val)
    if X_val.shape[0] == 0:
        raise ValueError("the validation set is empty: a search scores trials on it")

    trials = _make_trials(
        base, _trial_params(space, strategy, n_trials, grid_points, seed), epochs_per_trial, seed
    )
    schedule = (
        halving_schedule(len(trials), epochs_per_trial, eta)
        if halving
        else [(len(trials), epochs_per_trial)]
    )
    record = {
        "space": space.to_dict(),
        "strategy": strategy,
        "n_trials": len(trials),
        "epochs_per_trial": epochs_per_trial,
        "halving": halving,
        "eta": eta,
        "schedule": schedule,
        "seed": seed,
        "n_jobs": int(n_jobs),
        "backend": backend,
        "base_config": base,
        "data": dict(data_config or {}),
        "n_train": int(X_train.shape[0]),
        "n_val": int(X_val.shape[0]),
    }
    search = _Search(
        trials,
        schedule,
        _Recorder(store, dict(data_config or {})),
        (X_train, y_train, X_val, y_val),
        callback,
        started,
        timeout,
    )
    search.rec.start_search(record, name)
    search.run(n_jobs, backend)
    best = _pick_best(trials)
    search.close(best)
    result = SearchResult(
        trials=trials,
        best_config=_best_config(base, best, epochs_per_trial),
        best_val_accuracy=None if best is None else best.val_accuracy,
        best_trial=None if best is None else best.index,
        status=search.stop_status,
        search_id=search.rec.search_id,
        space=space.to_dict(),
        strategy=strategy,
        seconds=time.perf_counter() - started,
        message="; ".join(filter(None, [search.stop_message, *search.rec.errors])),
    )
    search.emit("search_finished", len(schedule) - 1, message=search.stop_status)
    return result


def _check_budget(
    strategy: str, n_trials: int | None, n_jobs: Any, timeout: Any, halving: Any
) -> int | None:
    """The checked ``n_trials``; ``ValueError`` for a bad strategy or budget setting."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: use one of {', '.join(STRATEGIES)}")
    if n_trials is not None:
        n_trials = _positive_int("n_trials", n_trials)
        if n_trials > MAX_TRIALS:
            raise ValueError(f"n_trials {n_trials:,}: a search runs at most {MAX_TRIALS:,} trials")
    elif strategy == "random":
        raise ValueError("n_trials must be a whole number >= 1 for a random search")
    _check_n_jobs(n_jobs)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not isinstance(halving, bool):
        raise ValueError(f"halving must be True or False, got {halving!r}")
    return n_trials


def _trial_params(
    space: SearchSpace, strategy: str, n_trials: int | None, grid_points: int, seed: int | None
) -> Iterable[dict]:
    """The trial configurations, all decided in the parent. A grid is counted, not built:
    sampled, only the ``n_trials`` points picked are made (Floyd's sampling of their indices
    inside ``Generator.choice``); whole, it is refused above MAX_TRIALS points."""
    if strategy != "grid":
        return random_search(space, n_trials, seed)
    size = space.grid_size(grid_points)
    if n_trials is not None and n_trials < size:
        keep = _distinct_indices(np.random.default_rng(seed), size, n_trials)
        return space.iter_grid(grid_points, keep)
    return space.grid(grid_points)


def _distinct_indices(rng: np.random.Generator, size: int, count: int) -> list[int]:
    """``count`` distinct grid indices below ``size``, in order. A grid beyond NumPy's int64
    (eight ranges of 1,000 points have 10^24) gets its indices as Python integers made from
    random bytes, a draw at or above ``size`` drawn again."""
    if size < 2**62:
        return [int(i) for i in np.sort(rng.choice(size, count, replace=False))]
    n_bytes = (size.bit_length() + 7) // 8
    mask = (1 << size.bit_length()) - 1
    picked: set[int] = set()
    while len(picked) < count:
        index = int.from_bytes(rng.bytes(n_bytes), "little") & mask
        if index < size:
            picked.add(index)
    return sorted(picked)


def _make_trials(
    base: dict, params_list: Iterable[dict], epochs_per_trial: int, seed: int | None
) -> list[Trial]:
    trials = []
    for i, params in enumerate(params_list):
        config = {**copy.deepcopy(base), **copy.deepcopy(params), "epochs": epochs_per_trial}
        if "random_state" not in params and base.get("random_state") is None:
            config["random_state"] = trial_seed(seed, i)
        trials.append(Trial(index=i, params=params, config=config))
    return trials


def _best_config(base: dict, best: Trial | None, epochs_per_trial: int) -> dict | None:
    if best is None:
        return None
    config = {**copy.deepcopy(base), **copy.deepcopy(best.params)}
    config.setdefault("epochs", epochs_per_trial)
    if config.get("random_state") is None:
        config["random_state"] = best.config.get("random_state")
    return config


def _parallel_context(n_jobs: int, backend: str | None):
    """joblib's configuration for ``n_jobs`` (one BLAS thread per worker where the backend
    allows it), or a null context for a sequential search."""
    if n_jobs == 1:
        return contextlib.nullcontext()
    import joblib
    from joblib.parallel import BACKENDS

    cfg_kwargs: dict[str, Any] = {"backend": backend or "loky"}
    backend_cls = BACKENDS.get(cfg_kwargs["backend"])
    if backend_cls is not None and getattr(backend_cls, "supports_inner_max_num_threads", False):
        cfg_kwargs["inner_max_num_threads"] = 1
    return joblib.parallel_config(**cfg_kwargs)


class _Search:
    """One search's rungs: launches trials in batches, settles their outcomes, promotes the best
    1/eta to the next rung, and keeps the stop status."""

    def __init__(self, trials, schedule, rec, data, callback, started, timeout):
        self.trials: list[Trial] = trials
        self.schedule = schedule
        self.n_rungs = len(schedule)
        self.rec: _Recorder = rec
        self.data = data
        self.callback = callback
        self.started = started
        self.timeout = timeout
        self.models: dict[int, Any] = {}
        self.cancelled = False
        self.stop_status, self.stop_message = "finished", ""

    # -- events
    def best_so_far(self) -> float | None:
        vals = [t.val_accuracy for t in self.trials if t.val_accuracy is not None]
        return max(vals) if vals else None

    def emit(self, kind: str, rung: int, trial: Trial | None = None, **extra) -> bool:
        if self.callback is None:
            return False
        event = SearchEvent(
            kind=kind,
            trial=None if trial is None else trial.to_dict(),
            trials=[t.to_dict() for t in self.trials],
            rung=rung,
            n_rungs=self.n_rungs,
            n_trials=len(self.trials),
            elapsed=time.perf_counter() - self.started,
            best_val_accuracy=self.best_so_far(),
            **extra,
        )
        return bool(self.callback(event))

    def _note(self, cancel: bool) -> None:
        if cancel:
            self.cancelled = True

    # -- the rungs
    def run(self, n_jobs: int, backend: str | None) -> None:
        self._note(self.emit("search_started", 0))
        try:
            with _parallel_context(n_jobs, backend):
                if n_jobs == 1:
                    self._rungs(None, 1)
                else:
                    import joblib

                    with joblib.Parallel(n_jobs=n_jobs) as pool:
                        self._rungs(pool, max(1, joblib.effective_n_jobs(n_jobs)))
        except BaseException:
            self._abort()
            raise
        if self.cancelled and self.stop_status == "finished":
            self.stop_status, self.stop_message = "cancelled", "cancelled on request"
        for t in self.trials:
            if t.status == "running":  # never launched, or waiting for a rung that did not come
                t.status = "cancelled"
                if t.run_id is not None:
                    t.message = t.message or self.stop_message
                    self.rec.finish_trial(t)

    def _rungs(self, pool, batch_size: int) -> None:
        alive = list(self.trials)
        done_epochs = 0
        for rung, (_, total) in enumerate(self.schedule):
            if self.cancelled:
                return
            queue = list(alive)
            while queue and not self.cancelled:
                if self._timed_out():
                    return
                batch, queue = queue[:batch_size], queue[batch_size:]
                self._run_batch(pool, rung, total - done_epochs, batch)
            if self.cancelled:
                return
            done_epochs = total
            if rung < self.n_rungs - 1:
                alive = self._promote(rung, alive)

    def _timed_out(self) -> bool:
        if self.timeout is None or time.perf_counter() - self.started <= self.timeout:
            return False
        self.cancelled = True
        self.stop_status = "timeout"
        self.stop_message = f"timed out after {self.timeout:g} s"
        return True

    def _run_batch(self, pool, rung: int, step: int, batch: list[Trial]) -> None:
        search_id = self.rec.search_id
        for t in batch:
            t.rung = rung
            t.status = "running"
            self.rec.start_trial(t, f"search {search_id or ''} trial {t.index}".strip())
            self._note(self.emit("trial_started", rung, t))
        if self.cancelled:
            return
        if pool is not None:
            outs = self._train_parallel(pool, step, batch)
        else:
            outs = self._train_one(rung, step, batch[0])
        for t, out in zip(batch, outs, strict=True):
            self._settle(rung, t, out)

    def _train_parallel(self, pool, step: int, batch: list[Trial]) -> list[dict]:
        import joblib

        return pool(
            joblib.delayed(_train_trial)(t.config, self.models.get(t.index), step, *self.data, 1)
            for t in batch
        )

    def _train_one(self, rung: int, step: int, trial: Trial) -> list[dict]:
        stop = {"requested": False}

        def fit_callback(event):
            if self.timeout is not None and time.perf_counter() - self.started > self.timeout:
                stop["requested"] = stop["timeout"] = True  # within a trial too
            if event.kind == "epoch" and self.emit(
                "trial_epoch", rung, trial, epoch=event.epoch, val_accuracy=event.val_accuracy
            ):
                stop["requested"] = True
            return stop["requested"]

        out = _train_trial(
            trial.config,
            self.models.get(trial.index),
            step,
            *self.data,
            None,
            fit_callback if self.callback or self.timeout is not None else None,
        )
        self._note(stop["requested"])
        if stop.get("timeout"):
            self._timed_out()
        return [out]

    def _settle(self, rung: int, t: Trial, out: dict) -> None:
        _apply(t, out, self.models)
        self.rec.log(t, out["history"])
        if not out["ok"]:
            t.status = "failed"
        elif self.cancelled and out["stop_reason"] == "callback":
            t.status = "cancelled"
        elif out["stop_reason"] == "diverged":
            t.status = "diverged"  # its message says why (the loss that was not finite)
        elif rung == self.n_rungs - 1:
            t.status = "finished"
        if t.status != "running":
            self.models.pop(t.index, None)
            self.rec.finish_trial(t)
        self._note(self.emit("trial_finished", rung, t))

    def _promote(self, rung: int, alive: list[Trial]) -> list[Trial]:
        """The best 1/eta go on to the next rung; the rest are pruned."""
        ranked = sorted(
            (t for t in alive if t.status == "running"),
            key=lambda t: (-(t.val_accuracy or 0.0), t.index),
        )
        keep = ranked[: self.schedule[rung + 1][0]]
        for t in ranked[len(keep) :]:
            t.status = "pruned"
            self.models.pop(t.index, None)
            self.rec.finish_trial(t)
        self._note(
            self.emit("rung_finished", rung, message=f"kept trials {[t.index for t in keep]}")
        )
        return keep

    # -- the end
    def _abort(self) -> None:
        for t in self.trials:
            if t.status == "running":
                t.status = "cancelled"
                t.message = t.message or "the search failed"
                self.rec.finish_trial(t)
        if self.rec.search_id is not None:
            self.rec._do(
                self.rec.store.finish_search,
                self.rec.search_id,
                "failed",
                message="the search raised an error",
            )

    def close(self, best: Trial | None) -> None:
        """Record the search's status, best run and message."""
        if self.rec.search_id is None:
            return
        status = {"finished": "finished"}.get(self.stop_status, "stopped")
        text = self.stop_message or (
            f"best trial {best.index}: val accuracy {best.val_accuracy:.4f}"
            if best is not None and best.val_accuracy is not None
            else "no trial finished"
        )
        self.rec._do(
            self.rec.store.finish_search,
            self.rec.search_id,
            status,
            best_run_id=None if best is None else best.run_id,
            message=text,
        )


def _apply(t: Trial, out: dict, models: dict) -> None:
    t.seconds += float(out["seconds"])
    t.epochs = int(out["epochs"])
    if out["val_accuracy"] is not None:
        t.val_accuracy = float(out["val_accuracy"])
    t.stop_reason = out["stop_reason"]
    t.message = out["message"]
    for key, values in out["history"].items():
        t.history.setdefault(key, []).extend(values)
    if out["model"] is not None:
        models[t.index] = out["model"]


def _pick_best(trials: list[Trial]) -> Trial | None:
    """The finished trial with the best validation accuracy (ties: lower index); if none
    finished (cancelled early), the best of those that have a score."""
    pool = [t for t in trials if t.status == "finished" and t.val_accuracy is not None]
    if not pool:
        pool = [
            t
            for t in trials
            if t.status not in ("failed", "diverged") and t.val_accuracy is not None
        ]
    if not pool:
        return None
    return min(pool, key=lambda t: (-t.val_accuracy, t.index))
