"""Test-set predictions kept on disk by the content of the model file and the set."""

from __future__ import annotations

import numpy as np

from nn.services.prediction_cache import cached_proba


class CountingModel:
    """A stand-in for a fitted model: fixed probabilities, counting the images it predicts."""

    classes_ = np.arange(3)

    def __init__(self):
        self.predicted = 0

    def predict_proba(self, x):
        self.predicted += len(x)
        k = len(self.classes_)
        return np.full((len(x), k), 1.0 / k)


def test_predictions_are_computed_once_with_progress_then_read(small_model, tmp_path):
    """The first call predicts in chunks (progress reported up to 1), the second reads the
    file: the same float32 numbers, no prediction made; another model file or set does not."""
    model, data = small_model
    x = data.x_test[:2500]
    model_file = tmp_path / "m.npz"
    model_file.write_bytes(b"model one")
    folder = tmp_path / "cache"
    seen = []
    first = cached_proba(model, model_file, x, "set-a", folder=folder, progress=seen.append)
    assert seen == [0.4, 0.8, 1.0]
    np.testing.assert_allclose(first, model.predict_proba(x), rtol=1e-6, atol=1e-7)
    assert first.dtype == np.float32 and len(list(folder.glob("*.npy"))) == 1

    counting = CountingModel()
    counting.classes_ = model.classes_
    again = cached_proba(counting, model_file, x, "set-a", folder=folder)
    assert counting.predicted == 0 and np.array_equal(again, first)
    cached_proba(counting, model_file, x, "set-b", folder=folder)  # another set
    assert counting.predicted == 2500
    model_file.write_bytes(b"model two")  # a replaced model file
    cached_proba(counting, model_file, x, "set-a", folder=folder)
    assert counting.predicted == 5000


def test_a_damaged_cache_file_is_recomputed_and_an_unwritable_folder_skipped(tmp_path):
    model = CountingModel()
    x = np.arange(30, dtype=np.uint8).reshape(10, 3)
    model_file = tmp_path / "m.npz"
    model_file.write_bytes(b"m")
    folder = tmp_path / "cache"
    cached_proba(model, model_file, x, "s", folder=folder)
    (path,) = folder.glob("*.npy")
    path.write_bytes(b"not an array")
    proba = cached_proba(model, model_file, x, "s", folder=folder)
    assert model.predicted == 20 and proba.shape == (10, 3)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder would be")
    proba = cached_proba(model, model_file, x, "s", folder=blocker / "cache")
    assert proba.shape == (10, 3) and model.predicted == 30
