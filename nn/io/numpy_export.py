"""A fitted network as a readable NumPy program: ``reader.py`` plus its weights ``reader.npz``.

The program is written from the network's inference steps (:func:`nn.io.plan.inference_plan`):
one short function per kind of layer, in the style of a textbook (a dense layer is ``x @ W + b``,
a convolution sums the kernel's offsets over the padded input, pooling takes the largest or the
mean value of each window, batch normalisation is ``(x - mean) / sqrt(var + eps) * gamma +
beta``), then ``forward`` calling them in order with the weights by name. It imports only NumPy;
``python reader.py digit.png`` reads an image with Pillow, imported there and nowhere else.

``import reader; reader.predict_proba(x)`` takes ``x`` of shape ``(n, 784)``, floats in [0, 1]
(MNIST's 28x28 image row by row, white ink on black), and returns the probabilities in the
model's class order. The weights are float32 in ``reader.npz`` beside the program, loaded with
``allow_pickle=False``.
"""

from __future__ import annotations

import io
import keyword
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nn.io.npz import atomic_write
from nn.io.plan import ExportError, InferencePlan, Step, inference_plan

__all__ = ["module_name", "numpy_program", "numpy_zip_bytes", "write_numpy_program"]

_SHORT = {"dense": "dense", "conv2d": "conv", "batchnorm": "bn"}

_HEADER = '''"""{title}: a neural network written out in NumPy.

Written by `python -m nn export --format numpy` from a network trained from scratch in NumPy.
The network, layer by layer:

{layers}

The weights are in {npz} beside this file (float32, loaded with allow_pickle=False).

    import {module}
    {module}.predict_proba(x)   # x: (n, 784) floats in [0, 1], the 28x28 image row by row,
                              # white ink on black; returns (n, {n_classes}) probabilities
    python {module}.py digit.png   # prints the digit (reads the image with Pillow)
"""

import sys
from pathlib import Path

import numpy as np

CLASSES = {classes}
WEIGHTS = dict(np.load(Path(__file__).with_suffix(".npz"), allow_pickle=False))
'''

_FUNCTIONS = {
    "dense": '''

def dense(x, W, b):
    """Fully connected: every output is a weighted sum of all the inputs plus a bias.
    x (n, inputs), W (inputs, outputs), b (outputs,)."""
    return x @ W + b
''',
    "conv2d": '''

def conv2d(x, W, b, stride, pads):
    """Convolution: each output value is the sum, over a k x k x c patch of the input, of the
    patch times the kernel, plus the filter's bias. x (n, h, w, c), W (k, k, c, filters);
    pads = (top, bottom, left, right) rows and columns of zeros around the input."""
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    n, h, w, c = x.shape
    k = W.shape[0]
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, out_h, out_w, W.shape[3]), dtype=x.dtype)
    for i in range(k):  # each offset of the kernel: the input values it meets, times it
        for j in range(k):
            patch = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :]
            out += patch @ W[i, j]
    return out + b
''',
    "pool": '''

def pool(x, size, stride, mode):
    """Pooling: each output is the largest ("max") or the mean ("avg") value of a size x size
    window of one channel. x (n, h, w, c)."""
    n, h, w, c = x.shape
    out_h, out_w = (h - size) // stride + 1, (w - size) // stride + 1
    windows = [
        x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :]
        for i in range(size)
        for j in range(size)
    ]
    if mode == "max":
        return np.max(windows, axis=0)
    return np.mean(windows, axis=0, dtype=x.dtype)
''',
    "batchnorm": '''

def batchnorm(x, gamma, beta, mean, var, eps):
    """Batch normalisation with the statistics of the training data, per feature (the last
    axis): (x - mean) / sqrt(var + eps) * gamma + beta."""
    return (x - mean) / np.sqrt(var + eps) * gamma + beta
''',
    "relu": '''

def relu(z):
    """max(z, 0)."""
    return np.maximum(z, 0)
''',
    "leaky_relu": '''

def leaky_relu(z, slope):
    """z where z > 0, slope * z elsewhere."""
    return np.where(z > 0, z, slope * z)
''',
    "sigmoid": '''

def sigmoid(z):
    """1 / (1 + e^-z)."""
    return 1 / (1 + np.exp(-z))
''',
    "tanh": '''

def tanh(z):
    """(e^z - e^-z) / (e^z + e^-z)."""
    return np.tanh(z)
''',
}

