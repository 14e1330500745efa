"""nn.core.threads: passes split across threads give the single-thread values bit for bit (every
split pass is element-wise or adds in the same order per value), for odd batches, a batch of 1 and
batches smaller than the thread count; the split follows BLAS's thread count; the ReLU-after-
pooling plan gives the same outputs and gradients as ReLU then pooling."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from nn.core import blas, threads
from nn.core import conv as conv_module
from nn.core.activations import ReLU
from nn.core.conv import Conv2DKernel
from nn.core.optimizers import Adam
from nn.core.pooling import Pool2DKernel
from nn.core.sequential import POOL_ORDER_MIN_ROWS, Sequential

PARTS = 3  # more than this machine's two cores, and more than the smallest batches below
BATCHES = (1, 2, 5)


@pytest.fixture
def split_everything(monkeypatch):
    """Every pass is split, into as many parts as ``parts[0]`` says (1: the single-thread run)."""
    parts = [1]
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(threads, "count", lambda: parts[0])
    return parts


def _both(parts, run):
    """``run()`` on one thread and on ``PARTS`` threads; both results (lists of arrays)."""
    results = []
    for count in (1, PARTS):
        parts[0] = count
        results.append([np.array(a, copy=True) for a in run()])
    return results


def _assert_identical(one, many):
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), np.abs(a.astype(float) - b).max()


def test_split_covers_the_range_once_in_parts_and_runs_them_on_threads(split_everything):
    split_everything[0] = PARTS
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    together = threading.Barrier(PARTS, timeout=30)  # broken unless all parts run at once

    def task(start, stop):
        with lock:
            seen.append((start, stop, threading.current_thread().name))
        together.wait()

    threads.split(task, 10, 10)
    ranges = sorted((a, b) for a, b, _ in seen)
    assert ranges == [(0, 3), (3, 6), (6, 10)]
    assert len({name for *_, name in seen}) == PARTS  # the caller and two pool threads


def test_split_aligns_inner_boundaries_and_drops_empty_parts(split_everything):
    split_everything[0] = 4
    seen = []
    threads.split(lambda a, b: seen.append((a, b)), 200, 200, align=64)
    assert sorted(seen) == [(0, 64), (64, 128), (128, 200)]
    seen.clear()
    threads.split(lambda a, b: seen.append((a, b)), 2, 2)  # fewer rows than threads
    assert sorted(seen) == [(0, 1), (1, 2)]


def test_small_passes_and_one_thread_run_in_the_caller(monkeypatch):
    names = []
    monkeypatch.setattr(threads, "count", lambda: 4)
    threads.split(lambda a, b: names.append((a, b)), 100, threads.MIN_ELEMENTS - 1)
    monkeypatch.setattr(threads, "count", lambda: 1)
    threads.split(lambda a, b: names.append((a, b)), 100, 10 * threads.MIN_ELEMENTS)
    assert names == [(0, 100), (0, 100)]


def test_a_split_inside_a_split_task_does_not_split_again(split_everything):
    split_everything[0] = 2
    inner = []

    def outer(start, stop):
        threads.split(lambda a, b: inner.append((start, a, b)), stop - start, 10**9)

    threads.split(outer, 8, 10**9)
    assert sorted(inner) == [(0, 0, 4), (4, 0, 4)]


def test_an_error_in_a_part_is_raised_after_every_part_finished(split_everything):
    split_everything[0] = PARTS
    done = []

    def task(start, stop):
        if start > 0:
            raise RuntimeError(f"part {start}")
        done.append(start)

    with pytest.raises(RuntimeError, match="part"):
        threads.split(task, 9, 9)
    assert done == [0]


@pytest.mark.skipif(blas.get_threads() is None, reason="OpenBLAS's thread count is not readable")
def test_the_thread_count_is_blas_thread_count():
    with blas.limit_threads(1):
        assert threads.count() == 1
    with blas.limit_threads(3):
        assert threads.count() == 3


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize(
    "shape, kernel, stride, padding, method",
    [
        ((9, 9, 1), 3, 1, "valid", None),  # one channel: offset-major columns
        ((9, 9, 1), 3, 1, "valid", "offset-major"),
        ((8, 7, 3), 3, 1, "same", "banded"),
        ((8, 7, 3), 3, 2, "same", "columns"),
    ],
)
def test_convolution_is_the_same_on_any_number_of_threads(
    split_everything, n, shape, kernel, stride, padding, method
):
    rng = np.random.default_rng(n)
    conv = Conv2DKernel(shape, 4, kernel, stride, padding, dtype=np.float32)
    conv.dx_method = method or conv.dx_method
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    weight = rng.normal(size=conv.weight_shape).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    dy = rng.normal(size=(n, *conv.output_shape)).astype(np.float32)

    def run():
        dweight, dbias = np.empty_like(weight), np.empty_like(bias)
        y = conv.forward(x, weight, bias).copy()
        dx = conv.backward(dy, weight, dweight, dbias)
        return y, dx, dweight, dbias

    _assert_identical(*_both(split_everything, run))


@pytest.mark.parametrize("n", (1, 3, 130))
def test_convolution_forward_in_groups_of_images_equals_the_whole_batch(split_everything, n):
    """At one thread im2col and the product run per group of images (here one image per
    group); the result is the whole batch's, bit for bit."""
    rng = np.random.default_rng(n)
    conv = Conv2DKernel((12, 12, 16), 32, 5, dtype=np.float32)
    x = rng.normal(size=(n, 12, 12, 16)).astype(np.float32)
    weight = rng.normal(size=conv.weight_shape).astype(np.float32)
    bias = rng.normal(size=32).astype(np.float32)
    split_everything[0] = 3
    whole = conv.forward(x, weight, bias).copy()
    split_everything[0] = 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_module, "GROUP_BYTES", 1)
        grouped = conv.forward(x, weight, bias).copy()
    _assert_identical([whole], [grouped])


