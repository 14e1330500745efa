"""The searched hyperparameters: one :class:`Dimension` per ``NeuralNetwork`` hyperparameter
(:class:`LogUniform` for rates and penalties, :class:`Uniform`, :class:`IntRange` with ``log=True``
for sizes, :class:`Choice` for layers, activations, optimizers...) in a :class:`SearchSpace`.

Every dimension validates itself (``ValueError`` naming the parameter) and round-trips through
JSON (``to_dict`` / :func:`dimension_from_dict`), so a search is recorded in the run store and can
be shown again; :func:`parse_dimension` reads the compact command-line form
(``"loguniform:1e-4:1e-1"``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nn.core.bounded_json import JSONSyntaxError, loads
from nn.core.config import configure
from nn.core.limits import MAX_CHOICES, MAX_GRID_POINTS, MAX_TRIALS
from nn.core.params import PARAMS
from nn.core.plain_numbers import plain_float

__all__ = [
    "FORBIDDEN_PARAMS",
    "Choice",
    "Dimension",
    "IntRange",
    "LogUniform",
    "SearchSpace",
    "Uniform",
    "as_space",
    "check_base_config",
    "dimension_from_dict",
    "parse_dimension",
]

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
            low, high = (plain_float(p) for p in parts)
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
        base = check_base_config(base_config)
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


def check_base_config(base_config: Mapping[str, Any] | None) -> dict[str, Any]:
    base = dict(base_config or {})
    known = set(PARAMS)
    unknown = sorted(set(base) - known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} in the base config; "
            f"NeuralNetwork takes {', '.join(sorted(known))}"
        )
    return {k: _plain(v) for k, v in base.items()}


def as_space(space: SearchSpace | Mapping[str, Any]) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace(space)