_FOOTER = '''

def softmax(z):
    """Probabilities: e^z / sum(e^z) per row (the row's largest value subtracted first, which
    leaves the result unchanged and keeps e^z finite)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(x):
    """The network's output scores (logits) for a batch x of shape (n, {n_features})."""
{body}
    return a


def predict_proba(x):
    """The probability of every class, (n, {n_classes}), for x (n, {n_features}) in [0, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != {n_features}:
        raise ValueError(f"x must have shape (n, {n_features}); got {{x.shape}}")
    return softmax(forward(x))


def predict(x):
    """The most probable class of every row of x."""
    return [CLASSES[i] for i in predict_proba(x).argmax(axis=1)]


def read_image(path):
    """A PNG, JPEG, BMP, GIF, TIFF or WebP image of one digit as the network's input row:
    grey, white ink on black (a light background is inverted), cropped to the ink, scaled so
    its longer side is 20 pixels and put in a 28x28 image with its centre of mass in the
    middle, as MNIST was made."""
    from PIL import Image, UnidentifiedImageError

    try:  # raster formats only: Pillow would hand EPS to Ghostscript
        image = Image.open(path, formats=["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
    except UnidentifiedImageError:
        raise ValueError(f"{{path}}: not a PNG, JPEG, BMP, GIF, TIFF or WebP image") from None
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    if grey.mean() > 127:
        grey = 255 - grey
    rows, cols = np.nonzero(grey > 0.2 * grey.max())
    if grey.max() == 0 or rows.size == 0:
        raise ValueError(f"{{path}}: no digit found")
    ink = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20 / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    small = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BOX))
    small = small * (255 / max(small.max(), 1e-6))
    h, w = small.shape
    total = small.sum()
    centre_r = (small.sum(axis=1) @ np.arange(h)) / total
    centre_c = (small.sum(axis=0) @ np.arange(w)) / total
    top = int(np.clip(round(14 - centre_r), 0, 28 - h))
    left = int(np.clip(round(14 - centre_c), 0, 28 - w))
    image = np.zeros((28, 28), dtype=np.float32)
    image[top : top + h, left : left + w] = small
    return (np.round(image) / 255).reshape(1, 784)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python {module}.py IMAGE")
    try:
        proba = predict_proba(read_image(sys.argv[1]))[0]
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {{exc}}")
    best = int(proba.argmax())
    print(CLASSES[best])
    print(f"{{proba[best]:.1%}} sure", file=sys.stderr)
'''


def module_name(text: str) -> str:
    """``text`` as a Python module name: other characters become ``_``, a leading digit gets
    ``model_`` before it (``cnn-best`` -> ``cnn_best``)."""
    name = re.sub(r"\W", "_", text, flags=re.ASCII) or "reader"
    return f"model_{name}" if name[0].isdigit() or keyword.iskeyword(name) else name


def _names(plan: InferencePlan) -> list[str]:
    """A name per step with weights: ``conv1``, ``bn1``, ``conv2``, ``dense1``..."""
    counts: dict[str, int] = {}
    names = []
    for step in plan.steps:
        short = _SHORT.get(step.kind, step.kind)
        counts[short] = counts.get(short, 0) + 1
        names.append(f"{short}{counts[short]}")
    return names


