"""How a convolution computes dx: the method and the width of its banded products, from a cost
model in multiply-adds.

``nn.core.conv.Conv2DKernel`` computes dx one of three exact ways: 'columns' (``dy @ W.T`` per
window, added back by col2im), 'offset-major' (for one input channel: whole image rows per kernel
offset) or 'banded' (rows of dy times a banded matrix holding W, one product per block of
``band_outputs`` output columns). ``plan_dx`` picks the one the model says is fastest for a
layer's shape, and the batch size below which the column one wins after all (``CALL_COST``).
"""

from __future__ import annotations

import math

DX_METHODS = ("banded", "columns", "offset-major")
ADD_COST = 128
"""What adding one value of a product's output back into dx costs, in multiply-adds of the
products (measured here between ~100 and ~200 for kernels 3 and 5, 8 to 32 channels): col2im adds
``k * k * c`` values per output position after a product of ``filters`` multiply-adds per value;
a banded product over ``b`` output columns multiplies a band ``bw = (b - 1) * stride + k`` input
columns wide (``filters * k * bw * c`` multiply-adds per position, zeros included) and adds
``k * bw * c / b`` values per position. ``dx_method`` and ``band_outputs`` take the cheapest (one
input channel keeps the whole-width band or offset-major rows, see ``plan_dx``). At
one thread, batch 128, the model's pick was the fastest measured in each of four layers: 12x12x16
to 32 filters 5x5 (banded over 4 columns 7.3 ms, over all 8 8.0 ms, columns 10.2 ms), 14x14x16 to
32 3x3 'same' (banded over 2 11.2 ms, columns 14.9 ms), 28x28x8 to 16 3x3 'same' (banded over 4
17.5 ms, over all 28 24.9 ms, columns 22.9 ms) and 7x7x32 to 64 3x3 'same' (columns 7.3 ms, banded
over 1 7.7 ms)."""
CALL_COST = 250_000
"""What one NumPy or BLAS call costs beyond its arithmetic, in multiply-adds (about 5 us at 50
GMAC/s here). It moves small batches from the banded dx to the column one: for one drawing
through the cnn preset's second convolution (14x14x32 to 64 filters 3x3) the banded dx took 0.33
ms and the column one 0.26 ms, at batch 128 15.1 and 19.2 ms."""


def dx_costs(
    kernel: int, stride: int, channels: int, filters: int, band_outputs: int
) -> tuple[float, float]:
    """``(columns, banded)``: the cost per output position, in multiply-adds, of the column dx
    and of the banded one over ``band_outputs`` output columns (``ADD_COST`` per added value)."""
    columns = kernel * kernel * channels * (filters + ADD_COST)
    inputs = (band_outputs - 1) * stride + kernel
    return columns, kernel * inputs * channels * (filters + ADD_COST / band_outputs)


def plan_dx(
    input_shape: tuple[int, int, int],
    padded_width: int,
    output_shape: tuple[int, int, int],
    kernel: int,
    stride: int,
) -> tuple[str, int, int]:
    """``(method, band_outputs, small_batch_rows)`` for a layer of these shapes.

    ``band_outputs`` is the divisor of the output width whose banded product costs least (a
    narrower band multiplies fewer zeros but adds more); one input channel takes the whole width
    (its narrow bands' adds are runs of a few values, which cost more than the model says:
    28x28x1 to 32 filters 3x3, over 2 columns 8.6 ms, over 13 6.9 ms, offset-major 7.3 ms) and
    keeps the whole-width band while its extra multiply-adds stay under ``ADD_COST`` a value,
    else offset-major rows. ``small_batch_rows``: batches of fewer images take 'columns', 0 for
    none.
    """
    channels = input_shape[2]
    out_h, out_w, filters = output_shape
    if channels == 1:
        extra = filters * (padded_width / kernel - 1)
        return ("banded" if extra < ADD_COST else "offset-major"), out_w, 0
    divisors = [b for b in range(1, out_w + 1) if out_w % b == 0]
    band = min(divisors, key=lambda b: dx_costs(kernel, stride, channels, filters, b)[1])
    columns, banded = dx_costs(kernel, stride, channels, filters, band)
    if banded >= columns:
        return "columns", band, 0
    banded_calls = (out_w // band) * (1 + kernel)  # a product and k adds per block
    columns_calls = 1 + kernel * min(-(-kernel // stride), out_w)  # a product and col2im's adds
    extra_calls = CALL_COST * (banded_calls - columns_calls)
    per_image = out_h * out_w * (columns - banded)
    return "banded", band, 0 if extra_calls <= 0 else math.ceil(extra_calls / per_image)
