"""Layers and stacks: central-difference gradient checks in float64, batch norm's two modes,
shape inference and the messages for bad stacks, convolutional estimators end to end, the
one-line stack syntax."""

import numpy as np
import pytest

from nn import NeuralNetwork, ParameterError, load_model
from nn.core.layer_spec import compact, parse_layers, parse_shape
from nn.core.layers import LAYERS
from nn.core.params import json_params
from nn.core.sequential import Sequential, StackError
from nn.core.state import to_state
from nn.io.model_files import save_model
from tests.gradients import loss_and_gradients


def _rel_error(a, b):
    return np.linalg.norm(a - b) / max(1e-12, np.linalg.norm(a) + np.linalg.norm(b))


def _stack(specs, input_shape, seed=0):
    net = Sequential(specs, input_shape, np.float64)
    net.allocate()
    net.attach_gradients()
    rng = np.random.default_rng(seed)
    net.initialize(rng, "auto")
    for p in net.params:  # biases, gamma and beta away from their starting values
        p += rng.normal(scale=0.3, size=p.shape)
    return net


def _check_gradients(specs, input_shape, n=4, training=False, seed=0, eps=1e-6):
    """dL/dparams and dL/dx of L = sum(out * R) against central differences."""
    net = _stack(specs, input_shape, seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(n, *input_shape))
    weights = rng.normal(size=(n, *net.output_shape))

    def loss() -> float:
        out = net.forward(x.copy(), training=training, keep=True, rng=np.random.default_rng(7))
        return float(np.sum(out * weights))

    loss()
    dx = net.backward(weights.copy(), need_dx=True).copy()
    analytic = [g.copy() for g in net.grads]
    for target, grad in [(x, dx), *zip(net.params, analytic, strict=True)]:
        numeric = np.zeros_like(target)
        for i in np.ndindex(target.shape):
            old = target[i]
            target[i] = old + eps
            plus = loss()
            target[i] = old - eps
            minus = loss()
            target[i] = old
            numeric[i] = (plus - minus) / (2 * eps)
        # a conv bias right before batch norm in training has exactly zero gradient
        assert _rel_error(grad, numeric) < 1e-6 or np.abs(numeric).max() < 1e-8, (specs, target)
    return net


@pytest.mark.parametrize(
    "spec, input_shape",
    [
        ({"type": "dense", "units": 5}, (6,)),
        ({"type": "dense", "units": 3}, (3, 3, 2)),
        ({"type": "conv2d", "filters": 3, "kernel": 3}, (6, 5, 2)),
        ({"type": "conv2d", "filters": 2, "kernel": 3, "stride": 2, "padding": "same"}, (7, 6, 2)),
        ({"type": "conv2d", "filters": 2, "kernel": 2, "stride": 2}, (6, 6, 1)),
        ({"type": "maxpool", "size": 2}, (6, 4, 3)),
        ({"type": "maxpool", "size": 3, "stride": 2}, (7, 7, 2)),
        ({"type": "avgpool", "size": 2}, (4, 6, 2)),
        ({"type": "flatten"}, (3, 2, 2)),
        ({"type": "relu"}, (7,)),
        ({"type": "sigmoid"}, (7,)),
        ({"type": "tanh"}, (3, 3, 2)),
        ({"type": "leaky_relu", "slope": 0.1}, (7,)),
        ({"type": "dropout", "rate": 0.4}, (9,)),
    ],
)
def test_each_layer_alone_matches_central_differences(spec, input_shape):
    # an activation first in a stack works on its own buffer; after a dense one, in place
    training = spec["type"] == "dropout"
    _check_gradients([spec], input_shape, training=training)
    _check_gradients([{"type": "dense", "units": 6}, spec], (5,)) if len(input_shape) == 1 else None


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("input_shape", [(5,), (4, 3, 3)])
def test_batch_norm_matches_central_differences(training, input_shape):
    net = _check_gradients([{"type": "batchnorm"}], input_shape, n=6, training=training)
    assert net.layers[0].state["running_mean"].shape == (input_shape[-1],)


