"""Turn a drawing (or a photo/scan of a digit) into the 28x28 input the network expects.

The pipeline follows how MNIST itself was made (LeCun et al.):

1. **input**   - the image as grey ``uint8``, white ink on black (see *Colour handling*).
2. **cropped** - cropped to the bounding box of the ink (pixels above ``threshold``).
3. **scaled**  - resized, aspect ratio kept, so the longer side is 20 pixels. The resize is done
   in float32 with Pillow's ``BOX`` filter (area averaging), which gives the soft anti-aliased
   stroke edges of MNIST without the dark/bright ringing of ``LANCZOS``.
4. **centred** - pasted into a 28x28 black canvas so that its centre of mass lands on pixel
   (14, 14) (row, column, index coordinates; the measured mean over the MNIST test set is
   (13.99, 14.01)). The shift is rounded to whole pixels, like the original, and clamped so the
   20x20 box is never clipped.

The network sees ``x = image28 / 255`` as float32, exactly how it sees uint8 MNIST in training.

Colour handling
---------------
* RGBA (e.g. a browser canvas): the RGB luminance (ITU-R 601) composited over black using alpha,
  so white ink on an opaque black background, or on a transparent one, both work. If that is all
  zero but alpha has ink (black ink on a transparent background), alpha itself is the ink.
* Light backgrounds: if the mean grey level (of a subsample) is above 127 - dark ink on white
  paper, e.g. a photo or scan used with ``python -m nn predict`` - the image is inverted.
* Photos and scans (inverted, or a grey or noisy background) are cleaned: the background level
  and noise (median and median absolute deviation of a subsample) plus 12 % of the contrast
  (JPEG ringing) are subtracted and the rest stretched back to 0-255. A clean black canvas is left
  untouched. The peak of the cropped ink is then normalised to 255, so light-grey ink works too.
* Floats are taken to be in [0, 1] (or in [0, 255] if their maximum exceeds 1).

A drawing with fewer than ``min_ink`` ink pixels, or with no pixel brighter than ``threshold``,
is reported as blank (``x is None``) - it must never produce a prediction.

Performance (one 280x280x4 uint8 canvas, CPU time per call, best / median of 15 x 200 calls,
on the shared 2-core development machine under load average ~6; Python 3.11, NumPy 2.4,
Pillow 13): digit on an opaque black canvas 0.45 / 0.56 ms, on a transparent canvas
0.64 / 0.85 ms, empty canvas 0.39 / 0.46 ms; a black-on-white RGB image 0.84 / 1.05 ms.
Only uint8 work touches the full-size image; float32 starts after the crop.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DrawingResult", "preprocess_drawing", "load_image_file"]

SIZE = 28  #: side of the network's input image
BOX = 20  #: longer side of the digit's bounding box after scaling
CENTRE = 14.0  #: target centre of mass (row and column, index coordinates)

_BLANK_MESSAGE = "nothing drawn"


@dataclass(frozen=True)
class DrawingResult:
    """The outcome of :func:`preprocess_drawing`.

    ``x`` is the (784,) float32 vector in [0, 1] for the network and ``image28`` the same image as
    (28, 28) uint8; both are ``None`` when ``blank``. ``steps`` holds the intermediate uint8 images
    in pipeline order ("input", "cropped", "scaled", "centred") for display side by side; a blank
    drawing only has "input". ``message`` is "nothing drawn" when blank, else "".
    """

    blank: bool
    x: np.ndarray | None
    image28: np.ndarray | None
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    message: str = ""


def _grey_from_array(a: np.ndarray) -> np.ndarray:
    """Any supported array (grey, grey+alpha, RGB, RGBA; uint8/int/bool/float) -> grey uint8."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image is empty: shape {a.shape}")
    a = _to_uint8(a)
    if a.ndim == 2:
        return a
    n_channels = a.shape[2]
    if n_channels == 2:  # grey + alpha
        grey, alpha = a[:, :, 0], a[:, :, 1]
    else:
        # ITU-R 601 luma via Pillow's C conversion (far faster than strided NumPy channels).
        grey = np.asarray(Image.fromarray(np.ascontiguousarray(a)).convert("L"))
        if n_channels == 3:
            return grey
        alpha = a[:, :, 3]
    a_min, a_max = int(alpha.min()), int(alpha.max())
    if a_min == 255:  # fully opaque: alpha carries no information
        return grey
    t = grey.astype(np.uint16) * alpha + np.uint16(128)  # grey * alpha / 255, rounded, exactly:
    composited = ((t + (t >> 8)) >> 8).astype(np.uint8)  # shifts instead of a slow division
    if a_max > 0 and a_min == 0 and not composited.any():
        return np.ascontiguousarray(alpha)  # black (or invisible) ink on a transparent background
    return composited


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Convert to uint8 0-255: floats in [0, 1] (or [0, 255] if max > 1), ints in 0-255, bools."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image contains NaN or infinite values")
        a = a.astype(np.float32, copy=False)
        scale = np.float32(255.0 if a.max() <= 1.0 else 1.0)
        return np.clip(a * scale + np.float32(0.5), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"integer image values must be in 0-255, got {a.min()}..{a.max()}")
        return a.astype(np.uint8)
    raise ValueError(f"unsupported image dtype {a.dtype}")


