"""Tests for nn/search.py (spaces, grid/random search, successive halving, joblib, run store)
and nn/search_cli.py (python -m nn tune)."""

from __future__ import annotations

import argparse
import json
import sys
import types

import numpy as np
import pytest

from nn.cli.tune import add_tune_arguments, build_space, parse_param, run_tune
from nn.core.config import configure
from nn.core.network import NeuralNetwork
from nn.search import (
    Choice,
    IntRange,
    LogUniform,
    SearchSpace,
    Uniform,
    dimension_from_dict,
    halving_schedule,
    parse_dimension,
    random_search,
    run_search,
    trial_seed,
)
from nn.services.recorder import RunRecorder
from nn.services.runs import RunStore

BASE = {"hidden_layers": [16], "batch_size": 64}


def only_search(store: RunStore, search_id: int):
    """The store's record of the search ``search_id``."""
    return next(s for s in store.list_searches() if s.id == search_id)


@pytest.fixture(scope="module")
def tiny():
    """1500 stratified MNIST training images and 500 validation images (uint8)."""
    from nn.data import load_mnist, split_dataset

    split = split_dataset(load_mnist(), seed=0, train_size=1500)
    return split.x_train, split.y_train, split.x_val[:500], split.y_val[:500]


# ------------------------------------------------------------------------------ dimensions
@pytest.mark.parametrize(
    "dim",
    [
        LogUniform(1e-4, 1e-1),
        Uniform(0.0, 0.5),
        IntRange(16, 256),
        IntRange(16, 256, log=True),
        Choice([[128], [256, 128]]),
        Choice(["adam", "sgd"]),
    ],
)
def test_dimension_round_trips_through_json(dim):
    again = dimension_from_dict(json.loads(json.dumps(dim.to_dict())))
    assert again == dim and type(again) is type(dim)
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = dim.sample(rng)
        if isinstance(dim, Choice):
            assert v in dim.values
        else:
            assert dim.low <= v <= dim.high
    if isinstance(dim, IntRange):
        assert all(isinstance(dim.sample(rng), int) for _ in range(5))


def test_space_round_trips_and_samples_reproducibly():
    space = SearchSpace(
        {
            "learning_rate": LogUniform(1e-4, 1e-1),
            "hidden_layers": Choice([[64], [128, 64]]),
            "batch_size": {"type": "int", "low": 32, "high": 256, "log": True},
            "optimizer": ["adam", "sgd"],
        }
    )
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    assert isinstance(space["optimizer"], Choice)
    a, b = random_search(space, 5, seed=3), random_search(space, 5, seed=3)
    assert a == b and a != random_search(space, 5, seed=4)
    for cfg in a:
        configure(cfg)


