"""bench/drawn_digits.py: each model's reading of the drawn-digit set and of MNIST's test set."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from nn.core.network import NeuralNetwork
from nn.data import load_mnist
from nn.data.drawn import drawn_inputs
from nn.io.model_files import save_model

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "drawn_digits.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("bench_drawn_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_model_gets_a_row_whose_counts_are_its_predictions(script, tmp_path, capsys):
    data = load_mnist()
    model = NeuralNetwork(hidden_layers=[16], epochs=1, random_state=0)
    model.fit(data.x_train[:2000], data.y_train[:2000])
    save_model(model, tmp_path / "small.npz")
    code = script.main(
        ["small", str(tmp_path / "small.npz"), "--models-dir", str(tmp_path), "--per-class", "2"]
        + ["--seed", "0", "1", "--test-images", "500", "--json"]
    )
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["small", str(tmp_path / "small.npz")]
    (x0, y0), (x1, y1) = drawn_inputs(2, 0), drawn_inputs(2, 1)
    x, y = np.concatenate([x0, x1]), np.concatenate([y0, y1])
    right = model.predict(x) == y
    for row in rows:
        assert row["stack"] == "D16-D10" and row["drawn_total"] == 40
        assert row["drawn_correct"] == int(right.sum())
        assert sum(row["drawn_misses"].values()) == 40 - row["drawn_correct"]
        assert set(row["drawn_misses"]) == {str(d) for d in np.unique(y[~right])}
        assert row["test_images"] == 500
        assert row["test_accuracy"] == model.score(data.x_test[:500], data.y_test[:500])


def test_a_missing_model_or_one_of_another_shape_is_refused(script, tmp_path, capsys):
    assert script.main(["nope", "--models-dir", str(tmp_path)]) == 2
    assert "nope: no such model file" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    other = NeuralNetwork(hidden_layers=[4], epochs=1, batch_size=20, random_state=0)
    other.fit(rng.random((60, 64)), np.arange(60) % 3)
    save_model(other, tmp_path / "other.npz")
    assert script.main([str(tmp_path / "other.npz")]) == 2
    assert "not a model of MNIST's 784 pixels and 10 digits" in capsys.readouterr().err
