"""Stratified, seeded train/validation/test splits."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from nn.core.limits import MAX_SEED
from nn.data.arrays import MNIST, ImageSet, Split, readonly

__all__ = ["SPLITS", "split_dataset"]

#: Split schemes understood by :func:`split_dataset` (for UI select boxes).
SPLITS = ("standard", "80:10:10", "custom")


def _augmenting_path(
    allowed: np.ndarray, extra: np.ndarray, row_need: np.ndarray, col_need: np.ndarray
) -> list[tuple[int, int]] | None:
    """BFS for an alternating path row -> col (+1) -> row (-1) ... ending at a needy column."""
    n_rows, n_cols = allowed.shape
    parent: dict[tuple[str, int], tuple[str, int] | None] = {}
    queue: deque[tuple[str, int]] = deque()
    for r in np.flatnonzero(row_need > 0):
        parent[("r", int(r))] = None
        queue.append(("r", int(r)))
    while queue:
        side, i = queue.popleft()
        if side == "r":
            nxt = [("c", int(c)) for c in np.flatnonzero(allowed[i] & ~extra[i])]
        else:
            if col_need[i] > 0:
                path, node = [], ("c", i)
                while parent[node] is not None:
                    prev = parent[node]
                    path.append((prev[1], node[1]) if prev[0] == "r" else (node[1], prev[1]))
                    node = prev
                return path[::-1]
            nxt = [("r", int(r)) for r in np.flatnonzero(extra[:, i])]
        for node in nxt:
            if node not in parent:
                parent[node] = (side, i)
                queue.append(node)
    return None


def _stratified_counts(class_counts: np.ndarray, part_sizes: Sequence[int]) -> np.ndarray:
    """Integer matrix (classes x parts) with exact row sums (class counts) and column sums
    (part sizes), every cell the floor or ceiling of its proportional share.

    Largest remainders get the spare units first; augmenting paths fix the rare cases where
    greedy handing-out gets stuck (a feasible rounding always exists).
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    sizes = np.asarray(part_sizes, dtype=np.int64)
    total = int(counts.sum())
    alloc, rem = np.divmod(counts[:, None] * sizes[None, :], total)
    row_need = counts - alloc.sum(axis=1)
    col_need = sizes - alloc.sum(axis=0)
    allowed = rem > 0
    extra = np.zeros_like(allowed)
    for flat in np.argsort(-rem, axis=None, kind="stable"):
        r, c = divmod(int(flat), len(sizes))
        if allowed[r, c] and row_need[r] > 0 and col_need[c] > 0:
            extra[r, c] = True
            row_need[r] -= 1
            col_need[c] -= 1
    while row_need.any():
        path = _augmenting_path(allowed, extra, row_need, col_need)
        if path is None:  # impossible by the matrix-rounding theorem
            raise RuntimeError("stratified allocation failed")
        start, end = path[0][0], path[-1][1]
        for k, (r, c) in enumerate(path):
            extra[r, c] = k % 2 == 0  # forward edges are added, backward edges removed
        row_need[start] -= 1
        col_need[end] -= 1
    return alloc + extra


