"""The inside recorder: what it measures shows the three lessons of initialisation and learning
rate, and its record is plain data that survives JSON and a model file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.core.network import NeuralNetwork
from nn.core.probe import (
    PROBE_SIZE,
    InsideRecorder,
    append_epoch,
    decode_images,
    empty_record,
    grid_indices,
    snapshot,
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
