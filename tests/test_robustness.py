"""Corruptions, the coverage curve, the robustness service and ``python -m nn robustness``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from nn.cli.main import main
from nn.core.confidence import check_threshold, coverage_curve
from nn.data.corruptions import CORRUPTIONS, as_unit, corrupt
from nn.io.model_files import save_model
from nn.services.robustness import robustness


@pytest.fixture(scope="module")
def digits(small_model):
    return small_model[1].x_test[:64]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_level_zero_is_the_identity(digits, name):
    clean = digits.astype(np.float32) / 255
    assert CORRUPTIONS[name].levels[0] == 0 and len(CORRUPTIONS[name].levels) >= 6
    same = corrupt(digits, name, 0.0)
    np.testing.assert_allclose(same, clean, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(np.rint(same * 255).astype(np.uint8), digits)
    # and the corruption grows from there without a jump: a tiny level changes little
    tiny = corrupt(digits, name, 1e-3)
    assert tiny.dtype == np.float32 and tiny.shape == clean.shape
    assert np.abs(tiny - clean).max() < 0.05


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_levels_grow_the_change(digits, name):
    clean = as_unit(digits)
    change = [np.abs(corrupt(digits, name, lv) - clean).mean() for lv in CORRUPTIONS[name].levels]
    assert change[0] == 0 and all(c > 0 for c in change[1:])
    assert change[-1] > change[1]
    out = corrupt(digits, name, CORRUPTIONS[name].levels[-1])
    assert out.min() >= 0 and out.max() <= 1


def test_what_the_corruptions_do(digits):
    ink = as_unit(digits).sum()
    assert corrupt(digits, "thicker", 1).sum() > 1.3 * ink
    assert corrupt(digits, "thinner", 1).sum() < 0.7 * ink
    assert corrupt(digits, "blur", 1).sum() == pytest.approx(ink, rel=0.05)
    grey = corrupt(digits, "contrast", 0.6)
    assert grey.min() == pytest.approx(0.5 - 0.5 * 0.4) and grey.max() <= 0.5 + 0.5 * 0.4 + 1e-6
    shifted = corrupt(digits[:1], "shift", 3).reshape(28, 28)
    rows, cols = np.nonzero(shifted > 0.5)
    rows0, cols0 = np.nonzero(as_unit(digits[:1]).reshape(28, 28) > 0.5)
    moved = np.hypot(rows.mean() - rows0.mean(), cols.mean() - cols0.mean())
    assert 2 < moved < 4


def test_corruptions_refuse_other_images():
    with pytest.raises(ValueError, match="28x28"):
        corrupt(np.zeros((2, 100)), "blur", 1)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(np.zeros((2, 784)), "melt", 1)


def test_coverage_curve_falls_from_one():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 1000)
    correct = rng.uniform(size=1000) < confidence  # surer is righter
    curve = coverage_curve(confidence, correct)
    thresholds, coverage, accuracy = (np.array(c, dtype=float) for c in zip(*curve, strict=True))
    assert thresholds[0] == 0 and coverage[0] == 1.0
    assert accuracy[0] == pytest.approx(correct.mean())
    assert np.all(np.diff(thresholds) > 0) and np.all(np.diff(coverage) <= 0)
    answered = accuracy[coverage > 0.05]
    assert answered[-1] > answered[0]
    # each point as counted directly
    for t, c, a in curve[::7]:
        kept = confidence >= t
        assert c == kept.mean()
        assert a == (pytest.approx(correct[kept].mean()) if kept.any() else None)


def test_threshold_checks():
    for bad in (-0.1, 1.5, "x", None, True, float("nan")):
        with pytest.raises(ValueError, match="from 0 to 1"):
            check_threshold(bad)


def test_robustness_service(small_model):
    model, data = small_model
    seen = []
    result = robustness(
        model, data.x_test, data.y_test, images=100, progress=lambda f, w: seen.append(f)
    )
    clean = float(np.mean(model.predict(data.x_test[:100]) == data.y_test[:100]))
    assert result.test_accuracy == pytest.approx(clean)
    assert set(result.curves) == set(CORRUPTIONS)
    for name, curve in result.curves.items():
        assert curve[0] == [0.0, pytest.approx(clean)]
        assert [lv for lv, _ in curve] == list(CORRUPTIONS[name].levels)
        assert len(result.worst[name]) == len(curve)
    assert result.curves["noise"][-1][1] < clean
    worst = result.worst["rotation"][-1]
    assert worst.images.shape == (12, 784) and worst.images.dtype == np.uint8
    assert worst.true_probability == sorted(worst.true_probability)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert result.coverage[0][:2] == [0.0, 1.0]
    with pytest.raises(ValueError, match="28x28"):
        robustness(type("M", (), {"input_shape_": (32, 32, 3)})(), data.x_test, data.y_test)


def test_cli_robustness_json(small_model, tmp_path):
    path = save_model(small_model[0], tmp_path / "small.npz")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["robustness", str(path), "--images", "50", "--json"])
    assert code == 0, err.getvalue()
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(result["corruptions"]) == set(CORRUPTIONS)
    assert result["corruptions"]["blur"][0] == [0.0, result["test_accuracy"]]
    assert result["coverage"][0] == [0.0, 1.0, result["test_accuracy"]]
    assert [row[0] for row in result["coverage"]] == sorted(row[0] for row in result["coverage"])
    assert "clean accuracy" in err.getvalue()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["robustness", str(path), "--images", "0"]) == 2
    assert "from 10 to 10,000" in err.getvalue()
