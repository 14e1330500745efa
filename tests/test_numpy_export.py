"""``python -m nn export --format numpy``: the network as a readable NumPy program, run in a
subprocess of its own, reproduces predict_proba; ``python reader.py digit.png`` prints the
digit."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nn.cli.main import main
from nn.core.network import NeuralNetwork
from nn.io.export import export_bytes
from nn.io.model_files import load_model, save_model
from nn.io.numpy_export import module_name, numpy_program, write_numpy_program
from nn.io.plan import ExportError
from nn.services.maths import mnist_test_set

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "saved_models" / "default.npz"
SMALL_CNN = [
    {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same", "stride": 2},
    {"type": "batchnorm"},
    {"type": "leaky_relu", "slope": 0.2},
    {"type": "avgpool", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "sigmoid"},
    {"type": "maxpool", "size": 2, "stride": 1},
    {"type": "dense", "units": 8},
    {"type": "tanh"},
    {"type": "dropout", "rate": 0.1},
]

RUN = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import {module}
x = np.load(sys.argv[2])
np.save(sys.argv[3], {module}.predict_proba(x))
print(sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("nn", "PIL", "torch")))
"""


@pytest.fixture(scope="module")
def test_images():
    x, y = mnist_test_set()
    return x[:200], y[:200]


def _run_program(folder: Path, module: str, x: np.ndarray) -> np.ndarray:
    np.save(folder / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-I", "-c", RUN.format(module=module), str(folder), "x.npy", "p.npy"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # only NumPy was imported
    return np.load(folder / "p.npy")


def _imports(source: str) -> tuple[set[str], set[str]]:
    """Modules imported at the top of the program, and inside functions."""
    tree = ast.parse(source)
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {a.name for a in node.names} if isinstance(node, ast.Import) else {node.module}
            (top if node in tree.body else inner).update(n.split(".")[0] for n in names)
    return top, inner


@pytest.mark.parametrize(
    "params",
    [
        {"hidden_layers": [12, 6], "activation": ["relu", "sigmoid"]},
        {"layers": SMALL_CNN, "input_shape": [28, 28, 1]},
    ],
    ids=["dense", "cnn"],
)
def test_the_program_reproduces_predict_proba(params, test_images, tmp_path):
    x, y = test_images
    model = NeuralNetwork(epochs=1, batch_size=32, random_state=0, **params).fit(x, y)
    program, weights = write_numpy_program(model, tmp_path / "reader.py")
    assert weights == tmp_path / "reader.npz"
    source = program.read_text()
    top, inner = _imports(source)
    assert top == {"sys", "pathlib", "numpy"} and inner == {"PIL"}
    with np.load(weights, allow_pickle=False) as saved:
        assert all(saved[k].dtype == np.float32 for k in saved.files)
    got = _run_program(tmp_path, "reader", x / 255.0)
    np.testing.assert_allclose(got, model.predict_proba(x), atol=1e-5)


def test_the_shipped_cnn_as_a_program_and_reading_a_png(test_images, tmp_path):
    x, y = test_images
    assert (
        main(["export", str(DEFAULT_MODEL), "--format", "numpy", "-o", str(tmp_path / "r.py")]) == 0
    )
    assert (tmp_path / "r.py").is_file() and (tmp_path / "r.npz").is_file()
    model = load_model(DEFAULT_MODEL)
    got = _run_program(tmp_path, "r", x[:100] / 255.0)
    np.testing.assert_allclose(got, model.predict_proba(x[:100]), atol=1e-5)
    source = (tmp_path / "r.py").read_text()
    for line in ("def conv2d(", "def pool(", "def batchnorm(", "def dense(", "def softmax("):
        assert line in source
    digit = x[18].reshape(28, 28)
    Image.fromarray(255 - np.kron(digit, np.ones((4, 4), np.uint8))).save(tmp_path / "d.png")
    done = subprocess.run(
        [sys.executable, "r.py", "d.png"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(y[18])  # dark ink on white, enlarged: read as the digit


def test_cli_default_name_zip_and_refusals(tmp_path, monkeypatch, capsys):
    model = NeuralNetwork(hidden_layers=[4], epochs=1, batch_size=32, random_state=0)
    x, y = mnist_test_set()
    model.fit(x[:100], y[:100])
    save_model(model, tmp_path / "my-model.npz")
    monkeypatch.chdir(tmp_path)
    argv = ["export", "my-model", "--models-dir", str(tmp_path), "--format", "numpy"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(result["path"]).name == "my_model.py" and (tmp_path / "my_model.npz").is_file()
    assert main([*argv, "-o", str(tmp_path / "1st.py")]) == 2
    assert "cannot be imported" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "reader.txt")]) == 2
    assert not (tmp_path / "reader.txt").exists() and not (tmp_path / "reader.npz").exists()
    save_model(model, tmp_path / "kept.npz")  # the program's weights never replace a saved model
    assert main([*argv, "-o", str(tmp_path / "kept.py"), "--overwrite"]) == 2
    assert "is a saved model" in capsys.readouterr().err
    assert load_model(tmp_path / "kept.npz").n_features_in_ == 784
    with zipfile.ZipFile(__import__("io").BytesIO(export_bytes(model, "numpy"))) as archive:
        assert sorted(archive.namelist()) == ["reader/reader.npz", "reader/reader.py"]
    assert module_name("cnn-best") == "cnn_best" and module_name("class") == "model_class"
    with pytest.raises(ExportError, match="not fitted"):
        numpy_program(NeuralNetwork())
