"""Hostile JSON and stacks: every place that reads a user's JSON reads it within bounds
(nn.core.bounded_json), stacks are checked before they are built, and grids beyond int64 are
sampled; each fault a message and exit 2, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_support import call

from nn.core.bounded_json import JSONInputError, loads, read_json_file
from nn.core.config import configure
from nn.core.layer_spec import parse_layers, parse_shape
from nn.core.limits import MAX_JSON_DEPTH, MAX_LAYERS
from nn.data.arrays import DataError
from nn.data.registry import get_info, list_sets, parse_image_shape
from nn.search.engine import run_search
from nn.search.space import SearchSpace, parse_dimension

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "sets"))
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))


@pytest.fixture
def no_search(monkeypatch):
    import nn.cli.tune as T

    def refuse(*a, **k):
        raise AssertionError("the search started")

    monkeypatch.setattr(T, "run_search_job", refuse)


# ------------------------------------------------------------------ the bounded loader
@pytest.mark.parametrize(
    "text,message",
    [
        (DEEP, "nested 100,000 deep; at most 32 levels"),
        ("1" * 5000, "a whole number of 5,000 digits; at most 40"),
        ("[NaN]", "NaN is not a JSON number"),
        ("[1e999]", "beyond a float's range"),
        ("[1,", "not valid JSON"),
    ],
)
def test_the_loader_refuses_what_is_out_of_bounds(text, message):
    with pytest.raises(JSONInputError, match=message) as caught:
        loads(text, "the doc")
    assert str(caught.value).startswith("the doc: ")


def test_brackets_inside_strings_are_not_nesting(tmp_path):
    deep_in_a_string = json.dumps({"name": "[" * 1000})
    assert loads(deep_in_a_string) == {"name": "[" * 1000}
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    fifo = tmp_path / "fifo.json"
    import os

    os.mkfifo(fifo)
    with pytest.raises(JSONInputError, match="not a regular file"):
        read_json_file(fifo)


# ------------------------------------------------------------------ 1: info.json
def test_a_deeply_nested_info_json_leaves_only_its_own_set_out(tmp_path):
    bad = tmp_path / "sets" / "bad"
    bad.mkdir(parents=True)
    (bad / "info.json").write_text(DEEP)
    errors: list[str] = []
    assert [s.name for s in list_sets(errors=errors)] == ["mnist"]
    assert "nested 100,000 deep" in errors[0] and "'bad'" in errors[0]
    code, out, err = call("data", "list")
    assert code == 0 and "left out: the description of the set 'bad'" in out, err
    with pytest.raises(DataError, match="is unreadable"):
        get_info("bad")
    # --data of that set says its description is broken, not that it does not exist
    code, out, err = call("train", "--data", "bad", "--epochs", "1", "--no-save")
    assert code == 2 and "the description of the set 'bad' is unreadable" in err, err
    assert "no data set of that name" not in err and "Traceback" not in err


def test_an_empty_data_name_is_refused_as_such():
    code, out, err = call("train", "--data", "", "--epochs", "1", "--no-save")
    assert code == 2 and "empty" in err and "Traceback" not in err, err


# ------------------------------------------------------------------ 2, 3, 4: stacks
LONG_LINE = ",".join(["conv8k3same", "relu"] * 20 + ["flatten", "dense10"])


def test_a_long_layers_line_is_a_line_not_a_file_name():
    assert len(LONG_LINE) > 255
    stack = parse_layers(LONG_LINE)
    assert len(stack) == 42 and stack[0]["type"] == "conv2d"
    code, out, err = call("train", "--layers", LONG_LINE + ",bogus", "--epochs", "1", "--no-save")
    assert code == 2 and "layer 43 of" in err and "File name too long" not in err, err


@pytest.mark.parametrize("where", ["inline", "file", "box"])
def test_deeply_nested_stacks_are_refused(tmp_path, where):
    text = "[" * 5000 + "]" * 5000
    if where == "file":
        path = tmp_path / "stack.json"
        path.write_text(text)
        text = str(path)
    with pytest.raises(ValueError, match="nested 5,000 deep") as caught:
        parse_layers(text, files=where != "box")
    assert not isinstance(caught.value, RecursionError)
    if where != "box":
        code, out, err = call("train", "--layers", text, "--epochs", "1", "--no-save")
        assert code == 2 and "nested 5,000 deep" in err and "Traceback" not in err


def test_a_layer_type_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "stack.json"
    path.write_text(json.dumps([{"type": ["dense"], "units": 8}]))
    code, out, err = call("train", "--layers", str(path), "--epochs", "1", "--no-save")
    assert code == 2 and 'layer 1\'s "type"' in err and "unhashable" not in err, err
    with pytest.raises(ValueError, match="unknown type"):
        configure({"layers": [{"type": ["dense"], "units": 8}]})


def test_the_dashboards_box_reads_no_server_file(tmp_path):
    path = tmp_path / "stack.json"
    path.write_text(json.dumps([{"type": "dense", "units": 8}]))
    assert parse_layers(str(path)) == [{"type": "dense", "units": 8}]
    for text in (str(path), str(tmp_path / "missing.json"), "/etc/passwd"):
        with pytest.raises(ValueError) as caught:
            parse_layers(text, files=False)
        assert "is not a layer" in str(caught.value) and "no such" not in str(caught.value)
    assert parse_layers('[{"type": "dense", "units": 8}]', files=False)[0]["units"] == 8


def test_stacks_are_bounded_in_layers_and_digits():
    with pytest.raises(ValueError, match=f"at most {MAX_LAYERS} are allowed"):
        parse_layers(",".join(["relu"] * 10_000))
    for text in ("dense١٦", "dense" + "1" * 5000, "conv８k3"):
        with pytest.raises(ValueError, match="is not a layer") as caught:
            parse_layers(text)
        assert "set_int_max_str_digits" not in str(caught.value)


@pytest.mark.parametrize("text", ["1_0x1_0x1", "１0x10x1", "28x28x" + "1" * 5000])
def test_shapes_take_ascii_digits_only(text):
    with pytest.raises(ValueError, match="not an image shape"):
        parse_shape(text)
    with pytest.raises(DataError, match="give HEIGHTxWIDTH"):
        parse_image_shape(text)


# ------------------------------------------------------------------ 3: the search's JSON
@pytest.mark.parametrize(
    "flags",
    [
        ["--param", "hidden_layers=choice:" + "[" * 5000 + "]" * 5000],
        ["--param", "hidden_layers=" + "[" * 5000 + "]" * 5000],
        ["--set", "hidden_layers=" + "[" * 5000 + "]" * 5000],
        ["--param", "hidden_layers=choice:" + "1" * 5000],
    ],
    ids=["choice", "json-dimension", "set", "digits"],
)
def test_tune_refuses_deep_or_huge_json_values(no_search, flags):
    code, out, err = call("tune", "--no-record", *flags)
    assert code == 2 and ("deep; at most" in err or "digits; at most" in err), err
    assert "Traceback" not in err and "set_int_max_str_digits" not in err


def test_tune_refuses_a_deep_or_big_space_file(no_search, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps({"hidden_layers": {"type": "choice", "values": []}})[:-2] + DEEP)
    code, out, err = call("tune", "--no-record", "--space", str(deep))
    assert code == 2 and "deep; at most" in err, err
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"dropout": [0.1] * 400_000}))
    code, out, err = call("tune", "--no-record", "--space", str(big))
    assert code == 2 and "bytes; a JSON file here is at most 1,000,000" in err, err
    assert parse_dimension("choice:adam|sgd").values == ["adam", "sgd"]


# ------------------------------------------------------------------ 5: grids beyond int64
def test_a_grid_beyond_int64_is_sampled():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 784)).astype(np.uint8)
    y = np.arange(40) % 10
    names = ["learning_rate", "momentum", "beta1", "beta2", "rho", "l2", "dropout", "input_dropout"]
    space = SearchSpace({n: parse_dimension("uniform:0.001:0.01") for n in names})
    assert space.grid_size(1000) == 1000**8 > 2**63
    result = run_search(
        {"hidden_layers": [4], "batch_size": 20, "optimizer": "sgd"},
        space,
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
    assert len(result.trials) == 2
    assert result.trials[0].params != result.trials[1].params


# ------------------------------------------------------------------ 12, 14: tune's numbers
@pytest.mark.parametrize(
    "flags,message",
    [
        (["--timeout", "nan"], "--timeout: 'nan' is not a number (write e.g. 0.001"),
        (["--timeout", "inf"], "--timeout: 'inf' is not a number"),
        (["--timeout", "1e9"], "--timeout 1000000000.0: use a number of seconds above 0"),
        (["--timeout", "1_0"], "--timeout: '1_0' is not a number"),
        (["--seed", str(10**23)], f"--seed {10**23}: use a whole number from 0 to"),
        (["--epochs-per-trial", "1000000000"], "--epochs-per-trial 1000000000: use 1 to"),
        (["--name", "n" * 5000], "--name: 5,000 characters; use at most 100"),
        (
            ["--param", "hidden_layers=choice:[100000000]"],
            "hidden_layers: the value [100000000] is too big",
        ),
        (["--set", "hidden_layers=[100000000]"], "the fixed settings (--set): hidden_layers"),
    ],
    ids=[
        "timeout-nan",
        "timeout-inf",
        "timeout-week",
        "timeout-underscore",
        "seed",
        "epochs",
        "name",
        "choice-size",
        "set-size",
    ],
)
def test_tune_refuses_out_of_bound_numbers_before_loading_data(no_search, flags, message):
    code, out, err = call("tune", "--no-record", *flags)
    assert code == 2 and message in err, err
    assert "Traceback" not in err


# ------------------------------------------------------------------ 13: the Tune page's widths
@pytest.mark.parametrize("text", ["-5", "5--5", "1_0", "٥", "128 | -64", "[[[5]]]"])
def test_the_tune_pages_widths_refuse_what_is_not_a_positive_width(text):
    import ui.tune as tn

    with pytest.raises(ValueError, match="is not a list of whole numbers from 1 up"):
        tn.parse_layers(text)
    assert tn.parse_layers("64 | 256-128 | [32, 16]") == [[64], [256, 128], [32, 16]]


# ------------------------------------------------------------------ diverged trials
def test_diverged_trials_are_shown_as_diverged_with_the_reason():
    import ui.tune as tn

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (200, 784)).astype(np.uint8)
    y = np.arange(200) % 10
    space = SearchSpace({"learning_rate": parse_dimension("choice:1e6|0.01")})
    result = run_search(
        {"hidden_layers": [64, 64], "optimizer": "sgd", "batch_size": 16, "random_state": 0},
        space,
        x,
        y,
        x,
        y,
        strategy="grid",
        epochs_per_trial=3,
        halving=False,
    )
    by_rate = {t.params["learning_rate"]: t for t in result.trials}
    wild = by_rate[1e6]
    assert wild.status == "diverged" and wild.stop_reason == "diverged" and wild.message
    assert by_rate[0.01].status == "finished" and result.best_params == {"learning_rate": 0.01}
    frame = tn.trials_frame([t.to_dict() for t in result.trials])
    assert frame.loc[frame["trial"] == wild.index, "status"].item().startswith("diverged: ")


def test_the_estimator_bounds_its_stack_and_batch():
    from nn.core.network import NeuralNetwork

    x, y = np.zeros((20, 784)), np.arange(20) % 2
    with pytest.raises(ValueError, match=f"10,000 layers; a stack has at most {MAX_LAYERS}"):
        NeuralNetwork(layers=[{"type": "relu"}] * 10_000, epochs=1).fit(x, y)
    with pytest.raises(ValueError, match="batch_size=100000000000000000000 is not allowed"):
        NeuralNetwork(batch_size=10**20, epochs=1).fit(x, y)


def test_choices_are_bounded_and_described_briefly():
    from nn.core.limits import MAX_CHOICES

    with pytest.raises(ValueError, match=f"5,000 choices; a parameter has at most {MAX_CHOICES:,}"):
        parse_dimension("choice:" + "|".join(str(k) for k in range(5000)), "batch_size")
    many = parse_dimension("choice:" + "|".join(str(k) for k in range(1, 101)), "batch_size")
    assert many.describe().endswith("| ... (92 more)") and len(many.describe()) < 120


def test_tune_exits_3_when_every_trial_diverged(tmp_path):
    rng = np.random.default_rng(3)
    np.savez(
        tmp_path / "d.npz",
        x=rng.integers(0, 256, (200, 784)).astype(np.uint8),
        y=np.arange(200) % 10,
    )
    code, out, err = call(
        "tune", "--no-record", "--data", str(tmp_path / "d.npz"), "--split", "custom",
        "--param", "learning_rate=choice:1000000", "--set", "optimizer=sgd",
        "--set", "hidden_layers=[64,64]", "--set", "batch_size=20", "--trials", "1",
        "--epochs-per-trial", "2", "--train-size", "150", "--val-size", "20",
    )  # fmt: skip
    assert code == 3 and "1 diverged" in out + err, err


@pytest.mark.parametrize("text", ["1_0", "١٠", "nan", "inf", "0x10", "1" * 50])
def test_the_tune_pages_ranges_read_plain_numbers_only(text):
    import ui.tune as tn

    settings = tn.default_settings()
    entry = settings["params"]["learning_rate"]
    entry.update(on=True, low=text, high="0.1")
    space, errors = tn.build_space(settings, {})
    assert space is None and "is not a number" in errors["learning_rate"], errors
