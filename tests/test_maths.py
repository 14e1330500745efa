"""The maths of one example (nn.core.maths, nn.core.unit_edits, nn.services.maths) and
``python -m nn explain``: the numbers are the engine's, backprop matches float64 central
differences for every layer kind, a step lowers the loss, switched-off units do what the maths
says, an edited model saves and loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.cli.main import main
from nn.core.maths import EXPLAINED_KINDS, MathsError, Trace
from nn.core.network import NeuralNetwork
from nn.core.unit_edits import UnitEditError, edit_units
from nn.io.model_files import load_model, save_model
from nn.services.maths import (
    EXPLAIN_FIELDS,
    Example,
    edited_accuracy,
    explain,
    load_example,
    mnist_test_set,
    save_edited_model,
    trace_for,
)

CNN = [
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 5, "kernel": 3, "padding": "same", "stride": 2},
    {"type": "tanh"},
    {"type": "avgpool", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 12},
    {"type": "batchnorm"},
    {"type": "leaky_relu", "slope": 0.1},
    {"type": "dropout", "rate": 0.2},
]
# indices: 0 conv, 1 bn, 2 relu, 3 maxpool, 4 conv, 5 tanh, 6 avgpool, 7 flatten, 8 dense, 9 bn,
# 10 leaky_relu, 11 dropout, 12 dense (output)


@pytest.fixture(scope="module")
def mnist_part():
    x, y = mnist_test_set()
    return x[:400], y[:400], x[400:700], y[400:700]


@pytest.fixture(scope="module")
def cnn(mnist_part):
    x, y, _, _ = mnist_part
    return NeuralNetwork(
        layers=CNN, input_shape=[28, 28, 1], epochs=2, batch_size=32, random_state=0
    ).fit(x, y)


@pytest.fixture(scope="module")
def dense(mnist_part):
    x, y, _, _ = mnist_part
    return NeuralNetwork(
        hidden_layers=[16, 8], activation="sigmoid", epochs=2, batch_size=32, random_state=0
    ).fit(x, y)


@pytest.fixture(scope="module")
def example(mnist_part):
    _, _, x, y = mnist_part
    return x[0] / 255.0, int(y[0])


def _units(trace: Trace):
    for info in trace.describe_layers():
        if info["explained"]:
            for unit in sorted({0, trace.most_active(info["index"])}):
                yield info["index"], info["kind"], unit


def test_z_is_the_layers_own_forward_output(cnn, dense, example):
    x, label = example
    for model in (cnn, dense):
        outputs = [out for _, out in model.layer_outputs(x[None, :])]
        trace = Trace(model.stack_, x, label)
        for index, kind, unit in _units(trace):
            numbers = trace.unit(index, unit)
            at = (0, unit) if numbers["position"] is None else (0, *numbers["position"], unit)
            assert numbers["z"] == pytest.approx(float(outputs[index][at]), rel=1e-5, abs=1e-5)
            assert len(numbers["inputs"]) == len(numbers["weights"])
            written = np.dot(numbers["inputs"], numbers["weights"]) + numbers["bias"]
            assert numbers["z"] == pytest.approx(written, rel=1e-9, abs=1e-9), (index, kind)
            if numbers["grad_weights"] is not None:
                assert len(numbers["grad_weights"]) == len(numbers["weights"])


def test_the_unit_reads_the_layer_input_it_should(cnn, example):
    x, label = example
    trace = Trace(cnn.stack_, x, label)
    conv = trace.unit(4, 2, (1, 0))  # stride 2, padding 'same': row 1 starts at input row 1
    patch = np.array(conv["inputs"]).reshape(3, 3, 4)
    layer_input = trace.inputs[4][0]
    assert conv["patch_origin"] == [1, -1]
    np.testing.assert_array_equal(patch[:, 0, :], 0.0)  # the padding column
    np.testing.assert_array_equal(patch[:, 1:, :], layer_input[1:4, 0:2, :])
    assert trace.feature_map(0, 2) == trace.outputs[0][0, :, :, 2].tolist()
    with pytest.raises(MathsError, match="no feature map"):
        trace.feature_map(8, 0)
    pool = trace.unit(3, 1, (2, 3))
    assert pool["inputs"] == list(trace.inputs[3][0, 4:6, 6:8, 1].reshape(-1))
    assert pool["z"] == max(pool["inputs"])
    bn = trace.unit(9, 3)
    x_hat = (bn["x"] - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["epsilon"])
    assert bn["inputs"] == [pytest.approx(x_hat)]
    out = trace.unit(12, label)
    assert out["is_output"] and out["a"] == pytest.approx(trace.proba[label])
    assert out["activation"] == "softmax"
    dense = trace.unit(8, 5)
    assert dense["activation"] == "leaky_relu" and dense["activation_slope"] == 0.1
    assert dense["a"] == pytest.approx(float(trace.outputs[10][0, 5]))


def test_backprop_matches_central_differences_for_every_layer_kind(cnn, dense, example):
    x, label = example
    seen = set()
    for model in (cnn, dense):
        trace = Trace(model.stack_, x, label)
        for index, kind, unit in _units(trace):
            check = trace.gradient_check(index, unit, sample=6)
            assert check["numeric_grad"], (index, kind)
            assert check["max_rel_error"] < 1e-6, (index, kind, check)
            seen.add(kind)
    assert seen == set(EXPLAINED_KINDS)


def test_dl_dlogits_is_p_minus_onehot_and_the_output_delta(dense, example):
    x, label = example
    trace = Trace(dense.stack_, x, label)
    onehot = np.eye(10)[label]
    np.testing.assert_allclose(trace.output_grads[-1][0], trace.proba - onehot, atol=1e-15)
    gradient = trace.output_gradient()
    assert gradient["onehot"] == onehot.tolist()
    np.testing.assert_allclose(gradient["delta"], trace.proba - onehot, atol=1e-15)
    chain = trace.gradient_chain(0)
    assert [r["layer"] for r in chain] == [4, 3, 2, 1, 0]  # dense, sigmoid, dense, sigmoid, dense
    assert chain[0]["norm"] == pytest.approx(float(np.linalg.norm(trace.proba - onehot)))
    table = trace.softmax_table(1.0)
    assert table["loss"] == pytest.approx(trace.loss, rel=1e-9)
    assert table["sum"] == pytest.approx(sum(table["exps"]))
    hot = trace.softmax_table(5.0)
    assert max(hot["proba"]) < max(table["proba"])  # a higher temperature flattens


def test_one_small_step_lowers_the_loss(cnn, dense, example):
    x, label = example
    for model in (cnn, dense):
        wrong = (label + 1) % 10  # a label the network does not believe: a large gradient
        trace = Trace(model.stack_, x, wrong)
        weights_before = model.stack_.flat_params.copy()
        losses = [trace.loss]
        for _ in range(3):
            step = trace.sgd_step(0.01)
            assert step["loss_before"] == losses[-1]
            losses.append(step["loss_after"])
            assert 0 < step["relative_step"] < 0.1
        assert losses[0] > losses[1] > losses[2] > losses[3]
        np.testing.assert_array_equal(model.stack_.flat_params, weights_before)  # a copy


def _forward_scaled(model, x, layer, unit, scale):
    """Logits of the original network with the unit's activated output scaled by hand."""
    layers = model.stack_.layers
    target = layer + 1
    while target < len(layers) - 1 and layers[target].kind in ("batchnorm", "dropout"):
        target += 1
    if not layers[target].kind.endswith("relu") and layers[target].kind not in ("tanh",):
        target = layer
    a = x.reshape(1, *model.stack_.input_shape).astype(np.float64)
    net = Trace(model.stack_, x, 0).net
    for i, each in enumerate(net.layers):
        a = each.forward(a, False, False, None).copy()
        if i == target:
            a[..., unit] *= scale
    return a[0]


