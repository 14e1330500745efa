"""The inside recorder: what it measures shows the three lessons of initialisation and learning
rate, and its record is plain data that survives JSON and a model file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core.network import NeuralNetwork
from nn.core.probe import (
    MIN_PROBE,
    PROBE_SIZE,
    InsideRecorder,
    append_epoch,
    decode_images,
    empty_record,
    grid_indices,
    multiply_adds,
    probe_count,
    snapshot,
)
from nn.core.probe_stats import (
    HIST_BINS,
    MAX_ROWS,
    MAX_SAMPLE,
    QUANTILES,
    RowBlocks,
    distribution,
    distributions,
    draw_positions,
    fired_units,
    rounded,
)


@pytest.fixture(scope="module")
def digits(small_model):
    data = small_model[1]
    grid = grid_indices(data.y_test)
    return {
        "x": data.x_train[:2000],
        "y": data.y_train[:2000],
        "probe": (
            data.x_train[50000 : 50000 + PROBE_SIZE],
            data.y_train[50000 : 50000 + PROBE_SIZE],
        ),
        "grid": (data.x_test[grid], data.y_test[grid]),
    }


def _train(digits, **settings):
    recorder = InsideRecorder(*digits["probe"], *digits["grid"])
    model = NeuralNetwork(random_state=0, **settings)
    sent = []

    def callback(event):
        sent.extend(recorder.observe(model, event))

    model.fit(digits["x"], digits["y"], callback=callback)
    return model, recorder.record, sent


def _trained(record):
    return [
        s for layer, s in zip(record["layers"], record["series"], strict=True) if layer["trained"]
    ]


def test_zero_init_leaves_every_unit_of_a_layer_identical(digits):
    _, record, _ = _train(
        digits, hidden_layers=(32, 32), activation="sigmoid", init="zeros", epochs=2
    )
    hidden = _trained(record)[:2]
    for series in hidden:
        assert all(s is not None and s < 1e-6 for s in series["weight_unit_spread"])
    sigmoid = [
        s
        for layer, s in zip(record["layers"], record["series"], strict=True)
        if layer["kind"] == "sigmoid"
    ]
    assert all(s < 1e-6 for s in sigmoid[0]["act_unit_spread"])
    # the weights did move (the symmetry, not the learning, is what stays)
    assert hidden[1]["weight_norm"][-1] > 0
    # the same net from a random start has units that differ
    _, healthy, _ = _train(digits, hidden_layers=(32, 32), activation="sigmoid", epochs=2)
    assert _trained(healthy)[0]["weight_unit_spread"][-1] > 0.01


def test_sigmoid_with_unit_normal_weights_saturates_and_early_gradients_vanish(digits):
    _, record, _ = _train(
        digits, hidden_layers=(64,) * 4, activation="sigmoid", init="normal", epochs=1
    )
    series = dict(zip([layer["name"] for layer in record["layers"]], record["series"], strict=True))
    assert series["1 sigmoid"]["saturated_fraction"][0] > 0.4
    norms = [s["grad_norm"][0] for s in _trained(record)]
    assert norms[0] < 0.5 * norms[-1]
    assert norms == sorted(norms)  # smaller and smaller toward the input
    _, healthy, _ = _train(digits, hidden_layers=(64,) * 4, activation="relu", epochs=1)
    relu = [s["grad_norm"][0] for s in _trained(healthy)]
    assert relu[0] > 0.5 * relu[-1]
    first = dict(
        zip([layer["name"] for layer in healthy["layers"]], healthy["series"], strict=True)
    )
    assert first["1 relu"]["dead_fraction"][0] < 0.5


def test_a_learning_rate_too_high_explodes(digits):
    _, calm, _ = _train(digits, hidden_layers=(64, 64), epochs=3)
    model, wild, _ = _train(
        digits, hidden_layers=(64, 64), optimizer="sgd", learning_rate=1.0, epochs=3
    )
    calm_ratio = max(max(s["update_ratio"]) for s in _trained(calm))
    wild_ratio = max(max(s["update_ratio"]) for s in _trained(wild))
    assert calm_ratio < 0.02
    assert wild_ratio > 5 * calm_ratio
    assert wild["probe_loss"][-1] > 2 * min(calm["probe_loss"])


def test_a_divergence_in_the_first_epoch_leaves_a_marked_point(digits):
    model, record, sent = _train(
        digits, hidden_layers=(64, 64), optimizer="sgd", learning_rate=10.0, epochs=2
    )
    assert model.stop_reason_ == "diverged" and model.n_iter_ == 0
    assert [stage for stage, _ in sent] == ["inside_start", "inside_epoch"]
    diverged = record["diverged"]
    assert diverged["epoch"] == 1 and 0 < diverged["at"] < 1
    assert f"batch {diverged['batch']}:" in model.stop_message_
    assert record["epochs"] == [diverged["at"]]
    assert diverged["loss"] is None or diverged["loss"] > 10
    # the point shows the explosion, beside a calm start of the same network
    _, calm, _ = _train(digits, hidden_layers=(64, 64), optimizer="sgd", epochs=1)
    wild_ratio = max(s["update_ratio"][0] or 0 for s in _trained(record))
    calm_ratio = max(s["update_ratio"][0] for s in _trained(calm))
    assert wild_ratio > 0.5 and calm_ratio < 0.05
    wild_norms = [s["weight_norm"][0] for s in _trained(record)]
    calm_norms = [s["weight_norm"][0] for s in _trained(calm)]
    assert all(w is None or w > 2 * c for w, c in zip(wild_norms, calm_norms, strict=True))
    rebuilt = empty_record(json.loads(json.dumps(sent[0][1])))
    append_epoch(rebuilt, json.loads(json.dumps(sent[1][1])))
    assert rebuilt == json.loads(json.dumps(record))


def test_an_old_record_without_a_divergence_field_still_reads():
    from ui.inside_charts import series_figure, summary

    start = {"version": 1, "layers": [], "input_shape": [784], "probe_size": 64}
    record = empty_record({**start, "classes": [0, 1], "grid": None})
    del record["diverged"]
    append_epoch(record, {"epoch": 1, "probe_loss": 0.5, "probe_accuracy": 0.9, "layers": []})
    assert "diverged" not in record and record["epochs"] == [1]
    assert summary(record) == []
    assert not series_figure(record, "grad_norm").layout.shapes


def test_the_record_is_plain_data_and_rebuilds_from_events(digits):
    _, record, sent = _train(digits, hidden_layers=(16,), epochs=2)
    assert [stage for stage, _ in sent] == ["inside_start", "inside_epoch", "inside_epoch"]
    wire = [(stage, json.loads(json.dumps(payload))) for stage, payload in sent]
    rebuilt = empty_record(wire[0][1])
    for _, payload in wire[1:]:
        append_epoch(rebuilt, payload)
    assert json.loads(json.dumps(record)) == rebuilt
    assert rebuilt["epochs"] == [1, 2]
    grid = decode_images(rebuilt["grid"])
    assert grid.shape == (50, 28, 28, 1)
    assert len(rebuilt["grid_top"]["labels"]) == 50
    assert all(len(row) == 3 for row in rebuilt["grid_top"]["proba"])
    first = rebuilt["series"][0]
    assert len(first["weight_hist"][0]["counts"]) > 0 and len(first["weight_q"][0]) == 7


def test_snapshot_of_a_cnn_outside_training_leaves_it_unchanged(cnn_model, digits):
    before = [p.copy() for p in cnn_model._params()]
    proba = cnn_model.predict_proba(digits["grid"][0][:5])
    record = snapshot(cnn_model, *digits["probe"], *digits["grid"])
    assert len(record["epochs"]) == 1
    convs = [
        s
        for layer, s in zip(record["layers"], record["series"], strict=True)
        if layer["kind"] == "conv2d"
    ]
    assert convs and convs[0]["grad_norm"][0] > 0
    assert all(np.array_equal(a, b) for a, b in zip(before, cnn_model._params(), strict=True))
    assert np.allclose(proba, cnn_model.predict_proba(digits["grid"][0][:5]))
    assert all(not layer.grads for layer in cnn_model.layers_)


def test_the_training_job_sends_and_saves_the_record(tmp_path):
    from nn.data import MNIST
    from nn.io.model_files import load_model, read_metadata
    from nn.services.training import TrainingJob, run_training_job

    rng = np.random.default_rng(0)
    y = np.arange(1500) % 10
    x = rng.integers(0, 60, (1500, 784)).astype(np.uint8)
    for c in range(10):
        x[y == c, c * 70 : (c + 1) * 70] = 255
    data = MNIST(x[:1200], y[:1200], x[1200:], y[1200:])
    stages = []
    job = TrainingJob(
        model={"hidden_layers": [16], "epochs": 2, "batch_size": 50, "random_state": 0},
        record=False,
        save_path=str(tmp_path / "job.npz"),
    )
    outcome = run_training_job(job, data=data, listener=lambda s, info: stages.append((s, info)))
    names = [s for s, _ in stages]
    assert names.count("inside_start") == 1 and names.count("inside_epoch") == 2
    assert outcome.inside["epochs"] == [1, 2]
    saved = read_metadata(outcome.model_path)["inside"]
    assert saved == json.loads(json.dumps(outcome.inside))
    assert load_model(outcome.model_path).metadata_["inside"]["epochs"] == [1, 2]
    quiet = run_training_job(TrainingJob(model=job.model, record=False, inside=False), data=data)
    assert quiet.inside is None


def test_distribution_matches_numpys_quantiles_and_histogram():
    rng = np.random.default_rng(3)
    values = rng.standard_normal(MAX_SAMPLE - 7).astype(np.float32)
    values[:5] = [np.nan, np.inf, -np.inf, 9.0, -9.0]
    finite = values[np.isfinite(values)].astype(np.float64)
    quantiles, hist = distribution(values)
    np.testing.assert_allclose(quantiles, np.quantile(finite, QUANTILES), rtol=1e-5)
    counts, _ = np.histogram(finite, bins=len(hist["counts"]), range=(hist["lo"], hist["hi"]))
    assert sum(hist["counts"]) == finite.size
    assert np.abs(np.asarray(hist["counts"]) - counts).sum() <= 2  # values on a bin edge
    same = distribution(np.full(10, 2.5))
    assert same[0] == [2.5] * len(QUANTILES) and same[1]["counts"][0] == 10
    assert distribution(np.full(4, np.nan))[0] == [None] * len(QUANTILES)


def test_the_probe_uses_fewer_images_for_a_costly_network(cnn_model, small_model):
    dense = small_model[0]
    per_image = sum(layer.params[0].size for layer in dense.layers_ if layer.param_names)
    assert multiply_adds(dense.layers_) == per_image
    conv = next(layer for layer in cnn_model.layers_ if layer.kind == "conv2d")
    assert multiply_adds(cnn_model.layers_) > conv.params[0].size * 28 * 28 // 4
    assert probe_count(dense.layers_, PROBE_SIZE) == PROBE_SIZE
    assert probe_count(dense.layers_, 5) == 5
    costly = NeuralNetwork(
        layers=[{"type": "conv2d", "filters": 128, "kernel": 5, "padding": "same"}],
        epochs=1,
        batch_size=10,
    )
    costly.fit(np.zeros((20, 784), np.uint8), np.arange(20) % 2)
    assert probe_count(costly.layers_, PROBE_SIZE) == MIN_PROBE


def test_a_job_that_diverges_keeps_its_record_and_hides_the_event(tmp_path):
    from nn.data import MNIST
    from nn.services.training import TrainingJob, run_training_job

    rng = np.random.default_rng(0)
    y = np.arange(1500) % 10
    x = rng.integers(0, 256, (1500, 784)).astype(np.uint8)
    data = MNIST(x[:1200], y[:1200], x[1200:], y[1200:])
    job = TrainingJob(
        model={
            "hidden_layers": [32, 32],
            "optimizer": "sgd",
            "learning_rate": 30.0,
            "epochs": 2,
            "batch_size": 50,
            "random_state": 0,
        },
        record=False,
    )
    kinds, stages = [], []
    outcome = run_training_job(
        job,
        data=data,
        on_event=lambda event: kinds.append(event.kind),
        listener=lambda stage, info: stages.append(stage),
    )
    assert outcome.status == "diverged"
    assert "diverged" not in kinds and kinds
    assert stages.count("inside_epoch") == 1
    assert outcome.inside["diverged"]["epoch"] == 1
    assert len(outcome.inside["epochs"]) == 1


# ------------------------------------------------------------------ the statistics, exactly
def _reference_distribution(values: np.ndarray):
    """The distribution as one array at a time computes it: np.quantile of the finite values in
    float64, bins counted by searchsorted on np.linspace's edges."""
    finite = np.sort(values[np.isfinite(values)].astype(np.float64))
    if not finite.size:
        return None, None
    lo, hi = finite[0], finite[-1]
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    ends = np.searchsorted(finite, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], ends, [finite.size]))).tolist()
    return np.quantile(finite, QUANTILES), {"lo": lo, "hi": hi, "counts": counts}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_distributions_at_once_match_one_array_at_a_time(dtype):
    rng = np.random.default_rng(5)
    samples = [
        rng.standard_normal(MAX_SAMPLE).astype(dtype),
        (rng.standard_normal(300) * 1e-7 + 3.0).astype(dtype),  # narrow, far from 0
        np.maximum(rng.standard_normal(1000), 0).astype(dtype),  # a pile at 0 (ReLU)
        np.full(17, 2.5, dtype),  # one value
        np.array([np.nan, np.inf, -np.inf, 1.0, -2.0, 0.5], dtype),
        np.full(5, np.nan, dtype),
        rng.uniform(-1e30, 1e30, 77).astype(dtype),
    ]
    got = distributions(samples)
    for values, (quantiles, hist) in zip(samples, got, strict=True):
        expected_q, expected_hist = _reference_distribution(values)
        if expected_q is None:
            assert quantiles == [None] * len(QUANTILES) and hist["counts"] == []
            continue
        assert hist["counts"] == expected_hist["counts"]  # exact: the same edges, the same bins
        assert sum(hist["counts"]) == np.isfinite(values).sum()
        assert quantiles == rounded(expected_q)
        assert [hist["lo"], hist["hi"]] == rounded([expected_hist["lo"], expected_hist["hi"]])


