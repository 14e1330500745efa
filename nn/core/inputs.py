"""Checks of the data an estimator is given (``X`` and ``y``), worded as scikit-learn words them.

scikit-learn's meta-estimators and its estimator checks recognise faults by their wording ("0
feature(s)", "Complex data not supported", "Reshape your data", "Unknown label type", "requires y
to be passed") and by their class (a not-fitted error that is both a ``ValueError`` and an
``AttributeError``). The checks here give those words and classes without importing scikit-learn.

``X`` is a 2-D array of rows or 4-D images ``(n, height, width, channels)``; a SciPy sparse matrix
or array of rows is kept sparse (as CSR) and densified a batch at a time by ``dense_rows``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """A fitted estimator's method was called before ``fit`` (a ``ValueError`` and an
    ``AttributeError``, as scikit-learn's ``NotFittedError`` is)."""


class NotNumbersError(ValueError, TypeError):
    """``X`` holds values that are not numbers (a ``TypeError`` too, as NumPy's conversion
    raises one)."""


class DataConversionWarning(UserWarning):
    """The data was converted to the form the estimator needs (scikit-learn's warning of this
    name)."""


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array (recognised without importing SciPy)."""
    return callable(getattr(X, "tocsr", None)) and hasattr(X, "nnz")


def dense_rows(X: Any) -> np.ndarray:
    """Rows of ``X`` as a NumPy array: a sparse slice densified, a dense one as it is."""
    return X.toarray() if is_sparse(X) else X


def check_X(
    X: Any,
    name: str = "X",
    *,
    n_features: int | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Any:
    """``X`` as a 2-D or 4-D array of finite numbers with at least one row and one feature, or
    as a CSR matrix of such rows. ``n_features`` and ``image_shape`` are a fitted model's; ``X``
    must match them. Object arrays of numbers are converted to float64."""
    if is_sparse(X):
        X = X.tocsr()
        _check_kind(X.dtype, name)
        values = X.data
    else:
        X = _dense(X, name)
        values = X
    _check_shape(X.shape, name)
    if X.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if n_features is not None:
        if image_shape is not None and X.ndim == 4 and X.shape[1:] != tuple(image_shape):
            raise ValueError(
                f"{name} holds images of shape {X.shape[1:]} but the model expects "
                f"{tuple(image_shape)}."
            )
        features = math.prod(X.shape[1:])
        if features != n_features:
            raise ValueError(
                f"{name} has {features} features, but NeuralNetwork is expecting {n_features} "
                f"features as input."
            )
    return X


def _dense(X: Any, name: str) -> np.ndarray:
    if X is None:
        raise ValueError(f"{name} is None: give an array of samples x features.")
    X = np.asarray(X)
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise NotNumbersError(f"{name} must hold numbers: {exc}") from None
    _check_kind(X.dtype, name)
    return X


def _check_kind(dtype: np.dtype, name: str) -> None:
    if dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {dtype}.")
    if dtype.kind not in "uif":
        raise ValueError(f"{name} must hold numbers; got dtype {dtype}.")


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) < 2:
        got = "a scalar" if not shape else f"a 1-D array of shape {shape}"
        raise ValueError(
            f"Expected a 2-D array for {name}, got {got} instead. Reshape your data either "
            f"using array.reshape(-1, 1) if your data has a single feature or "
            f"array.reshape(1, -1) if it contains a single sample."
        )
    if len(shape) not in (2, 4):
        raise ValueError(
            f"{name} must be a 2-D array (samples x features) or 4-D images (samples x "
            f"height x width x channels); got shape {shape}."
        )
    if shape[0] == 0:
        raise ValueError(
            f"{name} has 0 sample(s) (shape={shape}) while a minimum of 1 is required."
        )
    if math.prod(shape[1:]) == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={(shape[0], 0)}) while a minimum of 1 is required."
        )


def check_y(y: Any, n_rows: int, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of ``n_rows`` labels. A column vector ``(n, 1)`` is ravelled with a
    ``DataConversionWarning``; complex, NaN and infinite labels are refused."""
    if y is None:
        raise ValueError(
            "NeuralNetwork requires y to be passed, but the target y is None: give one label "
            "per row of X."
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            DataConversionWarning(
                f"A column-vector y was passed when a 1d array was expected. Please change the "
                f"shape of {name} to (n_samples, ), for example using ravel()."
            ),
            stacklevel=3,
        )
        y = y.ravel()
    if np.iscomplexobj(y):
        raise ValueError(f"Complex data not supported: {name} holds complex labels.")
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(
            f"{name} must be 1-D with one label per row of X ({n_rows}); got shape {y.shape}."
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return y


def class_labels(y: np.ndarray, name: str = "y") -> np.ndarray:
    """The sorted distinct labels of a training ``y`` (from ``check_y``); a continuous target
    (floats that are not whole numbers) or labels of mixed types are refused."""
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(
            f"Unknown label type: continuous. {name} holds fractional numbers; a classifier "
            f"needs discrete classes, such as whole numbers or strings."
        )
    try:
        return np.unique(y)
    except TypeError:
        types = sorted({type(v).__name__ for v in y.tolist()})
        raise ValueError(
            f"Unknown label type: {name} mixes labels of types {', '.join(types)}; use labels "
            f"of one type."
        ) from None
