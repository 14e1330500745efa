"""What the Draw page computes after a stroke with a CNN active, timed step by step.

    python bench/draw_page.py [--epochs 1] [--repeat 20]

Trains the CNN of the ``cnn`` preset's shape (C32k3-P2-C64k3-P2-D128-D10, 'same' convolutions)
briefly on 2,000 images (the weights do not change the cost), then times, for a drawn digit:
preprocessing, the prediction and activations (``ui.drawing.analyse_drawing``), the feature maps
(``ui.draw_inside.layer_pictures``), each attribution method, and the PNG encoding Streamlit does
for the pictures. Reports the median of ``--repeat`` runs in milliseconds and the page's total
with each method. Wall-clock timings need an idle machine (or use ``--cpu-time``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from nn.core.attributions import attribution  # noqa: E402
from nn.core.layer_spec import parse_layers  # noqa: E402
from nn.core.network import NeuralNetwork  # noqa: E402
from nn.data import load_mnist  # noqa: E402
from ui.draw_inside import PAGE_OPTIONS, attribution_picture, layer_pictures  # noqa: E402
from ui.drawing import analyse_drawing  # noqa: E402

CNN = parse_layers("conv32k3same,relu,pool2,conv64k3same,relu,pool2,dense128,relu")


CLOCK = time.perf_counter


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm up (buffers, caches)
    times = []
    for _ in range(repeat):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return 1000 * statistics.median(times)


def _png(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process's CPU (all threads) instead of the wall clock: steadier on a "
        "busy machine, an upper bound with several BLAS threads",
    )
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    data = load_mnist()
    model = NeuralNetwork(layers=CNN, epochs=args.epochs, random_state=0)
    model.fit(data.x_train[:2000], data.y_train[:2000])
    digit = Image.fromarray(data.x_test[0].reshape(28, 28)).resize((280, 280))
    canvas = np.asarray(digit.convert("RGBA"))
    analysis = analyse_drawing(model, canvas)
    x, target = analysis.result.x, int(analysis.proba.argmax())

    steps = {
        "preprocess + predict + activations": lambda: analyse_drawing(model, canvas),
        "feature maps": lambda: layer_pictures(model, x),
        "feature maps as PNG": lambda: [_png(p) for _, p, _ in layer_pictures(model, x)[1]],
    }
    methods = {
        "saliency": lambda: attribution(model, x, target, "saliency"),
        "integrated gradients (black)": lambda: attribution(
            model,
            x,
            target,
            "integrated_gradients",
            "black",
            **PAGE_OPTIONS["integrated_gradients"],
        ),
        "integrated gradients (blurred)": lambda: attribution(
            model,
            x,
            target,
            "integrated_gradients",
            "blurred",
            **PAGE_OPTIONS["integrated_gradients"],
        ),
        "occlusion": lambda: attribution(
            model, x, target, "occlusion", **PAGE_OPTIONS["occlusion"]
        ),
    }
    picture = lambda: _png(attribution_picture(np.ones(784), x))  # noqa: E731
    base = {name: _median_ms(fn, args.repeat) for name, fn in steps.items()}
    for name, ms in base.items():
        print(f"{name:36s} {ms:7.1f} ms")
    shared = base["preprocess + predict + activations"] + base["feature maps as PNG"]
    shared += _median_ms(picture, args.repeat)
    for name, fn in methods.items():
        ms = _median_ms(fn, args.repeat)
        print(f"{name:36s} {ms:7.1f} ms   page total {shared + ms:6.1f} ms")
    print("(a cached attribution costs nothing: the same drawing and method reuse it)")


if __name__ == "__main__":
    main()