def _stratified_parts(
    y: np.ndarray, sizes: Sequence[int], rng: np.random.Generator
) -> list[np.ndarray]:
    """Random disjoint index arrays of the given sizes, each stratified by ``y``, each shuffled."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    table = _stratified_counts(counts, sizes)
    perm = rng.permutation(len(y))
    by_class = perm[np.argsort(inverse[perm], kind="stable")]  # grouped by class, random within
    part_of = np.repeat(np.tile(np.arange(len(sizes)), len(classes)), table.ravel())
    return [rng.permutation(by_class[part_of == p]) for p in range(len(sizes))]


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r} must be a number in [0, 1)")
    if not 0 <= value < 1:
        raise ValueError(f"{name}={value!r} is outside the allowed range [0, 1)")
    return float(value)


def _parts_to_pool(data: MNIST | ImageSet, scheme: str) -> tuple[list, list]:
    """The image and label arrays a split draws from: both parts of an MNIST, the one part of an
    ImageSet (which the ``standard`` scheme, needing a test part, refuses)."""
    if isinstance(data, MNIST):
        return [data.x_train, data.x_test], [data.y_train, data.y_test]
    if not isinstance(data, ImageSet):
        raise TypeError(f"data must be an MNIST or ImageSet, not {type(data).__name__}")
    if data.y is None:
        raise ValueError("cannot split unlabeled data (y is None)")
    if scheme == "standard":
        raise ValueError(
            "scheme='standard' needs separate train and test parts (an MNIST); "
            "use '80:10:10' or 'custom' for a single-part dataset"
        )
    return [data.x], [data.y]


def split_dataset(
    data: MNIST | ImageSet,
    scheme: str = "standard",
    seed: int | None = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    train_size: int | None = None,
) -> Split:
    """Stratified, seeded train/validation/test split (read-only copies).

    - ``"standard"``: 10,000 validation images carved from the 60,000 training images, the rest
      (50,000) for training; the official test set stays the test set. Needs :class:`MNIST`.
    - ``"80:10:10"``: all images pooled (train + test) and split 80/10/10.
    - ``"custom"``: all images pooled, ``val_fraction`` and ``test_fraction`` of them (each in
      [0, 1), sum < 1) for validation and test, the rest for training. The fractions are ignored
      by the other schemes.

    ``train_size`` takes a stratified subset of the training part (validation and test do not
    change with it). Every class gets the floor or ceiling of its proportional share and the part
    sizes are exact. The same ``seed`` gives the same split.
    """
    if scheme not in SPLITS:
        raise ValueError(f"scheme={scheme!r} is not allowed; choose one of {SPLITS}")
    if seed is not None and (
        isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or not 0 <= seed <= MAX_SEED
    ):
        raise ValueError(f"split seed {seed!r}: use a whole number from 0 to {MAX_SEED}, or None")
    rng = np.random.default_rng(seed)

    x_pool_parts, y_pool_parts = _parts_to_pool(data, scheme)

    if scheme == "standard":
        x_pool, y_pool = data.x_train, data.y_train  # type: ignore[union-attr]
        n = len(y_pool)
        n_val = round(n * 10_000 / 60_000)
        sizes = [n - n_val, n_val, 0]
    else:
        if scheme == "80:10:10":
            val_f, test_f = 0.1, 0.1
        else:
            val_f = _fraction("val_fraction", val_fraction)
            test_f = _fraction("test_fraction", test_fraction)
            if val_f + test_f >= 1:
                raise ValueError(
                    f"val_fraction + test_fraction = {val_f + test_f:g} must be below 1 "
                    f"(val_fraction={val_f:g}, test_fraction={test_f:g})"
                )
        x_pool = np.concatenate(x_pool_parts) if len(x_pool_parts) > 1 else x_pool_parts[0]
        y_pool = np.concatenate(y_pool_parts) if len(y_pool_parts) > 1 else y_pool_parts[0]
        n = len(y_pool)
        n_val, n_test = int(np.floor(n * val_f + 0.5)), int(np.floor(n * test_f + 0.5))
        sizes = [n - n_val - n_test, n_val, n_test]
        if sizes[0] < 1:
            raise ValueError(
                f"no training images left: {n} images, {n_val} for validation, {n_test} for test"
            )

    train_idx, val_idx, test_idx = _stratified_parts(y_pool, sizes, rng)
    if train_size is not None:
        if isinstance(train_size, bool) or not isinstance(train_size, (int, np.integer)):
            raise ValueError(f"train_size={train_size!r} must be an integer or None")
        if not 1 <= train_size <= len(train_idx):
            raise ValueError(
                f"train_size={train_size} is outside the allowed range 1..{len(train_idx)}"
            )
        keep, _ = _stratified_parts(
            y_pool[train_idx], [int(train_size), len(train_idx) - int(train_size)], rng
        )
        train_idx = train_idx[keep]

    def take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return readonly(a[idx])

    if scheme == "standard":
        x_test, y_test = data.x_test, data.y_test  # type: ignore[union-attr]
    else:
        x_test, y_test = take(x_pool, test_idx), take(y_pool, test_idx)
    return Split(
        take(x_pool, train_idx),
        take(y_pool, train_idx),
        take(x_pool, val_idx),
        take(y_pool, val_idx),
        x_test,
        y_test,
    )