@pytest.mark.parametrize(("layer", "unit", "scale"), [(0, 2, 0.0), (4, 1, 0.5), (8, 3, 2.0)])
def test_a_scaled_unit_gives_what_the_maths_says(cnn, mnist_part, layer, unit, scale):
    _, _, x, _ = mnist_part
    edited = edit_units(cnn, {(layer, unit): scale})
    for row in x[:5] / 255.0:
        expected = _forward_scaled(cnn, row, layer, unit, scale)
        logits = Trace(edited.stack_, row, 0).logits  # the edited copy, through the engine
        np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    assert edit_units(cnn, {}).predict(x[:20]).tolist() == cnn.predict(x[:20]).tolist()


def test_every_unit_of_a_layer_off_gives_one_answer_for_every_image(cnn, dense, mnist_part):
    _, _, x, y = mnist_part
    for model, layer in ((cnn, 0), (cnn, 8), (dense, 0), (dense, 2)):
        n = model.layers_[layer].output_shape[-1]
        edits = {(layer, u): 0.0 for u in range(n)}
        accuracy, predicted = edited_accuracy(model, edits, x, y)
        # the next layer reads zeros: every image gets the network's answer for zeros there
        trace = Trace(edit_units(model, edits).stack_, x[0] / 255.0, 0)
        assert set(predicted.tolist()) == {int(np.argmax(trace.logits))}
        assert accuracy == pytest.approx(np.mean(y == predicted))