def test_grid_combines_choices_and_points_per_range():
    space = SearchSpace(
        {"learning_rate": LogUniform(1e-3, 1e-1), "optimizer": Choice(["adam", "sgd"])}
    )
    grid = space.grid(3)
    assert len(grid) == 6 == space.grid_size(3)
    assert sorted({round(g["learning_rate"], 6) for g in grid}) == [0.001, 0.01, 0.1]
    assert {g["optimizer"] for g in grid} == {"adam", "sgd"}


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: LogUniform(1e-1, 1e-4, name="learning_rate"), ["learning_rate", "above"]),
        (lambda: LogUniform(0, 1e-2, name="l2"), ["l2", "low > 0"]),
        (lambda: IntRange(-5, 10, log=True, name="batch_size"), ["batch_size", "low > 0"]),
        (lambda: Uniform(0.5, 0.1, name="dropout"), ["dropout", "above"]),
        (lambda: Choice([], name="hidden_layers"), ["hidden_layers", "at least one"]),
        (
            lambda: SearchSpace({"learning_rat": LogUniform(1e-4, 1e-1)}),
            ["learning_rat", "not a hyperparameter"],
        ),
        (lambda: SearchSpace({"epochs": Choice([1, 2])}), ["epochs", "budget"]),
        (lambda: SearchSpace({}), ["empty"]),
        (
            lambda: SearchSpace({"optimizer": Choice(["adam", "bogus"])}).check(),
            ["optimizer", "bogus"],
        ),
        (lambda: SearchSpace({"dropout": Uniform(0.0, 1.5)}).check(), ["dropout", "1.5"]),
        (lambda: SearchSpace({"batch_size": IntRange(0, 64)}).check(), ["batch_size"]),
        (lambda: IntRange(1.5, 8, name="batch_size"), ["batch_size", "whole number"]),
        (lambda: dimension_from_dict({"type": "gaussian"}, "l2"), ["l2", "unknown dimension type"]),
    ],
)
def test_bad_spaces_are_refused_with_clear_messages(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_bad_budgets_are_refused(tiny):
    space = {"learning_rate": LogUniform(1e-3, 1e-2)}
    for kwargs, word in (
        ({"n_trials": 0}, "n_trials"),
        ({"epochs_per_trial": 0}, "budget"),
        ({"epochs_per_trial": -2}, "budget"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"strategy": "bayes"}, "strategy"),
        ({"timeout": -1}, "timeout"),
    ):
        with pytest.raises(ValueError, match=word):
            run_search(BASE, space, *tiny, **kwargs)
    with pytest.raises(ValueError, match="hidden_layer"):
        run_search({"hidden_layer": [3]}, space, *tiny)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("loguniform:1e-4:1e-1", LogUniform(1e-4, 1e-1)),
        ("log:1e-5:1e-2", LogUniform(1e-5, 1e-2)),
        ("uniform:0:0.5", Uniform(0, 0.5)),
        ("int:16:128", IntRange(16, 128)),
        ("int:16:128:log", IntRange(16, 128, log=True)),
        ("intlog:16:128", IntRange(16, 128, log=True)),
        ("choice:[128]|[256,128]", Choice([[128], [256, 128]])),
        ("choice:adam|sgd", Choice(["adam", "sgd"])),
        ("choice:32|64", Choice([32, 64])),
        ("[[64], [128, 64]]", Choice([[64], [128, 64]])),
        ('{"type": "loguniform", "low": 0.001, "high": 0.1}', LogUniform(1e-3, 1e-1)),
    ],
)
def test_parse_dimension(spec, expected):
    assert parse_dimension(spec) == expected


@pytest.mark.parametrize(
    "spec", ["loguniform:1e-4", "loguniform:a:b", "beta:1:2", "", "choice:", "{not json"]
)
def test_parse_dimension_refuses_bad_specs(spec):
    with pytest.raises(ValueError):
        parse_dimension(spec, "learning_rate")


def test_halving_schedule():
    assert halving_schedule(9, 3) == [(9, 1), (3, 3)]
    assert halving_schedule(27, 9) == [(27, 1), (9, 3), (3, 9)]
    assert halving_schedule(8, 2) == [(8, 1), (2, 2)]
    assert halving_schedule(2, 9) == [(2, 9)]  # too few trials to halve
    assert halving_schedule(9, 1) == [(9, 1)]  # one epoch cannot be split
    assert trial_seed(0, 1) == trial_seed(0, 1) != trial_seed(0, 2)


# ------------------------------------------------------------------------------ searching
def test_search_beats_a_deliberately_bad_setting(tiny):
    space = {"learning_rate": Choice([1e-7, 3e-3]), "hidden_layers": Choice([[16], [32]])}
    result = run_search(
        {"batch_size": 32},
        space,
        *tiny,
        strategy="grid",
        n_trials=None,
        epochs_per_trial=2,
        halving=False,
        seed=0,
    )
    assert result.status == "finished" and len(result.trials) == 4
    assert all(t.status == "finished" and t.epochs == 2 for t in result.trials)
    bad = [t.val_accuracy for t in result.trials if t.params["learning_rate"] == 1e-7]
    assert result.best_params["learning_rate"] == 3e-3
    assert result.best_val_accuracy > max(bad) + 0.3
    cfg = result.best_config
    assert cfg["learning_rate"] == 3e-3 and cfg["batch_size"] == 32 and cfg["epochs"] == 2
    model = NeuralNetwork(**cfg).fit(tiny[0], tiny[1])
    assert model.score(tiny[2], tiny[3]) == pytest.approx(result.best_val_accuracy)


