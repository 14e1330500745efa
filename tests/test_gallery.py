"""Pure-function tests of ui.gallery: filtering, sorting, paging, data-set summaries, tiling."""

from __future__ import annotations

import numpy as np
import pytest

from ui.gallery import (
    GREEN,
    RED,
    GridTile,
    as_images,
    class_counts,
    filter_indices,
    labelled_grid,
    mean_images,
    page_count,
    page_slice,
    sample_per_class,
    sort_indices,
    tile_images,
)

Y_TRUE = np.array([0, 1, 2, 1, 0, 2, 1])
Y_PRED = np.array([0, 2, 2, 1, 1, 2, 0])
CONF = np.array([0.9, 0.4, 0.8, 0.95, 0.3, 0.6, 0.4])


def test_filter_without_filters_keeps_everything():
    assert filter_indices(Y_TRUE, Y_PRED).tolist() == list(range(7))


def test_filter_by_true_pred_and_mistakes():
    assert filter_indices(Y_TRUE, Y_PRED, true_digit=1).tolist() == [1, 3, 6]
    assert filter_indices(Y_TRUE, Y_PRED, pred_digit=2).tolist() == [1, 2, 5]
    assert filter_indices(Y_TRUE, Y_PRED, only_mistakes=True).tolist() == [1, 4, 6]
    assert filter_indices(Y_TRUE, Y_PRED, true_digit=1, only_mistakes=True).tolist() == [1, 6]
    assert filter_indices(Y_TRUE, Y_PRED, true_digit=1, pred_digit=2).tolist() == [1]
    assert filter_indices(Y_TRUE, Y_PRED, true_digit=9).tolist() == []
    # digit 0 is a real filter, not "any"
    assert filter_indices(Y_TRUE, Y_PRED, true_digit=0).tolist() == [0, 4]


def test_filter_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        filter_indices(Y_TRUE, Y_PRED[:3])


def test_sort_by_index_and_by_confidence_least_sure_first():
    idx = np.array([5, 1, 3, 6])
    assert sort_indices(idx, CONF, "index").tolist() == [1, 3, 5, 6]
    # confidence 0.6, 0.4, 0.95, 0.4 -> ties (1 and 6 at 0.4) keep index order
    assert sort_indices(idx, CONF, "confidence").tolist() == [1, 6, 5, 3]
    with pytest.raises(ValueError):
        sort_indices(idx, CONF, "size")


def test_paging():
    assert page_count(0, 48) == 1
    assert page_count(48, 48) == 1
    assert page_count(49, 48) == 2
    assert page_count(10_000, 48) == 209
    items = np.arange(100)
    assert page_slice(items, 1, 48).tolist() == list(range(48))
    assert page_slice(items, 3, 48).tolist() == list(range(96, 100))
    assert page_slice(items, 99, 48).tolist() == list(range(96, 100))  # clamped to the last
    assert page_slice(items, 0, 48).tolist() == list(range(48))  # clamped to the first
    assert len(page_slice(np.arange(0), 1, 48)) == 0
    with pytest.raises(ValueError):
        page_count(10, 0)
    # all pages together are exactly the items, once
    pages = [page_slice(items, p, 48) for p in range(1, page_count(100, 48) + 1)]
    assert np.concatenate(pages).tolist() == items.tolist()


def test_class_counts_and_mean_images():
    y = np.array([0, 0, 1, 3])
    assert class_counts(y, 5).tolist() == [2, 1, 0, 1, 0]
    x = np.zeros((4, 784), dtype=np.uint8)
    x[0, 0] = 100
    x[1, 0] = 200
    x[2, 5] = 255
    means = mean_images(x, y, 5)
    assert means.shape == (5, 28, 28)
    assert means[0, 0, 0] == pytest.approx(150)
    assert means[1, 0, 5] == pytest.approx(255)
    assert not means[2].any()  # no samples: black


def test_sample_per_class_orders_rows_by_class():
    y = np.repeat(np.arange(10), 20)
    idx = sample_per_class(y, 3, seed=1)
    assert idx.shape == (30,)
    assert y[idx].tolist() == np.repeat(np.arange(10), 3).tolist()
    assert len(set(idx.tolist())) == 30
    assert sample_per_class(y, 3, seed=1).tolist() == idx.tolist()  # reproducible


def test_as_images_shapes():
    assert as_images(np.zeros(784)).shape == (1, 28, 28)
    assert as_images(np.zeros((28, 28))).shape == (1, 28, 28)
    assert as_images(np.zeros((5, 784))).shape == (5, 28, 28)
    assert as_images(np.zeros((0, 784))).shape == (0, 28, 28)
    assert as_images(np.zeros((3, 28, 28))).shape == (3, 28, 28)


