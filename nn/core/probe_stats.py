"""The statistics the inside look records of an array: quantiles and histograms (of a fixed
random sample of a large array), the spread across units, which units fire, norms, rounding.

The statistics of all layers are computed together: :class:`SampleMatrix` sorts one matrix of
every sample, :class:`RowBlocks` makes one pass over one buffer of every spread's rows. On small
arrays the cost of NumPy is its calls, so a few calls over many values beat many small ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "HIST_BINS",
    "QUANTILES",
    "MAX_SAMPLE",
    "SAMPLE_SEED",
    "MAX_ROWS",
    "rounded_value",
    "rounded",
    "draw_positions",
    "SampleMatrix",
    "distributions",
    "distribution",
    "RowBlocks",
    "fired_units",
    "norm_of",
]

HIST_BINS = 24
QUANTILES = (0.0, 0.02, 0.16, 0.5, 0.84, 0.98, 1.0)
"""The quantile bands shown: the range, about two and one standard deviations, the median."""
MAX_SAMPLE = 4096
"""Values taken from a large array for its quantiles and histogram: a fixed random sample (see
:func:`draw_positions`), the same positions every epoch; a smaller array is used whole. The
quantiles and histogram of a larger array are therefore estimates from 4,096 of its values."""
SAMPLE_SEED = 0
"""Seed of the positions sampled from large arrays, drawn once per recorder (once per fit)."""
MAX_ROWS = 256
"""Positions (samples, or samples x pixels of a feature map, or a weight's inputs) the spread
across units averages, evenly spaced."""


def rounded_value(value: float) -> float | None:
    """``value`` rounded to 6 significant digits, or None when it is not finite."""
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


_EXACT_POWER = 22
"""10**k is exact in float64 for 0 <= k <= 22."""


def rounded(values: Any) -> list[float | None]:
    """Every value rounded to 6 significant digits (``None`` when not finite), as
    :func:`rounded_value` does one by one, for a whole array in a few NumPy calls: scaled by an
    exact power of ten, rounded half to even, scaled back. Zero, non-finite values and those whose
    scale is no exact power of ten (beyond 1e+-22) go through :func:`rounded_value`; at a near
    tie the vectorised rounding may differ from the string's in the sixth digit."""
    v = np.asarray(values, np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        shift = 5.0 - np.floor(np.log10(np.abs(v)))  # decimals that keep 6 significant digits
        scale = 10.0 ** np.minimum(np.abs(shift), _EXACT_POWER)
        out = np.where(shift >= 0, np.rint(v * scale) / scale, np.rint(v / scale) * scale)
        odd = np.flatnonzero(~(np.abs(shift) <= _EXACT_POWER))
    values_out: list[float | None] = out.tolist()
    for i in odd.tolist():
        values_out[i] = rounded_value(v[i])
    return values_out


def draw_positions(rng: np.random.Generator, size: int) -> np.ndarray | None:
    """:data:`MAX_SAMPLE` positions (sorted, without repeats) of an array of ``size`` values, or
    ``None`` when it has no more than that: a fixed random sample, free of the aliasing an evenly
    spaced one has with a weight's layout (every 98th of a 3136x128 weight is only even units)."""
    if size <= MAX_SAMPLE:
        return None
    return np.sort(rng.choice(size, MAX_SAMPLE, replace=False))


def _comparable(edges: np.ndarray, dtype) -> np.ndarray:
    """``edges`` (float64) as values of ``dtype`` that split its values alike: for a float32
    value v, ``v < e`` exactly when ``v < c`` with c the smallest float32 not below e."""
    if np.dtype(dtype) == np.float64:
        return edges
    cast = edges.astype(dtype)
    below = cast < edges
    cast[below] = np.nextafter(cast[below], np.asarray(np.inf, dtype))
    return cast


class SampleMatrix:
    """Samples of several arrays as the rows of one NaN-padded matrix, summarised together by
    :meth:`distributions`; made once, filled again every epoch (a matrix made anew every epoch
    costs page faults that cost more than the arithmetic)."""

    def __init__(self, sizes: Sequence[int], dtype):
        self.sizes = np.array([int(s) for s in sizes], np.intp)
        width = max([1, *self.sizes.tolist()])
        dtype = np.result_type(dtype, np.float32)
        self.values = np.full((len(self.sizes), width), np.nan, dtype)
        self.finite = np.empty(self.values.shape, bool)
        self._total = int(self.sizes.sum())
        self._plan_key: bytes | None = None
        self._plan_arrays: tuple[np.ndarray, np.ndarray] | None = None

    def put(self, row: int, values: np.ndarray, positions: np.ndarray | None) -> None:
        """Row ``row``: all of ``values`` (as many as its size), or those at ``positions``."""
        flat = values.reshape(-1)
        target = self.values[row, : self.sizes[row]]
        if positions is None:
            target[...] = flat
        elif flat.dtype == target.dtype:
            np.take(flat, positions, out=target, mode="clip")  # positions are in range
        else:
            target[...] = flat[positions]

    def _plan(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows of ``counts`` sorted values: the flat positions in the matrix of each row's
        two neighbours of every quantile, then of its smallest and largest value, and the
        quantiles' interpolation weights (kept for the counts of the last call)."""
        key = counts.tobytes()
        if self._plan_key != key:
            last = np.maximum(counts - 1, 0)[:, None]
            position = np.asarray(QUANTILES)[None, :] * last
            below = np.floor(position).astype(np.intp)
            above = np.minimum(below + 1, last)
            row = np.arange(len(counts))[:, None] * self.values.shape[1]
            picks = np.concatenate([below, above, np.zeros_like(last), last], axis=1) + row
            self._plan_arrays = (picks.reshape(-1), position - below)
            self._plan_key = key
        return self._plan_arrays  # type: ignore[return-value]

    def distributions(self) -> list[tuple[list, dict[str, Any]]]:
        """For every row, quantiles (:data:`QUANTILES`, interpolated linearly as
        ``np.quantile`` does) and a histogram ``{"lo", "hi", "counts"}`` of its finite values:
        :data:`HIST_BINS` equal bins ``[edge_i, edge_i+1)`` from the smallest to the largest
        value (edges as ``np.linspace`` makes them), the last one closed. A row with no finite
        value has ``None`` quantiles and no counts. One sort of the whole matrix (non-finite
        values made NaN, which sorts last), then a few calls for all rows."""
        matrix, finite = self.values, self.finite
        np.isfinite(matrix, out=finite)
        counts = self.sizes
        if np.count_nonzero(finite) != self._total:  # some values are not finite
            counts = finite.sum(axis=1)
            np.logical_not(finite, out=finite)
            np.copyto(matrix, np.nan, where=finite)
        matrix.sort(axis=1)
        picks, weights = self._plan(counts)
        q = len(QUANTILES)
        chosen = matrix.reshape(-1).take(picks).astype(np.float64).reshape(len(counts), -1)
        low, lo, hi = chosen[:, :q], chosen[:, 2 * q], chosen[:, 2 * q + 1]
        quantiles = low + weights * (chosen[:, q : 2 * q] - low)
        hi = np.where(hi <= lo, lo + np.maximum(np.abs(lo), 1.0) * 1e-6, hi)
        edges = _INNER_EDGES * ((hi - lo) / HIST_BINS)[:, None] + lo[:, None]
        edges = _comparable(edges, matrix.dtype)
        ends = np.zeros((len(counts), HIST_BINS + 1), np.intp)
        ends[:, -1] = counts
        sizes = counts.tolist()
        for i, n in enumerate(sizes):
            if n:
                ends[i, 1:-1] = np.searchsorted(matrix[i, :n], edges[i], side="left")
        bins = (ends[:, 1:] - ends[:, :-1]).tolist()
        numbers = rounded(np.concatenate([quantiles, lo[:, None], hi[:, None]], axis=1))
        out = []
        for i, n in enumerate(sizes):
            if not n:
                out.append(([None] * q, {"lo": None, "hi": None, "counts": []}))
                continue
            row = numbers[i * (q + 2) : (i + 1) * (q + 2)]
            out.append((row[:q], {"lo": row[q], "hi": row[q + 1], "counts": bins[i]}))
        return out


_INNER_EDGES = np.arange(1, HIST_BINS, dtype=np.float64)
"""The inner edges' indices: edge j of a histogram is ``lo + j * (hi - lo) / HIST_BINS``."""


def distributions(samples: Sequence[np.ndarray]) -> list[tuple[list, dict[str, Any]]]:
    """:meth:`SampleMatrix.distributions` of these samples (each at most :data:`MAX_SAMPLE`
    values)."""
    if not samples:
        return []
    matrix = SampleMatrix([s.size for s in samples], np.result_type(*samples))
    for row, values in enumerate(samples):
        matrix.put(row, values, None)
    with np.errstate(all="ignore"):
        return matrix.distributions()


def distribution(values: np.ndarray) -> tuple[list[float | None], dict[str, Any]]:
    """:func:`distributions` of one array (a fixed sample of :data:`MAX_SAMPLE` of its values
    when it has more)."""
    positions = draw_positions(np.random.default_rng(SAMPLE_SEED), values.size)
    flat = values.reshape(-1)
    return distributions([flat if positions is None else flat[positions]])[0]


class RowBlocks:
    """Arrays seen as rows of their last axis (the units), at most :data:`MAX_ROWS` rows of each
    (evenly spaced), laid out in one float64 buffer made once; :meth:`spreads` gives each one's
    standard deviation across the units averaged over the rows, for all of them at once (two
    passes, as ``np.std``: the rows' means, then their squared deviations, each summed by one
    ``np.add.reduceat``)."""

    def __init__(self, shapes: Sequence[tuple[int, int]]):
        """``shapes``: each array's ``(positions, units)``, units at least 2."""
        self.steps = [math.ceil(rows / MAX_ROWS) for rows, _ in shapes]
        self.rows = np.array(
            [-(-rows // step) for (rows, _), step in zip(shapes, self.steps, strict=True)], np.intp
        )
        self.units = np.array([u for _, u in shapes], np.intp)
        sizes = self.rows * self.units
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.intp)
        self.buffer = np.empty(int(self.offsets[-1]), np.float64)
        self.widths = np.repeat(self.units, self.rows)
        self.row_starts = np.concatenate(([0], np.cumsum(self.widths)[:-1])).astype(np.intp)
        self.block_starts = np.concatenate(([0], np.cumsum(self.rows)[:-1])).astype(np.intp)

    def view(self, block: int) -> np.ndarray:
        start, stop = self.offsets[block], self.offsets[block + 1]
        return self.buffer[start:stop].reshape(self.rows[block], self.units[block])

    def put(self, block: int, values: np.ndarray) -> None:
        """Copy the block's rows of ``values`` (any shape ending in its units)."""
        rows = values.reshape(-1, self.units[block])[:: self.steps[block]]
        np.copyto(self.view(block), rows)

    def spreads(self) -> list[float | None]:
        """Every block's spread across units (the buffer holds squared deviations after)."""
        if not len(self.rows):
            return []
        means = np.add.reduceat(self.buffer, self.row_starts) / self.widths
        for block, first in enumerate(self.block_starts.tolist()):
            self.view(block)[...] -= means[first : first + self.rows[block], None]
        np.square(self.buffer, out=self.buffer)
        stds = np.sqrt(np.add.reduceat(self.buffer, self.row_starts) / self.widths)
        return rounded(np.add.reduceat(stds, self.block_starts) / self.rows)


def fired_units(out: np.ndarray) -> np.ndarray:
    """Whether each unit (last axis) is above 0 anywhere in ``out``: ``(out > 0)`` reduced over
    all but the last axis, first across long rows of up to 64 groups (NumPy reduces a long
    contiguous row much faster than many rows of a few units)."""
    units = out.shape[-1]
    positive = np.greater(out, 0)
    groups = math.gcd(positive.size // max(units, 1), 64)
    return positive.reshape(groups, -1).any(axis=0).reshape(-1, units).any(axis=0)


def norm_of(arrays: Sequence[np.ndarray]) -> float:
    """The Euclidean norm of all the arrays' entries (in float64 when float32 overflows)."""
    total = sum(float(np.vdot(a, a)) for a in arrays)
    if math.isinf(total):
        total = sum(float(np.vdot(a, a)) for a in (a.astype(np.float64) for a in arrays))
    return math.sqrt(total)
