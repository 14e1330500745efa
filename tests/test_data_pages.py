"""The dashboard on data sets beside MNIST, under AppTest: the sidebar's data set picker and the
models it offers, the Data sets page (upload, folder, a failed add, a name clash, remove), and
Overview, Predictions, Evaluate, Draw and Runs on a 28x28 greyscale set of 3 classes and a
32x32x3 colour set of 10 classes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from datasets_synthetic import (
    COLOUR_CLASSES,
    COLOUR_SHAPE,
    GREY_CLASSES,
    GREY_SHAPE,
    make_images,
    write_csv,
    write_npz,
)
from streamlit.testing.v1 import AppTest

from nn.data.registry import add_set, data_dir, list_sets
from nn.io.model_files import load_model, save_model
from nn.services.training import TrainingJob, run_training_job

APP = str(Path(__file__).resolve().parent.parent / "app.py")
CNN = [
    {"type": "conv2d", "filters": 4, "kernel": 3},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, small_model):
    """A data folder with the grey and the colour set, and a models folder holding a dense net
    and a small CNN trained on each, plus the MNIST model ``small``."""
    root = tmp_path_factory.mktemp("sets")
    mp = pytest.MonkeyPatch()
    mp.setenv("NN_DATA_DIR", str(root / "sets"))
    mp.setenv("NN_RUNS_DB", str(root / "runs.sqlite"))
    models = root / "models"
    models.mkdir()
    save_model(small_model[0], models / "small.npz")
    for name, shape, classes in (
        ("grey3", GREY_SHAPE, GREY_CLASSES),
        ("colour", COLOUR_SHAPE, COLOUR_CLASSES),
    ):
        x, y = make_images(200, shape, len(classes))
        write_npz(root / f"{name}.npz", x, y, n_test=50)
        add_set(root / f"{name}.npz", name, class_names=classes)
        for kind, arch in (("dense", {"hidden_layers": [24]}), ("cnn", {"layers": CNN})):
            job = TrainingJob(
                model={**arch, "epochs": 3, "batch_size": 16, "random_state": 0},
                data={"set": name},
                save_path=str(models / f"{name}-{kind}.npz"),
            )
            assert run_training_job(job).status == "finished"
    yield root, models
    mp.undo()


@pytest.fixture
def env(folders, monkeypatch, tmp_path):
    root, models = folders
    monkeypatch.setenv("NN_DATA_DIR", str(root / "sets"))
    monkeypatch.setenv("NN_MODELS_DIR", str(models))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("NN_TRAIN_LIMIT", "150")
    return root, models


def open_app(
    page: str | None = None, data_set: str | None = None, model: str | None = None
) -> AppTest:
    """The app on ``page`` with ``data_set`` and ``model`` chosen. Under AppTest the sidebar's
    elements are listed after the first run only: the choices are made in the session state,
    as the pickers' callbacks make them."""
    at = AppTest.from_file(APP, default_timeout=90)
    if data_set is not None:
        at.session_state["active_set_name"] = data_set
    if model is not None:
        at.session_state["active_model_name"] = model
    at.run()
    assert not at.exception
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


# ----------------------------------------------------------------------------- the pickers
def test_the_set_picker_offers_every_set_and_the_models_that_fit(env):
    at = open_app()
    picker = at.selectbox(key="sidebar_set")
    assert picker.options[0].startswith("mnist") and len(picker.options) == 3
    assert picker.value == "mnist"
    assert at.selectbox(key="sidebar_model").options == ["small"]
    assert "4 models of other data sets" in texts(at.sidebar.caption)
    at = open_app(data_set="colour")
    assert at.selectbox(key="sidebar_set").value == "colour"
    assert sorted(at.selectbox(key="sidebar_model").options) == ["colour-cnn", "colour-dense"]
    assert "3 models of other data sets" in texts(at.sidebar.caption)
    # the set stays chosen on another page
    at.switch_page("pages/predictions.py").run()
    assert at.session_state["active_set_name"] == "colour"
    assert "of 50 test images of **colour**" in texts(at.caption)


