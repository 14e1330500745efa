"""The confidence threshold saved with a model: it round-trips through the model file, older
files without it still load, and a damaged record is the file's fault."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core.confidence import threshold_record, threshold_value
from nn.io.model_files import load_model, read_metadata, save_model
from nn.io.models_folder import save_threshold
from nn.io.npz import META_KEY, ModelFileError


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_threshold_round_trips_through_the_model_file(small_model, tmp_path, suffix):
    path = save_model(small_model[0], tmp_path / f"m{suffix}", name="keeper", notes="kept")
    assert threshold_value(read_metadata(path)) is None
    record = threshold_record(0.85, coverage=0.9, accuracy=0.99, images=2000)
    save_threshold(path, record)
    meta = read_metadata(path)
    assert meta["confidence_threshold"] == record
    assert threshold_value(meta) == 0.85
    loaded = load_model(path)
    assert threshold_value(loaded.metadata_) == 0.85
    assert meta["notes"] == "kept" and meta["name"] == "keeper"
    np.testing.assert_array_equal(
        loaded.predict(small_model[1].x_test[:50]),
        small_model[0].predict(small_model[1].x_test[:50]),
    )
    save_model(loaded, path)  # saved again as it is: the threshold stays
    assert threshold_value(read_metadata(path)) == 0.85
    save_threshold(path, None)
    assert read_metadata(path)["confidence_threshold"] is None


def test_training_further_drops_the_threshold(tiny_model, tmp_path):
    model = tiny_model()
    path = save_model(model, tmp_path / "t.npz", threshold=threshold_record(0.5))
    model = load_model(path)
    model.n_iter_ += 1  # as a further epoch would
    save_model(model, path)
    assert threshold_value(read_metadata(path)) is None


def _rewrite_meta(path, change) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays.pop(META_KEY)))
    change(meta)
    np.savez(path, **{META_KEY: np.array(json.dumps(meta))}, **arrays)


def test_older_files_and_later_versions_still_load(tiny_model, tmp_path):
    path = save_model(tiny_model(), tmp_path / "old.npz", threshold=threshold_record(0.7))
    _rewrite_meta(path, lambda m: m.pop("confidence_threshold"))  # as written before the field
    assert threshold_value(load_model(path).metadata_) is None
    _rewrite_meta(path, lambda m: m.update(confidence_threshold={"version": 2, "levels": [1]}))
    assert threshold_value(load_model(path).metadata_) is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"version": 1, "value": 1.5}, "confidence_threshold.value"),
        ({"version": 1, "value": "high"}, "confidence_threshold.value"),
        ({"value": 0.5}, "confidence_threshold.version"),
        ([0.5], "expected an object"),
    ],
)
def test_a_damaged_threshold_is_the_files_fault(tiny_model, tmp_path, record, message):
    path = save_model(tiny_model(), tmp_path / "bad.npz")
    _rewrite_meta(path, lambda m: m.update(confidence_threshold=record))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