@pytest.mark.parametrize("n", (1, 3, 130))
@pytest.mark.parametrize("shape, filters", [((12, 12, 16), 32), ((28, 28, 1), 16)])
def test_pool_order_is_the_plain_forward_reordered_on_any_threads_and_groups(
    split_everything, n, shape, filters
):
    rng = np.random.default_rng(n)
    conv = Conv2DKernel(shape, filters, 5, dtype=np.float32)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    weight = rng.normal(size=conv.weight_shape).astype(np.float32)
    bias = rng.normal(size=filters).astype(np.float32)
    plain = conv.forward(x, weight, bias).copy()
    oh, ow, f = conv.output_shape
    want = plain.reshape(n, oh // 2, 2, ow // 2, 2, f).transpose(2, 4, 0, 1, 3, 5)
    results = []
    for parts, group_bytes in ((3, None), (1, None), (1, 1)):
        split_everything[0] = parts
        with pytest.MonkeyPatch.context() as patch:
            if group_bytes is not None:
                patch.setattr(conv_module, "GROUP_BYTES", group_bytes)
            results.append(conv.forward_pool_order(x, weight, bias).copy())
    for blocks in results:
        _assert_identical([want.reshape(4, n, oh // 2, ow // 2, f)], [blocks])


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize(
    "mode, size, stride, relu",
    [
        ("max", 2, 2, False),
        ("max", 2, 2, True),
        ("max", 3, 2, True),
        ("max", 2, 3, True),
        ("avg", 2, 2, False),
        ("avg", 3, 2, False),
    ],
)
def test_pooling_is_the_same_on_any_number_of_threads(
    split_everything, n, mode, size, stride, relu
):
    rng = np.random.default_rng(n)
    pool = Pool2DKernel((7, 7, 3), size, stride, mode, dtype=np.float32)
    x = np.round(rng.normal(size=(n, 7, 7, 3)), 1).astype(np.float32)  # ties
    dy = rng.normal(size=(n, *pool.output_shape)).astype(np.float32)

    def run():
        y = pool.forward(x, relu=relu).copy()
        return y, pool.backward(dy), pool.forward(x, keep=False, relu=relu)

    _assert_identical(*_both(split_everything, run))


@pytest.mark.parametrize("size, stride", [(2, 2), (3, 2), (2, 3), (3, 3)])
def test_max_pooling_with_relu_equals_relu_then_pooling(size, stride):
    """Outputs and gradients bit for bit, negative windows, zeros and ties included."""
    rng = np.random.default_rng(size * 10 + stride)
    x = np.round(rng.normal(size=(4, 9, 8, 2)), 1).astype(np.float32)
    x[0] = -np.abs(x[0])  # a whole image of windows with nothing positive
    x[1, :3] = 0.0
    dy_shape = Pool2DKernel((9, 8, 2), size, stride).output_shape
    dy = rng.normal(size=(4, *dy_shape)).astype(np.float32)
    relu, plain, fused = (
        ReLU(),
        Pool2DKernel((9, 8, 2), size, stride),
        Pool2DKernel((9, 8, 2), size, stride),
    )
    activated = relu.forward(x, out=np.empty_like(x))
    want_y = plain.forward(activated).copy()
    want_dx = relu.backward(plain.backward(dy).copy(), activated)
    got_y = fused.forward(x, relu=True).copy()
    got_dx = fused.backward(dy)
    _assert_identical([want_y, want_dx], [got_y, got_dx])


def test_relu_and_adam_are_the_same_on_any_number_of_threads(split_everything):
    rng = np.random.default_rng(0)
    for n in (*BATCHES, 130):
        z = rng.normal(size=(n, 3, 5)).astype(np.float32)
        g = rng.normal(size=(n, 3, 5)).astype(np.float32)

        def run(z=z, g=g):
            a = ReLU().forward(z, out=np.empty_like(z))
            return a, ReLU().backward(g.copy(), a)

        _assert_identical(*_both(split_everything, run))
    size = 1000  # several aligned parts and a ragged last one
    p0 = rng.normal(size=size).astype(np.float32)
    grads = [rng.normal(size=size).astype(np.float32) for _ in range(3)]

    def steps():
        p, opt = p0.copy(), Adam()
        for g in grads:
            opt.step([p], [g], 1e-2, flat=(p, g))
        return p, opt.state["m"][0], opt.state["v"][0]

    _assert_identical(*_both(split_everything, steps))


CNN = [
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel": 2},
    {"type": "relu"},
    {"type": "maxpool", "size": 2, "stride": 1},
    {"type": "dense", "units": 3},
]


def _cnn(seed=0):
    net = Sequential(CNN, (10, 10, 1), np.float32)
    net.allocate()
    net.attach_gradients()
    net.initialize(np.random.default_rng(seed), "auto")
    return net


def test_a_cnn_step_is_the_same_on_any_number_of_threads(split_everything):
    rng = np.random.default_rng(1)
    x = rng.random(size=(5, 10, 10, 1), dtype=np.float32)
    dy = rng.normal(size=(5, 3)).astype(np.float32)

    def run():
        net = _cnn()
        out = net.forward(x, training=True, keep=True).copy()
        dx = net.backward(dy.copy(), need_dx=True)
        return out, dx, net.flat_grads

    _assert_identical(*_both(split_everything, run))


def test_small_batches_run_in_the_plain_order():
    net = _cnn()
    x = np.zeros((POOL_ORDER_MIN_ROWS - 1, 10, 10, 1), np.float32)
    net.forward(x, training=True, keep=True)
    assert net.pool_order and not net._in_pool_order


def test_relu_deferred_to_after_pooling_changes_no_output_or_gradient():
    """The planned order (no ``record``) against the layers in their own order (``record``)."""
    net = _cnn()
    assert net.relu_before_pool == [1, 4]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 10, 10, 1)).astype(np.float32)
    dy = rng.normal(size=(6, 3)).astype(np.float32)
    record: list = []
    want = net.forward(x, training=True, keep=True, record=record).copy()
    want_dx = net.backward(dy.copy(), need_dx=True).copy()
    want_grads = net.flat_grads.copy()
    assert net.pool_order == {0: 2}
    net.pool_order = {}  # the deferral alone: the same values bit for bit
    got = net.forward(x, training=True, keep=True)
    _assert_identical([want], [got])
    got_dx = net.backward(dy.copy(), need_dx=True)
    _assert_identical([want_dx, want_grads], [got_dx, net.flat_grads])
    assert np.all(record[1] >= 0) and record[1].shape == (6, 8, 8, 4)  # ReLU's own output


@pytest.mark.parametrize("n", (POOL_ORDER_MIN_ROWS, POOL_ORDER_MIN_ROWS + 1, 130))
def test_pool_order_changes_no_output_or_input_gradient_and_only_rounds_weight_gradients(n):
    """The convolution before 2x2 max pooling trains in pool order: its outputs, the pooling's
    and dx are the plain passes' bit for bit; its weight gradient sums the same products over
    positions in another order, so it agrees up to float32 rounding."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 10, 10, 1)).astype(np.float32)
    dy = rng.normal(size=(n, 3)).astype(np.float32)
    results = []
    for plan in (False, True):
        net = _cnn()
        if not plan:
            net.pool_order = {}
        out = net.forward(x, training=True, keep=True).copy()
        assert bool(net._in_pool_order) == plan
        dx = net.backward(dy.copy(), need_dx=True).copy()
        results.append((out, dx, net.flat_grads.copy()))
    (out, dx, grads), (out_po, dx_po, grads_po) = results
    _assert_identical([out, dx], [out_po, dx_po])
    np.testing.assert_allclose(grads_po, grads, rtol=1e-5, atol=1e-6)


def test_max_pooling_with_relu_over_more_than_255_offsets():
    """A 16x16 window has 256 offsets: the winner is an int32 and "no winner" is 256."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 16, 16, 2)).astype(np.float32)
    x[0] = -np.abs(x[0])
    dy = rng.normal(size=(3, 1, 1, 2)).astype(np.float32)
    plain, fused = Pool2DKernel((16, 16, 2), 16), Pool2DKernel((16, 16, 2), 16)
    activated = np.maximum(x, 0)
    want_y = plain.forward(activated).copy()
    want_dx = plain.backward(dy).copy() * (activated > 0)
    got_y = fused.forward(x, relu=True).copy()
    _assert_identical([want_y, want_dx], [got_y, fused.backward(dy)])


def test_many_threads_on_a_small_pass_make_parts_of_half_the_threshold_at_least(monkeypatch):
    monkeypatch.setattr(threads, "count", lambda: 64)
    seen = []
    threads.split(lambda a, b: seen.append((a, b)), 128, 3 * threads.MIN_ELEMENTS)
    assert len(seen) == 6 and sorted(seen)[0] == (0, 21) and sorted(seen)[-1][1] == 128