def test_tile_images_places_every_image():
    imgs = np.stack([np.full((28, 28), 10 * (i + 1), dtype=np.uint8) for i in range(5)])
    out = tile_images(imgs, ncols=3, scale=2, pad=1)
    cell = 28 * 2 + 2
    assert out.shape == (2 * cell, 3 * cell, 3) and out.dtype == np.uint8
    for i in range(5):
        r, c = divmod(i, 3)
        assert (
            out[r * cell + 1 : r * cell + 57, c * cell + 1 : c * cell + 57] == 10 * (i + 1)
        ).all()
    # the unused sixth cell and the padding are background white
    assert (out[cell:, 2 * cell :] == 255).all()
    assert (out[0, :] == 255).all()


def test_tile_images_borders_and_floats():
    imgs = np.zeros((2, 784), dtype=np.float32)
    out = tile_images(imgs, ncols=2, pad=0, border=2, border_colors=[GREEN, RED])
    assert out.shape == (32, 64, 3)
    assert tuple(out[0, 0]) == GREEN and tuple(out[0, 32]) == RED
    assert tuple(out[10, 10]) == (0, 0, 0)
    with pytest.raises(ValueError):
        tile_images(imgs, ncols=2, border=2, border_colors=[GREEN])


def test_tile_images_empty_and_one_column_cap():
    assert tile_images(np.zeros((0, 784), np.uint8), ncols=4).shape[2] == 3
    # ncols larger than the number of images: the picture is only as wide as needed
    assert tile_images(np.zeros((2, 784), np.uint8), ncols=10, pad=0).shape == (28, 56, 3)


def test_labelled_grid_one_picture_with_coloured_frames():
    imgs = np.full((3, 784), 255, dtype=np.uint8)
    tiles = [
        GridTile(("#0", "7 → 7 · 90%"), GREEN),
        GridTile(("#1",), RED),
        GridTile(("#2", "x"), GREEN),
    ]
    out = labelled_grid(imgs, tiles, ncols=2, scale=3, border=3, pad=4)
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    assert out.shape[1] == 2 * (28 * 3 + 6 + 8)
    assert tuple(out[4, 4]) == GREEN  # top-left corner of the first frame
    assert tuple(out[4, 4 + 96 + 4]) == RED  # second tile's frame
    assert (out[4 + 3 : 4 + 3 + 84, 4 + 3 : 4 + 3 + 84] == 255).all()  # the image itself
    # caption text is drawn in the tile's colour somewhere under the first image
    caption = out[4 + 90 : out.shape[0] // 2, :96]
    assert (np.abs(caption.astype(int) - np.array(GREEN)).sum(axis=2) < 60).any()
    with pytest.raises(ValueError):
        labelled_grid(imgs, tiles[:2], ncols=2)


def test_tiling_48_images_makes_six_rows_of_eight():
    imgs = np.random.default_rng(0).integers(0, 256, (48, 784), dtype=np.uint8)
    tiles = [GridTile((f"#{i}", "1 → 1 · 99%"), GREEN) for i in range(48)]
    grid = labelled_grid(imgs, tiles, ncols=8)
    one_row = labelled_grid(imgs[:8], tiles[:8], ncols=8)
    assert grid.shape[1] == one_row.shape[1]
    assert 5 * one_row.shape[0] < grid.shape[0] <= 6 * one_row.shape[0]


def test_grid_figure_puts_a_clickable_marker_on_every_tile():
    """The grid picture at its own pixel size with one invisible square marker per tile centre
    (the clicks), the picked tile tinted; a selection event gives back the tile."""
    from ui.gallery import PICKED_TINT, GridTile, grid_figure, labelled_grid, tile_from_selection

    images = np.zeros((10, 784), dtype=np.uint8)
    picture = labelled_grid(images, [GridTile(("#1", "7 → 7"))] * 10, ncols=4)
    fig = grid_figure(picture, 10, 4, [f"tile {i}" for i in range(10)], picked=5)
    height, width = picture.shape[:2]
    assert (fig.layout.width, fig.layout.height) == (width, height)
    marks = fig.data[1]
    cell_w, cell_h = width / 4, height / 3
    assert marks.x[5] == 1.5 * cell_w and marks.y[5] == 1.5 * cell_h  # row 1, column 1
    assert marks.marker.color[5] == PICKED_TINT and marks.marker.color[0] == "rgba(0,0,0,0)"
    assert fig.layout.clickmode == "event+select" and fig.layout.dragmode is False
    event = {"selection": {"points": [{"point_index": 7, "x": 1.0, "y": 2.0}]}}
    assert tile_from_selection(event, 10) == 7
    assert tile_from_selection({"selection": {"points": []}}, 10) is None
    assert tile_from_selection({"selection": {"points": [{"point_index": 12}]}}, 10) is None
