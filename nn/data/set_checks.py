"""The checks a data set passes before :func:`nn.data.registry.add_set` stores it: its images
(one shape, within the size caps), its labels and class names, and that every class can be
learned: at least :data:`~nn.core.limits.MIN_CLASS_TRAIN_IMAGES` training images each, so two
or more classes are present and no test label is one training never saw. A source without a
test part gets a seeded stratified one here (:data:`TEST_FRACTION`, :data:`TEST_SPLIT_SEED`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nn.core.limits import MAX_DATASET_CLASSES, MAX_DATASET_IMAGES, MIN_CLASS_TRAIN_IMAGES
from nn.data.arrays import MAX_DATASET_ELEMENTS, MNIST, DataError, ImageSet
from nn.data.datasets import load_dataset
from nn.data.splits import split_dataset

__all__ = [
    "SET_KEYS",
    "TEST_FRACTION",
    "TEST_SPLIT_SEED",
    "validated_arrays",
]

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0
MAX_CLASS_NAME_LENGTH = 40
SET_KEYS = ("x_train", "y_train", "x_test", "y_test")
"""The four arrays of a set, in the order they are stored and hashed."""


def _check_class_names(names: list[str] | None, n_labels: int, source: str) -> tuple[str, ...]:
    if names is None:
        if n_labels < 2:
            raise DataError(f"{source}: every label is 0; a classifier needs 2 or more classes")
        return tuple(str(k) for k in range(n_labels))
    if not 2 <= len(names) <= MAX_DATASET_CLASSES:
        raise DataError(
            f"class names: {len(names)} given; a data set has 2 to {MAX_DATASET_CLASSES:,} classes"
        )
    for k, text in enumerate(names):
        if not text or len(text) > MAX_CLASS_NAME_LENGTH or not text.isprintable():
            raise DataError(
                f"class name {k + 1} {text!r}: a class name is 1-{MAX_CLASS_NAME_LENGTH} "
                "printable characters"
            )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"class names: {', '.join(map(repr, twice))} given twice")
    if n_labels > len(names):
        raise DataError(
            f"{source}: labels go up to {n_labels - 1}, but {len(names)} class names were given "
            f"(labels 0-{len(names) - 1})"
        )
    return tuple(names)


def _image_shape(x: np.ndarray, given: tuple[int, int, int] | None, source: str) -> tuple:
    """The ``(h, w, c)`` of validated images (4-D, or flat rows whose shape is ``given`` or
    inferred: a square greyscale or square colour image)."""
    if x.ndim == 4:
        shape = tuple(int(s) for s in x.shape[1:])
        if given is not None and tuple(given) != shape:
            raise DataError(
                f"{source}: the images are {'x'.join(map(str, shape))}, not the "
                f"{'x'.join(map(str, given))} given"
            )
        return shape
    d = int(x.shape[1])
    if given is not None:
        if math.prod(given) != d:
            raise DataError(
                f"{source}: {d} pixel values per image do not make {'x'.join(map(str, given))} "
                f"images ({math.prod(given)} values)"
            )
        return tuple(given)
    side = math.isqrt(d)
    if side * side == d:
        return side, side, 1
    side = math.isqrt(d // 3)
    if d % 3 == 0 and side * side * 3 == d:
        return side, side, 3
    raise DataError(
        f"{source}: {d} pixel values per image are neither a square greyscale nor a square colour "
        f"image; give the image shape of the rows (HEIGHTxWIDTHxCHANNELS, e.g. 32x32x3)"
    )


def _parts(data: MNIST | ImageSet, source: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """The four arrays (labels checked present) and the test split made, if any."""
    if isinstance(data, MNIST):
        return dict(zip(SET_KEYS, data, strict=True)), None
    if data.y is None:
        raise DataError(f"{source}: the images have no labels; a data set needs a label per image")
    if len(data.y) < 2:
        raise DataError(f"{source}: {len(data.y)} image; a data set needs at least 2")
    split = split_dataset(
        data, "custom", seed=TEST_SPLIT_SEED, val_fraction=0.0, test_fraction=TEST_FRACTION
    )
    arrays = {
        "x_train": split.x_train,
        "y_train": split.y_train,
        "x_test": split.x_test,
        "y_test": split.y_test,
    }
    return arrays, {"fraction": TEST_FRACTION, "seed": TEST_SPLIT_SEED}


def validated_arrays(
    source: Any,
    class_names: list[str] | None,
    image_shape: tuple[int, int, int] | None,
) -> tuple[dict[str, np.ndarray], tuple, tuple[str, ...], dict | None]:
    label = str(source)
    data = load_dataset(source, any_shape=True)
    arrays, test_split = _parts(data, label)
    shapes = {}
    for part in ("train", "test"):
        x = arrays[f"x_{part}"]
        shapes[part] = _image_shape(x, image_shape, f"{label} ({part} images)")
        arrays[f"x_{part}"] = x.reshape(len(x), -1)
    if shapes["train"] != shapes["test"] and len(arrays["y_test"]):
        raise DataError(
            f"{label}: the train images are {'x'.join(map(str, shapes['train']))} but the test "
            f"images {'x'.join(map(str, shapes['test']))}"
        )
    n_images = len(arrays["y_train"]) + len(arrays["y_test"])
    n_values = n_images * math.prod(shapes["train"])
    if n_images > MAX_DATASET_IMAGES or n_values > MAX_DATASET_ELEMENTS:
        raise DataError(
            f"{label}: {n_images:,} images of {math.prod(shapes['train']):,} values; a data set "
            f"holds at most {MAX_DATASET_IMAGES:,} images and {MAX_DATASET_ELEMENTS:,} values"
        )
    if len(arrays["y_train"]) == 0:
        raise DataError(f"{label}: the training part holds no images")
    top = max(int(arrays[k].max()) for k in ("y_train", "y_test") if len(arrays[k]))
    names = _check_class_names(class_names, top + 1, label)
    _check_trainable(arrays, names, label, made_test=test_split is not None)
    return arrays, shapes["train"], names, test_split


def _listed(names: list[str], most: int = 5) -> str:
    shown = ", ".join(map(repr, names[:most]))
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def _check_trainable(
    arrays: dict[str, np.ndarray], names: tuple[str, ...], source: str, made_test: bool
) -> None:
    """Every class has at least MIN_CLASS_TRAIN_IMAGES training images (so at least two
    classes are present, and no test label is one training never saw). ``made_test``: the
    test part was split off here, so a class short of training images is short of images."""
    k = len(names)
    train = np.bincount(arrays["y_train"], minlength=k)
    test = np.bincount(arrays["y_test"], minlength=k)
    present = np.flatnonzero(train)
    if len(present) < 2:
        raise DataError(
            f"{source}: every training image is of class {names[int(present[0])]!r} (label "
            f"{int(present[0])}); a classifier needs images of 2 or more classes"
        )
    unseen = [names[i] for i in np.flatnonzero((train == 0) & (test > 0))]
    if unseen and not made_test:
        raise DataError(
            f"{source}: the test part holds class(es) {_listed(unseen)} that the training part "
            "never shows; every class needs training images"
        )
    few = [names[i] for i in np.flatnonzero(train < MIN_CLASS_TRAIN_IMAGES)]
    if few:
        raise DataError(
            f"{source}: {len(few):,} of {k:,} classes have fewer than {MIN_CLASS_TRAIN_IMAGES} "
            f"training images ({_listed(few)})"
            + (f" once {TEST_FRACTION:.0%} of the images are set aside for testing" * made_test)
            + f"; every class needs at least {MIN_CLASS_TRAIN_IMAGES} (labels run 0-{k - 1}; "
            "give only the class names used)"
        )
