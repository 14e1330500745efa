"""The user's kept drawings in the dashboard: the store, and every model scored on them.

``store()`` is the :class:`nn.services.mine.MineStore` of the session's workspace
(``ui.state.workspace``; without sign-in ``$NN_MINE_DB``, else ``mine.sqlite`` beside the run
database), read at call time so tests can set the variable; one store object per path is kept
(``st.cache_resource``).

``mine_scores(model_path)`` is a model's accuracy on the drawings and its predictions, cached per
(model file version, drawings version): a page that lists every model does the predictions once
and again only after a drawing is kept, relabelled, deleted or imported, or the model file
changes. ``MineStore.version()`` is the cheap query that tells.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from nn.data.registry import mnist_info
from nn.services.mine import MineStore, MineStoreError
from ui import state


@st.cache_resource(max_entries=4, show_spinner=False)
def _store_at(path: str) -> MineStore:
    return MineStore(path)


def store() -> MineStore:
    """The workspace's drawings store (one object per database path)."""
    return _store_at(str(state.workspace().mine_db.expanduser().resolve()))


@st.cache_resource(max_entries=2, show_spinner=False)
def _arrays(path: str, version: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, ids = _store_at(path).arrays()
    for a in (x, y, ids):
        a.flags.writeable = False
    return x, y, ids


def drawings_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x uint8 (n, 784), y int64, ids int64)`` of every drawing, read-only, cached per
    version."""
    s = store()
    return _arrays(str(s.path), s.version())


@dataclass(frozen=True)
class MineScore:
    """A model on the user's drawings: ``accuracy`` (``None`` without drawings), ``pred`` per
    drawing (in ``ids`` order) and the ids and labels it was measured on."""

    accuracy: float | None
    pred: np.ndarray
    ids: np.ndarray
    labels: np.ndarray

    @property
    def wrong(self) -> np.ndarray:
        """Positions (into ``ids``) of the drawings the model gets wrong."""
        return np.flatnonzero(self.pred != self.labels)


@st.cache_resource(max_entries=32, show_spinner=False)
def _score_cached(model_path: str, mtime: float, db: str, version: tuple) -> MineScore:
    x, y, ids = _arrays(db, version)
    if len(y) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MineScore(None, empty, ids, y)
    model = state.get_model(model_path)
    pred = np.asarray(model.predict(x)).astype(np.int64)
    pred.flags.writeable = False
    return MineScore(float(np.mean(pred == y)), pred, ids, y)


def mine_score(model_path: str | os.PathLike) -> MineScore:
    """The model at ``model_path`` on every kept drawing (cached, see the module docstring).
    Raises like ``state.get_model`` for an unreadable model."""
    path = Path(model_path).resolve()
    s = store()
    return _score_cached(str(path), path.stat().st_mtime_ns / 1e9, str(s.path), s.version())


def accuracy_text(model_path: str | os.PathLike | None) -> str:
    """``"87.5%"`` for the Models table; a dash when there are no drawings, no readable model, a
    model of another data set than MNIST's shape and digits, or no usable drawings database (the
    My digits page says what is wrong with it)."""
    if model_path is None:
        return "—"
    try:
        if not state.model_fits(state.get_model_metadata(model_path), mnist_info()):
            return "—"  # a model of another data set does not read digits
        score = mine_score(model_path)
    except (OSError, ValueError, MineStoreError):
        return "—"
    return "—" if score.accuracy is None else f"{score.accuracy:.1%}"