@pytest.mark.parametrize(
    "specs, input_shape, training",
    [
        (
            [
                {"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": "same"},
                {"type": "relu"},
                {"type": "dense", "units": 4},
            ],
            (7, 7, 2),
            False,
        ),
        (
            [
                {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same"},
                {"type": "batchnorm"},
                {"type": "relu"},
                {"type": "maxpool", "size": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 5},
                {"type": "tanh"},
                {"type": "dense", "units": 3},
            ],
            (6, 6, 2),
            True,
        ),
        (
            [
                {"type": "conv2d", "filters": 2, "kernel": 3},
                {"type": "sigmoid"},
                {"type": "avgpool", "size": 2},
                {"type": "conv2d", "filters": 2, "kernel": 2},
                {"type": "leaky_relu", "slope": 0.2},
                {"type": "dropout", "rate": 0.3},
                {"type": "dense", "units": 3},
            ],
            (7, 7, 1),
            True,
        ),
    ],
)
def test_stacks_match_central_differences(specs, input_shape, training):
    _check_gradients(specs, input_shape, n=3, training=training)


def test_two_activations_in_a_row_keep_their_own_outputs():
    specs = [{"type": "dense", "units": 4}, {"type": "sigmoid"}, {"type": "tanh"}]
    net = _check_gradients(specs, (3,))
    assert net.layers[1].in_place and not net.layers[2].in_place


def test_batch_norm_predict_mode_uses_the_running_statistics():
    net = Sequential([{"type": "batchnorm", "momentum": 0.5}], (3,), np.float64)
    net.allocate()
    net.initialize(np.random.default_rng(0), "auto")
    rng = np.random.default_rng(1)
    x = rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(400, 3))
    trained = net.forward(x, training=True).copy()
    np.testing.assert_allclose(trained.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(trained.std(axis=0), 1, rtol=1e-4)
    state = net.layers[0].state
    np.testing.assert_allclose(state["running_mean"], 0.5 * x.mean(axis=0))
    for _ in range(60):  # the running statistics converge to the batch's
        net.forward(x, training=True)
    np.testing.assert_allclose(state["running_mean"], x.mean(axis=0))
    np.testing.assert_allclose(state["running_var"], x.var(axis=0, ddof=1))
    predicted = net.forward(x, training=False).copy()
    np.testing.assert_allclose(predicted, trained * np.sqrt(399 / 400), rtol=1e-6, atol=1e-9)
    shifted = net.forward(x + 1.0, training=False)  # predict mode: no renormalising per batch
    scale = 1.0 / np.sqrt(x.var(axis=0, ddof=1) + 1e-5)
    np.testing.assert_allclose(shifted - predicted, np.broadcast_to(scale, x.shape), rtol=1e-6)


def test_shapes_and_parameter_counts():
    net = Sequential(
        [
            {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same"},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "conv2d", "filters": 16, "kernel": 5, "stride": 2},
            {"type": "batchnorm"},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ],
        (28, 28, 1),
    )
    shapes = [layer.output_shape for layer in net.layers]
    assert shapes == [(28, 28, 8), (28, 28, 8), (14, 14, 8), (5, 5, 16), (5, 5, 16), (400,), (10,)]
    assert net.n_parameters == (9 * 8 + 8) + (25 * 8 * 16 + 16) + 32 + (400 * 10 + 10)
    assert net.flat_params is None  # building allocates nothing


@pytest.mark.parametrize(
    "stack, fragment",
    [
        ([{"type": "conv2d", "filters": 4, "kernel": 29}], "layer 1 (conv2d): kernel 29 is larger"),
        (
            [{"type": "maxpool", "size": 2}] * 3 + [{"type": "maxpool", "size": 4}],
            "layer 4 (maxpool): pool size 4 is larger than its 3x3 input: pooling leaves nothing",
        ),
        (
            [{"type": "flatten"}, {"type": "conv2d", "filters": 4, "kernel": 3}],
            "layer 2 (conv2d): conv2d needs an image input",
        ),
        ([{"type": "dense", "units": 8}, {"type": "maxpool"}], "layer 2 (maxpool): maxpool needs"),
        ([{"type": "convolution", "filters": 4}], "layer 1 (convolution): unknown type"),
        ([{"type": "conv2d", "filters": 4, "size": 3}], "layer 1 (conv2d): unknown key(s) 'size'"),
        ([{"type": "dense"}], "layer 1 (dense): units=None is not allowed"),
        ([{"type": "dropout", "rate": 1.5}], "layer 1 (dropout): rate=1.5"),
        ([{"type": "conv2d", "filters": 4, "padding": "full"}], "padding='full'"),
        (["relu"], "layer 1 (str): 'relu' is not a layer"),
        ({"type": "relu"}, "list of layer dicts"),
    ],
)
def test_bad_stacks_are_refused_naming_layer_and_fault(stack, fragment):
    X = np.zeros((8, 28, 28, 1), np.float32)
    y = np.arange(8) % 2
    with pytest.raises(ParameterError) as err:
        NeuralNetwork(layers=stack, batch_size=4, epochs=1).fit(X, y)
    assert err.value.param == "layers"
    assert fragment in str(err.value)


def test_a_conv_stack_on_rows_that_are_not_square_images_needs_input_shape():
    X, y = np.zeros((6, 50)), np.arange(6) % 2
    model = NeuralNetwork(layers=[{"type": "conv2d", "filters": 2}], batch_size=2, epochs=1)
    with pytest.raises(ParameterError, match="not a square greyscale image") as err:
        model.fit(X, y)
    assert err.value.param == "input_shape"
    model.set_params(input_shape=[5, 10, 1]).fit(X, y)
    assert model.input_shape_ == (5, 10, 1)
    with pytest.raises(ParameterError, match="input_shape"):
        model.set_params(input_shape=[5, 5, 1]).fit(X, y)


def test_stack_error_names_index_and_kind():
    with pytest.raises(StackError) as err:
        Sequential([{"type": "relu"}, {"type": "maxpool", "size": 9}], (4, 4, 1))
    assert (err.value.index, err.value.kind) == (1, "maxpool")


def _images(n=96, side=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.integers(0, 60, (n, side, side, 1))
    for i, label in enumerate(y):  # class = which third of the image is bright
        X[i, :, label * side // 3 : (label + 1) * side // 3 + 1, 0] += 180
    return X.astype(np.uint8), y


CNN = [
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 6, "kernel": 3},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 12},
    {"type": "relu"},
    {"type": "dropout", "rate": 0.2},
]


def test_cnn_estimator_learns_and_repeats_for_a_seed():
    X, y = _images()
    kw = {"layers": CNN, "epochs": 6, "batch_size": 16, "random_state": 0, "learning_rate": 0.01}
    model = NeuralNetwork(**kw).fit(X, y)
    assert model.score(X, y) > 0.9
    again = NeuralNetwork(**kw).fit(X.reshape(len(X), -1), y)  # rows of 64 read as 8x8x1
    assert again.input_shape_ == (8, 8, 1)
    np.testing.assert_array_equal(model._flat_params, again._flat_params)
    assert model.predict(X[:5]).tolist() == model.predict(X[:5].reshape(5, -1)).tolist()
    assert [w.shape for w in model.coefs_] == [(24, 12), (12, 3)]
    assert model.layer_sizes_ == [64, 12, 3]
    outputs = model.layer_outputs(X[:2])
    assert [name for name, _ in outputs][:4] == ["0 conv2d", "1 batchnorm", "2 relu", "3 maxpool"]
    assert outputs[3][1].shape == (2, 4, 4, 4) and outputs[-1][1].shape == (2, 3)
    assert [a.shape for a in model.activations(X[:2])] == [(2, 8, 8, 4), (2, 2, 2, 6), (2, 12)]


def test_cnn_estimator_gradients_match_central_differences():
    X, y = _images(n=6, side=6)
    model = NeuralNetwork(
        layers=CNN[:3] + [{"type": "maxpool", "size": 2}, {"type": "dense", "units": 4}],
        l2=0.01,
        dtype="float64",
        epochs=1,
        batch_size=3,
        random_state=1,
    ).fit(X, y)
    _, analytic = loss_and_gradients(model, X, y)
    for p, g in zip(model._params(), analytic, strict=True):
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            plus, _ = loss_and_gradients(model, X, y)
            p[i] = old - 1e-6
            minus, _ = loss_and_gradients(model, X, y)
            p[i] = old
            numeric[i] = (plus - minus) / 2e-6
        assert _rel_error(g, numeric) < 1e-6


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_cnn_saves_and_loads_in_both_formats(tmp_path, fmt):
    X, y = _images()
    model = NeuralNetwork(layers=CNN, epochs=2, batch_size=16, random_state=0).fit(X, y)
    path = save_model(model, tmp_path / f"cnn.{fmt}")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert json_params(loaded.get_params()) == json_params(model.get_params())
    bn = loaded.layers_[1]
    np.testing.assert_array_equal(bn.state["running_var"], model.layers_[1].state["running_var"])
    assert loaded.optimizer_.state_dict()[1].keys() == model.optimizer_.state_dict()[1].keys()
    meta, arrays = to_state(model)
    assert "layer1.batchnorm.running_mean" in arrays and "opt.m.layer0.conv2d.weight" in arrays
    assert meta["stack"][-1] == {"type": "dense", "units": 3}
    loaded.set_params(warm_start=True, epochs=1).fit(X, y)  # training goes on from the file
    assert loaded.n_iter_ == 3


def test_batchnorm_state_is_not_trained_by_the_optimizer():
    X, y = _images()
    model = NeuralNetwork(layers=CNN, epochs=1, batch_size=16, random_state=0).fit(X, y)
    n_trained = sum(p.size for p in model._params())
    assert model._flat_params.size == n_trained == model.n_parameters_
    assert all(a.size == n_trained for a in model.optimizer_._flat.values())
    running = model.layers_[1].state["running_mean"]
    assert not np.shares_memory(running, model._flat_params)


def test_search_space_chooses_between_stacks():
    from nn.search.space import SearchSpace

    stacks = [CNN, [{"type": "dense", "units": 8}, {"type": "relu"}]]
    space = SearchSpace(layers=stacks)
    space.check({"epochs": 1})
    with pytest.raises(ValueError, match="layers"):
        SearchSpace(layers=[[{"type": "dense", "units": 0}]]).check()


def test_one_line_syntax_parses_and_renders_back():
    spec = "conv32k3,relu,pool2,conv64k3,relu,pool2,flatten,dense128,relu,dropout0.3"
    stack = parse_layers(spec)
    assert stack[0] == {"type": "conv2d", "filters": 32, "kernel": 3}
    assert stack[2] == {"type": "maxpool", "size": 2}
    assert stack[-1] == {"type": "dropout", "rate": 0.3}
    assert compact([*stack, {"type": "dense", "units": 10}]) == "C32k3-P2-C64k3-P2-D128-D10"
    more = parse_layers("conv32k5s2same, avgpool2, bn, sigmoid, tanh, lrelu, lrelu0.2, pool3s2")
    assert more == [
        {"type": "conv2d", "filters": 32, "kernel": 5, "stride": 2, "padding": "same"},
        {"type": "avgpool", "size": 2},
        {"type": "batchnorm"},
        {"type": "sigmoid"},
        {"type": "tanh"},
        {"type": "leaky_relu"},
        {"type": "leaky_relu", "slope": 0.2},
        {"type": "maxpool", "size": 3, "stride": 2},
    ]
    assert compact(more) == "C32k5s2same-A2-BN-P3s2"
    for s in more:
        assert s["type"] in LAYERS
    with pytest.raises(ValueError, match="layer 2 of 'conv8k3,conv8x'.*'conv8x' is not a layer"):
        parse_layers("conv8k3,conv8x")
    assert parse_shape("28x28x1") == [28, 28, 1] == parse_shape("28,28,1")


def test_stack_from_a_json_file(tmp_path):
    path = tmp_path / "stack.json"
    path.write_text('[{"type": "dense", "units": 4}, {"type": "relu"}]')
    assert parse_layers(str(path)) == [{"type": "dense", "units": 4}, {"type": "relu"}]
    path.write_text('{"type": "relu"}')
    with pytest.raises(ValueError, match="JSON list of layer dicts"):
        parse_layers(str(path))
