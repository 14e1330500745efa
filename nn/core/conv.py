"""Channels-last convolution in pure NumPy (pooling: ``nn.core.pooling``).

Arrays are ``(batch, height, width, channels)``. The convolution is a cross-correlation (as
PyTorch's ``conv2d``) computed by im2col: a strided view of the input's windows is copied into a
preallocated column matrix, and one matrix product per direction does the arithmetic. The column
matrix carries a row (or column) of ones, so the bias rides in the forward product and its gradient
comes out of the weight-gradient product. dx comes from one more product: for small images, dy's
rows times a banded matrix holding the weights, which leaves only ``kernel`` long adds; otherwise
the column gradients ``dy @ W.T`` scattered back (col2im) by strided slices, never by
``np.add.at``: windows whose columns lie a kernel width apart do not overlap, so one add covers a
whole kernel row for every ``kernel``-th window.

Every buffer (column matrix, padded input, outputs, gradients) is made once per batch size and
reused; only the few most recent batch sizes are kept, so memory is bounded by the batch, never by
the data set. Returned arrays may be those buffers: a caller that keeps one across calls copies it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nn.core import threads
from nn.core.conv_plan import DX_METHODS, plan_dx

PADDINGS = ("valid", "same")
BATCH_SIZES_KEPT = 8
"""How many batch sizes keep their buffers: an epoch of ``fit`` uses six, a training batch, a last
partial one, a forward without keep's chunk and remainder (the validation part), and the inside
recording's probe batch and test grid (``nn.core.probe``); fewer, and each epoch evicts and makes
again the buffers of those it used longest ago, every epoch."""
INFERENCE_CHUNK = 256
"""Samples a forward without ``keep`` works through at a time, so that its buffers stay this size
however large a batch it is given (the output itself is then a new array, not a kept buffer)."""
GROUP_BYTES = 1 << 20
"""Column-matrix bytes that im2col fills at one thread before their product runs (half a core's
2 MB L2 here): the second convolution of the benchmark CNN took 4.10-4.23 ms forward in groups
of 8-16 images against 4.45-4.59 ms with the whole batch copied first. With more threads the
whole batch is copied at once, split across them, and multiplied in one threaded product."""
NEEDS_KEPT_FORWARD = "backward needs a forward with keep=True on a batch of the same size"


class BatchBuffers:
    """Arrays made once per batch size, the least recently used size dropped beyond a limit."""

    def __init__(self, limit: int | None = None):
        self.limit = BATCH_SIZES_KEPT if limit is None else limit
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

    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(a.nbytes for buffers in self._by_batch.values() for a in buffers.values())

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


def split_view(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` reshaped to ``shape`` as a view; ValueError if that would need a copy (writes
    into a copy would be lost)."""
    return np.reshape(array, shape, copy=False)