def test_a_chosen_model_of_another_set_is_not_used_on_this_set(env):
    at = open_app(data_set="mnist", model="grey3-cnn")
    # the choice does not fit MNIST: the pages keep an MNIST model
    assert at.selectbox(key="sidebar_model").value == "small"
    at = open_app(data_set="grey3", model="grey3-cnn")
    assert at.selectbox(key="sidebar_model").value == "grey3-cnn"


def test_the_models_page_marks_each_models_set(env):
    at = open_app("pages/models.py", "grey3")
    table = at.dataframe[0].value
    sets = dict(zip(table["name"], table["data set"], strict=True))
    assert sets == {
        "small": "mnist",
        "grey3-dense": "grey3",
        "grey3-cnn": "grey3",
        "colour-dense": "colour",
        "colour-cnn": "colour",
    }


# ----------------------------------------------------------------------------- pages per set
@pytest.mark.parametrize("data_set", ["grey3", "colour"])
def test_overview_shows_the_active_set(env, data_set):
    at = open_app("pages/overview.py", data_set)
    metrics = {m.label: m.value for m in at.metric}
    if data_set == "colour":
        assert metrics["Image size"] == "32 x 32 px, colour"
        assert metrics["Test images"] == "50"
    else:
        assert metrics["Image size"] == "28 x 28 px"
        assert "circle, square, star" in texts(at.caption)
    assert len(at.image) == 2  # the mean images and the samples


@pytest.mark.parametrize("data_set, model", [("grey3", "grey3-dense"), ("colour", "colour-cnn")])
def test_predictions_page_uses_class_names_and_colour_images(env, data_set, model):
    at = open_app("pages/predictions.py", data_set, model)
    assert not at.exception
    names = GREY_CLASSES if data_set == "grey3" else COLOUR_CLASSES
    true_box = at.selectbox(key="pred_true")
    assert true_box.options == ["any", *names]
    assert f"of 50 test images of **{data_set}**" in texts(at.caption)
    assert len(at.image[0].proto.imgs) == 1  # the grid of the page's images, one picture
    true_box.set_value(1).run()
    assert not at.exception
    assert at.selectbox(key="pred_pick").options  # images of the second class
    loaded = load_model(env[1] / f"{model}.npz")
    assert loaded.metadata_["dataset"]["class_names"] == names


@pytest.mark.parametrize("data_set, model", [("grey3", "grey3-cnn"), ("colour", "colour-dense")])
def test_evaluate_page_on_the_set(env, data_set, model):
    from nn.data.registry import load_set

    at = open_app("pages/evaluate.py", data_set, model)
    assert not at.exception
    data = load_set(data_set).data
    loaded = load_model(env[1] / f"{model}.npz")
    acc = loaded.score(data.x_test, data.y_test)
    assert {m.label: m.value for m in at.metric}["Test accuracy"] == f"{acc:.2%}"
    names = GREY_CLASSES if data_set == "grey3" else COLOUR_CLASSES
    assert list(at.dataframe[0].value["class"]) == names
    assert at.selectbox(key="eval_true").options == names
    if model.endswith("-cnn"):  # a CNN: the first convolution's filters as images
        titles = [
            str(json.loads(c.proto.spec)["layout"].get("title")) for c in at.get("plotly_chart")
        ]
        assert any("filters of the first convolution" in t for t in titles)
    else:  # weights as images only for a dense first layer on square greyscale images
        assert "first layer's weights are drawn as images" in texts(at.info)


def test_draw_is_for_28x28_greyscale_sets(env):
    at = open_app("pages/draw.py", "colour")
    assert "Drawing is for data sets of 28x28 greyscale images" in texts(at.info)
    at = open_app("pages/draw.py", "grey3")
    assert at.selectbox(key="draw_model_select").options[0].startswith("grey3")
    assert "belongs to the data set **grey3**" in texts(at.caption)


def test_runs_page_shows_the_data_set(env, folders):
    root, _ = folders
    import os

    os.environ["NN_RUNS_DB"] = str(root / "runs.sqlite")  # the fixture's training runs
    at = open_app("pages/runs.py")
    frame = at.dataframe[0].value
    assert set(frame["dataset"]) == {"grey3", "colour"}