def test_bad_edits_and_units_are_refused(cnn, example):
    x, label = example
    with pytest.raises(UnitEditError, match="cannot be edited"):
        edit_units(cnn, {(2, 0): 0.0})
    with pytest.raises(UnitEditError, match="use 0 to 3"):
        edit_units(cnn, {(0, 4): 0.0})
    with pytest.raises(UnitEditError, match="scale"):
        edit_units(cnn, {(0, 1): -1.0})
    trace = Trace(cnn.stack_, x, label)
    with pytest.raises(MathsError, match="no units of its own"):
        trace.unit(2, 0)
    with pytest.raises(MathsError, match="rows 0 to"):
        trace.unit(0, 0, (26, 0))
    with pytest.raises(MathsError, match="has layers 0 to 12"):
        trace.unit(13, 0)
    with pytest.raises(MathsError, match="learning rate"):
        trace.sgd_step(0.0)
    with pytest.raises(MathsError, match="temperature"):
        trace.softmax_table(0.0)
    with pytest.raises(MathsError, match="label 10"):
        Trace(cnn.stack_, x, 10)
    with pytest.raises(MathsError, match="NaN"):
        Trace(cnn.stack_, np.full(784, np.nan), label)
    with pytest.raises(MathsError, match="numbers"):
        Trace(cnn.stack_, np.array(["a"] * 784), label)
    with pytest.raises(MathsError, match="reads 784"):
        Trace(cnn.stack_, np.zeros(10**6), label)


def test_an_edited_model_saves_and_loads(cnn, mnist_part, tmp_path):
    _, _, x, _ = mnist_part
    edits = {(0, 1): 0.0, (8, 2): 0.5}
    path = save_edited_model(
        cnn, edits, "cnn-edited", tmp_path, "cnn", metrics={"test_accuracy": 0.5}
    )
    loaded = load_model(path)
    np.testing.assert_allclose(
        loaded.predict_proba(x[:30]), edit_units(cnn, edits).predict_proba(x[:30]), atol=1e-7
    )
    assert "layer 0 unit 1 off" in loaded.metadata_["notes"]
    assert "layer 8 unit 2 x0.5" in loaded.metadata_["notes"]
    assert loaded.metadata_["metrics"] == {"test_accuracy": 0.5}
    with pytest.raises(ValueError, match="exists already"):
        save_edited_model(cnn, edits, "cnn-edited", tmp_path, "cnn")


def test_explain_gives_exactly_the_issue_fields(cnn, tmp_path, capsys):
    save_model(cnn, tmp_path / "small.npz")
    argv = ["explain", "small", "--models-dir", str(tmp_path), "--image", "test:3"]
    code = main([*argv, "--layer", "4", "--unit", "2", "--position", "1,1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert tuple(result) == EXPLAIN_FIELDS
    assert result["kind"] == "conv2d" and result["label"] == int(mnist_test_set()[1][3])
    assert len(result["inputs"]) == len(result["weights"]) == len(result["grad_weights"]) == 36
    assert result["max_rel_error"] < 1e-6
    assert {tuple(r) for r in result["numeric_grad"]} == {("index", "backprop", "numeric")}
    direct = explain(cnn, load_example("test:3"), 4, 2, (1, 1))
    assert result == json.loads(json.dumps(direct))
    for bad, message in (
        (["--layer", "2", "--unit", "0"], "no units of its own"),
        (["--layer", "0", "--unit", "0", "--position", "x"], "R,C"),
        (["--layer", "0", "--unit", "0", "--lr", "-1"], "--lr"),
    ):
        assert main([*argv, *bad]) == 2
        assert message in capsys.readouterr().err


def test_an_image_file_without_a_label_takes_the_prediction(dense, tmp_path):
    from PIL import Image

    x, _ = mnist_test_set()
    Image.fromarray(x[7].reshape(28, 28)).save(tmp_path / "digit.png")
    example = load_example(str(tmp_path / "digit.png"))
    assert example.label is None and example.x.shape == (784,)
    trace = trace_for(dense, example.x)
    assert trace.label == int(np.argmax(trace.proba))
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(MathsError, match="nothing drawn"):
        load_example(str(tmp_path / "blank.png"))
    with pytest.raises(MathsError, match="reads 784"):
        trace_for(dense, np.zeros(10))
    with pytest.raises(MathsError, match="test:N"):
        load_example("test:x")
    assert explain(dense, Example(example.x, 3, "file"), 0, 0)["label"] == 3


def test_the_activation_after_a_batch_norm_reads_the_batch_norms_output(cnn, example):
    x, label = example
    trace = Trace(cnn.stack_, x, label)
    conv = trace.unit(0, 1)  # conv2d, batchnorm, relu
    assert conv["between"] == ["batchnorm"] and conv["activation_layer"] == 2
    at = (0, *conv["position"], 1)
    assert conv["activation_input"] == float(trace.outputs[1][at])
    assert conv["a"] == max(0.0, conv["activation_input"])
    dense = trace.unit(12, 3)  # the output layer: nothing between
    assert dense["between"] == [] and dense["activation_input"] == dense["z"]