def test_float32_values_fall_in_the_bins_float64_edges_give_them():
    # values on and next to edges that float32 cannot hold exactly
    lo, hi = np.float32(0.1), np.float32(0.7)
    edges = np.linspace(float(lo), float(hi), HIST_BINS + 1)
    near = [np.float32(e) for e in edges[1:-1]]
    near += [np.nextafter(v, np.float32(np.inf)) for v in near]
    near += [np.nextafter(v, np.float32(-np.inf)) for v in near]
    values = np.array([lo, hi, *near], np.float32)
    ((_, hist),) = distributions([values])
    assert hist["counts"] == _reference_distribution(values)[1]["counts"]


def test_rounded_keeps_six_significant_digits_as_the_string_does():
    rng = np.random.default_rng(2)
    values = rng.standard_normal(20000) * 10.0 ** rng.integers(-30, 30, 20000)
    values = np.concatenate(
        [values, [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1.7e308, 123456.5, 0.5]]
    )
    expected = [None if not np.isfinite(v) else float(f"{v:.6g}") for v in values.tolist()]
    assert rounded(values) == expected


def test_spread_across_units_matches_numpys_std_and_is_zero_for_identical_units():
    rng = np.random.default_rng(4)
    shapes = [(64, 256), (3136, 128), (8, 28, 28, 32), (3, 3, 32, 64), (5, 2)]
    arrays = [rng.standard_normal(shape).astype(np.float32) * 0.05 + 0.3 for shape in shapes]
    arrays.append(np.tile(rng.standard_normal((40, 1)).astype(np.float32), (1, 16)))
    blocks = RowBlocks([(a.size // a.shape[-1], a.shape[-1]) for a in arrays])
    for i, values in enumerate(arrays):
        blocks.put(i, values)
    spreads = blocks.spreads()
    for values, spread in zip(arrays[:-1], spreads[:-1], strict=True):
        rows = values.reshape(-1, values.shape[-1])
        expected = rows[:: -(-rows.shape[0] // MAX_ROWS)].astype(np.float64).std(axis=1).mean()
        assert spread == pytest.approx(expected, rel=1e-5)
    assert spreads[-1] == 0.0  # identical units


def test_dead_units_are_counted_on_every_value():
    rng = np.random.default_rng(6)
    for shape in [(8, 28, 28, 32), (64, 256), (7, 5, 3), (1, 10)]:
        out = np.maximum(rng.standard_normal(shape) - 2.5, 0).astype(np.float32)
        out.reshape(-1)[::97] = np.nan
        np.testing.assert_array_equal(
            fired_units(out), (out > 0).reshape(-1, shape[-1]).any(axis=0)
        )


def test_large_arrays_are_sampled_at_positions_drawn_once(small_model, digits):
    model = small_model[0]
    recorder = InsideRecorder(*digits["probe"])
    first = recorder.epoch(model, 1)
    assert recorder.epoch(model, 1) == first  # the same positions, the same numbers
    positions = draw_positions(np.random.default_rng(0), 784 * 256)
    assert positions.size == MAX_SAMPLE and np.all(np.diff(positions) > 0)
    assert np.unique(positions % 256).size > 250  # every unit of a 784x256 weight, or nearly
    assert draw_positions(np.random.default_rng(0), MAX_SAMPLE) is None  # small: used whole


def test_norms_and_the_update_ratio_are_exact(small_model, digits):
    model = small_model[0]
    recorder = InsideRecorder(*digits["probe"])
    recorder.keep_weights(model)
    weight = model.layers_[0].params[0]
    saved = weight.copy()
    rng = np.random.default_rng(8)
    try:
        weight += (rng.standard_normal(weight.shape) * 1e-3).astype(weight.dtype)
        layer = recorder.epoch(model, 1)["layers"][0]
        moved = weight.copy()
    finally:
        weight[...] = saved
    step = np.linalg.norm(moved.astype(np.float64) - saved) / np.linalg.norm(saved)
    assert layer["update_ratio"] == pytest.approx(step, rel=1e-5)
    assert layer["weight_norm"] == pytest.approx(np.linalg.norm(moved.astype(np.float64)), 1e-5)
