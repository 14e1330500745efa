"""Tests for nn.core.augment: shapes, identity, geometry (centre of mass, mass), seeding and
config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core.augment import Augmenter, gaussian_smoothing_matrix, warp_batch


def blobs(n: int = 16, seed: int = 0) -> np.ndarray:
    """Soft digit-like blobs well inside the frame, uint8 (n, 784)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    cy, cx = rng.uniform(11, 17, (2, n, 1, 1))
    sy, sx = rng.uniform(2.0, 4.0, (2, n, 1, 1))
    img = np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    img[:, 12:14, :] *= 0.3  # break the symmetry a little
    return np.rint(img * 255).astype(np.uint8).reshape(n, 784)


def centre_and_mass(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = batch.reshape(-1, 28, 28).astype(np.float64)
    mass = b.sum(axis=(1, 2))
    yy, xx = np.mgrid[0:28, 0:28]
    return (b * xx).sum(axis=(1, 2)) / mass, (b * yy).sum(axis=(1, 2)) / mass, mass


def test_shape_dtype_range() -> None:
    x = blobs()
    for aug in (Augmenter(), Augmenter(elastic_alpha=34.0, random_state=0), Augmenter(0, 0, 0)):
        out = aug(x)
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    out = Augmenter(random_state=1)(x.reshape(-1, 28, 28))
    assert out.shape == (16, 28, 28)
    assert Augmenter()(x[:0]).shape == (0, 784)
    out = Augmenter(random_state=1)(x / 255.0)  # floats in [0, 1] accepted
    assert out.dtype == np.float32 and out.shape == x.shape


def test_input_is_not_modified() -> None:
    x = blobs()
    before = x.copy()
    Augmenter(elastic_alpha=20.0, random_state=0)(x)
    np.testing.assert_array_equal(x, before)


def test_zero_strengths_identity() -> None:
    x = blobs()
    expected = x / np.float32(255)
    np.testing.assert_allclose(Augmenter(0, 0, 0, 0)(x), expected, atol=1e-6)
    np.testing.assert_allclose(Augmenter(probability=0.0)(x), expected, atol=1e-6)
    np.testing.assert_allclose(warp_batch(x), expected, atol=1e-5)  # general path, no parameters


def test_shift_moves_centre_of_mass() -> None:
    x = blobs()
    cx0, cy0, m0 = centre_and_mass(x / 255.0)
    cx1, cy1, m1 = centre_and_mass(warp_batch(x, dx=2.5, dy=-1.5))
    np.testing.assert_allclose(cx1 - cx0, 2.5, atol=0.05)
    np.testing.assert_allclose(cy1 - cy0, -1.5, atol=0.05)
    np.testing.assert_allclose(m1, m0, rtol=0.02)
    # random shifts stay within the configured maximum
    cx2, cy2, _ = centre_and_mass(Augmenter(shift=3.0, rotation=0, scale=0, random_state=0)(x))
    moved = np.hypot(cx2 - cx0, cy2 - cy0)
    assert moved.max() <= 3.0 * np.sqrt(2) + 0.1 and moved.mean() > 0.5


def test_rotation_preserves_mass_and_moves_pixels() -> None:
    x = blobs()
    _, _, m0 = centre_and_mass(x / 255.0)
    out = warp_batch(x, angle=25.0)
    _, _, m1 = centre_and_mass(out)
    np.testing.assert_allclose(m1, m0, rtol=0.05)
    assert np.abs(out - x / 255.0).mean() > 0.01
    back = warp_batch(out, angle=-25.0)
    assert np.abs(back - x / 255.0).mean() < 0.02  # rotating back nearly restores it


def test_zoom_scales_mass_by_area() -> None:
    x = blobs()
    _, _, m0 = centre_and_mass(x / 255.0)
    _, _, m1 = centre_and_mass(warp_batch(x, zoom=1.2))
    np.testing.assert_allclose(m1 / m0, 1.44, rtol=0.05)


def test_elastic_changes_image_keeps_mass() -> None:
    x = blobs()
    _, _, m0 = centre_and_mass(x / 255.0)
    out = Augmenter(
        shift=0, rotation=0, scale=0, elastic_alpha=34.0, elastic_sigma=4.0, random_state=0
    )(x)
    _, _, m1 = centre_and_mass(out)
    assert np.abs(out - x / 255.0).mean() > 0.005
    # local stretching changes single images (Simard's alpha=34, sigma=4 is strong), the batch
    # as a whole keeps its ink
    assert np.all((m1 / m0 > 0.5) & (m1 / m0 < 2.0))
    assert abs(m1.sum() / m0.sum() - 1) < 0.15


def test_gaussian_smoothing_matrix_rows_sum_to_one() -> None:
    g = gaussian_smoothing_matrix(4.0)
    assert g.shape == (28, 28) and g.dtype == np.float32
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(g, g[::-1, ::-1], atol=1e-7)  # symmetric boundaries


def test_probability_leaves_some_images_untouched() -> None:
    x = blobs(64)
    out = Augmenter(shift=3, rotation=20, scale=0.2, probability=0.5, random_state=0)(x)
    same = np.all(np.abs(out - x / 255.0) < 1e-5, axis=1)
    assert 10 < same.sum() < 54


def test_seeded_repeatability() -> None:
    x = blobs()
    cfg = dict(elastic_alpha=30.0, random_state=42)
    a, b = Augmenter(**cfg), Augmenter(**cfg)
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_array_equal(a(x), b(x))  # the streams advance together
    assert not np.array_equal(a(x), Augmenter(elastic_alpha=30.0, random_state=43)(x))
    assert not np.array_equal(a(x), a(x))  # successive calls differ
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(Augmenter()(x, rng=r1), Augmenter(random_state=9)(x, rng=r2))


def test_config_round_trip() -> None:
    aug = Augmenter(
        shift=1.5,
        rotation=5,
        scale=0.05,
        elastic_alpha=12,
        elastic_sigma=3,
        probability=0.8,
        random_state=7,
    )
    config = json.loads(json.dumps(aug.get_config()))
    assert config == aug.get_config()
    again = Augmenter(**config)
    assert again.get_config() == config
    x = blobs()
    np.testing.assert_array_equal(aug(x), again(x))
    assert "shift=1.5" in repr(aug)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shift=-1), r"shift=-1 is outside the allowed range \[0, 14\]"),
        (dict(rotation=181), r"rotation=181 is outside the allowed range \[0, 180\]"),
        (dict(scale=1.0), r"scale=1.0 is outside the allowed range \[0, 0.9\]"),
        (dict(elastic_alpha=float("nan")), "elastic_alpha=nan is outside"),
        (dict(elastic_sigma=0), r"elastic_sigma=0 is outside the allowed range \(0, 28\]"),
        (dict(probability=1.5), r"probability=1.5 is outside the allowed range \[0, 1\]"),
        (dict(shift="2"), "shift='2' must be a number"),
        (dict(rotation=True), "rotation=True must be a number"),
        (dict(random_state=-3), "random_state=-3 must be a non-negative integer"),
    ],
)
def test_parameter_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augmenter(**kwargs)


def test_input_validation() -> None:
    aug = Augmenter()
    with pytest.raises(ValueError, match=r"shape \(n, 784\)"):
        aug(np.zeros((3, 100), np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        aug(np.full((3, 784), 2.0))
    with pytest.raises(ValueError, match="dtype int64"):
        aug(np.zeros((3, 784), np.int64))
    with pytest.raises(ValueError, match="displacement must have shape"):
        warp_batch(np.zeros((3, 784), np.uint8), displacement=np.zeros((3, 784)))
