"""The layer map: PCA against a direct SVD, the neighbour vote, layer outputs, the service and
``python -m nn map``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from nn.cli.main import main
from nn.core import projection
from nn.core.projection import (
    align_signs,
    fix_signs,
    last_hidden_layer,
    layer_output,
    neighbour_agreement,
    pca,
)
from nn.io.model_files import save_model
from nn.services.layer_map import layer_map


def _svd_projection(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    components = fix_signs(vt[:k])
    return components, xc @ components.T


@pytest.mark.parametrize("shape", [(300, 20), (40, 200)])
def test_pca_matches_a_direct_svd(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * np.linspace(3, 0.5, shape[1]) + 2.0
    components, points = _svd_projection(x)
    basis = pca(x, 2)
    np.testing.assert_allclose(basis.components, components, atol=1e-8)
    np.testing.assert_allclose(basis.project(x), points, atol=1e-8)
    xc = x - x.mean(axis=0)
    s = np.linalg.svd(xc, compute_uv=False)
    np.testing.assert_allclose(basis.variance, s[:2] ** 2 / (shape[0] - 1), rtol=1e-10)
    np.testing.assert_allclose(basis.explained.sum(), (s[:2] ** 2).sum() / (s**2).sum())


def test_randomized_pca_of_a_feature_map_matches_a_direct_svd(monkeypatch, cnn_model, small_model):
    monkeypatch.setattr(projection, "EXACT_SIDE", 50)  # 150 x 1176: the randomized path
    x = layer_output(cnn_model.layers_, small_model[1].x_test[:150], 2)[0].astype(np.float64)
    assert x.shape == (150, 14 * 14 * 6)
    components, points = _svd_projection(x)
    basis = pca(x, 2)
    np.testing.assert_allclose(basis.project(x), points, atol=1e-4 * np.abs(points).max())


def test_signs_are_fixed_and_aligned():
    c = np.array([[0.6, -0.8], [-0.8, -0.6]])
    fixed = fix_signs(c)
    assert fixed[0, 1] == pytest.approx(0.8) and fixed[1, 0] == pytest.approx(0.8)
    reference = -fixed
    np.testing.assert_allclose(align_signs(c, reference), reference)


def test_pca_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        pca(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        pca(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_neighbour_vote_separates_islands_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    islands = centres[labels] + rng.standard_normal((200, 2)) * 0.5
    assert neighbour_agreement(islands, labels) == 1.0
    shuffled = rng.permutation(labels)
    assert neighbour_agreement(islands, shuffled) < 0.5


def _vote_by_hand(points: np.ndarray, labels: np.ndarray, k: int) -> float:
    right = 0
    for i in range(len(points)):
        d = np.linalg.norm(points - points[i], axis=1)
        d[i] = np.inf
        voters = [int(labels[j]) for j in np.argsort(d, kind="stable")[:k]]
        counts = {c: voters.count(c) for c in voters}
        top = max(counts.values())
        winner = next(c for c in voters if counts[c] == top)  # nearest of the tied
        right += winner == labels[i]
    return right / len(points)


@pytest.mark.parametrize("k", [1, 4, 5])
def test_neighbour_vote_matches_a_vote_by_hand(k):
    rng = np.random.default_rng(k)
    points = rng.standard_normal((700, 2))  # more than one block of projection.CHUNK
    labels = (points[:, 0] > 0).astype(int) + rng.integers(0, 2, 700)
    assert neighbour_agreement(points, labels, k) == pytest.approx(_vote_by_hand(points, labels, k))


def test_layer_output_is_the_models_own(cnn_model, small_model):
    x = small_model[1].x_test[:37]
    outputs = cnn_model.layer_outputs(x)
    for index in (0, 3, last_hidden_layer(cnn_model.layers_)):
        features, logits = layer_output(cnn_model.layers_, x, index, to_end=True)
        expected = outputs[index][1].reshape(37, -1)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(logits, outputs[-1][1], rtol=1e-5, atol=1e-6)
    assert cnn_model.layers_[last_hidden_layer(cnn_model.layers_) + 1].param_names or any(
        layer.kind == "dropout"
        for layer in cnn_model.layers_[last_hidden_layer(cnn_model.layers_) + 1 : -1]
    )


def test_layer_map_service(small_model):
    model, data = small_model
    result = layer_map(model, data.x_test, data.y_test, images=300)
    assert result.points.shape == (300, 2)
    assert result.layer == last_hidden_layer(model.layers_)
    np.testing.assert_array_equal(result.predicted, model.predict(data.x_test[:300]))
    assert 0.3 < result.agreement <= 1.0  # chance is about 0.1
    assert len(result.explained) == 2 and 0 < sum(result.explained) <= 1
    with pytest.raises(ValueError, match="at least 10"):
        layer_map(model, data.x_test, data.y_test, images=3)
    with pytest.raises(ValueError, match="unknown map method"):
        layer_map(model, data.x_test, data.y_test, method="tsne")


def _call(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small_file(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "small.npz"
    save_model(small_model[0], path)
    return path


def test_cli_map_json(small_file, small_model):
    code, out, err = _call("map", str(small_file), "--layer", "1", "--images", "200", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["points"]) == 200
    assert result["layer"] == 1 and result["method"] == "pca"
    x, y, label, predicted = result["points"][0]
    assert isinstance(x, float) and label == int(small_model[1].y_test[0])
    assert "5-nearest-neighbour" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "9"], "layer 9 does not exist"),
        (["--images", "2"], "at least 10"),
        (["--images", "20000"], "at most 10,000"),
        (["--method", "tsne"], "invalid choice"),
    ],
)
def test_cli_map_bad_arguments_exit_2(small_file, args, message):
    code, _, err = _call("map", str(small_file), *args)
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(
    not __import__("nn.services.layer_map").services.layer_map.umap_available(),
    reason="umap-learn is not installed (requirements-map.txt)",
)
def test_cli_map_umap(small_file):
    code, out, err = _call("map", str(small_file), "--method", "umap", "--images", "100", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["method"] == "umap" and len(result["points"]) == 100
    assert np.isfinite(np.array([p[:2] for p in result["points"]])).all()