def _grey_from_pil(img: Image.Image) -> np.ndarray:
    """A PIL image in any mode -> grey uint8, with the same colour rules as arrays."""
    mode = img.mode
    if mode.startswith("I;16"):
        return (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
    if mode in ("P", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode in ("1", "I", "F"):
        img = img.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return _grey_from_array(np.asarray(img))


def _remove_background(grey: np.ndarray, contrast_floor: float = 0.12) -> np.ndarray:
    """Invert light backgrounds; remove a non-black or noisy background and restretch to 0-255.

    The background level and its noise are estimated on a subsample: median ``m`` and median
    absolute deviation ``d``. A clean canvas (black background, ``m == d == 0``) is returned
    unchanged. Otherwise (a photo or scan: inverted, grey or noisy background) everything up to
    ``m + max(7.5 d, contrast_floor * (peak - m))`` becomes black - about five standard
    deviations of Gaussian noise, and enough to drop JPEG ringing around the strokes.
    """
    sample = grey[:: max(1, grey.shape[0] // 64), :: max(1, grey.shape[1] // 64)]
    inverted = bool(sample.mean() > 127.0)
    if inverted:
        sample = 255 - sample
    elif 2 * np.count_nonzero(sample) < sample.size:
        return grey  # mostly exactly black: a clean canvas (median and MAD are both 0)
    background = float(np.median(sample))
    spread = float(np.median(np.abs(sample - np.float32(background))))
    peak = 255 - int(grey.min()) if inverted else int(grey.max())
    floor = math.ceil(background + max(7.5 * spread, contrast_floor * (peak - background)))
    if peak <= floor:
        return np.zeros_like(grey)
    # One 256-entry lookup table does the inversion, the floor and the stretch in a single pass.
    levels = np.arange(256, dtype=np.int32)
    if inverted:
        levels = 255 - levels
    lut = np.clip(((levels - floor) * 255 + (peak - floor) // 2) // (peak - floor), 0, 255)
    return np.take(lut.astype(np.uint8), grey)


def _blank(grey: np.ndarray) -> DrawingResult:
    return DrawingResult(
        blank=True, x=None, image28=None, steps={"input": grey}, message=_BLANK_MESSAGE
    )


def preprocess_drawing(
    image: np.ndarray | Image.Image,
    *,
    threshold: float = 0.05,
    min_ink: int | None = None,
) -> DrawingResult:
    """Convert a drawn digit (white ink on black, any size) into MNIST's 28x28 format.

    ``image``: numpy array (H, W), (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or float in [0, 1], or
    a PIL Image. ``threshold``: fraction of full intensity above which a pixel counts as ink (for
    the bounding box and the ink count). ``min_ink``: fewer ink pixels than this means blank; by
    default 0.5 % of the image area (392 on a 280x280 canvas, so a single click of a 20-pixel
    brush is "nothing drawn"), at least 5.
    Raises ``ValueError`` for unsupported shapes, dtypes or values.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if isinstance(image, Image.Image):
        grey = _grey_from_pil(image)
    else:
        grey = _grey_from_array(np.asarray(image))
    grey = _remove_background(grey)

    if min_ink is None:
        min_ink = max(5, math.ceil(0.005 * grey.size))
    level = threshold * 255.0
    ink = grey > level
    if np.count_nonzero(ink) < max(1, min_ink):
        return _blank(grey)

    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cropped = grey[r0:r1, c0:c1]

    # Scale so the longer side is BOX pixels, in float32, ink peak normalised to 255.
    h, w = cropped.shape
    factor = BOX / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    crop_f = cropped.astype(np.float32) * np.float32(255.0 / float(cropped.max()))
    resized = Image.fromarray(crop_f).resize((new_w, new_h), Image.Resampling.BOX)
    scaled_f = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)

    # Centre of mass to (14, 14), whole-pixel shift, clamped so nothing is clipped.
    total = float(scaled_f.sum())
    cy = float(scaled_f.sum(axis=1) @ np.arange(new_h, dtype=np.float32)) / total
    cx = float(scaled_f.sum(axis=0) @ np.arange(new_w, dtype=np.float32)) / total
    top = min(max(round(CENTRE - cy), 0), SIZE - new_h)
    left = min(max(round(CENTRE - cx), 0), SIZE - new_w)

    scaled = np.rint(scaled_f).astype(np.uint8)
    image28 = np.zeros((SIZE, SIZE), dtype=np.uint8)
    image28[top : top + new_h, left : left + new_w] = scaled
    if not image28.any():  # only possible for extreme thresholds
        return _blank(grey)

    x = image28.reshape(-1).astype(np.float32) / np.float32(255.0)
    steps = {"input": grey, "cropped": cropped, "scaled": scaled, "centred": image28}
    return DrawingResult(blank=False, x=x, image28=image28, steps=steps, message="")


MAX_IMAGE_PIXELS = 40_000_000
"""Largest image read (a 40-megapixel photo); its size comes from the header, before decoding.
Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``) is turned into the same refusal."""


_IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""The raster formats an image file may be in (Pillow's names). Others Pillow knows are never
opened: EPS and PostScript would run Ghostscript, and the rest are not what a digit comes in."""


def _open_image(path: Path) -> Image.Image:
    """The decoded image, its pixel count checked against MAX_IMAGE_PIXELS before decoding."""
    if path.exists() and not path.is_file() and not path.is_dir():  # a pipe would block
        raise ValueError("it is not a regular file (a device, a pipe or a socket)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=_IMAGE_FORMATS) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValueError(
                        f"it is {width}x{height} pixels; images of at most "
                        f"{MAX_IMAGE_PIXELS:,} pixels are read"
                    )
                img.load()
                return ImageOps.exif_transpose(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"too many pixels to decode safely ({exc})") from None


def load_image_file(path: str | Path, **kwargs: Any) -> DrawingResult:
    """Read a PNG, JPEG, BMP, GIF, TIFF or WebP file and preprocess it like a drawing.

    Dark-on-light photos and scans are inverted automatically (see the module docstring); EXIF
    rotation is honoured. ``kwargs`` go to :func:`preprocess_drawing`. An unreadable or
    unsupported file raises ``ValueError`` naming the file and the reason.
    """
    path = Path(path)
    try:
        img = _open_image(path)
    except FileNotFoundError:
        raise ValueError(f"cannot read image {str(path)!r}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {str(path)!r}: it is a directory") from None
    except UnidentifiedImageError:
        raise ValueError(
            f"cannot read image {str(path)!r}: not a PNG, JPEG, BMP, GIF, TIFF or WebP image"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {str(path)!r}: {exc}") from None
    try:
        return preprocess_drawing(img, **kwargs)
    except ValueError as exc:
        raise ValueError(f"cannot use image {str(path)!r}: {exc}") from None