# ----------------------------------------------------------------------------- Data sets page
@pytest.fixture
def own_sets(tmp_path, monkeypatch):
    """An empty data folder of the test's own (the models folder stays the module's)."""
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "own"))
    return tmp_path


def _npz_bytes(shape, classes, n=60, n_test=15) -> bytes:
    x, y = make_images(n, shape, len(classes))
    buf = io.BytesIO()
    np.savez(buf, x_train=x[n_test:], y_train=y[n_test:], x_test=x[:n_test], y_test=y[:n_test])
    return buf.getvalue()


def test_data_page_adds_an_upload_and_refuses_bad_input(env, own_sets):
    at = open_app("pages/data.py")
    at.text_input(key="data_name").set_value("fashionish").run()
    at.text_input(key="data_classes").set_value(", ".join(COLOUR_CLASSES)).run()
    at.file_uploader(key="data_upload").set_value(
        ("tiny.npz", _npz_bytes(COLOUR_SHAPE, COLOUR_CLASSES), "application/octet-stream")
    ).run()
    at.button(key="data_add").click().run()
    assert not at.exception
    assert "Added **fashionish" in texts(at.success)
    assert at.session_state["active_set_name"] == "fashionish"
    assert [s.name for s in list_sets()] == ["mnist", "fashionish"]
    # the same name again: refused until replacing is ticked
    at.button(key="data_add").click().run()
    assert "exists already" in texts(at.error) and "Replace a set of the same name" in texts(
        at.error
    )
    assert "--overwrite" not in texts(at.error)
    # a bad file: refused, nothing left behind
    at.text_input(key="data_name").set_value("broken").run()
    at.text_input(key="data_classes").set_value("").run()
    bad = io.BytesIO()
    np.savez(
        bad,
        x_train=np.zeros((4, 5, 5)),
        y_train=[0, 1, 0, 7],
        x_test=np.zeros((2, 6, 6)),
        y_test=[0, 1],
    )
    at.file_uploader(key="data_upload").set_value(
        ("bad.npz", bad.getvalue(), "application/octet-stream")
    ).run()
    at.button(key="data_add").click().run()
    assert "Not added" in texts(at.error) and "6x6" in texts(at.error)
    assert "nn-upload-" not in texts(at.error) and "bad.npz" in texts(at.error)
    assert sorted(p.name for p in data_dir().iterdir()) == ["fashionish"]
    # remove it: the active set falls back to MNIST
    at.selectbox(key="data_remove_name").set_value("fashionish").run()
    at.checkbox(key="data_remove_sure").check().run()
    at.button(key="data_remove").click().run()
    assert not at.exception
    assert [s.name for s in list_sets()] == ["mnist"]
    assert at.session_state["active_set_name"] == "mnist"


def test_data_page_adds_a_folder_on_the_server(env, own_sets, monkeypatch):
    monkeypatch.setenv("NN_IMPORT_ROOT", str(own_sets))
    x, y = make_images(90, GREY_SHAPE, 3)
    folder = own_sets / "csvset"
    folder.mkdir()
    write_csv(folder / "shapes.csv", x, y)
    at = open_app("pages/data.py")
    at.radio(key="data_where").set_value("A folder on the server").run()
    at.text_input(key="data_name").set_value("shapes").run()
    at.text_input(key="data_folder").set_value(str(folder)).run()
    at.button(key="data_add").click().run()
    assert not at.exception
    success = texts(at.success)
    assert "Added **shapes: 28x28 grey, 3 classes" in success and "set aside" in success
    at.text_input(key="data_folder").set_value(str(own_sets / "nowhere")).run()
    at.text_input(key="data_name").set_value("other").run()
    at.button(key="data_add").click().run()
    assert "no such file or folder" in texts(at.error)


@pytest.mark.parametrize("data_set, model", [("grey3", "grey3-cnn"), ("colour", "colour-dense")])
def test_inside_page_on_the_set(env, data_set, model):
    at = open_app("pages/inside.py", data_set)
    options = at.selectbox(key="inside_source").options
    assert model in options and "small" not in options
    at.selectbox(key="inside_source").set_value(model).run()
    assert not at.exception
