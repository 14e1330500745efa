"""Hyperparameter search: grid or random search with successive halving, run through joblib.

NumPy and joblib only (never Streamlit). The space is a ``nn.search.space.SearchSpace``; the
trials and the result are ``nn.search.results``' dataclasses.

``space.grid(n)`` / ``random_search(space, n_trials, seed)``
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

Recording: the search calls its ``record`` callback (:data:`Record`; the run store's is
``nn.services.recorder.RunRecorder.search_record``) in the parent process as the search and each
trial start, train and end; workers never record anything.

"Train the best": ``SearchResult.best_config`` is ``base_config`` with the best trial's
parameters, ``epochs = epochs_per_trial`` (unless the base config sets ``epochs``) and the
trial's ``random_state``; ``NeuralNetwork(**result.best_config)`` trains it again.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from nn.core.events import EPOCH_KEYS
from nn.core.limits import MAX_TRIALS
from nn.core.network import NeuralNetwork
from nn.search.results import SearchEvent, SearchResult, Trial
from nn.search.space import SearchSpace, as_space, check_base_config

__all__ = [
    "STRATEGIES",
    "Record",
    "halving_schedule",
    "random_search",
    "run_search",
    "trial_seed",
]

STRATEGIES = ("random", "grid")
Record = Callable[[str, dict[str, Any]], Any]
"""How a search is recorded: ``record(kind, info)`` hears ``search_started`` (``search``: what
the search is, ``name``) and returns the search's id, ``trial_started`` (``trial``,
``search_id``, ``name``) and returns the trial's run id, ``trial_epochs`` (``trial``,
``history``: the epochs it just trained), ``trial_finished`` (``trial``) and
``search_finished`` (``search_id``, ``status``: ``finished``, ``stopped`` or ``failed``,
``best``: the best trial or None, ``message``). It runs in the searching process only."""


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


def random_search(
    space: SearchSpace | Mapping[str, Any], n_trials: int, seed: int | None = 0
) -> list[dict[str, Any]]:
    """``n_trials`` configurations drawn from ``space`` with ``np.random.default_rng(seed)``."""
    space = as_space(space)
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
        new = {k: list(hist.get(k, []))[first:] for k in EPOCH_KEYS}
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
    record: Record | None = None,
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
    joblib. ``record``: how the search and its trials are recorded (:data:`Record`; None:
    nothing is); ``name`` names the search; ``data_config`` is recorded with it (e.g. the split
    settings). ``callback``
    gets :class:`SearchEvent`s; a truthy return cancels. ``timeout`` (seconds) stops launching
    trials once exceeded. Bad settings raise ``ValueError`` before anything trains.
    """
    started = time.perf_counter()
    space = as_space(space)
    base = check_base_config(base_config)
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
    what = {
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
        record or _no_record,
        (X_train, y_train, X_val, y_val),
        callback,
        started,
        timeout,
    )
    search.search_id = search.record("search_started", {"search": what, "name": name})
    search.run(n_jobs, backend)
    best = _pick_best(trials)
    search.close(best)
    result = SearchResult(
        trials=trials,
        best_config=_best_config(base, best, epochs_per_trial),
        best_val_accuracy=None if best is None else best.val_accuracy,
        best_trial=None if best is None else best.index,
        status=search.stop_status,
        search_id=search.search_id,
        space=space.to_dict(),
        strategy=strategy,
        seconds=time.perf_counter() - started,
        message=search.stop_message,
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

    def __init__(self, trials, schedule, record, data, callback, started, timeout):
        self.trials: list[Trial] = trials
        self.schedule = schedule
        self.n_rungs = len(schedule)
        self.record: Record = record
        self.search_id: int | None = None
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
                    self.record("trial_finished", {"trial": t})

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
        search_id = self.search_id
        for t in batch:
            t.rung = rung
            t.status = "running"
            if t.run_id is None:
                name = f"search {search_id or ''} trial {t.index}".strip()
                info = {"trial": t, "search_id": search_id, "name": name}
                t.run_id = self.record("trial_started", info)
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
        self.record("trial_epochs", {"trial": t, "history": out["history"]})
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
            self.record("trial_finished", {"trial": t})
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
            self.record("trial_finished", {"trial": t})
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
                self.record("trial_finished", {"trial": t})
        if self.search_id is not None:
            info = {"status": "failed", "best": None, "message": "the search raised an error"}
            self.record("search_finished", {"search_id": self.search_id, **info})

    def close(self, best: Trial | None) -> None:
        """Record the search's status, best run and message."""
        if self.search_id is None:
            return
        status = {"finished": "finished"}.get(self.stop_status, "stopped")
        text = self.stop_message or (
            f"best trial {best.index}: val accuracy {best.val_accuracy:.4f}"
            if best is not None and best.val_accuracy is not None
            else "no trial finished"
        )
        info = {"status": status, "best": best, "message": text}
        self.record("search_finished", {"search_id": self.search_id, **info})


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


def _no_record(kind: str, info: dict[str, Any]) -> None:
    """The ``record`` of a search that is not recorded."""
    return None