def _call(step: Step, name: str) -> tuple[str, str]:
    """The line of ``forward`` for one step, and its description for the header."""
    w = lambda key: f'WEIGHTS["{name}_{key}"]'  # noqa: E731
    attrs = step.attrs
    if step.kind == "dense":
        n_in, n_out = step.arrays["weight"].shape
        return f"a = dense(a, {w('weight')}, {w('bias')})", f"{name}: dense {n_in} -> {n_out}"
    if step.kind == "conv2d":
        k, _, c, f = step.arrays["weight"].shape
        pads = tuple(attrs["pads"])
        line = f"a = conv2d(a, {w('weight')}, {w('bias')}, stride={attrs['stride']}, pads={pads})"
        return line, f"{name}: {f} filters of {k}x{k}x{c}, stride {attrs['stride']}"
    if step.kind == "pool":
        size, stride, mode = attrs["size"], attrs["stride"], attrs["mode"]
        line = f'a = pool(a, size={size}, stride={stride}, mode="{mode}")'
        return line, f"{mode} pooling {size}x{size}, stride {stride}"
    if step.kind == "batchnorm":
        first, second = (
            ", ".join(w(k) for k in pair) for pair in (("gamma", "beta"), ("mean", "var"))
        )
        line = f"a = batchnorm(a, {first},\n                  {second}, eps={attrs['epsilon']!r})"
        return line, f"{name}: batch norm"
    if step.kind == "activation":
        act = attrs["name"]
        if act == "leaky_relu":
            return f"a = leaky_relu(a, slope={attrs['slope']!r})", f"leaky ReLU {attrs['slope']}"
        return f"a = {act}(a)", act
    if step.kind == "reshape":
        shape = ", ".join(str(s) for s in attrs["shape"])
        return f"a = a.reshape(-1, {shape})", f"the input read as {attrs['shape']} images"
    if step.kind == "flatten":
        return "a = a.reshape(len(a), -1)", "flatten"
    raise ExportError(f"a {step.kind!r} step cannot be written as NumPy")


def numpy_program(model: Any, module: str = "reader") -> tuple[str, dict[str, np.ndarray]]:
    """The program's source and its named float32 weights, for a fitted ``model``."""
    if module_name(module) != module:
        raise ExportError(
            f"{module!r} cannot be imported as a Python module: use letters, digits and _ "
            f"(e.g. {module_name(module)}.py)"
        )
    plan = inference_plan(model)
    names = _names(plan)
    lines, layers, arrays, kinds = [], [], {}, set()
    for step, name in zip(plan.steps, names, strict=True):
        line, described = _call(step, name)
        lines.append(f"    {line}")
        layers.append(f"    {described}")
        kinds.add(step.attrs["name"] if step.kind == "activation" else step.kind)
        arrays.update({f"{name}_{key}": value for key, value in step.arrays.items()})
    layers.append("    softmax")
    classes = [c.item() if hasattr(c, "item") else c for c in plan.classes]
    source = _HEADER.format(
        title=module,
        layers="\n".join(layers),
        npz=f"{module}.npz",
        module=module,
        n_classes=len(classes),
        classes=repr(classes),
    )
    source += "".join(_FUNCTIONS[k] for k in _FUNCTIONS if k in kinds)
    source += _FOOTER.format(
        body="\n".join(["    a = x", *lines]),
        n_classes=len(classes),
        n_features=plan.n_features,
        module=module,
    )
    return source, arrays


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_numpy_program(model: Any, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the program to ``path`` (``.py``) and its weights beside it (same stem, ``.npz``);
    both are made before either is written, each written atomically."""
    path = Path(path)
    if path.suffix != ".py":
        raise ExportError(f"{path.name}: the NumPy program's file name must end in .py")
    source, arrays = numpy_program(model, path.stem)
    weights = _npz_bytes(arrays)
    npz = path.with_suffix(".npz")
    atomic_write(npz, lambda f: f.write(weights))
    atomic_write(path, lambda f: f.write(source.encode("utf-8")))
    return path, npz


def numpy_zip_bytes(model: Any, module: str = "reader") -> bytes:
    """``<module>.py`` and ``<module>.npz`` in one zip archive (the dashboard's download)."""
    source, arrays = numpy_program(model, module)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{module}/{module}.py", source)
        archive.writestr(f"{module}/{module}.npz", _npz_bytes(arrays))
    return buffer.getvalue()
