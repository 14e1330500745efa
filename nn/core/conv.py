"""Channels-last convolution and pooling kernels in pure NumPy.

Arrays are ``(batch, height, width, channels)``. The convolution is a cross-correlation (as
PyTorch's ``conv2d``) computed by im2col: a strided view of the input's windows is copied into a
preallocated column matrix, and one matrix product per layer and direction does the arithmetic.
The backward scatter (col2im) adds one strided slice per kernel offset, so each pass is a plain
vectorised add over the batch.

Pooling works on the ``size * size`` strided slices of the input, one per offset inside the
window: max pooling keeps a running maximum and the offset it came from (the first maximum wins on
ties), and its backward pass writes the output gradient to the slice of each offset where that
offset won.

Every buffer (column matrix, padded input, outputs, gradients) is made once per batch size and
reused; only the few most recent batch sizes are kept, so memory is bounded by the batch, never by
the data set. Returned arrays may be those buffers: a caller that keeps one across calls copies it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

PADDINGS = ("valid", "same")
POOL_MODES = ("max", "avg")
NEEDS_KEPT_FORWARD = "backward needs a forward with keep=True on a batch of the same size"
BATCH_SIZES_KEPT = 3
"""How many batch sizes keep their buffers (training batch, a last partial batch, inference)."""


class BatchBuffers:
    """Arrays made once per batch size, the least recently used size dropped beyond a limit."""

    def __init__(self, limit: int = BATCH_SIZES_KEPT):
        self.limit = limit
        self._by_batch: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def get(self, n: int, name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The buffer ``name`` for batch size ``n``, made by ``make()`` the first time."""
        buffers = self._by_batch.get(n)
        if buffers is None:
            buffers = self._by_batch[n] = {}
            while len(self._by_batch) > self.limit:
                self._by_batch.popitem(last=False)
        else:
            self._by_batch.move_to_end(n)
        array = buffers.get(name)
        if array is None:
            array = buffers[name] = make()
        return array

    def clear(self) -> None:
        """Drop every buffer."""
        self._by_batch.clear()


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """``(output, before, after)`` for 'same' padding: output ``ceil(size / stride)``, the total
    padding ``max((output - 1) * stride + kernel - size, 0)`` split with the extra one after."""
    output = -(-size // stride)
    total = max((output - 1) * stride + kernel - size, 0)
    return output, total // 2, total - total // 2


def offset_slice(offset: int, stride: int, count: int) -> slice:
    """The ``count`` positions ``offset, offset + stride, ...`` as a slice."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def window_view(x: np.ndarray, kernel: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """Read-only view ``(n, out_h, out_w, kernel, kernel, c)`` of the windows of ``x``."""
    sn, sh, sw, sc = x.strides
    shape = (x.shape[0], out_h, out_w, kernel, kernel, x.shape[3])
    strides = (sn, sh * stride, sw * stride, sh, sw, sc)
    return as_strided(x, shape=shape, strides=strides, writeable=False)


def _check_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive sizes, "
            f"got {tuple(input_shape)}"
        )
    return shape  # type: ignore[return-value]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_batch(x: np.ndarray, input_shape: tuple[int, ...], what: str) -> None:
    if x.ndim != 4 or x.shape[1:] != tuple(input_shape):
        raise ValueError(
            f"{what} must have shape (batch, {', '.join(map(str, input_shape))}), got {x.shape}"
        )


class Conv2DKernel:
    """Channels-last 2-D convolution (cross-correlation, as PyTorch's conv2d) by im2col.

    ``forward`` copies the windows of the (padded) input into a column matrix
    ``(n * oh * ow, k * k * c)`` and multiplies it by the weights seen as ``(k * k * c, filters)``.
    ``backward`` gets dW from the kept column matrix and dy, db as dy summed over positions, and
    dx by one product ``dy @ W.T`` scattered back by kernel offset.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        filters: int,
        kernel: int,
        stride: int = 1,
        padding: str = "valid",
        dtype=np.float32,
    ):
        self.input_shape = _check_shape(input_shape)
        _check_positive(filters=filters, kernel=kernel, stride=stride)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.filters, self.kernel, self.stride, self.padding = filters, kernel, stride, padding
        self.dtype = np.dtype(dtype)
        h, w, c = self.input_shape
        out_h, self.pad_top, self.pad_bottom = self._plan(h, "height")
        out_w, self.pad_left, self.pad_right = self._plan(w, "width")
        self.output_shape = (out_h, out_w, filters)
        self.weight_shape = (kernel, kernel, c, filters)
        self.padded_shape = (
            h + self.pad_top + self.pad_bottom,
            w + self.pad_left + self.pad_right,
            c,
        )
        self._buffers = BatchBuffers()
        self._kept_batch: int | None = None

    def _plan(self, size: int, axis: str) -> tuple[int, int, int]:
        """``(output, pad before, pad after)`` along one spatial axis; ValueError if none fits."""
        if self.padding == "same":
            return same_padding(size, self.kernel, self.stride)
        if self.kernel > size:
            raise ValueError(
                f"kernel {self.kernel} is larger than the input {axis} {size} with "
                f"padding 'valid': the kernel must be at most {size}, or use "
                f"padding 'same'"
            )
        return (size - self.kernel) // self.stride + 1, 0, 0

    @property
    def padded(self) -> bool:
        """Whether the input is copied into a zero-bordered buffer before im2col."""
        return self.padded_shape != self.input_shape

    def _padded_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` itself, or its copy inside a zero border kept per batch size."""
        if not self.padded:
            return x
        n = x.shape[0]
        xp = self._buffers.get(n, "padded", lambda: np.zeros((n, *self.padded_shape), self.dtype))
        h, w, _ = self.input_shape
        xp[:, self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w, :] = x
        return xp

    def _columns(self, n: int) -> np.ndarray:
        out_h, out_w, _ = self.output_shape
        rows, width = n * out_h * out_w, self.kernel * self.kernel * self.input_shape[2]
        return self._buffers.get(n, "columns", lambda: np.empty((rows, width), self.dtype))

    def forward(self, x, weight, bias, out=None, keep=True) -> np.ndarray:
        """``(n, oh, ow, filters)`` = conv(x, weight) + bias; ``keep`` keeps the column matrix
        for ``backward``. ``out``, if given, receives the result."""
        x = np.asarray(x)
        _check_batch(x, self.input_shape, "x")
        self._check_parameters(weight, bias)
        n = x.shape[0]
        out_h, out_w, f = self.output_shape
        cols = self._columns(n)
        xp = self._padded_input(x)
        np.copyto(
            cols.reshape(n, out_h, out_w, self.kernel, self.kernel, self.input_shape[2]),
            window_view(xp, self.kernel, self.stride, out_h, out_w),
        )
        if out is None:
            out = self._buffers.get(
                n, "output", lambda: np.empty((n, *self.output_shape), self.dtype)
            )
        flat = out.reshape(n * out_h * out_w, f)
        np.matmul(cols, weight.reshape(-1, f), out=flat)
        flat += bias
        if not np.shares_memory(flat, out):
            out[...] = flat.reshape(out.shape)
        self._kept_batch = n if keep else None
        return out

    def _check_parameters(self, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {weight.shape}")
        if bias.shape != (self.filters,):
            raise ValueError(f"bias must have shape ({self.filters},), got {bias.shape}")

    def backward(self, dy, weight, dweight, dbias, need_dx=True) -> np.ndarray | None:
        """Writes dL/dW into ``dweight`` and dL/db into ``dbias`` (overwriting them) and returns
        dL/dx ``(n, h, w, c)``, or None when ``need_dx`` is False."""
        dy = np.ascontiguousarray(dy)
        n = dy.shape[0]
        if self._kept_batch != n:
            raise RuntimeError(NEEDS_KEPT_FORWARD)
        _check_batch(dy, self.output_shape, "dy")
        self._check_parameters(weight, dbias)
        if dweight.shape != self.weight_shape:
            raise ValueError(f"dweight must have shape {self.weight_shape}, got {dweight.shape}")
        cols = self._columns(n)
        dy_flat = dy.reshape(-1, self.filters)
        _write(dweight, cols.T @ dy_flat)
        np.sum(dy_flat, axis=0, out=dbias)
        if not need_dx:
            return None
        dcols = self._buffers.get(n, "dcolumns", lambda: np.empty_like(cols))
        np.matmul(dy_flat, weight.reshape(-1, self.filters).T, out=dcols)
        return self._col2im(dcols, n)

    def _col2im(self, dcols: np.ndarray, n: int) -> np.ndarray:
        """dL/dx from the column gradients: each kernel offset adds its strided slice."""
        out_h, out_w, _ = self.output_shape
        k, c = self.kernel, self.input_shape[2]
        dxp = self._buffers.get(n, "dpadded", lambda: np.empty((n, *self.padded_shape), self.dtype))
        dxp.fill(0)
        windows = dcols.reshape(n, out_h, out_w, k, k, c)
        for i in range(k):
            rows = offset_slice(i, self.stride, out_h)
            for j in range(k):
                dxp[:, rows, offset_slice(j, self.stride, out_w), :] += windows[:, :, :, i, j, :]
        if not self.padded:
            return dxp
        h, w, _ = self.input_shape
        return dxp[:, self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w, :]


def _write(target: np.ndarray, value: np.ndarray) -> None:
    """Copies ``value`` into ``target`` of the same size (reshaped to its shape)."""
    target[...] = value.reshape(target.shape)


class Pool2DKernel:
    """Channels-last max or average pooling over ``size * size`` windows, without padding.

    The input is read as ``size * size`` strided slices, one per offset inside the window, each of
    the output's shape: max pooling keeps a running maximum and the index of the offset that holds
    it (a later offset wins only if strictly greater, so the first maximum wins on ties); average
    pooling sums the slices. The backward pass writes (or, where windows overlap, adds) dy, masked
    by the winning offset or scaled by ``1 / size**2``, into the same slices of dx.
    """

    def __init__(
        self, input_shape, size: int, stride: int | None = None, mode: str = "max", dtype=np.float32
    ):
        self.input_shape = _check_shape(input_shape)
        stride = size if stride is None else stride
        _check_positive(size=size, stride=stride)
        if mode not in POOL_MODES:
            raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
        h, w, c = self.input_shape
        if size > min(h, w):
            raise ValueError(
                f"pool size {size} is larger than the input {h}x{w}: the size must be "
                f"at most {min(h, w)}"
            )
        self.size, self.stride, self.mode = size, stride, mode
        self.dtype = np.dtype(dtype)
        self.output_shape = ((h - size) // stride + 1, (w - size) // stride + 1, c)
        self._buffers = BatchBuffers()
        self._kept_batch: int | None = None

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """The ``(row, column)`` offsets inside a window, in row-major order."""
        return [(i, j) for i in range(self.size) for j in range(self.size)]

    def _slice(self, array: np.ndarray, i: int, j: int) -> np.ndarray:
        """The view of ``array`` (n, h, w, c) read by offset ``(i, j)`` of every window."""
        out_h, out_w, _ = self.output_shape
        return array[:, offset_slice(i, self.stride, out_h), offset_slice(j, self.stride, out_w), :]

    def forward(self, x, out=None, keep=True) -> np.ndarray:
        """``(n, oh, ow, c)`` pooled ``x``; ``keep`` keeps what ``backward`` needs."""
        x = np.asarray(x)
        _check_batch(x, self.input_shape, "x")
        n = x.shape[0]
        if out is None:
            out = self._buffers.get(
                n, "output", lambda: np.empty((n, *self.output_shape), self.dtype)
            )
        if self.mode == "max":
            self._max_forward(x, out, keep)
        else:
            self._avg_forward(x, out)
        self._kept_batch = n if keep else None
        return out

    def _max_forward(self, x: np.ndarray, out: np.ndarray, keep: bool) -> None:
        n = x.shape[0]
        winner = None
        if keep:
            winner = self._buffers.get(n, "winner", lambda: np.empty(out.shape, np.uint8))
            winner.fill(0)
            greater = self._buffers.get(n, "greater", lambda: np.empty(out.shape, bool))
        np.copyto(out, self._slice(x, 0, 0))
        for index, (i, j) in enumerate(self.offsets[1:], start=1):
            candidate = self._slice(x, i, j)
            if winner is None:
                np.maximum(out, candidate, out=out)
                continue
            np.greater(candidate, out, out=greater)
            np.copyto(out, candidate, where=greater)
            winner[greater] = index

    def _avg_forward(self, x: np.ndarray, out: np.ndarray) -> None:
        np.copyto(out, self._slice(x, 0, 0))
        for i, j in self.offsets[1:]:
            out += self._slice(x, i, j)
        out *= 1.0 / (self.size * self.size)

    def backward(self, dy) -> np.ndarray:
        """dL/dx ``(n, h, w, c)`` for the output gradient ``dy`` of the last kept forward."""
        dy = np.asarray(dy)
        n = dy.shape[0]
        if self._kept_batch != n:
            raise RuntimeError(NEEDS_KEPT_FORWARD)
        _check_batch(dy, self.output_shape, "dy")
        dx = self._buffers.get(n, "dx", lambda: np.empty((n, *self.input_shape), self.dtype))
        dx.fill(0)
        if self.mode == "max":
            winner = self._buffers.get(n, "winner", lambda: np.empty(dy.shape, np.uint8))
            for index, (i, j) in enumerate(self.offsets):
                self._slice(dx, i, j)[...] += np.where(winner == index, dy, 0)
        else:
            share = dy * (1.0 / (self.size * self.size))
            for i, j in self.offsets:
                self._slice(dx, i, j)[...] += share
        return dx
