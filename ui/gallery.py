"""Image-grid helpers for the dashboard: filter, sort and page test images, and tile many 28x28
images into ONE picture (one ``st.image`` call instead of hundreds); ``grid_figure`` makes such
a picture clickable (a Plotly figure whose tiles can be picked).

Everything here is a pure function of NumPy arrays (no Streamlit), so it is tested directly in
``tests/test_gallery.py``.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "GREEN",
    "RED",
    "GREY",
    "filter_indices",
    "sort_indices",
    "page_count",
    "page_slice",
    "class_counts",
    "mean_images",
    "sample_per_class",
    "as_images",
    "tile_images",
    "labelled_grid",
    "GridTile",
    "grid_figure",
    "tile_from_selection",
    "png_data_url",
]

GREEN = (34, 160, 80)  #: border / caption colour of a correct prediction
RED = (220, 50, 50)  #: border / caption colour of a mistake
GREY = (120, 120, 120)

SORTS = ("index", "confidence")  #: ``confidence`` = least sure first


# ----------------------------------------------------------------------------- selecting
def filter_indices(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    true_digit: int | None = None,
    pred_digit: int | None = None,
    only_mistakes: bool = False,
) -> np.ndarray:
    """Indices (ascending, int64) of the samples that pass every given filter.

    ``None`` means "any" for a digit filter. ``only_mistakes`` keeps ``y_true != y_pred``.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    keep = np.ones(y_true.shape[0], dtype=bool)
    if true_digit is not None:
        keep &= y_true == true_digit
    if pred_digit is not None:
        keep &= y_pred == pred_digit
    if only_mistakes:
        keep &= y_true != y_pred
    return np.flatnonzero(keep).astype(np.int64)


def sort_indices(indices: np.ndarray, confidence: np.ndarray, by: str = "index") -> np.ndarray:
    """Order ``indices``: ``"index"`` ascending, or ``"confidence"`` least sure first
    (``confidence[i]`` is the probability of the predicted class; ties keep index order)."""
    indices = np.asarray(indices, dtype=np.int64)
    if by == "index":
        return np.sort(indices, kind="stable")
    if by == "confidence":
        ordered = np.sort(indices, kind="stable")
        return ordered[np.argsort(np.asarray(confidence)[ordered], kind="stable")]
    raise ValueError(f"by={by!r} is not allowed: use one of {', '.join(SORTS)}.")


def page_count(n_items: int, page_size: int) -> int:
    """Number of pages for ``n_items`` (at least 1, so an empty result still has a page 1)."""
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    return max(1, math.ceil(n_items / page_size))


def page_slice(items: Sequence | np.ndarray, page: int, page_size: int):
    """The items of 1-based ``page``; a page past the end is clamped to the last page."""
    pages = page_count(len(items), page_size)
    page = min(max(int(page), 1), pages)
    start = (page - 1) * page_size
    return items[start : start + page_size]


# ----------------------------------------------------------------------------- data set stats
def class_counts(y: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """How many samples of each class (int64, length ``n_classes``)."""
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)[:n_classes]


def mean_images(
    x: np.ndarray, y: np.ndarray, n_classes: int = 10, shape: Sequence[int] | None = None
) -> np.ndarray:
    """The mean image of each class as float32 ``(n_classes, 28, 28)`` in [0, 255]
    (a class with no samples gives a black image); ``shape`` ``(h, w, c)`` of other images gives
    ``(n_classes, h, w)`` for greyscale, ``(n_classes, h, w, 3)`` for colour."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int64)
    side = int(round(math.sqrt(x.shape[1])))
    out = np.zeros((n_classes, x.shape[1]), dtype=np.float64)
    for k in range(n_classes):
        rows = x[y == k]
        if rows.shape[0]:
            out[k] = rows.mean(axis=0, dtype=np.float64)
    if shape is not None:
        return as_images(out.astype(np.float32), shape)
    return out.reshape(n_classes, side, side).astype(np.float32)


def sample_per_class(
    y: np.ndarray, per_class: int, n_classes: int = 10, seed: int = 0
) -> np.ndarray:
    """``per_class`` random indices of every class, ordered class by class (row k of a grid with
    ``per_class`` columns shows digit k). Classes with fewer samples give what they have."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    parts = []
    for k in range(n_classes):
        idx = np.flatnonzero(y == k)
        take = min(per_class, idx.size)
        parts.append(np.sort(rng.choice(idx, size=take, replace=False)) if take else idx[:0])
    return np.concatenate(parts).astype(np.int64)


