"""How well saved models read drawn digits, beside their accuracy on MNIST's test set.

    python bench/drawn_digits.py [MODEL ...] [--per-class 60] [--seed 0 ...] [--json]

MODEL is a saved model's name (in ``$NN_MODELS_DIR`` or ``saved_models/``, see ``--models-dir``)
or a model file; without one, ``default``. The drawn digits are
``nn.data.drawn.drawn_inputs(per_class, seed)`` for each seed given: pen strokes of varied size,
position, slant, rotation and pen width on a canvas like the Draw page's, through the page's
preprocessing (``--per-class 60`` gives 600 digits; ``--per-class 30 --seed 1 2`` another 600).
Each row: the model's stack, how many drawn digits it reads, the digits it misses most, and its
accuracy on the first ``--test-images`` MNIST test images (all 10,000 by default). Nothing is
timed, so a busy machine gives the same figures. ``--json`` prints one JSON object per model, one
a line. Exit code 2 when a model cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nn.cli.common import fmt_pct, jsonable, text_table  # noqa: E402
from nn.core.layer_spec import compact  # noqa: E402
from nn.data import load_mnist  # noqa: E402
from nn.data.drawn import drawn_inputs  # noqa: E402
from nn.io.model_files import ModelFileError, load_model  # noqa: E402
from nn.io.models_folder import resolve_model_path  # noqa: E402

N_CLASSES = 10


def measure(
    model: Any, x_drawn: np.ndarray, y_drawn: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """The model's reading of the drawn digits (count, share, misses per digit, worst first)
    and its accuracy on the test images."""
    predicted = np.asarray(model.predict(x_drawn))
    right = predicted == y_drawn
    misses = {
        int(d): int((~right & (y_drawn == d)).sum())
        for d in range(N_CLASSES)
        if (~right & (y_drawn == d)).any()
    }
    return {
        "stack": compact([layer.spec() for layer in model.layers_]),
        "parameters": int(model.n_parameters_),
        "drawn_correct": int(right.sum()),
        "drawn_total": int(right.size),
        "drawn_accuracy": float(right.mean()),
        "drawn_misses": dict(sorted(misses.items(), key=lambda kv: (-kv[1], kv[0]))),
        "test_images": int(len(y_test)),
        "test_accuracy": float(model.score(x_test, y_test)),
    }


def _misses_text(misses: dict[int, int], most: int = 3) -> str:
    return ", ".join(f"{d}: {n}" for d, n in list(misses.items())[:most]) or "-"


def _fits_mnist(model: Any) -> bool:
    classes = getattr(model, "classes_", np.array([]))
    return model.n_features_in_ == 784 and np.array_equal(classes, np.arange(N_CLASSES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["default"], metavar="MODEL")
    parser.add_argument("--per-class", type=int, default=60, help="drawn digits of each class")
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="seeds of the drawn digits (default 0)"
    )
    parser.add_argument("--test-images", type=int, default=10_000, help="MNIST test images")
    parser.add_argument("--models-dir", default=None, help="folder of saved models")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args(argv)
    if not 1 <= args.per_class <= 1000:
        parser.error(f"--per-class {args.per_class}: use 1 to 1000")
    if not 1 <= args.test_images <= 10_000:
        parser.error(f"--test-images {args.test_images}: use 1 to 10000")
    models = []
    for spec in args.models:
        try:
            path = resolve_model_path(spec, args.models_dir)
            models.append((spec, path, load_model(path)))
        except (OSError, ModelFileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not _fits_mnist(models[-1][2]):
            print(
                f"error: {spec}: not a model of MNIST's 784 pixels and 10 digits", file=sys.stderr
            )
            return 2
    drawn = [drawn_inputs(args.per_class, seed) for seed in args.seed]
    x_drawn = np.concatenate([x for x, _ in drawn])
    y_drawn = np.concatenate([y for _, y in drawn])
    mnist = load_mnist()
    x_test, y_test = mnist.x_test[: args.test_images], mnist.y_test[: args.test_images]
    rows = []
    for spec, path, model in models:
        result = {
            "model": spec,
            "path": str(path),
            **measure(model, x_drawn, y_drawn, x_test, y_test),
        }
        if args.json:
            print(json.dumps(jsonable(result)), flush=True)
        rows.append(
            [
                spec,
                result["stack"],
                f"{result['drawn_correct']}/{result['drawn_total']}",
                fmt_pct(result["drawn_accuracy"], 1),
                _misses_text(result["drawn_misses"]),
                fmt_pct(result["test_accuracy"]),
            ]
        )
    if not args.json:
        print(
            f"drawn digits: drawn_inputs(per_class={args.per_class}, seed) for seed in "
            f"{', '.join(map(str, args.seed))}; "
            f"MNIST: the first {len(y_test):,} test images"
        )
        headers = ["model", "stack", "drawn read", "drawn", "missed most (digit: n)", "MNIST test"]
        print(text_table(headers, rows, "llrrlr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
