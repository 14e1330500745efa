"""Write ``tests/data/mlp_format1.npz``: a small dense network in model-file format 1.

Format 1 names a dense net's arrays ``coef_<i>``, ``intercept_<i>`` and ``opt.<slot>.<i>`` and
holds no stack in the metadata. The tests that check such a file loads and predicts as the frozen
estimator reads it (tests/test_reference_repeat.py) read this one, so they hold whatever
``saved_models/default.npz`` is. The network is trained by
that frozen estimator (``tests/reference_mlp.py``): 784-16-10 ReLU, Adam, 3 epochs on the first
5,000 MNIST training images, seed 0 (84% test accuracy, 175 kB).
The file keeps the metadata keys of a format-1 file and nothing a later format added.

Run from the repository root: ``python tests/data/make_mlp_format1.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nn.data import load_mnist  # noqa: E402
from nn.io import model_files  # noqa: E402
from tests.reference_mlp import NeuralNetwork as ReferenceMLP  # noqa: E402

TARGET = Path(__file__).resolve().parent / "mlp_format1.npz"
FORMAT_1_KEYS = (
    "format_version",
    "library",
    "name",
    "created",
    "saved",
    "architecture",
    "metrics",
    "notes",
    "n_parameters",
    "array_manifest",
    "state_keys",
    "state_shadowed",
)
"""The file-level keys of a format-1 document; the rest come from the model's ``to_state()``."""


def main() -> None:
    data = load_mnist()
    x, y = data.x_train[:5000], data.y_train[:5000]
    x_val, y_val = data.x_train[5000:6000], data.y_train[5000:6000]
    model = ReferenceMLP(hidden_layers=[16], epochs=3, batch_size=128, random_state=0)
    model.fit(x, y, x_val, y_val)
    metrics = {"test_accuracy": round(float(model.score(data.x_test, data.y_test)), 4)}
    with tempfile.TemporaryDirectory() as tmp:
        written = model_files.save_model(
            model,
            Path(tmp) / "mlp_format1.npz",
            metrics=metrics,
            notes="tests/data/make_mlp_format1.py: 784-16-10, 3 epochs on 5,000 images (seed 0)",
        )
        with np.load(written, allow_pickle=False) as npz:
            meta = json.loads(str(npz[model_files.META_KEY]))
            arrays = {k: npz[k] for k in npz.files if k != model_files.META_KEY}
    state_keys = meta["state_keys"]
    meta = {k: v for k, v in meta.items() if k in FORMAT_1_KEYS or k in state_keys}
    meta["format_version"] = 1
    assert set(arrays) == set(meta["array_manifest"]) and "coef_0" in arrays
    with TARGET.open("wb") as f:
        np.savez(f, **{model_files.META_KEY: np.array(json.dumps(meta))}, **arrays)
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes, test accuracy {metrics['test_accuracy']}")


if __name__ == "__main__":
    main()