def test_zero_init_is_not_chosen(tiny):
    result = run_search(
        {"hidden_layers": [16], "batch_size": 32, "learning_rate": 3e-3},
        {"init": Choice(["zeros", "he_normal"])},
        *tiny,
        strategy="grid",
        n_trials=None,
        epochs_per_trial=2,
        halving=False,
    )
    zeros = next(t for t in result.trials if t.params["init"] == "zeros")
    assert result.best_params == {"init": "he_normal"}
    assert result.best_val_accuracy > zeros.val_accuracy + 0.2


def test_successive_halving_prunes_and_continues_with_warm_start(tiny):
    space = {"learning_rate": LogUniform(1e-5, 1e-2)}
    result = run_search(BASE, space, *tiny, n_trials=9, epochs_per_trial=3, seed=1)
    pruned = [t for t in result.trials if t.status == "pruned"]
    kept = [t for t in result.trials if t.status == "finished"]
    assert len(pruned) == 6 and len(kept) == 3
    assert all(t.epochs == 1 and len(t.history["epoch"]) == 1 for t in pruned)
    assert all(t.epochs == 3 and t.history["epoch"] == [1, 2, 3] for t in kept)  # continued
    worst_kept_at_rung0 = min(t.history["val_accuracy"][0] for t in kept)
    assert all(t.val_accuracy <= worst_kept_at_rung0 for t in pruned)
    assert result.best_trial in [t.index for t in kept]


@pytest.fixture
def backend(request, monkeypatch):
    """A joblib backend by name, with a local two-worker cluster for ``dask`` and ``ray`` (skipped
    where they are not installed: ``pip install -r requirements-cluster.txt``)."""
    name = request.param
    if name == "dask":
        distributed = pytest.importorskip("distributed")
        # AppTest leaves a Streamlit page as sys.modules["__main__"], and Dask's spawned worker
        # processes would run it again on start-up: give them a main module with nothing in it.
        monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster),
        ):
            yield name
    elif name == "ray":
        ray = pytest.importorskip("ray")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield name
        finally:
            ray.shutdown()
    else:
        yield name


@pytest.mark.parametrize("backend", ["loky", "dask", "ray"], indirect=True)
def test_parallel_and_serial_give_identical_results(tiny, backend):
    """Trials run in other processes (and, with halving, continue there from a model shipped
    back and forth) give exactly the serial results."""
    space = {
        "learning_rate": LogUniform(1e-4, 1e-2),
        "hidden_layers": Choice([[16], [24]]),
        "dropout": Uniform(0.0, 0.3),
    }
    kwargs = dict(n_trials=4, epochs_per_trial=2, seed=7)
    serial = run_search(BASE, space, *tiny, n_jobs=1, **kwargs)
    parallel = run_search(BASE, space, *tiny, n_jobs=2, backend=backend, **kwargs)
    assert all(t.message == "" for t in parallel.trials), [t.message for t in parallel.trials]
    assert [t.config for t in serial.trials] == [t.config for t in parallel.trials]
    assert [t.val_accuracy for t in serial.trials] == [t.val_accuracy for t in parallel.trials]
    assert [t.status for t in serial.trials] == [t.status for t in parallel.trials]
    assert serial.best_config == parallel.best_config


