"""Session state and shared cached resources for every page of the dashboard.

Contract (what pages may use)
-----------------------------
``init_state()``
    Called once per run by ``app.py`` before the page. Creates the session keys below with
    ``setdefault`` (never overwrites). Pages may call it again; it is idempotent.

Session keys owned here (plain keys, not widget keys, so they survive page changes):
    ``active_model_name`` (str | None)  name (file stem) of the model the user chose; ``None``
                                        means "the default": ``default`` if it exists, else the
                                        newest saved model.
    ``train_config`` (dict)             the Train page form (see ``ui.train_form``).
    ``train_result`` (dict | None)      outcome of the last finished training (Train page).
    ``active_set_name`` (str)           the data set every page works on (``nn.data.registry``;
                                        ``mnist`` by default, and when the chosen set is gone).

Workspace, paths and environment
    ``workspace() -> Workspace``  this session's (``ui.auth.current_workspace``): the signed-in
                                person's own, else the local one.
    ``models_dir() -> Path``    the workspace's models folder (created on demand): without
                                sign-in ``$NN_MODELS_DIR`` or ``<repo>/saved_models``.
    ``shared_models_dir() -> Path | None``  with sign-in, the folder every workspace reads and
                                none writes (the shipped default, models a teacher hands out).
    ``check_room(nbytes)``      ``QuotaError`` before a write that would take the workspace over
                                its disk quota.
    ``train_limit() -> int | None``  ``$NN_TRAIN_LIMIT``: caps the number of training images the
                                Train page uses (tests set e.g. 1000); unset/empty/0 = no cap.
    Both are read at call time, so tests can ``monkeypatch.setenv`` before ``AppTest.run()``.

Cached resources (never copied, arrays read-only)
    ``get_mnist() -> nn.data.MNIST``            the bundled MNIST, loaded once per server.
    ``get_model(path) -> NeuralNetwork``        loaded once per (path, mtime); the file metadata is
                                                ``model.metadata_``. Treat the model as read-only.
    ``get_test_predictions(path) -> (proba, pred)``  the model's predictions on the official MNIST
                                                test set: ``proba`` float32 (10000, 10), ``pred``
                                                int64 (10000,), computed once per (path, mtime)
                                                and kept on disk by file content.
    ``get_model_metadata(path) -> dict``        ``read_metadata`` (``nn.io.model_files``) per mtime.

Active data set
    ``data_sets() -> list[DataSetInfo]``        MNIST, then every added set (``list_sets``).
    ``active_set() -> DataSetInfo``             the chosen set (MNIST if it is gone).
    ``set_active_set(name)``                    choose the set for every page of this session.
    ``get_set_data(info) -> nn.data.MNIST``     the set's parts (flat uint8 rows, int64 labels),
                                                loaded once per (name, SHA-256); MNIST's is
                                                ``get_mnist()``.
    ``model_fits(row_or_meta, info=None)``      whether a model (its ``list_models`` row or file
                                                metadata) fits the active set (shape, classes).
    ``get_test_predictions`` and ``require_test_predictions`` work on the active set's test part.

Active model
    ``model_rows() -> list[dict]``              ``nn.io.models_folder.list_models`` rows of the
                                                workspace's models, then the shared ones it does
                                                not shadow (``row["shared"]`` True).
    ``saved_models() -> list[dict]``            those rows without the unreadable ones.
    ``fitting_models() -> list[dict]``          those that fit the active set.
    ``active_model_name() -> str | None``       resolved as described above among the models that
                                                fit the active set (None: no model yet).
    ``active_model_path() -> Path | None``
    ``active_model() -> (name, model) | None``
    ``set_active_model(name)``                  make a saved model active (all pages, this session).
    ``model_path_for(name) -> Path | None``     ``<dir>/<name>.npz`` or ``.pkl`` if it exists,
                                                the workspace's own first, then the shared one.
    ``is_shared(path) -> bool``                 whether the file is a shared, read-only model.
    ``layers_text(sizes, stack) -> str``        e.g. ``"784-256-128-10"``, ``"C32k3-P2-D10"``.
    ``model_layers_text(model) -> str``         the same for a fitted model.

Jobs
    ``session_job(kind) -> SessionJob | None``  this person's training (``train``), search
    (``search``) or fine-tuning (``finetune``), held by the server's ``job_board()`` for the
    owner ``current_owner()``: a reload or another tab finds it; closing a tab stops nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from nn.core.layer_spec import compact
from nn.data import load_mnist
from nn.data.registry import fits, get_info, list_sets, load_set, model_record
from nn.io import models_folder
from nn.io.model_files import load_model, read_metadata
from nn.services.jobs import JobRunner
from nn.services.prediction_cache import cached_proba, set_digest
from nn.services.workspace import Workspace
from nn.services.workspace import shared_models_dir as _shared_folder
from ui.auth import current_workspace
from ui.session_jobs import JobBoard
from ui.train_form import default_config

DEFAULT_MODEL_NAME = "default"
TRAIN_LIMIT_ENV = "NN_TRAIN_LIMIT"
ACTIVE_SET_KEY = "active_set_name"


# ------------------------------------------------------------------------------ environment
def workspace() -> Workspace:
    """This session's workspace: the signed-in person's own, else the local one."""
    return current_workspace()


def models_dir() -> Path:
    """The workspace's models folder, created if missing (a failure is left to the first
    write, which names it)."""
    folder = workspace().models_dir
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def shared_models_dir() -> Path | None:
    """The shared, read-only models folder of a signed-in person (None without sign-in, where
    the one models folder is everyone's)."""
    return None if workspace().is_local else _shared_folder()


def check_room(nbytes: int) -> None:
    """``QuotaError`` (a ValueError) if writing ``nbytes`` would take the workspace over its
    quota; nothing without sign-in."""
    workspace().check_room(nbytes)


def train_limit() -> int | None:
    """``$NN_TRAIN_LIMIT`` as a positive int, or ``None`` (no cap)."""
    value = os.environ.get(TRAIN_LIMIT_ENV, "").strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n > 0 else None


# ------------------------------------------------------------------------------ session state
def _use_app_navigation() -> None:
    """Make ``app.py``'s ``st.navigation`` the app's only page list.

    Streamlit decides once per server, when the first session starts, whether the app is an old
    style "pages/ folder" app: if ``pages/`` exists and the first URL is a page (``/train``), it
    runs ``pages/train.py`` alone with a file-name page list and no sidebar, until some run calls
    ``st.navigation``. Pages call this (through ``init_state``): when Streamlit is in that mode, it
    is switched off and the run restarts through ``app.py``, which shows the page asked for.
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.pages_manager import PagesManager

    # AppTest resets the flag before every run and serves a mock runtime: a rerun there would
    # drop the run's widget events, and its page-by-page runs are what its tests expect.
    if PagesManager.uses_pages_directory and type(Runtime._instance) is Runtime:
        PagesManager.uses_pages_directory = False
        st.rerun()


def init_state() -> None:
    """Create this module's session keys (idempotent)."""
    _use_app_navigation()
    ss = st.session_state
    ss.setdefault("active_model_name", None)
    if "train_config" not in ss:
        ss["train_config"] = default_config()
    ss.setdefault("train_result", None)
    ss.setdefault(ACTIVE_SET_KEY, "mnist")


# ------------------------------------------------------------------------------ cached data
@st.cache_resource(show_spinner="Loading MNIST…")
def get_mnist():
    """The bundled MNIST (``nn.data.MNIST``), loaded once per server; arrays are read-only."""
    data = load_mnist()
    for a in data:
        a.flags.writeable = False
    return data


def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns / 1e9


@st.cache_resource(max_entries=8, show_spinner=False)
def _load_model_cached(path: str, mtime: float):
    return load_model(path)


def get_model(path: str | os.PathLike):
    """The model saved at ``path``, loaded once per file version (path + mtime).

    Raises FileNotFoundError / ``nn.io.npz.ModelFileError`` like ``load_model``."""
    path = Path(path)
    return _load_model_cached(str(path.resolve()), _mtime(path))


# ------------------------------------------------------------------------------ data sets
def data_dir() -> Path:
    """The workspace's folder of added data sets."""
    return workspace().data_dir


def data_sets() -> list:
    """MNIST, then the workspace's added sets (``nn.data.registry.list_sets``; unreadable ones
    left out)."""
    return list_sets(data_dir())


def active_set():
    """The data set the pages work on: the chosen one, MNIST when it is gone."""
    chosen = st.session_state.get(ACTIVE_SET_KEY) or "mnist"
    sets = data_sets()
    for info in sets:
        if info.name == chosen:
            return info
    return sets[0]


def set_active_set(name: str) -> None:
    """Make ``name`` the data set of every page (this session)."""
    st.session_state[ACTIVE_SET_KEY] = name


@st.cache_resource(max_entries=4, show_spinner="Loading the data set…")
def _set_data_cached(name: str, sha256: str, folder: str):
    data = load_set(name, folder).data
    for a in data:
        a.flags.writeable = False
    return data


def get_set_data(info=None):
    """The parts of ``info`` (default: the active set) as ``nn.data.MNIST`` of flat uint8 rows
    and int64 labels; loaded once per (name, SHA-256). Read-only arrays."""
    info = info if info is not None else active_set()
    if info.builtin:
        return get_mnist()
    return _set_data_cached(info.name, info.sha256, str(data_dir()))


def model_fits(row_or_meta, info=None) -> bool:
    """Whether the model of this ``list_models`` row (or file metadata, or the model itself)
    fits ``info`` (default: the active set): the same image shape and number of classes."""
    return fits(row_or_meta, info if info is not None else active_set())


def class_names(info=None) -> list[str]:
    """The class names of ``info`` (default: the active set), in label order."""
    return list((info if info is not None else active_set()).class_names)


PREDICTIONS_KEPT = 8
"""Test-set predictions kept in memory (models x sets), the oldest dropped first."""


@st.cache_resource(show_spinner=False)
def _predictions_kept() -> tuple[dict, threading.Lock]:
    """The server's test-set predictions by (path, mtime, set name, set SHA-256), and its lock."""
    return {}, threading.Lock()


def _info_named(name: str):
    for info in data_sets():
        if info.name == name:
            return info

    return get_info(name, data_dir())  # raises DataError naming the sets


def get_test_predictions(path: str | os.PathLike, info=None) -> tuple[np.ndarray, np.ndarray]:
    """``(proba float32 (n, classes), pred int64 (n,))`` of the model at ``path`` on the test
    part of ``info`` (default: the active set; MNIST's is the official test set); computed once
    per (path, mtime, set) with a progress bar, and kept on disk by the file's content
    (``nn.services.prediction_cache``) for the next server. Read-only arrays."""
    path = Path(path)
    info = info if info is not None else active_set()
    key = (str(path.resolve()), _mtime(path), info.name, info.sha256)
    kept, lock = _predictions_kept()
    with lock:
        found = kept.get(key)
    if found is not None:
        return found
    model = _load_model_cached(key[0], key[1])
    x = get_set_data(info).x_test
    bar = st.empty()  # shown only while the predictions are computed
    try:
        proba = cached_proba(
            model,
            key[0],
            x,
            set_digest(info.name, info.sha256),
            progress=lambda done: bar.progress(
                done, text=f"Predicting the {len(x):,} test images (once for this model)…"
            ),
        )
    finally:
        bar.empty()
    pred = np.asarray(model.classes_)[proba.argmax(axis=1)].astype(np.int64)
    proba.flags.writeable = False
    pred.flags.writeable = False
    with lock:
        kept[key] = (proba, pred)
        while len(kept) > PREDICTIONS_KEPT:
            kept.pop(next(iter(kept)))
    return proba, pred


@st.cache_data(max_entries=16, show_spinner="Measuring on the test set…")
def _measured_accuracy_cached(digest: str, set_name: str, sha256: str, _model) -> float | None:
    info = _info_named(set_name)
    if not model_fits(_model, info):
        return None
    data = get_set_data(info)
    if len(data.y_test) == 0:
        return None
    if getattr(_model, "n_features_in_", None) != data.x_test.shape[1]:
        return None
    if not set(np.unique(data.y_test).tolist()) <= set(np.asarray(_model.classes_).tolist()):
        return None
    return float(_model.score(data.x_test, data.y_test))


def measured_test_accuracy(model, data: bytes, info=None) -> float | None:
    """Accuracy of ``model`` (loaded from the file bytes ``data``) on the test part of ``info``
    (default: the active set; MNIST's official test set), measured once per file content and
    set; None if the model does not fit that set (image shape, classes)."""
    info = info if info is not None else active_set()
    return _measured_accuracy_cached(
        hashlib.sha256(data).hexdigest(), info.name, info.sha256, model
    )


@st.cache_data(max_entries=64, show_spinner=False)
def _metadata_cached(path: str, mtime: float) -> dict:
    return read_metadata(path)


def get_model_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    return _metadata_cached(str(path.resolve()), _mtime(path))


# ------------------------------------------------------------------------------ active model
def model_rows() -> list[dict]:
    """The workspace's model files (``list_models`` rows, newest first), then the shared ones
    whose names it does not use, each with ``shared`` set."""
    own = [dict(row, shared=False) for row in models_folder.list_models(models_dir())]
    shared_folder = shared_models_dir()
    if shared_folder is None:
        return own
    names = {Path(row["path"]).stem for row in own}
    shared = [
        dict(row, shared=True)
        for row in models_folder.list_models(shared_folder)
        if Path(row["path"]).stem not in names
    ]
    return own + shared


def saved_models() -> list[dict]:
    """Readable saved models (``model_rows`` without ``error``), own first, newest first."""
    return [row for row in model_rows() if not row.get("error")]


def fitting_models(info=None) -> list[dict]:
    """The saved models that fit ``info`` (default: the active set), newest first."""
    info = info if info is not None else active_set()
    return [row for row in saved_models() if model_fits(row, info)]


def _fits_by_name(name: str, info) -> bool:
    path = model_path_for(name)
    if path is None:
        return False
    try:
        return model_fits(get_model_metadata(path), info)
    except (OSError, ValueError):
        return False


def model_path_for(name: str | None) -> Path | None:
    """Path of the saved model called ``name``: the workspace's own, else the shared one with
    that name, else None."""
    own = models_folder.find_model(models_dir(), name)
    shared_folder = shared_models_dir()
    if own is not None or shared_folder is None:
        return own
    return models_folder.find_model(shared_folder, name)


def is_shared(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a shared model (read-only for this person)."""
    shared_folder = shared_models_dir()
    return (
        path is not None
        and shared_folder is not None
        and Path(path).resolve().parent == shared_folder.resolve()
    )


def active_model_name() -> str | None:
    """Among the models that fit the active set: the chosen model if its file exists, else
    ``default``, else the newest saved model."""
    info = active_set()
    chosen = st.session_state.get("active_model_name")
    if chosen and _fits_by_name(chosen, info):
        return chosen
    if _fits_by_name(DEFAULT_MODEL_NAME, info):
        return DEFAULT_MODEL_NAME
    for row in fitting_models(info):
        if model_path_for(Path(row["path"]).stem) is not None:
            return Path(row["path"]).stem
    return None


def active_model_path() -> Path | None:
    return model_path_for(active_model_name())


def active_model() -> tuple[str, Any] | None:
    """``(name, model)`` of the active model, or ``None`` when there is no usable model."""
    name = active_model_name()
    path = model_path_for(name)
    if path is None:
        return None
    try:
        return name, get_model(path)
    except (OSError, ValueError):
        return None


def set_active_model(name: str | None) -> None:
    """Make ``name`` the active model for this session (all pages). A model that does not fit
    the active set makes its own set active, when that set is here."""
    st.session_state["active_model_name"] = name
    if not name or _fits_by_name(name, active_set()):
        return

    try:
        record = model_record(get_model_metadata(model_path_for(name)))
    except (OSError, ValueError, TypeError):
        return
    for info in data_sets():
        if info.name == record.get("name") and _fits_by_name(name, info):
            set_active_set(info.name)
            return


def layers_text(sizes, stack=None) -> str:
    """``[784, 256, 10] -> "784-256-10"`` (``"?"`` when unknown); a model built from a layer
    stack in the compact form of ``nn.core.layer_spec``, e.g. ``"C32k3-P2-C64k3-P2-D128-D10"``."""
    if stack:
        return compact(stack) or "?"
    if not sizes:
        return "?"
    return "-".join(str(int(s)) for s in sizes)


def model_layers_text(model) -> str:
    """:func:`layers_text` of a fitted model."""
    if getattr(model, "layers", None) is not None:
        return layers_text(None, [layer.spec() for layer in model.layers_])
    return layers_text(model.layer_sizes_)


def require_test_predictions():
    """``(name, model, data, proba, pred)`` for pages about the active model's test predictions;
    without a model, the "no model yet" note and a link to Train, and the page stops there."""
    found = active_model()
    if found is None:
        no_model_message()
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    name, model = found
    info = active_set()
    proba, pred = get_test_predictions(active_model_path(), info)
    return name, model, get_set_data(info), proba, pred


def no_model_message() -> None:
    """The standard "no model yet" note, pointing to the Train page."""
    info = active_set()
    if info.builtin:
        text = (
            "No trained model yet. Train one on the **Train** page (or upload one on **Models**)."
        )
    else:
        text = (
            f"No model trained on **{info.name}** ({info.shape_text}, {info.n_classes} classes) "
            "yet. Train one on the **Train** page, or choose another data set in the sidebar."
        )
    st.info(text, icon=":material/model_training:")


# ------------------------------------------------------------------------------ jobs
def current_owner() -> str:
    """Whose jobs this session shows and controls: its workspace's id (``local`` without
    sign-in), so that every tab of one person shows the same jobs and nobody else's."""
    return workspace().id


@st.cache_resource(show_spinner=False)
def job_runner():
    """The server's ``nn.services.jobs.JobRunner`` (``NN_MAX_JOBS``, ``NN_JOB_BLAS_THREADS``,
    ``NN_JOB_RESERVED_CORES``, ``NN_RAY_ADDRESS``): every session's trainings, searches and
    fine-tunings run in its worker processes, or on the Ray cluster."""
    return JobRunner.from_environment()


@st.cache_resource(show_spinner=False)
def job_board():
    """The server's ``ui.session_jobs.JobBoard``: every owner's jobs, whichever tab shows them
    (``NN_JOB_IDLE_MINUTES``, ``NN_JOB_RESULT_HOURS``)."""
    return JobBoard.from_environment()


def session_job(kind: str):
    """This person's ``ui.session_jobs.SessionJob`` of ``kind`` (``train``, ``search``,
    ``finetune``), running or ended and kept, or None."""
    return job_board().get(current_owner(), kind)
