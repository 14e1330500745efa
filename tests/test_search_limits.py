"""Search plans within bounds: trials, grid size and n_jobs refused with a message before
anything is built or trained; grids planned lazily; the timeout honoured; the right parameter
blamed."""

from __future__ import annotations

import numpy as np
import pytest
from cli_support import call

from nn.core.limits import MAX_TRIALS
from nn.search.engine import run_search
from nn.search.space import SearchSpace, parse_dimension


@pytest.fixture
def no_search(monkeypatch):
    import nn.cli.tune as T

    def refuse(*a, **k):
        raise AssertionError("the search started")

    monkeypatch.setattr(T, "run_search_job", refuse)


LR = "learning_rate=loguniform:1e-4:1e-1"


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--trials", "1000000000", "--timeout", "5"], "--trials 1000000000: use 1 to 10,000"),
        (["--strategy", "grid", "--grid-points", "1000000"], "--grid-points 1000000: use 1 to"),
        (
            [
                "--strategy",
                "grid",
                "--grid-points",
                "1000",
                "--param",
                LR,
                "--param",
                "dropout=uniform:0:0.5",
            ],
            "the grid has 1,000,000 points",
        ),
        (["--n-jobs", "1000"], "--n-jobs 1000: this machine has"),
        (["--n-jobs", "-5"], "--n-jobs -5: this machine has"),
        (["--set", "learning_rate=-1"], "learning_rate=-1 is not allowed"),
        (["--set", "learning_rate=0.1", "--param", LR], "--set learning_rate: learning_rate is"),
    ],
    ids=["trials", "grid-points", "grid-size", "n-jobs", "n-jobs-negative", "set", "set-and-param"],
)
def test_tune_refuses_runaway_plans_before_searching(no_search, flags, message):
    code, out, err = call("tune", "--no-record", *flags)
    assert code == 2 and message in err, err
    assert "hidden_layers" not in err and "Traceback" not in err


def test_set_of_a_default_dimension_fixes_it():
    import argparse

    from nn.cli.tune import _job, add_tune_arguments

    parser = argparse.ArgumentParser()
    add_tune_arguments(parser)
    job = _job(parser.parse_args(["--no-record", "--set", "learning_rate=0.01"]))
    assert "learning_rate" not in job.space and job.base["learning_rate"] == 0.01


def _space(n_ranges: int) -> SearchSpace:
    names = ["learning_rate", "dropout", "momentum", "l2"][:n_ranges]
    specs = ["loguniform:1e-4:1e-1", "uniform:0:0.5", "uniform:0:0.9", "loguniform:1e-6:1e-2"]
    return SearchSpace({n: parse_dimension(s) for n, s in zip(names, specs, strict=False)})


def test_grid_is_counted_and_built_point_by_point():
    space = _space(2)
    assert space.grid_size(4) == 16
    assert list(space.iter_grid(4)) == space.grid(4)
    assert space.grid_point(5, 4) == space.grid(4)[5]
    big = _space(4)
    assert big.grid_size(1000) == 10**12  # counted, never built
    with pytest.raises(ValueError, match="the grid has 1,000,000,000,000 points"):
        big.grid(1000)
    assert len(list(big.iter_grid(1000, [0, 10**12 - 1]))) == 2


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 784)).astype(np.uint8)
    y = np.arange(60) % 10
    return x, y


def test_a_huge_grid_is_sampled_without_building_it(tiny):
    x, y = tiny
    result = run_search(
        {"hidden_layers": [4], "batch_size": 30},
        _space(4),
        x,
        y,
        x,
        y,
        strategy="grid",
        grid_points=1000,
        n_trials=2,
        epochs_per_trial=1,
        halving=False,
    )
    assert len(result.trials) == 2 and result.status == "finished"


def test_run_search_bounds_trials_and_jobs(tiny):
    x, y = tiny
    with pytest.raises(ValueError, match=f"at most {MAX_TRIALS:,} trials"):
        run_search({}, _space(1), x, y, x, y, n_trials=MAX_TRIALS + 1)
    with pytest.raises(ValueError, match="n_jobs 1000: this machine has"):
        run_search({}, _space(1), x, y, x, y, n_jobs=1000)


def test_the_timeout_stops_a_running_trial(tiny):
    x, y = tiny
    result = run_search(
        {"hidden_layers": [4], "batch_size": 10},
        _space(1),
        x,
        y,
        x,
        y,
        n_trials=3,
        epochs_per_trial=50,
        halving=False,
        timeout=1e-9,
    )
    assert result.status == "timeout"
    assert not any(t.status == "finished" for t in result.trials)


# ------------------------------------------------------------------ the Tune page's checks
def _settings(**changes):
    import ui.tune as tn

    settings = tn.default_settings()
    settings.update(changes)
    return settings


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"trials": 1_000_000_000}, "Trials must be 1 to 10,000"),
        ({"n_jobs": 1000}, "this machine's cores"),
        ({"strategy": "grid", "grid_points": 1_000_000}, "Grid points per range must be 1 to"),
    ],
)
def test_tune_page_budget_is_bounded(changes, message):
    import ui.tune as tn

    space, errors = tn.build_space(_settings(**changes), {})
    assert space is None and message in errors["budget"]


def test_tune_page_refuses_a_base_network_above_the_limit():
    import ui.tune as tn

    space, errors = tn.build_space(_settings(), {"hidden_layers": [100_000, 100_000]})
    assert space is None and "parameters; the limit is 20,000,000" in errors["base"]