def window_view(x: np.ndarray, kernel: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """Read-only view ``(n, out_h, out_w, kernel, kernel, c)`` of the windows of ``x``."""
    sn, sh, sw, sc = x.strides
    shape = (x.shape[0], out_h, out_w, kernel, kernel, x.shape[3])
    strides = (sn, sh * stride, sw * stride, sh, sw, sc)
    return as_strided(x, shape=shape, strides=strides, writeable=False)


def offset_major_window_view(
    x: np.ndarray, kernel: int, stride: int, out_h: int, out_w: int
) -> np.ndarray:
    """Read-only view ``(kernel, kernel, c, n, out_h, out_w)`` of the windows of ``x``: for one
    channel, each kernel offset is a copy of whole image rows."""
    sn, sh, sw, sc = x.strides
    shape = (kernel, kernel, x.shape[3], x.shape[0], out_h, out_w)
    strides = (sh, sw, sc, sn, sh * stride, sw * stride)
    return as_strided(x, shape=shape, strides=strides, writeable=False)


def check_shape(input_shape) -> tuple[int, int, int]:
    """``input_shape`` as ``(height, width, channels)`` of positive ints; ValueError if not."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive sizes, "
            f"got {tuple(input_shape)}"
        )
    return shape  # type: ignore[return-value]


def check_positive(**values: int) -> None:
    """ValueError naming the first of ``values`` that is not a positive integer."""
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_batch(x: np.ndarray, input_shape: tuple[int, ...], what: str) -> None:
    """ValueError unless ``x`` is a batch ``(n, *input_shape)``; ``what`` names it."""
    if x.ndim != 4 or x.shape[1:] != tuple(input_shape):
        raise ValueError(
            f"{what} must have shape (batch, {', '.join(map(str, input_shape))}), got {x.shape}"
        )


class Conv2DKernel:
    """Channels-last 2-D convolution (cross-correlation, as PyTorch's conv2d) by im2col.

    ``forward`` copies the windows of the (padded) input into a column matrix with one row per
    output position, ``(n * oh * ow, k * k * c + 1)``, whose last column is ones, and multiplies
    it by the weights with the bias as their last row. For one input channel the matrix is kept
    transposed, ``(k * k + 1, n * oh * ow)``: each kernel offset is then a copy of whole image
    rows instead of ``k`` values at a time. ``backward`` gets dW and db from one product of the
    kept matrix with dy, and dx from one more product, by ``dx_method``:

    - 'columns': ``dy @ W.T`` gives each window's gradient, scattered back (col2im) by slices;
    - 'offset-major': ``W @ dy.T`` gives each kernel offset's gradient as whole image rows;
    - 'banded': each row of dy times a banded matrix holding W gives the gradient of ``k`` whole
      input rows, added back by ``k`` slices. It does more multiply-adds (the band is mostly
      zeros) but hands the scatter to the matrix product, which is faster for small images.
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
        self.input_shape = check_shape(input_shape)
        check_positive(filters=filters, kernel=kernel, stride=stride)
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.filters, self.kernel, self.stride, self.padding = filters, kernel, stride, padding
        self.dtype = np.dtype(dtype)
        h, w, c = self.input_shape
        out_h, self.pad_top, self.pad_bottom = self._plan(h, "height")
        out_w, self.pad_left, self.pad_right = self._plan(w, "width")
        self.output_shape = (out_h, out_w, filters)
        self.weight_shape = (kernel, kernel, c, filters)
        self.window_size = kernel * kernel * c
        self.padded_shape = (
            h + self.pad_top + self.pad_bottom,
            w + self.pad_left + self.pad_right,
            c,
        )
        self.offset_major = c == 1
        plan = plan_dx(self.input_shape, self.padded_shape[1], self.output_shape, kernel, stride)
        self._dx_method, self.band_outputs, self.small_batch_rows = plan
        self._scatter_width = _scatter_width(self.padded_shape[1], kernel, stride, out_w)
        self._banded: np.ndarray | None = None
        self._weight_and_bias = np.empty((self.window_size + 1, filters), self.dtype)
        self._weight_t = np.empty((filters, self.window_size), self.dtype)
        self._gradients = np.empty((self.window_size + 1, filters), self.dtype)
        self._buffers = BatchBuffers()
        self._kept_columns: np.ndarray | None = None
        self._kept_batch = 0
        self._kept_pool_order = False
        self.pool_order = False
        """Set by a stack that runs this convolution with ``forward_pool_order`` (its buffers
        then include dy's copy in the standard order, see ``planned_bytes``)."""

    @property
    def dx_method(self) -> str:
        """How dx is computed (one of ``DX_METHODS``); batches under ``small_batch_rows`` images
        use 'columns' instead of 'banded' (``nn.core.conv_plan``). Setting it forces the method
        for every batch."""
        return self._dx_method

    @dx_method.setter
    def dx_method(self, method: str) -> None:
        if method not in DX_METHODS:
            raise ValueError(f"dx_method must be one of {DX_METHODS}, got {method!r}")
        self._dx_method, self.small_batch_rows = method, 0

    def _dx_method_for(self, n: int) -> str:
        """The dx method for a batch of ``n`` images."""
        return "columns" if n < self.small_batch_rows else self._dx_method

    @property
    def band_inputs(self) -> int:
        """Padded input columns one banded product's band covers."""
        return (self.band_outputs - 1) * self.stride + self.kernel

    def _plan(self, size: int, axis: str) -> tuple[int, int, int]:
        """``(output, pad before, pad after)`` along one spatial axis; ValueError if none fits."""
        if self.padding == "same":
            return same_padding(size, self.kernel, self.stride)
        if self.kernel > size:
            raise ValueError(
                f"kernel {self.kernel} is larger than the input {axis} {size} with padding "
                f"'valid': the kernel must be at most {size}, or use padding 'same'"
            )
        return (size - self.kernel) // self.stride + 1, 0, 0

    @property
    def padded(self) -> bool:
        """Whether the input is copied into a zero-bordered buffer before im2col."""
        return self.padded_shape != self.input_shape

    def buffer_bytes(self) -> int:
        """Bytes held by the per-batch buffers."""
        return self._buffers.nbytes()

    def clear_buffers(self) -> None:
        """Drops every per-batch buffer and what a forward kept for backward."""
        self._buffers.clear()
        self._kept_columns, self._kept_batch = None, 0

    def planned_bytes(self, n: int, keep: bool = True, need_dx: bool = True) -> int:
        """Bytes of the per-batch buffers that a forward on ``n`` samples makes, with ``keep``
        also those of its backward. Without ``keep``, a batch above ``INFERENCE_CHUNK`` counts
        its chunks' buffers and not its output (a new array, the caller's)."""
        if not keep:
            if n <= INFERENCE_CHUNK:
                return self._forward_bytes(n, output=True)
            chunks = {INFERENCE_CHUNK, n % INFERENCE_CHUNK} - {0}
            return sum(self._forward_bytes(m, output=False) for m in chunks)
        return self._forward_bytes(n, output=True) + (self._dx_bytes(n) if need_dx else 0)

    def _forward_bytes(self, n: int, output: bool) -> int:
        out_h, out_w, f = self.output_shape
        positions = n * out_h * out_w
        count = positions * (self.window_size + 1) + (positions * f if output else 0)
        if self.padded:
            count += n * math.prod(self.padded_shape)
        return count * self.dtype.itemsize

    def _dx_bytes(self, n: int) -> int:
        out_h, out_w, _ = self.output_shape
        hp, wp, c = self.padded_shape
        count = n * hp * self._scatter_width * c
        if self.pool_order:
            count += n * math.prod(self.output_shape)
        if self._dx_method_for(n) == "banded":
            blocks = self.output_shape[1] // self.band_outputs
            count += n * out_h * blocks * self.kernel * self.band_inputs * c
        else:
            count += n * out_h * out_w * self.window_size
        return count * self.dtype.itemsize

    def _padded_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` itself, or its copy inside a zero border kept per batch size."""
        if not self.padded:
            return x
        n = x.shape[0]
        xp = self._buffers.get(n, "padded", lambda: np.zeros((n, *self.padded_shape), self.dtype))
        h, w, _ = self.input_shape
        inside = xp[:, self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w, :]

        def copy_rows(start: int, stop: int) -> None:
            inside[start:stop] = x[start:stop]

        threads.split(copy_rows, n, x.size)
        return xp

    def _make_columns(self, n: int) -> np.ndarray:
        out_h, out_w, _ = self.output_shape
        positions = n * out_h * out_w
        if self.offset_major:
            cols = np.empty((self.window_size + 1, positions), self.dtype)
            cols[-1] = 1
        else:
            cols = np.empty((positions, self.window_size + 1), self.dtype)
            cols[:, -1] = 1
        return cols

    def _columns(self, n: int) -> np.ndarray:
        """The column matrix for batch size ``n``, its ones already in place."""
        return self._buffers.get(n, "columns", lambda: self._make_columns(n))

    def _im2col(self, xp: np.ndarray, pool_order: bool = False) -> np.ndarray:
        """Copies the windows of the padded input ``xp`` into the column matrix, its positions
        in pool order if asked (see ``forward_pool_order``)."""
        cols = self._columns(xp.shape[0])
        target, windows = self._im2col_views(xp, cols, pool_order)

        def copy_rows(start: int, stop: int) -> None:
            np.copyto(target[start:stop], windows[start:stop])

        threads.split(copy_rows, xp.shape[0], target.size)
        return cols

    def _im2col_views(
        self, xp: np.ndarray, cols: np.ndarray, pool_order: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(target, windows)``, both with the batch first: the column matrix's window values
        and the windows of ``xp`` that im2col copies into them."""
        n = xp.shape[0]
        out_h, out_w, _ = self.output_shape
        k, c = self.kernel, self.input_shape[2]
        if pool_order:
            return self._pool_order_views(xp, cols)
        if self.offset_major:  # the batch is axis 3
            target = split_view(cols[:-1], (k, k, c, n, out_h, out_w)).transpose(3, 0, 1, 2, 4, 5)
            windows = offset_major_window_view(xp, k, self.stride, out_h, out_w)
            windows = windows.transpose(3, 0, 1, 2, 4, 5)
        else:
            target = split_view(cols[:, :-1], (n, out_h, out_w, k, k, c))
            windows = window_view(xp, k, self.stride, out_h, out_w)
        return target, windows

    def _pool_order_views(self, xp: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_im2col_views`` with the positions in pool order: ``(n, 2, 2, oh / 2, ow / 2)``,
        each image's positions grouped by the offset ``(i, j)`` inside its 2x2 pooling window."""
        n = xp.shape[0]
        out_h, out_w, _ = self.output_shape
        h2, w2, k, c = out_h // 2, out_w // 2, self.kernel, self.input_shape[2]
        if self.offset_major:  # both as (n, k, k, c, i, j, h2, w2)
            target = split_view(cols[:-1], (k, k, c, n, 2, 2, h2, w2))
            windows = offset_major_window_view(xp, k, self.stride, out_h, out_w)
            windows = split_view(windows, (k, k, c, n, h2, 2, w2, 2))
            return target.transpose(3, 0, 1, 2, 4, 5, 6, 7), windows.transpose(
                3, 0, 1, 2, 5, 7, 4, 6
            )
        target = split_view(cols[:, :-1], (n, 2, 2, h2, w2, k, k, c))  # both (n, h2, i, w2, j, ...)
        windows = window_view(xp, k, self.stride, out_h, out_w)
        windows = split_view(windows, (n, h2, 2, w2, 2, k, k, c))
        return target.transpose(0, 3, 1, 4, 2, 5, 6, 7), windows

    @property
    def pool_order_possible(self) -> bool:
        """Whether ``forward_pool_order`` applies: an even output height and width."""
        return self.output_shape[0] % 2 == 0 and self.output_shape[1] % 2 == 0

    def forward_pool_order(self, x, weight, bias) -> np.ndarray:
        """The convolution as ``forward(keep=True)`` computes it, its output positions in pool
        order: each image's ``(2, 2, oh / 2, ow / 2)``, returned as the blocks view ``(4, n,
        oh / 2, ow / 2, filters)``, block ``2 * i + j`` holding offset ``(i, j)`` of every 2x2
        pooling window. A 2x2 max pooling then compares four blocks of long contiguous runs
        instead of strided slices (``Pool2DKernel.forward_blocks``); ``backward`` takes dy as
        such blocks too. Only the order of the rows of the column matrix changes: every value
        is the one ``forward`` computes."""
        x = np.asarray(x)
        check_batch(x, self.input_shape, "x")
        self._check_parameters(weight, bias)
        if not self.pool_order_possible:
            raise ValueError(f"pool order needs an even output size, got {self.output_shape}")
        self._load_parameters(weight, bias)
        n = x.shape[0]
        out = self._output(n)
        cols = self._columns(n)
        self._columns_times_weights(x, cols, out.reshape(-1, self.filters), pool_order=True)
        self._kept_columns, self._kept_batch, self._kept_pool_order = cols, n, True
        out_h, out_w, f = self.output_shape
        return out.reshape(n, 4, out_h // 2, out_w // 2, f).swapaxes(0, 1)

    def _load_parameters(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Copies the weights, with the bias as their last row, into the forward's operand."""
        np.copyto(self._weight_and_bias[:-1], weight.reshape(self.window_size, self.filters))
        self._weight_and_bias[-1] = bias

    def _columns_times_weights(
        self, x: np.ndarray, cols: np.ndarray, flat: np.ndarray, pool_order: bool = False
    ) -> None:
        """im2col of ``x`` into ``cols`` and its product with the weights into ``flat``: at more
        threads (or one channel) whole-batch passes to share out, at one thread per group of
        images (``GROUP_BYTES``)."""
        xp = self._padded_input(x)
        if self.offset_major or threads.count() > 1:
            self._im2col(xp, pool_order)
            np.matmul(cols.T if self.offset_major else cols, self._weight_and_bias, out=flat)
        else:
            self._forward_in_groups(xp, cols, flat, pool_order)

    def _standard_order(self, dy: np.ndarray) -> np.ndarray:
        """dy in pool order, ``(n, 4, oh / 2, ow / 2, f)``, copied to ``(n, oh, ow, f)``."""
        n = dy.shape[0]
        out_h, out_w, f = self.output_shape
        standard = self._buffers.get(n, "dy", lambda: np.empty((n, *self.output_shape), self.dtype))
        blocks = dy.reshape(n, 2, 2, out_h // 2, out_w // 2, f).transpose(0, 3, 1, 4, 2, 5)
        target = split_view(standard, (n, out_h // 2, 2, out_w // 2, 2, f))
        threads.split(lambda a, b: np.copyto(target[a:b], blocks[a:b]), n, standard.size)
        return standard

    def _forward_in_groups(
        self, xp: np.ndarray, cols: np.ndarray, flat: np.ndarray, pool_order: bool = False
    ) -> None:
        """im2col and the product for ``GROUP_BYTES`` of columns at a time, so that the product
        reads each group's columns from the core's cache (one thread, positions as rows)."""
        n = xp.shape[0]
        target, windows = self._im2col_views(xp, cols, pool_order)
        per_image = flat.shape[0] // n
        group = max(1, GROUP_BYTES // (per_image * cols.shape[1] * self.dtype.itemsize))
        for first in range(0, n, group):
            last = min(n, first + group)
            np.copyto(target[first:last], windows[first:last])
            rows = slice(first * per_image, last * per_image)
            np.matmul(cols[rows], self._weight_and_bias, out=flat[rows])

    def forward(self, x, weight, bias, out=None, keep=True) -> np.ndarray:
        """``(n, oh, ow, filters)`` = conv(x, weight) + bias; ``keep`` keeps the column matrix
        for ``backward``. ``out``, if given, receives the result. Without ``keep``, a batch larger
        than ``INFERENCE_CHUNK`` goes through in chunks of that size."""
        x = np.asarray(x)
        check_batch(x, self.input_shape, "x")
        self._check_parameters(weight, bias)
        self._load_parameters(weight, bias)
        n = x.shape[0]
        whole = keep or n <= INFERENCE_CHUNK
        if out is None:
            out = self._output(n) if whole else np.empty((n, *self.output_shape), self.dtype)
        if whole:
            cols = self._forward_chunk(x, out, keep)
            if keep:
                self._kept_columns, self._kept_batch = cols, n
                self._kept_pool_order = False
            return out
        for start in range(0, n, INFERENCE_CHUNK):
            stop = start + INFERENCE_CHUNK
            self._forward_chunk(x[start:stop], out[start:stop], keep=False)
        return out

    def _output(self, n: int) -> np.ndarray:
        return self._buffers.get(n, "output", lambda: np.empty((n, *self.output_shape), self.dtype))

    def _forward_chunk(self, x: np.ndarray, out: np.ndarray, keep: bool) -> np.ndarray:
        """Writes the convolution of ``x`` into ``out``; returns the column matrix used (a kept
        one is forgotten if a forward without ``keep`` overwrites it)."""
        cols = self._columns(x.shape[0])
        if not keep and cols is self._kept_columns:
            self._kept_columns = None
        flat = out.reshape(-1, self.filters)
        self._columns_times_weights(x, cols, flat)
        if not np.shares_memory(flat, out):
            out[...] = flat.reshape(out.shape)
        return cols

    def _check_parameters(self, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.shape != self.weight_shape:
            raise ValueError(f"weight must have shape {self.weight_shape}, got {weight.shape}")
        if bias.shape != (self.filters,):
            raise ValueError(f"bias must have shape ({self.filters},), got {bias.shape}")

    def backward(self, dy, weight, dweight, dbias, need_dx=True) -> np.ndarray | None:
        """Writes dL/dW into ``dweight`` and dL/db into ``dbias`` (overwriting them) and returns
        dL/dx ``(n, h, w, c)``, or None when ``need_dx`` is False. After
        ``forward_pool_order`` dy is in pool order too, ``(4, n, oh / 2, ow / 2, filters)``."""
        pool_order = self._kept_pool_order
        dy = np.asarray(dy)
        n = dy.shape[1] if pool_order and dy.ndim == 5 else dy.shape[0]
        cols = self._kept_columns
        if cols is None or self._kept_batch != n:
            raise RuntimeError(NEEDS_KEPT_FORWARD)
        out_h, out_w, f = self.output_shape
        if pool_order:
            if dy.shape != (4, n, out_h // 2, out_w // 2, f):
                raise ValueError(
                    f"dy must be in pool order (4, {n}, {out_h // 2}, {out_w // 2}, {f}), "
                    f"got {dy.shape}"
                )
            dy = dy.swapaxes(0, 1)  # each image's positions in the columns' order
        else:
            check_batch(dy, self.output_shape, "dy")
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        self._check_parameters(weight, dbias)
        if dweight.shape != self.weight_shape:
            raise ValueError(f"dweight must have shape {self.weight_shape}, got {dweight.shape}")
        dy_flat = dy.reshape(-1, self.filters)
        np.matmul(cols if self.offset_major else cols.T, dy_flat, out=self._gradients)
        dweight[...] = self._gradients[:-1].reshape(self.weight_shape)
        dbias[...] = self._gradients[-1]
        if not need_dx:
            return None
        if pool_order:
            dy = self._standard_order(dy)
            dy_flat = dy.reshape(-1, self.filters)
        method = self._dx_method_for(n)
        if method == "banded":
            return self._dx_by_banded_product(dy, weight)
        if method == "offset-major":
            return self._col2im_offset_major(dy_flat, weight)
        dcols = self._buffers.get(
            n, "dcolumns", lambda: np.empty((dy_flat.shape[0], self.window_size), self.dtype)
        )
        np.copyto(self._weight_t, weight.reshape(self.window_size, self.filters).T)
        np.matmul(dy_flat, self._weight_t, out=dcols)
        return self._col2im(dcols)

    def _dx_buffer(self, n: int) -> np.ndarray:
        """The padded dx, as wide as col2im's grouped slices need (the caller zeroes it, part by
        part)."""
        hp, _, c = self.padded_shape
        return self._buffers.get(
            n, "dpadded", lambda: np.empty((n, hp, self._scatter_width, c), self.dtype)
        )

    def _banded_weight(self, weight: np.ndarray) -> np.ndarray:
        """``(b * f, k * bw * c)`` for ``b = band_outputs`` and ``bw = band_inputs``: row ``(x,
        f)`` holds ``W[i, j, :, f]`` at column ``(i, x * stride + j, :)`` and zeros elsewhere,
        so that a row of dy for ``b`` outputs times it is the gradient of the ``k`` padded input
        rows, ``bw`` columns wide, that those outputs read."""
        f, b, bw = self.filters, self.band_outputs, self.band_inputs
        k, s, c = self.kernel, self.stride, self.input_shape[2]
        if self._banded is None:
            self._banded = np.zeros((b, f, k, bw, c), self.dtype)
        b0, b1, b2, b3, b4 = self._banded.strides
        band = as_strided(self._banded, (b, f, k, k, c), (b0 + s * b3, b1, b2, b3, b4))
        np.copyto(band, weight.transpose(3, 0, 1, 2)[None])
        return self._banded.reshape(b * f, k * bw * c)

    def _dx_by_banded_product(self, dy: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """dL/dx from products of dy's rows with the banded weight, one per block of
        ``band_outputs`` output columns ``(n * oh, band_outputs * f)``: each gives the gradient
        of ``k`` padded input rows, ``band_inputs`` columns wide, added back one kernel row at a
        time."""
        n = dy.shape[0]
        out_h, out_w, f = self.output_shape
        k, s, c = self.kernel, self.stride, self.input_shape[2]
        b, bw = self.band_outputs, self.band_inputs
        blocks = out_w // b
        rows = self._buffers.get(
            n, "drows", lambda: np.empty((blocks, n * out_h, k * bw * c), self.dtype)
        )
        dy_rows, banded = dy.reshape(n * out_h, out_w * f), self._banded_weight(weight)
        for block in range(blocks):
            np.matmul(dy_rows[:, block * b * f : (block + 1) * b * f], banded, out=rows[block])
        by_kernel_row = rows.reshape(blocks, n, out_h, k, bw, c)
        dxp = self._dx_buffer(n)

        def add_rows(start: int, stop: int) -> None:
            part = dxp[start:stop]
            part.fill(0)
            for block in range(blocks):
                left = block * b * s
                for i in range(k):
                    target = part[:, offset_slice(i, s, out_h), left : left + bw]
                    target += by_kernel_row[block, start:stop, :, i]

        threads.split(add_rows, n, dxp.size + rows.size)
        return self._unpadded(dxp)

    def _unpadded(self, dxp: np.ndarray) -> np.ndarray:
        h, w, _ = self.input_shape
        return dxp[:, self.pad_top : self.pad_top + h, self.pad_left : self.pad_left + w, :]

    def _col2im_offset_major(self, dy_flat: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """dL/dx through offset-major column gradients ``W @ dy.T`` ``(k * k * c, n * oh * ow)``:
        each kernel offset adds whole image rows, as its im2col copied them."""
        out_h, out_w, _ = self.output_shape
        k, s, c = self.kernel, self.stride, self.input_shape[2]
        positions = dy_flat.shape[0]
        n = positions // (out_h * out_w)
        dcols = self._buffers.get(
            n, "offset-major dcolumns", lambda: np.empty((self.window_size, positions), self.dtype)
        )
        np.matmul(weight.reshape(self.window_size, self.filters), dy_flat.T, out=dcols)
        by_offset = dcols.reshape(k, k, c, n, out_h, out_w).transpose(0, 1, 3, 4, 5, 2)
        dxp = self._dx_buffer(n)

        def add_rows(start: int, stop: int) -> None:
            part = dxp[start:stop]
            part.fill(0)
            for i in range(k):
                rows = part[:, offset_slice(i, s, out_h)]
                for j in range(k):
                    rows[:, :, offset_slice(j, s, out_w)] += by_offset[i, j, start:stop]

        threads.split(add_rows, n, dxp.size + dcols.size)
        return self._unpadded(dxp)

    def _col2im(self, dcols: np.ndarray) -> np.ndarray:
        """dL/dx from the column gradients ``(n * oh * ow, k * k * c)``.

        For one kernel row ``i`` and every ``g``-th window along the width (``g * stride >=
        kernel``), the windows' columns do not overlap, so their ``k * c`` gradients are added
        in one strided slice; ``k * g`` adds in all, each over long contiguous runs.
        """
        out_h, out_w, _ = self.output_shape
        k, s, c = self.kernel, self.stride, self.input_shape[2]
        n = dcols.shape[0] // (out_h * out_w)
        dxp = self._dx_buffer(n)
        windows = dcols.reshape(n, out_h, out_w, k, k, c)
        group = -(-k // s)

        def add_rows(start: int, stop: int) -> None:
            part = dxp[start:stop]
            part.fill(0)
            for i in range(k):
                rows = part[:, offset_slice(i, s, out_h)]
                for first in range(min(group, out_w)):
                    count = -(-(out_w - first) // group)
                    left = first * s
                    span = rows[:, :, left : left + count * group * s]
                    target = split_view(span, (stop - start, out_h, count, group * s, c))
                    target[:, :, :, :k] += windows[start:stop, :, first::group, i]

        threads.split(add_rows, n, dxp.size + dcols.size)
        return self._unpadded(dxp)


def _scatter_width(padded_width: int, kernel: int, stride: int, out_w: int) -> int:
    """Width of the dx buffer that col2im's grouped slices fit in (at least the padded width)."""
    group = -(-kernel // stride)
    widths = [
        first * stride + -(-(out_w - first) // group) * group * stride
        for first in range(min(group, out_w))
    ]
    return max(padded_width, *widths)
