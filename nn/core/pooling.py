"""Channels-last max and average pooling in pure NumPy, without padding.

Pooling works on the ``size * size`` strided slices of the input, one per offset inside the
window: max pooling keeps a running maximum and the offset it came from (the first maximum wins on
ties), and its backward pass writes the output gradient to the slice of each offset where that
offset won. Max pooling can apply a ReLU to its output in the same pass (``relu=True``), which
equals pooling the ReLU of its input. Large batches are split by rows across
``nn.core.threads``; every value is computed as on one thread. Buffers are kept per batch size as
the convolution's are (``nn.core.conv.BatchBuffers``).
"""

from __future__ import annotations

import math

import numpy as np

from nn.core import threads
from nn.core.conv import (
    INFERENCE_CHUNK,
    NEEDS_KEPT_FORWARD,
    BatchBuffers,
    check_batch,
    check_positive,
    check_shape,
    offset_slice,
    split_view,
)

POOL_MODES = ("max", "avg")


class Pool2DKernel:
    """Channels-last max or average pooling over ``size * size`` windows, without padding.

    The input is read as ``size * size`` strided slices, one per offset inside the window, each of
    the output's shape: max pooling keeps a running maximum and the index of the offset that holds
    it (a later offset wins only if strictly greater, so the first maximum wins on ties); average
    pooling sums the slices. The backward pass writes dy, masked by the winning offset or scaled by
    ``1 / size**2``, into the same slices of dx; where windows overlap (stride < size) it adds.
    """

    def __init__(
        self, input_shape, size: int, stride: int | None = None, mode: str = "max", dtype=np.float32
    ):
        self.input_shape = check_shape(input_shape)
        stride = size if stride is None else stride
        check_positive(size=size, stride=stride)
        if mode not in POOL_MODES:
            raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
        h, w, c = self.input_shape
        if size > min(h, w):
            raise ValueError(
                f"pool size {size} is larger than the input {h}x{w}: the size must be at most "
                f"{min(h, w)}"
            )
        self.size, self.stride, self.mode = size, stride, mode
        self.dtype = np.dtype(dtype)
        self.output_shape = ((h - size) // stride + 1, (w - size) // stride + 1, c)
        self.offsets = [(i, j) for i in range(size) for j in range(size)]
        # one index more than the offsets: "no winner" (ReLU's zero, see ``forward``)
        self._index_dtype = np.uint8 if len(self.offsets) < 256 else np.int32
        self._offset_indices = np.arange(len(self.offsets), dtype=self._index_dtype).reshape(
            -1, 1, 1, 1, 1
        )
        self._buffers = BatchBuffers()
        self._kept_winner: np.ndarray | None = None
        self._kept_batch = 0

    def buffer_bytes(self) -> int:
        """Bytes held by the per-batch buffers."""
        return self._buffers.nbytes()

    def clear_buffers(self) -> None:
        """Drops every per-batch buffer and what a forward kept for backward."""
        self._buffers.clear()
        self._kept_winner, self._kept_batch = None, 0

    def planned_bytes(self, n: int, keep: bool = True) -> int:
        """Bytes of the per-batch buffers that a forward on ``n`` samples makes, with ``keep``
        also those of its backward. Without ``keep``, a batch above ``INFERENCE_CHUNK`` gets a
        new output array (the caller's) and no buffer."""
        outputs, item = n * math.prod(self.output_shape), self.dtype.itemsize
        if not keep:
            return outputs * item if n <= INFERENCE_CHUNK else 0
        total = (outputs + n * math.prod(self.input_shape)) * item  # output and dx
        if self.mode == "avg":
            return total + outputs * item  # the shared gradient
        index_bytes = np.dtype(self._index_dtype).itemsize
        total += outputs * (2 * index_bytes + 1)  # winner, its update and the comparison mask
        if self.tiling:
            return total + len(self.offsets) * outputs * (1 + item)  # the stack and its mask
        return total + (outputs * item if self.overlapping else 0)  # masked dy to add

    def _slice(self, array: np.ndarray, i: int, j: int) -> np.ndarray:
        """The view of ``array`` (n, h, w, c) read by offset ``(i, j)`` of every window."""
        out_h, out_w, _ = self.output_shape
        return array[:, offset_slice(i, self.stride, out_h), offset_slice(j, self.stride, out_w)]

    def _output_buffer(self, n: int, name: str, dtype) -> np.ndarray:
        return self._buffers.get(n, name, lambda: np.empty((n, *self.output_shape), dtype))

    def forward(self, x, out=None, keep=True, relu=False) -> np.ndarray:
        """``(n, oh, ow, c)`` pooled ``x``; ``keep`` keeps what ``backward`` needs. ``relu``
        (max pooling only) returns ``max(pooled, 0)``, which equals pooling ``max(x, 0)``, and
        its backward routes no gradient where that is 0, as ReLU's then pooling's would."""
        x = np.asarray(x)
        check_batch(x, self.input_shape, "x")
        if relu and self.mode != "max":
            raise ValueError("relu=True needs max pooling: ReLU and average pooling do not commute")
        n = x.shape[0]
        if out is None and (keep or n <= INFERENCE_CHUNK):
            out = self._output_buffer(n, "output", self.dtype)
        elif out is None:
            out = np.empty((n, *self.output_shape), self.dtype)
        # Every call of a forward pass writes an output-sized array, one per window offset: the
        # pass is split when those calls are large (a split of many small calls costs the two
        # threads more hand-offs of the GIL than the second core saves).
        size = out.size
        if self.mode == "avg":
            threads.split(lambda a, b: self._avg_forward(x[a:b], out[a:b]), n, size)
        elif keep:
            self._max_forward_kept(
                lambda a, b: [self._slice(x[a:b], i, j) for i, j in self.offsets], out, relu
            )
        else:
            threads.split(lambda a, b: self._max_forward(x[a:b], out[a:b], relu), n, size)
        if keep:
            self._kept_batch = n
        return out

    @property
    def takes_blocks(self) -> bool:
        """Whether ``forward_blocks`` applies: 2x2 max pooling, stride 2, of an even input."""
        h, w, _ = self.input_shape
        return self.mode == "max" and self.size == self.stride == 2 and h % 2 == w % 2 == 0

    def forward_blocks(self, blocks: np.ndarray, relu: bool = False) -> np.ndarray:
        """``forward(keep=True)`` of 2x2 max pooling with stride 2 on an input in pool order:
        ``blocks`` ``(4, n, oh, ow, c)`` holds offset ``(i, j)`` of every window in block ``2 *
        i + j`` (``Conv2DKernel.forward_pool_order``, each image's blocks contiguous), so that
        every pass runs over long contiguous runs instead of strided slices. The same outputs
        and winners as ``forward``."""
        n = blocks.shape[1]
        if not self.takes_blocks:
            raise ValueError("pooling blocks needs 2x2 max pooling, stride 2, of an even input")
        if blocks.shape != (4, n, *self.output_shape):
            raise ValueError(
                f"blocks must have shape (4, n, {self.output_shape}), got {blocks.shape}"
            )
        out = self._output_buffer(n, "output", self.dtype)
        self._max_forward_kept(lambda a, b: [block[a:b] for block in blocks], out, relu)
        self._kept_batch = n
        return out

    def backward_blocks(self, dy: np.ndarray) -> np.ndarray:
        """dL/d(blocks) ``(4, n, oh, ow, c)`` for the output gradient ``dy`` of the last
        ``forward_blocks``: dy where each block's offset won, 0 elsewhere (a view of dx's
        buffer, each image's four blocks contiguous as the convolution's pool order)."""
        dy = np.asarray(dy)
        n = dy.shape[0]
        if self._kept_batch != n or self._kept_winner is None:
            raise RuntimeError(NEEDS_KEPT_FORWARD)
        check_batch(dy, self.output_shape, "dy")
        dx = self._buffers.get(n, "dx", lambda: np.empty((n, *self.input_shape), self.dtype))
        dblocks = dx.reshape(n, 4, *self.output_shape).swapaxes(0, 1)  # as many values as dx
        won = self._buffers.get(n, "won", lambda: np.empty((4, n, *self.output_shape), bool))
        winner = self._kept_winner

        def rows(a: int, b: int) -> None:
            np.equal(winner[None, a:b], self._offset_indices, out=won[:, a:b])
            np.multiply(dy[None, a:b], won[:, a:b], out=dblocks[:, a:b])

        threads.split(rows, n, dblocks.size)
        return dblocks

    def _max_forward(self, x: np.ndarray, out: np.ndarray, relu: bool) -> None:
        np.copyto(out, self._slice(x, 0, 0))
        for i, j in self.offsets[1:]:
            np.maximum(out, self._slice(x, i, j), out=out)
        if relu:
            np.maximum(out, 0, out=out)

    def _max_forward_kept(self, candidates, out: np.ndarray, relu: bool) -> None:
        """The running maximum of ``candidates(a, b)`` (the offsets' values for batch rows
        ``a:b``, in offset order) into ``out``, keeping every output's winning offset for
        ``backward``; with ``relu``, ``max(out, 0)`` and "no winner" where it is 0."""
        n = out.shape[0]
        work = [
            self._output_buffer(n, name, dtype)
            for name, dtype in (("winner", self._index_dtype), ("code", self._index_dtype))
        ]
        greater = self._output_buffer(n, "mask", bool)

        def rows(a: int, b: int) -> None:
            winner, code = work[0][a:b], work[1][a:b]
            self._running_maximum(candidates(a, b), out[a:b], winner, code, greater[a:b])
            if relu:  # "no winner" (above every offset) where the maximum is not positive
                np.less_equal(out[a:b], 0, out=greater[a:b])
                np.multiply(
                    greater[a:b].view(np.uint8), len(self.offsets), out=code, dtype=code.dtype
                )
                np.maximum(winner, code, out=winner)  # faster than copyto's where
                np.maximum(out[a:b], 0, out=out[a:b])

        threads.split(rows, n, out.size)
        self._kept_winner = work[0]

    def _running_maximum(self, candidates, out, winner, code, greater) -> None:
        """Running maximum of ``candidates`` into ``out``; ``winner`` receives, per output, the
        index of the candidate holding it (``code`` and ``greater`` are scratch of the output's
        shape)."""
        np.copyto(out, candidates[0])
        winner.fill(0)
        for index, candidate in enumerate(candidates[1:], start=1):
            np.greater(candidate, out, out=greater)
            np.maximum(out, candidate, out=out)
            np.multiply(greater.view(np.uint8), index, out=code, dtype=code.dtype)
            np.maximum(winner, code, out=winner)  # offsets come in increasing index

    def _avg_forward(self, x: np.ndarray, out: np.ndarray) -> None:
        np.copyto(out, self._slice(x, 0, 0))
        for i, j in self.offsets[1:]:
            np.add(out, self._slice(x, i, j), out=out)
        out *= 1.0 / len(self.offsets)

    def backward(self, dy) -> np.ndarray:
        """dL/dx ``(n, h, w, c)`` for the output gradient ``dy`` of the last kept forward."""
        dy = np.asarray(dy)
        n = dy.shape[0]
        if self._kept_batch != n:
            raise RuntimeError(NEEDS_KEPT_FORWARD)
        check_batch(dy, self.output_shape, "dy")
        dx = self._buffers.get(n, "dx", lambda: np.empty((n, *self.input_shape), self.dtype))
        work = self._backward_buffers(n)

        def rows(a: int, b: int) -> None:
            part = {name: array[a:b] for name, array in work.items()}
            self._clear_uncovered(dx[a:b])
            self._backward_rows(dy[a:b], dx[a:b], part)

        threads.split(rows, n, dx.size)
        return dx

    def _backward_buffers(self, n: int) -> dict[str, np.ndarray]:
        """The work arrays of backward for batch size ``n``, each with the batch first."""
        work = {"share": self._output_buffer(n, "share", self.dtype)} if self.mode == "avg" else {}
        if self.mode == "max":
            work["winner"] = self._kept_winner
        if self.tiling and self.mode == "max":
            stacked = (len(self.offsets), n, *self.output_shape)
            won = self._buffers.get(n, "won", lambda: np.empty(stacked, bool))
            stack = self._buffers.get(n, "stack", lambda: np.empty(stacked, self.dtype))
            work["won"], work["stack"] = won.swapaxes(0, 1), stack.swapaxes(0, 1)
        elif self.mode == "max":
            work["mask"] = self._output_buffer(n, "mask", bool)
        if self.overlapping and self.mode == "max":
            work["masked"] = self._output_buffer(n, "masked", self.dtype)
        return work

    def _backward_rows(self, dy: np.ndarray, dx: np.ndarray, work: dict) -> None:
        """dx of the rows of ``dy`` (their work arrays' rows in ``work``)."""
        if self.tiling:
            self._tiled_backward(dy, dx, work)
        elif self.mode == "max":
            mask = work["mask"]
            for index, (i, j) in enumerate(self.offsets):
                np.equal(work["winner"], index, out=mask)
                self._write(self._slice(dx, i, j), dy, work, mask)
        else:
            share = work["share"]
            np.multiply(dy, 1.0 / len(self.offsets), out=share)
            for i, j in self.offsets:
                self._write(self._slice(dx, i, j), share, work)

    @property
    def tiling(self) -> bool:
        """Whether windows tile the input (stride == size), up to the cropped remainder."""
        return self.stride == self.size

    def _tiled_backward(self, dy: np.ndarray, dx: np.ndarray, work: dict) -> None:
        """dx for tiling windows in one copy into the windows' view ``(n, oh, s, ow, s, c)`` of
        dx: of the gradient shared out (avg), or of the stack ``(s * s, n, oh, ow, c)`` holding,
        per offset, dy where that offset won (max). Writing the products contiguously and
        copying them once is faster than a strided product per offset."""
        n = dy.shape[0]
        (out_h, out_w, c), s = self.output_shape, self.size
        windows = split_view(dx[:, : out_h * s, : out_w * s], (n, out_h, s, out_w, s, c))
        if self.mode == "avg":
            share = work["share"]
            np.multiply(dy, 1.0 / len(self.offsets), out=share)
            np.copyto(windows, share[:, :, None, :, None, :])
            return
        won, stack = work["won"].swapaxes(0, 1), work["stack"].swapaxes(0, 1)
        np.equal(work["winner"][None], self._offset_indices, out=won)
        np.multiply(dy[None], won, out=stack)
        np.copyto(windows, stack.reshape(s, s, n, out_h, out_w, c).transpose(2, 3, 0, 4, 1, 5))

    @property
    def overlapping(self) -> bool:
        """Whether windows share inputs (stride < size), so that backward adds."""
        return self.stride < self.size

    def _clear_uncovered(self, dx: np.ndarray) -> None:
        """Zeroes what backward's slices will not overwrite: all of dx if windows overlap or
        leave gaps, else only the cropped rows and columns past the last window."""
        if self.stride != self.size:
            dx.fill(0)
            return
        out_h, out_w, _ = self.output_shape
        dx[:, out_h * self.size :] = 0
        dx[:, :, out_w * self.size :] = 0

    def _write(self, target: np.ndarray, value: np.ndarray, work: dict, mask=None) -> None:
        """``target = value * mask``, or ``+=`` where windows overlap (``work["masked"]`` is
        the scratch of the masked value)."""
        if not self.overlapping:
            if mask is None:
                np.copyto(target, value)
            else:
                np.multiply(value, mask, out=target)
            return
        if mask is not None:
            value = np.multiply(value, mask, out=work["masked"])
        np.add(target, value, out=target)
