"""ONNX export (round trip through onnxruntime, skipped without the export extra), the inference
plan both exporters read, the HTML page's structure, atomic files and the missing-extra message."""

from __future__ import annotations

import base64
import json
import re
import sys

import numpy as np
import pytest

from nn.core.network import NeuralNetwork
from nn.data import load_mnist
from nn.io.export import export_bytes, export_model
from nn.io.html_export import html_page
from nn.io.plan import INSTALL_HINT, ExportError, MissingExportExtraError, inference_plan


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def test_pixels(mnist) -> np.ndarray:
    """The 10,000 test images as float32 in [0, 1], the exports' input contract."""
    return mnist.x_test.astype(np.float32) / np.float32(255.0)


def _fit(mnist, **params) -> NeuralNetwork:
    model = NeuralNetwork(epochs=1, random_state=0, **params)
    return model.fit(mnist.x_train[:3000], mnist.y_train[:3000])


DENSE_NETWORKS = {
    "relu": {"hidden_layers": (32,)},
    "sigmoid+tanh": {"hidden_layers": (24, 16), "activation": ["sigmoid", "tanh"]},
    "leaky_relu+dropout": {
        "hidden_layers": (32, 16),
        "activation": "leaky_relu",
        "leaky_slope": 0.2,
        "dropout": 0.3,
        "input_dropout": 0.1,
    },
    "softmax regression": {"hidden_layers": ()},
    "float64": {"hidden_layers": (16,), "activation": "tanh", "dtype": "float64"},
}


@pytest.fixture(scope="module", params=list(DENSE_NETWORKS), ids=list(DENSE_NETWORKS))
def dense_model(request, mnist):
    return _fit(mnist, **DENSE_NETWORKS[request.param])


# ------------------------------------------------------------------ ONNX
def test_onnx_matches_predict_proba_on_the_test_set(dense_model, test_pixels):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from nn.io.onnx_export import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME

    data = export_bytes(dense_model, "onnx")
    proto = onnx.load_from_string(data)
    assert proto.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == (INPUT_NAME, "tensor(float)", 784)
    assert isinstance(inp.shape[0], str)  # a free batch dimension
    (probabilities,) = session.run([OUTPUT_NAME], {INPUT_NAME: test_pixels})
    expected = dense_model.predict_proba(test_pixels)
    assert probabilities.shape == (10_000, 10)
    assert np.abs(probabilities - expected).max() < 1e-5
    assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_onnx_states_its_input_contract(dense_model):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load_from_string(export_bytes(dense_model, "onnx"))
    for doc in (proto.doc_string, proto.graph.doc_string):
        assert "(n, 784)" in doc and "[0, 1]" in doc and "softmax" in doc
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["classes"] == ",".join(str(c) for c in dense_model.classes_)


def test_onnx_of_one_image_and_of_a_batch_agree(dense_model, test_pixels):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(export_bytes(dense_model, "onnx"))
    batch = session.run(None, {"pixels": test_pixels[:5]})[0]
    single = session.run(None, {"pixels": test_pixels[3:4]})[0]
    np.testing.assert_allclose(single[0], batch[3], atol=1e-6)