def test_trials_and_search_are_recorded_in_the_store(tiny, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    result = run_search(
        BASE,
        {"learning_rate": LogUniform(1e-4, 1e-2)},
        *tiny,
        n_trials=4,
        epochs_per_trial=2,
        record=RunRecorder(store.path).search_record(),
        name="lr sweep",
        data_config={"split": "standard", "seed": 0, "train_size": 1500},
    )
    assert result.search_id is not None
    search = only_search(store, result.search_id)
    assert search.status == "finished" and search.name == "lr sweep"
    assert SearchSpace.from_dict(search.space["space"]) == SearchSpace(
        {"learning_rate": LogUniform(1e-4, 1e-2)}
    )
    runs = store.list_runs(search_id=result.search_id, order_by="id", descending=False)
    assert [r.id for r in runs] == [t.run_id for t in result.trials]
    assert {r.source for r in runs} == {"tune"}
    best_run = next(t.run_id for t in result.trials if t.index == result.best_trial)
    assert search.best_run_id == best_run
    for run, trial in zip(runs, result.trials, strict=True):
        full = store.get_run(run.id)
        assert full.epochs_done == trial.epochs
        assert full.history["val_accuracy"][-1] == pytest.approx(trial.val_accuracy)
        assert full.config["model"]["learning_rate"] == trial.params["learning_rate"]
        assert full.config["data"]["train_size"] == 1500
        assert full.config["search"]["search_id"] == result.search_id
        assert full.status == ("finished" if trial.status == "finished" else "stopped")
        assert full.metrics["val_accuracy"] == pytest.approx(trial.val_accuracy)
        if trial.status == "pruned":
            assert "pruned" in full.message


def test_cancel_stops_launching_trials(tiny, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    seen = []

    def callback(event):
        seen.append(event.kind)
        return event.kind == "trial_finished"  # cancel after the first trial

    result = run_search(
        BASE,
        {"learning_rate": LogUniform(1e-4, 1e-2)},
        *tiny,
        n_trials=6,
        epochs_per_trial=2,
        halving=False,
        record=RunRecorder(store.path).search_record(),
        callback=callback,
    )
    assert result.status == "cancelled"
    statuses = [t.status for t in result.trials]
    assert statuses[0] == "finished" and set(statuses[1:]) == {"cancelled"}
    assert all(t.epochs == 0 for t in result.trials[1:])
    assert result.best_trial == 0 and result.best_config is not None
    assert only_search(store, result.search_id).status == "stopped"
    assert len(store.list_runs(search_id=result.search_id)) == 1  # never-started trials: no run
    assert seen[0] == "search_started" and seen[-1] == "search_finished"


def test_cancel_during_a_trial_stops_it(tiny):
    def callback(event):
        return event.kind == "trial_epoch"

    result = run_search(
        BASE,
        {"learning_rate": LogUniform(1e-4, 1e-2)},
        *tiny,
        n_trials=3,
        epochs_per_trial=3,
        halving=False,
        callback=callback,
    )
    assert result.status == "cancelled"
    assert result.trials[0].status == "cancelled" and result.trials[0].epochs == 1


def test_cancel_between_parallel_batches(tiny):
    def callback(event):
        return event.kind == "trial_finished"

    result = run_search(
        BASE,
        {"learning_rate": LogUniform(1e-4, 1e-2)},
        *tiny,
        n_trials=6,
        epochs_per_trial=1,
        halving=False,
        n_jobs=2,
        callback=callback,
    )
    assert result.status == "cancelled"
    assert [t.status for t in result.trials[:2]] == ["finished", "finished"]  # one batch
    assert {t.status for t in result.trials[2:]} == {"cancelled"}


def test_failed_trial_does_not_stop_the_search(tiny):
    too_wide = [{"type": "conv2d", "filters": 2, "kernel": 29}, {"type": "flatten"}]
    result = run_search(
        {"hidden_layers": [16]},
        {"layers": Choice([None, too_wide])},  # a 29x29 kernel fits no 28x28 image
        *tiny,
        strategy="grid",
        n_trials=None,
        epochs_per_trial=1,
        halving=False,
    )
    failed, finished = sorted(result.trials, key=lambda t: t.params["layers"] is None)
    assert failed.status == "failed" and "layers: layer 1 (conv2d)" in failed.message
    assert finished.status == "finished" and result.best_params == {"layers": None}


def test_timeout_stops_launching(tiny):
    result = run_search(
        BASE,
        {"learning_rate": LogUniform(1e-4, 1e-2)},
        *tiny,
        n_trials=20,
        epochs_per_trial=1,
        halving=False,
        timeout=1e-6,
    )
    assert result.status == "timeout"
    assert sum(t.status == "finished" for t in result.trials) <= 1


# ------------------------------------------------------------------------------ the CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nn tune")
    return add_tune_arguments(parser)


def test_cli_parses_param_specs(tmp_path):
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps({"dropout": {"type": "uniform", "low": 0, "high": 0.3}}))
    args = _parser().parse_args(
        [
            "--param",
            "learning_rate=loguniform:1e-4:1e-1",
            "--param",
            "hidden_layers=choice:[128]|[256,128]",
            "--param",
            "optimizer=choice:adam|sgd",
            "--space",
            str(space_file),
            "--strategy",
            "grid",
            "--no-halving",
            "--n-jobs",
            "2",
        ]
    )
    space = build_space(args)
    assert space.to_dict() == {
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
        "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
        "hidden_layers": {"type": "choice", "values": [[128], [256, 128]]},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
    }
    assert args.halving is False and args.n_jobs == 2 and args.strategy == "grid"
    assert parse_param("batch_size=int:16:128:log")[1] == IntRange(16, 128, log=True)
    assert list(build_space(_parser().parse_args([]))) != []  # default space


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--param", "learning_rate=loguniform:1e-1:1e-4"], ["learning_rate", "above"]),
        (["--param", "l2=loguniform:0:1e-2"], ["l2", "low > 0"]),
        (["--param", "hidden_layers=choice:"], ["hidden_layers", "at least one"]),
        (["--param", "learnign_rate=log:1e-4:1e-1"], ["learnign_rate", "not a hyperparameter"]),
        (["--param", "learning_rate"], ["NAME=SPEC"]),
        (["--param", "optimizer=choice:adam|bogus"], ["optimizer", "bogus"]),
        (["--trials", "0"], ["--trials"]),
        (["--epochs-per-trial", "0"], ["budget"]),
        (["--space", "/nonexistent/space.json"], ["--space"]),
        (["--set", "hidden_layers=[0]"], ["hidden_layers"]),
    ],
)
def test_cli_refuses_bad_settings_with_exit_2(argv, words, capsys, tmp_path):
    code = run_tune(_parser().parse_args(argv + ["--runs-db", str(tmp_path / "r.sqlite")]))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in err


def test_cli_runs_a_search_and_prints_json(capsys, tmp_path):
    db = tmp_path / "runs.sqlite"
    code = run_tune(
        _parser().parse_args(
            [
                "--param",
                "learning_rate=choice:1e-7|3e-3",
                "--param",
                "hidden_layers=choice:[16]",
                "--set",
                "batch_size=32",
                "--strategy",
                "grid",
                "--epochs-per-trial",
                "2",
                "--no-halving",
                "--train-size",
                "1500",
                "--val-size",
                "500",
                "--runs-db",
                str(db),
                "--name",
                "cli test",
                "--json",
            ]
        )
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert result["status"] == "finished" and len(result["trials"]) == 2
    assert result["best_params"] == {"learning_rate": 3e-3, "hidden_layers": [16]}
    assert result["best_config"]["batch_size"] == 32
    store = RunStore(db)
    assert len(store.list_runs(source="tune", search_id=result["search_id"])) == 2
    assert only_search(store, result["search_id"]).name == "cli test"
