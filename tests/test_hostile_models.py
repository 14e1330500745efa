"""Hostile model files and images: impossible batch-norm statistics are refused like
non-finite weights, and only the raster formats the product means are opened (never EPS, which
would run Ghostscript); each refusal a message and exit 2."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from cli_support import call
from PIL import Image

from nn.cli.main import main
from nn.core.network import NeuralNetwork
from nn.io.model_files import ModelFileError, load_model, save_model


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))


@pytest.fixture(scope="module")
def bn_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 784), dtype=np.uint8)
    y = np.arange(60) % 10
    stack = [{"type": "dense", "units": 8}, {"type": "batchnorm"}, {"type": "relu"}]
    model = NeuralNetwork(layers=stack, epochs=1, batch_size=20, random_state=0).fit(x, y)
    return save_model(model, tmp_path_factory.mktemp("m") / "bn.npz")


def _edited(src, dst, **replace):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(replace)
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize("key", ["layer1.batchnorm.running_var", "opt.v.layer0.dense.bias"])
def test_negative_variances_are_refused_on_load(bn_file, tmp_path, key):
    with np.load(bn_file) as npz:
        value = npz[key]
    bad = _edited(bn_file, tmp_path / "bad.npz", **{key: -np.abs(value) - 1.0})
    with pytest.raises(ModelFileError, match=f"array '{key}' holds negative values"):
        load_model(bad)
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    code, out, err = call("predict", str(bad), str(image))
    assert code == 2 and "negative values" in err and "Traceback" not in err, err
    assert load_model(bn_file).predict(np.zeros((1, 784), np.float32)).shape == (1,)


def test_eps_and_other_formats_are_not_opened(bn_file, tmp_path):
    eps = tmp_path / "digit.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    code, out, err = call("predict", str(bn_file), str(eps))
    assert code == 2 and "not a PNG, JPEG, BMP, GIF, TIFF or WebP image" in err, err
    ok = tmp_path / "digit.webp"
    Image.new("L", (28, 28), 0).save(ok)
    code, out, err = call("predict", str(bn_file), str(ok), "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1]), err


# ------------------------------------------------------------------ 16: no features
@pytest.mark.parametrize("shape", [(10, 0), (10, 0, 0, 1)])
def test_x_without_features_is_refused_in_fit(shape):
    with pytest.raises(ValueError, match=r"X has 0 feature\(s\) \(shape=\(10, 0\)\)"):
        NeuralNetwork(epochs=1).fit(np.zeros(shape), np.arange(10) % 2)


def test_finetune_help_prints_a_single_percent_sign(capsys):
    with contextlib.suppress(SystemExit):
        main(["finetune", "--help"])
    text = capsys.readouterr().out
    assert "about 8% of each epoch" in " ".join(text.split()) and "%%" not in text


def test_deeply_nested_model_metadata_is_refused_not_recursed(bn_file, tmp_path):
    deep = _edited(bn_file, tmp_path / "deep.npz", __meta__=np.array("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ModelFileError, match="nested 100,000 deep"):
        load_model(deep)
    code, out, err = call("info", str(deep))
    assert code == 2 and "nested 100,000 deep" in err and "RecursionError" not in err, err


@pytest.mark.parametrize(
    "name,data",
    [("p.pkl", b"\x80\x04\x95" + bytes(range(100))), ("z.npz", b"PK\x03\x04" + b"\x00" * 200)],
)
def test_corrupt_model_files_are_described_without_python_internals(name, data):
    from nn.io.model_files import load_model_bytes

    with pytest.raises(ModelFileError, match="truncated or corrupt") as caught:
        load_model_bytes(data, name)
    text = str(caught.value)
    assert "Error" not in text and "opcode" not in text and "position" not in text, text


def test_the_exported_numpy_program_reads_raster_formats_only(bn_file, tmp_path):
    import subprocess
    import sys

    assert call("export", str(bn_file), "--format", "numpy", "-o", str(tmp_path / "r.py"))[0] == 0
    (tmp_path / "d.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n")
    done = subprocess.run(
        [sys.executable, "r.py", "d.eps"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "not a PNG, JPEG, BMP, GIF, TIFF or WebP image" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--image", "test:" + "9" * 5000], "give test:N with N a whole number"),
        (["--image", "test:١٢"], "give test:N with N a whole number"),
        (["--image", "test:0", "--position", "١,٢"], "give the row and column as R,C"),
    ],
)
def test_explain_takes_ascii_digits_only(bn_file, flags, needle):
    argv = ["explain", str(bn_file), "--layer", "0", "--unit", "0", *flags]
    code, out, err = call(*argv)
    assert code == 2 and needle in err and "set_int_max_str_digits" not in err, err