def test_missing_onnx_package_says_how_to_install(dense_model, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # "import onnx" raises ImportError
    target = tmp_path / "model.onnx"
    with pytest.raises(MissingExportExtraError, match="requirements-export.txt"):
        export_model(dense_model, target)
    assert not target.exists()
    assert "requirements-export.txt" in INSTALL_HINT


# ------------------------------------------------------------------ plan
def test_plan_of_a_dense_network_is_dense_and_activation_steps(mnist):
    model = _fit(mnist, hidden_layers=(8, 4), activation=["relu", "leaky_relu"], leaky_slope=0.3)
    plan = inference_plan(model)
    assert [s.kind for s in plan.steps] == ["dense", "activation", "dense", "activation", "dense"]
    assert [s.attrs.get("name") for s in plan.steps[1::2]] == ["relu", "leaky_relu"]
    assert plan.steps[3].attrs["slope"] == pytest.approx(0.3)
    assert plan.steps[0].arrays["weight"].shape == (784, 8)
    assert all(a.dtype == np.float32 for s in plan.steps for a in s.arrays.values())
    assert plan.n_features == 784 and plan.classes == list(range(10))


def test_an_unfitted_model_is_refused():
    with pytest.raises(ExportError, match="not fitted"):
        inference_plan(NeuralNetwork())


def test_unknown_format_is_refused(dense_model, tmp_path):
    with pytest.raises(ExportError, match="onnx, html"):
        export_model(dense_model, tmp_path / "model.txt")
    assert not (tmp_path / "model.txt").exists()


# ------------------------------------------------------------------ HTML (structure; the
# page's behaviour is tested in Chromium by tests/browser/test_html_export.py)
def test_html_page_is_self_contained_with_the_weights_embedded(dense_model):
    page = html_page(dense_model, title="My <reader>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert "<title>My &lt;reader&gt;</title>" in page
    assert "default-src 'none'" in page  # the page may not load or send anything
    for element in ('id="canvas"', 'id="prediction"', 'id="bars"'):
        assert element in page
    assert "window.predictPixels = predictPixels" in page
    match = re.search(r'<script type="application/json" id="model-data">(.*?)</script>', page, re.S)
    document = json.loads(match.group(1))
    first = document["steps"][0]
    weight = np.frombuffer(base64.b64decode(first["arrays"]["weight"]), dtype="<f4")
    np.testing.assert_array_equal(
        weight.reshape(first["shapes"]["weight"]), dense_model.coefs_[0].astype(np.float32)
    )
    assert document["labels"] == [str(c) for c in dense_model.classes_]


def test_html_export_writes_atomically(dense_model, tmp_path):
    target = tmp_path / "reader.html"
    target.write_text("old")
    assert export_model(dense_model, target) == target
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir()] == ["reader.html"]  # no temp file left


# ------------------------------------------------------------------ convolutional networks
def test_plan_of_a_convolutional_network(reference_cnn):
    plan = inference_plan(reference_cnn)
    kinds = [s.kind for s in plan.steps]
    assert kinds == [
        "reshape",
        "conv2d",
        "activation",
        "pool",
        "conv2d",
        "batchnorm",
        "activation",
        "pool",
        "flatten",  # the dense layer reads the 4x4x6 image as its flat vector
        "dense",
    ]
    first_conv = plan.steps[1]
    assert first_conv.attrs["pads"] == [0, 1, 0, 1]  # 'same', stride 2: the odd pixel after
    assert first_conv.attrs["output_shape"] == [14, 14, 4]
    assert plan.steps[3].attrs == {"mode": "max", "size": 3, "stride": 2}


def test_onnx_of_a_convolutional_network_matches_on_the_test_set(reference_cnn, test_pixels):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    data = export_bytes(reference_cnn, "onnx")
    ops = [node.op_type for node in onnx.load_from_string(data).graph.node]
    assert ops[:2] == ["Reshape", "Transpose"] and "Conv" in ops and "BatchNormalization" in ops
    assert ops[ops.index("Flatten") - 1] == "Transpose"  # back to channels-last first
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"pixels": test_pixels})
    expected = reference_cnn.predict_proba(test_pixels)
    assert np.abs(probabilities - expected).max() < 1e-5
    assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_an_unknown_layer_is_refused_naming_it(reference_cnn):
    from types import SimpleNamespace

    class Odd:
        layers_ = [
            *reference_cnn.layers_[:2],
            SimpleNamespace(kind="attention", config={}, params=[]),
        ]
        input_shape_ = (28, 28, 1)
        n_features_in_ = 784
        classes_ = np.arange(10)

    with pytest.raises(ExportError, match=r"layer 2: a 'attention' layer cannot be exported"):
        inference_plan(Odd())


def test_onnx_of_a_trained_cnn_matches_predict_proba_on_the_test_set(cnn_model, test_pixels):
    ort = pytest.importorskip("onnxruntime")
    kinds = [s.kind for s in inference_plan(cnn_model).steps]
    assert kinds[:2] == ["reshape", "conv2d"] and "flatten" in kinds and "dropout" not in kinds
    session = ort.InferenceSession(export_bytes(cnn_model, "onnx"))
    (probabilities,) = session.run(None, {"pixels": test_pixels})
    expected = cnn_model.predict_proba(test_pixels)
    assert np.abs(probabilities - expected).max() < 1e-5
    assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all()
