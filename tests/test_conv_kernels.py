"""Convolution and pooling kernels: against nested-loop references, central-difference gradients
in float64, buffer reuse, and the errors for shapes that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

from nn.core import conv as conv_module
from nn.core.conv import (
    BATCH_SIZES_KEPT,
    DX_METHODS,
    BatchBuffers,
    Conv2DKernel,
    same_padding,
)
from nn.core.pooling import Pool2DKernel

GRADIENT_TOLERANCE = 1e-6


def _rel_error(a, b):
    """``||a - b|| / (||a|| + ||b||)``, the relative error of two gradient arrays."""
    return np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b))


def _reference_conv(x, weight, bias, stride, pads):
    """Direct nested-loop cross-correlation of ``x`` (n, h, w, c) with ``weight`` (k, k, c, f)."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    k, _, _, f = weight.shape
    out_h = (xp.shape[1] - k) // stride + 1
    out_w = (xp.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, f))
    for b in range(x.shape[0]):
        for r in range(out_h):
            for s in range(out_w):
                patch = xp[b, r * stride : r * stride + k, s * stride : s * stride + k, :]
                for g in range(f):
                    out[b, r, s, g] = np.sum(patch * weight[..., g]) + bias[g]
    return out


def _reference_pool(x, size, stride, mode):
    """Direct nested-loop max or average pooling of ``x`` (n, h, w, c)."""
    n, h, w, c = x.shape
    out = np.zeros((n, (h - size) // stride + 1, (w - size) // stride + 1, c))
    reduce = np.max if mode == "max" else np.mean
    for r in range(out.shape[1]):
        for s in range(out.shape[2]):
            window = x[:, r * stride : r * stride + size, s * stride : s * stride + size, :]
            out[:, r, s, :] = reduce(window, axis=(1, 2))
    return out


def _conv_case(shape, filters, kernel, stride, padding, n=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    conv = Conv2DKernel(shape, filters, kernel, stride, padding, dtype=dtype)
    x = rng.normal(size=(n, *shape)).astype(dtype)
    weight = rng.normal(size=conv.weight_shape).astype(dtype)
    bias = rng.normal(size=filters).astype(dtype)
    return conv, x, weight, bias


CONV_CASES = [
    # (input_shape, filters, kernel, stride, padding)
    ((5, 5, 1), 1, 3, 1, "valid"),
    ((7, 6, 3), 4, 3, 1, "valid"),
    ((7, 6, 3), 4, 3, 2, "valid"),
    ((8, 9, 2), 3, 2, 2, "valid"),
    ((7, 6, 3), 4, 3, 1, "same"),
    ((7, 6, 3), 4, 3, 2, "same"),
    ((6, 8, 2), 5, 4, 2, "same"),
    ((5, 7, 2), 3, 5, 3, "same"),
    ((4, 4, 1), 2, 4, 1, "valid"),
]


@pytest.mark.parametrize("shape, filters, kernel, stride, padding", CONV_CASES)
def test_conv_forward_matches_nested_loops(shape, filters, kernel, stride, padding):
    conv, x, weight, bias = _conv_case(shape, filters, kernel, stride, padding, n=3)
    h, w, _ = shape
    if padding == "same":
        out_h, top, bottom = same_padding(h, kernel, stride)
        out_w, left, right = same_padding(w, kernel, stride)
        assert conv.output_shape[:2] == (-(-h // stride), -(-w // stride)) == (out_h, out_w)
    else:
        top = bottom = left = right = 0
    expected = _reference_conv(x, weight, bias, stride, (top, bottom, left, right))
    got = conv.forward(x, weight, bias)
    assert got.shape == (3, *conv.output_shape) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_same_padding_splits_the_extra_pixel_after():
    assert same_padding(28, 5, 1) == (28, 2, 2)
    assert same_padding(7, 4, 1) == (7, 1, 2)
    assert same_padding(7, 3, 2) == (4, 1, 1)
    assert same_padding(8, 3, 2) == (4, 0, 1)
    assert same_padding(5, 1, 2) == (3, 0, 0)


def test_conv_float32_agrees_with_float64():
    conv64, x, weight, bias = _conv_case((9, 9, 3), 4, 3, 2, "same", n=4)
    conv32 = Conv2DKernel((9, 9, 3), 4, 3, 2, "same", dtype=np.float32)
    got = conv32.forward(x.astype(np.float32), weight.astype(np.float32), bias.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, conv64.forward(x, weight, bias), rtol=1e-4, atol=1e-4)


def _numeric_gradient(loss, array, eps=1e-6):
    """Central differences of the scalar ``loss()`` with respect to every entry of ``array``."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + eps
        plus = loss()
        array[index] = old - eps
        minus = loss()
        array[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "shape, filters, kernel, stride, padding",
    [
        ((6, 5, 2), 3, 3, 1, "valid"),
        ((7, 6, 3), 2, 3, 2, "same"),
        ((6, 8, 2), 3, 4, 2, "same"),
        ((7, 7, 2), 2, 3, 2, "valid"),
        ((7, 7, 1), 2, 3, 2, "same"),
        ((9, 8, 1), 2, 5, 3, "same"),
        ((8, 9, 2), 2, 2, 3, "valid"),
        ((8, 8, 3), 2, 4, 4, "valid"),
    ],
)
def test_conv_gradients_match_central_differences(shape, filters, kernel, stride, padding):
    conv, x, weight, bias = _conv_case(shape, filters, kernel, stride, padding, seed=1)
    upstream = np.random.default_rng(2).normal(size=(x.shape[0], *conv.output_shape))

    def loss():
        return float(np.sum(conv.forward(x, weight, bias, keep=False) * upstream))

    numeric_dx = _numeric_gradient(loss, x)
    numeric_dweight, numeric_dbias = _numeric_gradient(loss, weight), _numeric_gradient(loss, bias)
    for method in DX_METHODS:
        conv.dx_method = method
        conv.forward(x, weight, bias)
        dweight, dbias = np.full(conv.weight_shape, np.nan), np.full(filters, np.nan)
        dx = conv.backward(upstream, weight, dweight, dbias)
        assert dx.shape == x.shape
        assert _rel_error(dx, numeric_dx) < GRADIENT_TOLERANCE, method
        assert _rel_error(dweight, numeric_dweight) < GRADIENT_TOLERANCE
        assert _rel_error(dbias, numeric_dbias) < GRADIENT_TOLERANCE


@pytest.mark.parametrize(
    "shape, filters, kernel, padding, method, band_outputs",
    [  # each the fastest of the methods and band widths timed here (see ADD_COST)
        ((12, 12, 16), 32, 5, "valid", "banded", 4),
        ((14, 14, 16), 32, 3, "same", "banded", 2),
        ((28, 28, 8), 16, 3, "same", "banded", 4),
        ((7, 7, 32), 64, 3, "same", "columns", None),
        ((28, 28, 1), 16, 5, "valid", "banded", 24),
        ((28, 28, 1), 32, 3, "valid", "offset-major", None),
    ],
)
def test_dx_method_follows_the_width_kernel_and_filters(
    shape, filters, kernel, padding, method, band_outputs
):
    conv = Conv2DKernel(shape, filters, kernel, padding=padding)
    assert conv.dx_method == method
    if band_outputs is not None:
        assert conv.band_outputs == band_outputs


@pytest.mark.parametrize(
    "shape, filters, kernel, padding, small_batch_rows",
    [  # the batch sizes under which the column dx was timed faster here (see CALL_COST)
        ((14, 14, 32), 64, 3, "same", 4),
        ((14, 14, 16), 32, 3, "same", 5),
        ((28, 28, 8), 16, 3, "same", 2),
        ((12, 12, 16), 32, 5, "valid", 0),
    ],
)
def test_small_batches_take_the_column_dx_where_the_band_makes_too_many_calls(
    shape, filters, kernel, padding, small_batch_rows
):
    conv = Conv2DKernel(shape, filters, kernel, padding=padding)
    assert conv.dx_method == "banded" and conv.small_batch_rows == small_batch_rows
    assert conv._dx_method_for(1) == ("columns" if small_batch_rows > 1 else "banded")
    assert conv._dx_method_for(128) == "banded"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, *shape)).astype(np.float32)
    weight = rng.normal(size=conv.weight_shape).astype(np.float32)
    bias = np.zeros(filters, np.float32)
    dy = rng.normal(size=(1, *conv.output_shape)).astype(np.float32)
    forced = Conv2DKernel(shape, filters, kernel, padding=padding)
    forced.dx_method = "banded"  # forcing a method applies it to every batch size
    assert forced.small_batch_rows == 0
    results = []
    for kernel_ in (conv, forced):
        kernel_.forward(x, weight, bias)
        dweight, dbias = np.empty_like(weight), np.empty_like(bias)
        results.append(kernel_.backward(dy, weight, dweight, dbias).copy())
        assert kernel_.buffer_bytes() == kernel_.planned_bytes(1)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-4)


def test_an_unknown_dx_method_is_refused():
    with pytest.raises(ValueError, match="dx_method must be one of"):
        Conv2DKernel((8, 8, 3), 4, 3).dx_method = "fast"


@pytest.mark.parametrize("band_outputs", [1, 2, 4, 8])  # the divisors of the width 8
def test_banded_dx_over_any_band_width_equals_the_column_method(band_outputs):
    rng = np.random.default_rng(band_outputs)
    columns, banded = (Conv2DKernel((8, 8, 3), 4, 3, padding="same") for _ in range(2))
    columns.dx_method, banded.dx_method, banded.band_outputs = "columns", "banded", band_outputs
    x = rng.normal(size=(5, 8, 8, 3)).astype(np.float32)
    weight = rng.normal(size=columns.weight_shape).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    dy = rng.normal(size=(5, *columns.output_shape)).astype(np.float32)
    results = []
    for conv in (columns, banded):
        conv.forward(x, weight, bias)
        dweight, dbias = np.empty_like(weight), np.empty_like(bias)
        results.append(conv.backward(dy, weight, dweight, dbias).copy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-5)
    assert banded.buffer_bytes() == banded.planned_bytes(5)


def test_conv_backward_without_dx_still_writes_parameter_gradients():
    conv, x, weight, bias = _conv_case((6, 6, 1), 3, 3, 1, "valid")
    upstream = np.ones((x.shape[0], *conv.output_shape))
    conv.forward(x, weight, bias)
    dweight, dbias = np.zeros(conv.weight_shape), np.zeros(3)
    assert conv.backward(upstream, weight, dweight, dbias, need_dx=False) is None
    full_dweight, full_dbias = np.zeros(conv.weight_shape), np.zeros(3)
    conv.backward(upstream, weight, full_dweight, full_dbias)
    np.testing.assert_array_equal(dweight, full_dweight)
    np.testing.assert_array_equal(dbias, np.full(3, 2 * 4 * 4))


def test_conv_backward_needs_a_kept_forward():
    conv, x, weight, bias = _conv_case((6, 6, 1), 3, 3, 1, "valid")
    conv.forward(x, weight, bias)
    conv.forward(x, weight, bias, keep=False)  # overwrites the kept columns of this batch size
    with pytest.raises(RuntimeError, match="keep=True"):
        conv.backward(
            np.ones((2, *conv.output_shape)), weight, np.zeros(conv.weight_shape), np.zeros(3)
        )


def test_conv_reuses_buffers_per_batch_size():
    conv, x, weight, bias = _conv_case((8, 8, 2), 3, 3, 1, "same", n=4)
    first = conv.forward(x, weight, bias)
    again = conv.forward(x, weight, bias)
    assert first is again
    smaller = conv.forward(x[:2], weight, bias)
    assert smaller.shape[0] == 2 and smaller is not first
    np.testing.assert_allclose(smaller, first[:2])


def test_conv_writes_into_a_given_output():
    conv, x, weight, bias = _conv_case((6, 6, 2), 3, 3, 1, "valid")
    out = np.empty((2, *conv.output_shape))
    assert conv.forward(x, weight, bias, out=out) is out
    np.testing.assert_allclose(out, _reference_conv(x, weight, bias, 1, (0, 0, 0, 0)))


def test_buffers_are_made_once_and_bounded_by_the_batch():
    conv, x, weight, bias = _conv_case((8, 8, 2), 3, 3, 1, "same", n=4)
    pool = Pool2DKernel(conv.output_shape, 2, dtype=np.float64)
    dweight, dbias = np.empty(conv.weight_shape), np.empty(3)

    def step(batch):
        pooled = pool.forward(conv.forward(batch, weight, bias))
        conv.backward(pool.backward(np.ones_like(pooled)), weight, dweight, dbias)

    step(x)
    conv_bytes, pool_bytes = conv.buffer_bytes(), pool.buffer_bytes()
    step(x)
    assert (conv.buffer_bytes(), pool.buffer_bytes()) == (conv_bytes, pool_bytes)
    many = np.concatenate([x] * 4)
    for n in (1, 2, 3, 5, 6, 7, 8, 16):
        step(many[:n])
    latest = [16, 8, 7, 6, 5, 3, 2, 1][:BATCH_SIZES_KEPT]  # the sizes kept, newest first
    assert conv.buffer_bytes() <= conv_bytes * sum(latest) / 4
    assert len(conv._buffers._by_batch) == len(pool._buffers._by_batch) == BATCH_SIZES_KEPT


def test_forward_without_keep_goes_through_large_batches_in_chunks(monkeypatch):
    monkeypatch.setattr(conv_module, "INFERENCE_CHUNK", 3)
    conv, x, weight, bias = _conv_case((7, 7, 2), 3, 3, 2, "same", n=8)
    pool = Pool2DKernel(conv.output_shape, 2, dtype=np.float64)
    expected = _reference_conv(x, weight, bias, 2, (1, 1, 1, 1))
    got = conv.forward(x, weight, bias, keep=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pool.forward(got, keep=False), _reference_pool(got, 2, 2, "max"))
    assert conv.forward(x, weight, bias, keep=False) is not got  # a new array, not a buffer
    assert set(conv._buffers._by_batch) == {3, 2}


def test_forward_without_keep_leaves_a_kept_batch_of_another_size_alone():
    conv, x, weight, bias = _conv_case((6, 6, 2), 3, 3, 1, "valid", n=4)
    pool = Pool2DKernel(conv.output_shape, 2, dtype=np.float64)
    upstream = np.random.default_rng(7).normal(size=(4, *pool.output_shape))
    dweight, dbias = np.empty(conv.weight_shape), np.empty(3)
    y = conv.forward(x, weight, bias).copy()
    pool.forward(y)
    expected_pool = pool.backward(upstream).copy()
    expected_dx = conv.backward(expected_pool, weight, dweight, dbias).copy()
    conv.forward(x, weight, bias)
    pool.forward(y)
    for n in [1, 2, 3, *range(5, 6 + BATCH_SIZES_KEPT)]:  # evicts batch 4's buffers from the LRU
        conv.forward(np.resize(x, (n, *x.shape[1:])), weight, bias, keep=False)
        pool.forward(np.resize(y, (n, *y.shape[1:])), keep=False)
    np.testing.assert_array_equal(pool.backward(upstream), expected_pool)
    np.testing.assert_array_equal(conv.backward(expected_pool, weight, dweight, dbias), expected_dx)


def test_batch_buffers_keep_only_the_latest_sizes():
    buffers = BatchBuffers(limit=2)
    for n in (1, 2, 3):
        buffers.get(n, "a", lambda n=n: np.zeros(n))
    made = []
    buffers.get(1, "a", lambda: made.append(1) or np.zeros(1))
    assert made == [1]
    assert len(buffers._by_batch) == 2


POOL_CASES = [
    # (input_shape, size, stride)
    ((4, 4, 2), 2, None),
    ((7, 9, 3), 2, None),
    ((6, 6, 2), 3, 3),
    ((7, 7, 2), 3, 2),
    ((6, 7, 1), 2, 1),
    ((8, 8, 2), 2, 3),
    ((5, 5, 1), 5, None),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_pool_forward_matches_nested_loops(shape, size, stride, mode):
    x = np.random.default_rng(3).normal(size=(3, *shape))
    pool = Pool2DKernel(shape, size, stride, mode, dtype=np.float64)
    expected = _reference_pool(x, size, size if stride is None else stride, mode)
    got = pool.forward(x)
    assert got.shape == (3, *pool.output_shape) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pool.forward(x, keep=False), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_pool_gradients_match_central_differences(shape, size, stride, mode):
    rng = np.random.default_rng(4)
    n = 2
    x = rng.permutation(n * int(np.prod(shape))).reshape(n, *shape) / 10.0  # no ties
    pool = Pool2DKernel(shape, size, stride, mode, dtype=np.float64)
    upstream = rng.normal(size=(n, *pool.output_shape))

    def loss():
        return float(np.sum(pool.forward(x, keep=False) * upstream))

    pool.forward(x)
    dx = pool.backward(upstream).copy()
    assert dx.shape == x.shape
    assert _rel_error(dx, _numeric_gradient(loss, x)) < GRADIENT_TOLERANCE


def test_max_pool_sends_the_gradient_to_the_first_maximum_on_ties():
    x = np.zeros((1, 2, 2, 1))
    pool = Pool2DKernel((2, 2, 1), 2, dtype=np.float64)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])


def test_max_pool_of_more_than_256_offsets_finds_the_maximum():
    x = np.random.default_rng(6).permutation(17 * 17 * 2).reshape(1, 17, 17, 2).astype(float)
    pool = Pool2DKernel((17, 17, 2), 17, dtype=np.float64)
    np.testing.assert_array_equal(pool.forward(x)[0, 0, 0], x[0].max(axis=(0, 1)))
    dx = pool.backward(np.ones((1, 1, 1, 2)))
    np.testing.assert_array_equal(dx, x == x[0].max(axis=(0, 1)))


def test_max_pool_crops_the_remainder_with_zero_gradient():
    x = np.random.default_rng(5).normal(size=(2, 5, 5, 2)).astype(np.float32)
    pool = Pool2DKernel((5, 5, 2), 2)
    pool.forward(x)
    dx = pool.backward(np.ones((2, *pool.output_shape), np.float32))
    assert not dx[:, 4, :, :].any() and not dx[:, :, 4, :].any()
    assert dx.sum() == 2 * 2 * 2 * 2


def test_kernel_larger_than_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"kernel 5 is larger than the input height 4.*at most 4"):
        Conv2DKernel((4, 6, 1), 8, 5)
    with pytest.raises(ValueError, match=r"input width 3.*at most 3"):
        Conv2DKernel((6, 3, 1), 8, 5)
    assert Conv2DKernel((4, 4, 1), 8, 5, padding="same").output_shape == (4, 4, 8)


def test_pooling_that_leaves_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match=r"pool size 3 is larger than the input 2x5.*at most 2"):
        Pool2DKernel((2, 5, 4), 3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv2DKernel((4, 4), 2, 3), "input_shape must be"),
        (lambda: Conv2DKernel((4, 4, 1), 0, 3), "filters must be a positive integer"),
        (lambda: Conv2DKernel((4, 4, 1), 2, 3, stride=0), "stride must be a positive integer"),
        (lambda: Conv2DKernel((4, 4, 1), 2, 3, padding="full"), "padding must be one of"),
        (lambda: Pool2DKernel((4, 4, 1), 2, mode="sum"), "mode must be one of"),
        (lambda: Pool2DKernel((4, 4, 1), 0), "size must be a positive integer"),
    ],
)
def test_invalid_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_conv_rejects_inputs_and_weights_of_the_wrong_shape():
    conv, x, weight, bias = _conv_case((6, 6, 2), 3, 3, 1, "valid")
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6, 6, 2\)"):
        conv.forward(x[:, :5], weight, bias)
    with pytest.raises(ValueError, match=r"weight must have shape \(3, 3, 2, 3\)"):
        conv.forward(x, weight[:2], bias)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize(
    "shape, kernel, stride, padding, method",
    [
        ((8, 8, 2), 3, 1, "same", "banded"),
        ((13, 11, 3), 2, 3, "valid", "columns"),
        ((7, 7, 1), 3, 2, "same", "offset-major"),
        ((10, 10, 2), 3, 1, "valid", None),
    ],
)
def test_planned_bytes_are_the_buffers_made(
    shape, kernel, stride, padding, method, keep, monkeypatch
):
    monkeypatch.setattr(conv_module, "INFERENCE_CHUNK", 3)
    for n in (2, 7):
        conv, x, weight, bias = _conv_case(shape, 2, kernel, stride, padding, n=n)
        conv.dx_method = method or conv.dx_method
        y = conv.forward(x, weight, bias, keep=keep)
        if keep:
            conv.backward(np.ones_like(y), weight, np.empty(conv.weight_shape), np.empty(2))
        assert conv.buffer_bytes() == conv.planned_bytes(n, keep=keep)
        for mode, size, pool_stride in (
            ("max", 2, None),
            ("max", 2, 1),
            ("avg", 3, 1),
            ("avg", 2, 2),
        ):
            pool = Pool2DKernel(conv.output_shape, size, pool_stride, mode, dtype=np.float64)
            pooled = pool.forward(y, keep=keep)
            if keep:
                pool.backward(np.ones_like(pooled))
            assert pool.buffer_bytes() == pool.planned_bytes(n, keep=keep)
        conv.clear_buffers()
        assert conv.buffer_bytes() == 0
