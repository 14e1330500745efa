"""The Models page with models of several data sets (AppTest): the table says which set each
model belongs to and whether it fits the active one; making a model of another set active
switches to its set when that set is here and is refused with what is wrong otherwise; an
uploaded model of another set is measured only on a set it fits, and said to be of its set. A
model file whose data set record disagrees with its own inputs is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import test_data_pages
from test_data_pages import open_app, texts

from nn import NeuralNetwork
from nn.data.registry import check_model_fits, get_info, model_record
from nn.io.model_files import ModelFileError, load_model, load_model_bytes, save_model

env = test_data_pages.env  # the data folder and models of test_data_pages, as fixtures
folders = test_data_pages.folders
PAGE = "pages/models.py"


@pytest.fixture
def models(env, monkeypatch, tmp_path):
    """A models folder of its own: ``small`` (MNIST), ``colour-dense`` (the colour set) and
    ``gone`` (a 32x32x3 model of a set named ``gone`` that is not in the data folder)."""
    _, shared = env
    folder = tmp_path / "own-models"
    folder.mkdir()
    for name in ("small", "colour-dense"):
        shutil.copy(shared / f"{name}.npz", folder / f"{name}.npz")
    model = load_model(shared / "colour-dense.npz")
    record = {**model.metadata_["dataset"], "name": "gone", "sha256": "0" * 64}
    save_model(model, folder / "gone.npz", dataset=record)
    monkeypatch.setenv("NN_MODELS_DIR", str(folder))
    return folder


def _table(at) -> dict[str, tuple[str, str]]:
    table = at.dataframe[0].value
    fits = next(c for c in table.columns if c.startswith("fits "))
    return {
        name: (data_set, fit)
        for name, data_set, fit in zip(table["name"], table["data set"], table[fits], strict=True)
    }


def test_table_tells_each_models_set_and_whether_it_fits(models):
    at = open_app(PAGE, "mnist")
    assert "fits mnist" in at.dataframe[0].value.columns
    assert _table(at) == {
        "small": ("mnist", "yes"),
        "colour-dense": ("colour", "no"),
        "gone": ("gone", "no"),
    }
    at = open_app(PAGE, "colour")
    assert _table(at)["colour-dense"] == ("colour", "yes") and _table(at)["small"][1] == "no"


def test_making_a_model_of_another_set_active_switches_to_its_set(models):
    at = open_app(PAGE, "mnist")
    at.selectbox(key="models_pick").set_value("colour-dense").run()
    at.button(key="load_model").click().run()
    assert not at.exception
    assert at.session_state["active_set_name"] == "colour"
    assert at.session_state["active_model_name"] == "colour-dense"


def test_a_model_whose_set_is_not_here_is_refused_with_what_is_wrong(models):
    at = open_app(PAGE, "mnist")
    at.selectbox(key="models_pick").set_value("gone").run()
    at.button(key="load_model").click().run()
    assert not at.exception
    message = texts(at.error)
    assert "**gone** was trained on 'gone' (32x32x3 images, 10 classes)" in message
    assert "cannot be used on **mnist** (28x28 images, 10 classes)" in message
    assert "Add its data set on the **Data sets** page" in message
    assert at.session_state["active_set_name"] == "mnist"
    assert at.session_state["active_model_name"] != "gone"


def _upload(at, name: str, data: bytes):
    at.file_uploader(key="model_upload_0").set_value((name, data, "application/octet-stream"))
    return at.run()


def test_an_upload_is_measured_on_the_set_it_fits_and_named_by_its_set(models):
    data = (models / "colour-dense.npz").read_bytes()
    # on MNIST: not measured, said to be a colour model that is listed under its set
    at = _upload(open_app(PAGE, "mnist"), "colour-up.npz", data)
    assert not at.exception
    assert "as the file claims (not measured here)" in texts(at.success)
    warning = texts(at.warning)
    assert "trained on 'colour' (32x32x3 images, 10 classes)" in warning
    assert "does not fit the active data set **mnist**" in warning
    assert "is listed under its data set **colour**" in warning
    # on its own set: measured on that set's test part
    at = _upload(open_app(PAGE, "colour"), "colour-up.npz", data)
    assert "measured here on colour's test part" in texts(at.success), texts(at.success)
    assert "does not fit the active data set" not in texts(at.warning)
    # a model of a set that is not here: kept, but no page can use it; not made active
    at = _upload(open_app(PAGE, "mnist"), "gone-up.npz", (models / "gone.npz").read_bytes())
    assert "no page can use it until its data set is added" in texts(at.warning)
    at.button(key="save_upload").click().run()
    assert not at.exception
    assert (models / "gone-up.npz").is_file()
    assert at.session_state["active_model_name"] != "gone-up"
    assert at.session_state["active_set_name"] == "mnist"


def test_a_record_that_disagrees_with_the_models_inputs_is_refused(models, tmp_path):
    model = load_model(models / "colour-dense.npz")  # takes 3072 inputs
    colour = dict(model.metadata_["dataset"])  # (saving updates the model's metadata)
    record = {**colour, "image_shape": [28, 28, 1]}
    path = save_model(model, tmp_path / "liar.npz", dataset=record)
    with pytest.raises(ModelFileError, match="of 28x28 images .784 values each. but takes 3,072"):
        load_model(path)
    record = {**colour, "class_names": ["a", "b", "c"]}
    path = save_model(model, tmp_path / "liar3.npz", dataset=record)
    with pytest.raises(ModelFileError, match="of 3 classes but has 10 classes"):
        load_model_bytes(path.read_bytes(), "liar3.npz")
    # and the page says so, nothing saved
    at = _upload(open_app(PAGE, "colour"), "liar3.npz", path.read_bytes())
    assert "refused and nothing was saved" in texts(at.error)
    assert not (models / "liar3.npz").exists()


def test_a_model_without_a_record_of_other_inputs_is_not_an_mnist_model(env):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 32 * 32 * 3)).astype(np.uint8)
    y = np.arange(60) % 10
    model = NeuralNetwork(hidden_layers=[4], epochs=1, batch_size=20, random_state=0).fit(x, y)
    record = model_record(model)
    assert record["name"] is None and record["image_shape"] == [32, 32, 3]
    with pytest.raises(ValueError, match="a set it does not name .32x32x3 images, 10 classes."):
        check_model_fits(model, get_info("mnist"))
    check_model_fits(model, get_info("colour"))  # the shape and classes of the colour set