# ----------------------------------------------------------------------------- tiling
def as_images(x: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """``(n, 784)`` or ``(n, 28, 28)`` (or one ``(784,)``/``(28, 28)`` image) -> ``(n, h, w)``.

    ``shape`` ``(h, w, c)`` reads rows (or one row) of other images: ``(n, h, w)`` for
    greyscale, ``(n, h, w, 3)`` for colour. Colour images ``(n, h, w, 3)`` pass as they are."""
    x = np.asarray(x)
    if shape is not None:
        h, w, c = (int(d) for d in shape)
        x = x.reshape(-1, h, w, c)
        return x[..., 0] if c == 1 else x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x[..., 0] if x.shape[3] == 1 else x
    if x.ndim == 1:
        x = x[None]
    if x.ndim == 2 and x.shape[1] == 784:
        return x.reshape(-1, 28, 28)
    if x.ndim == 2:  # a single square image
        return x[None]
    if x.ndim == 3:
        return x
    raise ValueError(f"cannot read images of shape {x.shape}")


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def tile_images(
    images: np.ndarray,
    ncols: int,
    *,
    scale: int = 1,
    pad: int = 2,
    border: int = 0,
    border_colors: Sequence[tuple[int, int, int]] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Tile images into one ``(H, W, 3)`` uint8 RGB picture, row-major, ``ncols`` per row.

    Each image is enlarged ``scale`` times (nearest neighbour, crisp pixels), surrounded by a
    ``border``-pixel frame of ``border_colors[i]`` (if given) and ``pad`` pixels of ``background``.
    Images are uint8 (or floats in [0, 255]); white ink on black, as MNIST; colour images are
    ``(n, h, w, 3)``.
    """
    imgs = _to_uint8(as_images(images))
    n, h, w = imgs.shape[:3]
    if ncols <= 0:
        raise ValueError(f"ncols must be positive, got {ncols}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if border_colors is not None and len(border_colors) != n:
        raise ValueError(f"{len(border_colors)} border colours for {n} images")
    ncols = min(ncols, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    th, tw = h * scale + 2 * border, w * scale + 2 * border
    cell_h, cell_w = th + 2 * pad, tw + 2 * pad
    out = np.empty((nrows * cell_h, ncols * cell_w, 3), dtype=np.uint8)
    out[...] = np.asarray(background, dtype=np.uint8)
    if n == 0:
        return out
    big = imgs.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else imgs
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = r * cell_h + pad, c * cell_w + pad
        if border and border_colors is not None:
            out[top : top + th, left : left + tw] = np.asarray(border_colors[i], dtype=np.uint8)
        out[top + border : top + border + h * scale, left + border : left + border + w * scale] = (
            big[i] if big.ndim == 4 else big[i][..., None]
        )
    return out


@dataclass(frozen=True)
class GridTile:
    """Caption lines and colour of one tile of :func:`labelled_grid`."""

    lines: tuple[str, ...]
    color: tuple[int, int, int] = GREY


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    for name in (
        "DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "LiberationSans-Regular.ttf",
        "Arial.ttf",
    ):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def labelled_grid(
    images: np.ndarray,
    tiles: Sequence[GridTile],
    ncols: int,
    *,
    scale: int = 3,
    border: int = 3,
    pad: int = 4,
    font_size: int = 13,
    shape: Sequence[int] | None = None,
) -> np.ndarray:
    """One RGB picture of images with a coloured frame and caption lines under each.

    ``tiles[i]`` gives image i's caption lines and colour (frame and text). Used for the
    prediction grids: green for right, red for wrong. ``shape`` ``(h, w, c)``: the images are
    rows of that shape (see :func:`as_images`).
    """
    imgs = _to_uint8(as_images(images, shape))
    n, h, w = imgs.shape[:3]
    if len(tiles) != n:
        raise ValueError(f"{len(tiles)} captions for {n} images")
    n_lines = max((len(t.lines) for t in tiles), default=0)
    font = _font(font_size)
    line_h = font_size + 3
    caption_h = n_lines * line_h + (2 if n_lines else 0)
    tw = w * scale + 2 * border
    cell_w = max(tw, 0) + 2 * pad
    cell_h = h * scale + 2 * border + caption_h + 2 * pad
    ncols = max(1, min(ncols, max(n, 1)))
    nrows = max(1, math.ceil(n / ncols))
    grid = tile_images(
        imgs,
        ncols,
        scale=scale,
        pad=0,
        border=border,
        border_colors=[t.color for t in tiles] if n else None,
    )
    out = Image.new("RGB", (ncols * cell_w, nrows * cell_h), (255, 255, 255))
    th_img = h * scale + 2 * border
    if n:
        # paste each framed image (taken from the padless grid) into its padded cell
        for i in range(n):
            r, c = divmod(i, ncols)
            tile = grid[r * th_img : (r + 1) * th_img, c * tw : (c + 1) * tw]
            out.paste(Image.fromarray(tile), (c * cell_w + pad, r * cell_h + pad))
    draw = ImageDraw.Draw(out)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        x0 = c * cell_w + pad
        y0 = r * cell_h + pad + th_img + 2
        for j, line in enumerate(t.lines):
            width = draw.textlength(line, font=font)
            draw.text(
                (x0 + max(0.0, (tw - width) / 2), y0 + j * line_h), line, fill=t.color, font=font
            )
    return np.asarray(out)


def png_data_url(picture: np.ndarray) -> str:
    """``picture`` (grey or RGB uint8) as a ``data:image/png;base64,...`` URL."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


PICKED_TINT = "rgba(31,119,180,0.28)"  #: the picked tile of a :func:`grid_figure`


def grid_figure(
    picture: np.ndarray,
    n: int,
    ncols: int,
    hover: Sequence[str],
    picked: int | None = None,
) -> go.Figure:
    """A :func:`labelled_grid` picture of ``n`` tiles as a Plotly figure at its own pixel size,
    each tile clickable: an invisible square marker on every tile centre takes the click (a
    selection event whose point index is the tile's) and shows ``hover[i]``; the ``picked``
    tile is tinted."""
    height, width = picture.shape[:2]
    ncols = max(1, min(ncols, max(n, 1)))
    nrows = max(1, math.ceil(n / ncols))
    cell_w, cell_h = width / ncols, height / nrows
    rows, cols = np.divmod(np.arange(n), ncols)
    xs, ys = ((cols + 0.5) * cell_w).tolist(), ((rows + 0.5) * cell_h).tolist()
    colours = [PICKED_TINT if i == picked else "rgba(0,0,0,0)" for i in range(n)]
    fig = go.Figure(
        [
            go.Image(source=png_data_url(picture), x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"),
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                marker=dict(symbol="square", size=min(cell_w, cell_h) - 4, color=colours),
                selected=dict(marker=dict(opacity=1)),
                unselected=dict(marker=dict(opacity=1)),
                text=list(hover),
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            ),
        ]
    )
    fig.update_layout(
        width=width,
        height=height,
        margin=dict(l=0, r=0, t=0, b=0),
        xaxis=dict(visible=False, range=[0, width], fixedrange=True),
        yaxis=dict(visible=False, range=[height, 0], fixedrange=True),
        plot_bgcolor="white",
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
    )
    return fig


def tile_from_selection(event, n: int) -> int | None:
    """The tile (0..n-1) picked in a :func:`grid_figure`'s selection event (the last point of
    the tiles' trace), or ``None``."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, AttributeError):
        return None
    for point in reversed(list(points or [])):
        index = point.get("point_index", point.get("pointIndex")) if hasattr(point, "get") else None
        if isinstance(index, int) and 0 <= index < n:
            return index
    return None
