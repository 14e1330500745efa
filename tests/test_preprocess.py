"""Tests for nn.preprocess: drawings (synthetic, drawn with Pillow) and real MNIST round trips."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nn.data.preprocess import DrawingResult, load_image_file, preprocess_drawing

MNIST_TEST_IMAGES = Path(__file__).resolve().parents[1] / "data" / "t10k-images-idx3-ubyte.gz"

WHITE = {"RGBA": (255, 255, 255, 255), "RGB": (255, 255, 255), "L": 255}
BLACK = {"RGBA": (0, 0, 0, 255), "RGB": (0, 0, 0), "L": 0}


def draw_digit(digit: str, box, size: int = 280, mode: str = "RGBA", ink=None, background=None):
    """A digit-like shape inside ``box`` (x0, y0, x1, y1); the brush (20 px for a 200 px digit)
    scales with the box, so a small digit is a scaled-down copy of a large one."""
    x0, y0, x1, y1 = box
    width = max(2, round(20 * max(x1 - x0, y1 - y0) / 200))
    ink = WHITE[mode] if ink is None else ink
    img = Image.new(mode, (size, size), BLACK[mode] if background is None else background)
    d = ImageDraw.Draw(img)

    def p(fx, fy):
        return (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))

    if digit == "7":
        d.line([p(0, 0.05), p(1, 0.05), p(0.35, 1)], fill=ink, width=width, joint="curve")
    elif digit == "1":
        d.line([p(0.5, 0), p(0.5, 1)], fill=ink, width=width)
    elif digit == "0":
        d.ellipse([p(0.1, 0), p(0.9, 1)], outline=ink, width=width)
    elif digit == "4":
        d.line([p(0.6, 0), p(0, 0.65), p(1, 0.65)], fill=ink, width=width, joint="curve")
        d.line([p(0.75, 0.3), p(0.75, 1)], fill=ink, width=width)
    else:
        raise ValueError(digit)
    return img


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def centre_of_mass(im: np.ndarray) -> tuple[float, float]:
    im = im.astype(float)
    total = im.sum()
    return (im.sum(axis=1) @ np.arange(28)) / total, (im.sum(axis=0) @ np.arange(28)) / total


def bbox_size(im: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(im.any(axis=1)), np.flatnonzero(im.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


LARGE = (40, 40, 240, 240)
SMALL_CORNER = (8, 190, 78, 260)


def test_result_structure():
    r = preprocess_drawing(np.asarray(draw_digit("7", LARGE)))
    assert isinstance(r, DrawingResult) and not r.blank and r.message == ""
    assert r.x.shape == (784,) and r.x.dtype == np.float32
    assert r.x.min() >= 0.0 and r.x.max() <= 1.0 and r.x.max() == 1.0
    assert r.image28.shape == (28, 28) and r.image28.dtype == np.uint8
    np.testing.assert_array_equal(r.x, r.image28.reshape(-1) / np.float32(255))
    assert list(r.steps) == ["input", "cropped", "scaled", "centred"]
    assert all(s.dtype == np.uint8 and s.ndim == 2 for s in r.steps.values())
    assert r.steps["input"].shape == (280, 280)
    assert max(r.steps["scaled"].shape) == 20
    np.testing.assert_array_equal(r.steps["centred"], r.image28)
    with pytest.raises(AttributeError):
        r.blank = True  # frozen


@pytest.mark.parametrize("digit", ["7", "4"])
def test_small_corner_digit_matches_large_centred_digit(digit):
    large = preprocess_drawing(draw_digit(digit, LARGE)).image28
    small = preprocess_drawing(draw_digit(digit, SMALL_CORNER)).image28
    assert corr(small, large) > 0.85
    # The bound is meaningful: other digits are nowhere near that similar.
    for other in {"7", "1", "0", "4"} - {digit}:
        assert corr(small, preprocess_drawing(draw_digit(other, LARGE)).image28) < 0.5


@pytest.mark.parametrize("digit", ["0", "1", "4"])
@pytest.mark.parametrize("box", [LARGE, SMALL_CORNER, (150, 10, 270, 120)])
def test_centre_of_mass_and_box_size(digit, box):
    im = preprocess_drawing(draw_digit(digit, box)).image28
    cy, cx = centre_of_mass(im)
    assert abs(cy - 14) <= 0.5 + 1e-9 and abs(cx - 14) <= 0.5 + 1e-9
    assert max(bbox_size(im)) in (20, 21)  # 20, plus at most a faint anti-aliased fringe


def test_top_heavy_digit_is_not_clipped():
    # A "7" has its mass near the top: centring by mass would push it off the bottom edge;
    # the shift is clamped instead so the whole 20-pixel box stays inside.
    r = preprocess_drawing(draw_digit("7", LARGE))
    assert r.image28.sum() == r.steps["scaled"].astype(np.int64).sum()
    assert r.image28[27].any()


def test_aspect_ratio_is_kept():
    im = preprocess_drawing(draw_digit("1", (120, 20, 160, 260))).image28
    height, width = bbox_size(im)
    assert height == 20 and width <= 5
    wide = np.asarray(draw_digit("1", (120, 20, 160, 260))).transpose(1, 0, 2)  # lying "1"
    height, width = bbox_size(preprocess_drawing(wide).image28)
    assert width == 20 and height <= 5


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((280, 280, 4), np.uint8),
        np.zeros((280, 280), np.float32),
        np.full((280, 280, 3), 255, np.uint8),  # all white: inverted, still nothing
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
    ],
    ids=["rgba-zeros", "float-zeros", "white", "transparent"],
)
def test_blank(image):
    r = preprocess_drawing(image)
    assert r.blank and r.x is None and r.image28 is None
    assert r.message == "nothing drawn"
    assert list(r.steps) == ["input"]


def test_nearly_blank_is_blank():
    one_pixel = np.zeros((280, 280, 4), np.uint8)
    one_pixel[..., 3] = 255
    one_pixel[100, 100, :3] = 255
    assert preprocess_drawing(one_pixel).blank
    dot = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    # a stray click of a 20-pixel brush
    ImageDraw.Draw(dot).ellipse([100, 100, 120, 120], fill=(255, 255, 255, 255))
    assert preprocess_drawing(dot).blank
    faint = np.asarray(draw_digit("7", LARGE, mode="L")) // 64  # max intensity 3 of 255
    assert preprocess_drawing(faint).blank
    # ... whereas a real digit passes, and min_ink is honoured.
    assert not preprocess_drawing(draw_digit("1", LARGE)).blank
    assert preprocess_drawing(draw_digit("1", LARGE), min_ink=10**6).blank


def test_input_formats_agree():
    rgba = draw_digit("4", LARGE)
    reference = preprocess_drawing(np.asarray(rgba)).image28
    grey = np.asarray(rgba.convert("L"))
    variants = {
        "pil-rgba": rgba,
        "pil-rgb": rgba.convert("RGB"),
        "pil-l": rgba.convert("L"),
        "rgb": np.asarray(rgba.convert("RGB")),
        "grey": grey,
        "pil-la": rgba.convert("LA"),
        "pil-16bit": Image.fromarray(grey.astype(np.uint16) * 257),
        "grey-float": grey.astype(np.float64) / 255,
        "grey-float-0-255": grey.astype(np.float32),
        "grey-bool": grey > 127,
        "rgba-float": np.asarray(rgba).astype(np.float32) / 255,
        "grey-int64": grey.astype(np.int64),
        "grey-hw1": grey[:, :, None],
        "grey-rectangular": np.pad(grey, ((0, 0), (0, 100))),
    }
    for name, image in variants.items():
        r = preprocess_drawing(image)
        assert np.abs(r.image28.astype(int) - reference).max() <= 1, name


def test_transparent_canvas_white_ink_and_black_ink():
    reference = preprocess_drawing(draw_digit("4", LARGE)).image28
    white_on_clear = draw_digit("4", LARGE, ink=(255, 255, 255, 255), background=(0, 0, 0, 0))
    black_on_clear = draw_digit("4", LARGE, ink=(0, 0, 0, 255), background=(0, 0, 0, 0))
    for image in (white_on_clear, black_on_clear):
        r = preprocess_drawing(np.asarray(image))
        assert np.abs(r.image28.astype(int) - reference).max() <= 1


def test_black_on_white_is_inverted():
    reference = preprocess_drawing(draw_digit("7", LARGE)).image28
    for mode in ("RGBA", "RGB", "L"):
        paper = draw_digit("7", LARGE, mode=mode, ink=BLACK[mode], background=WHITE[mode])
        r = preprocess_drawing(paper)
        assert np.abs(r.image28.astype(int) - reference).max() <= 1, mode


def test_photo_like_grey_paper_with_noise():
    reference = preprocess_drawing(draw_digit("4", LARGE)).image28
    photo = np.asarray(draw_digit("4", LARGE, mode="L", ink=60, background=190)).astype(float)
    photo += np.random.default_rng(0).normal(0, 4, photo.shape)
    r = preprocess_drawing(np.clip(photo, 0, 255).astype(np.uint8))
    assert not r.blank
    assert corr(r.image28, reference) > 0.95


def test_light_grey_ink_is_normalised():
    grey = np.asarray(draw_digit("0", LARGE, mode="L"))
    r = preprocess_drawing((grey // 2).astype(np.uint8))  # ink at 127
    assert r.image28.max() == 255
    assert corr(r.image28, preprocess_drawing(grey).image28) > 0.99


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((28, 28, 5), np.uint8),
        np.zeros((0, 28), np.uint8),
        np.zeros(784, np.uint8),
        np.full((28, 28), np.nan),
        np.full((28, 28), 300, np.int32),
    ],
    ids=["5-channels", "empty", "1-d", "nan", "out-of-range"],
)
def test_invalid_input_raises(bad):
    with pytest.raises(ValueError):
        preprocess_drawing(bad)


def read_idx_images(path: Path, n: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        data = f.read(n * 784)
    assert int.from_bytes(header[:4], "big") == 2051
    return np.frombuffer(data, np.uint8).reshape(n, 28, 28)


@pytest.mark.skipif(not MNIST_TEST_IMAGES.exists(), reason="bundled MNIST not found")
def test_real_mnist_round_trip_is_near_identity():
    # MNIST digits are already 20-pixel-box, mass-centred: upscaled 10x as a "drawing", they
    # must come back (almost) unchanged.
    images = read_idx_images(MNIST_TEST_IMAGES, 40)
    blocky, smooth = [], []
    for original in images:
        drawing = np.asarray(Image.fromarray(original).resize((280, 280), Image.Resampling.NEAREST))
        r = preprocess_drawing(drawing)
        assert not r.blank
        blocky.append(corr(r.image28, original))
        # A bilinear upscale blurs and grows the digit by a faint half-pixel halo, so the round
        # trip is only near identity up to a sub-pixel misregistration: check the typical case.
        soft = Image.fromarray(original).resize((280, 280), Image.Resampling.BILINEAR)
        smooth.append(corr(preprocess_drawing(soft).image28, original))
    assert min(blocky) > 0.9
    assert np.median(blocky) > 0.99
    assert np.median(smooth) > 0.93
    # MNIST pixel values at 28x28 (e.g. a PNG saved from the dataset) also pass through.
    for original in images[:10]:
        assert corr(preprocess_drawing(original).image28, original) > 0.9


def test_load_image_file(tmp_path):
    reference = preprocess_drawing(draw_digit("4", LARGE)).image28
    png = tmp_path / "four.png"
    draw_digit("4", LARGE).save(png)
    r = load_image_file(png)
    np.testing.assert_array_equal(r.image28, reference)
    scan = tmp_path / "scan.jpg"
    draw_digit("4", LARGE, mode="RGB", ink=(20, 20, 20), background=(235, 235, 235)).save(
        scan, quality=90
    )
    assert corr(load_image_file(str(scan)).image28, reference) > 0.95
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    assert load_image_file(blank).blank


def test_load_image_file_errors(tmp_path):
    with pytest.raises(ValueError, match="missing.png"):
        load_image_file(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.png"):
        load_image_file(junk)
    truncated = tmp_path / "truncated.png"
    draw_digit("1", LARGE).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.png"):
        load_image_file(truncated)
