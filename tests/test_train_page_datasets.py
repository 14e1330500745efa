"""The Train page on a data set beside MNIST (AppTest): it trains on the active set, switches
augmentation off for images other than 28x28, and the saved model records the set. (Its own
module, sorted after test_train_page.py: the session's training slot outlives an AppTest.)"""

from __future__ import annotations

import pytest
import test_data_pages
from datasets_synthetic import (
    COLOUR_CLASSES,
    COLOUR_SHAPE,
    GREY_CLASSES,
    GREY_SHAPE,
    make_images,
    write_npz,
)
from streamlit.testing.v1 import AppTest
from test_data_pages import open_app, texts

from nn.data.registry import add_set, get_info
from nn.io.model_files import load_model
from nn.services import form_checks
from nn.services.presets import fitting_presets
from nn.services.settings import form_values, search_base
from ui import train_form

env = test_data_pages.env  # the data folder and models of test_data_pages, as fixtures
folders = test_data_pages.folders


def _one_small_epoch(at: AppTest, batch_size: int) -> None:
    """Set the form to one epoch of a 16-unit hidden layer in batches of ``batch_size``."""
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(16).run()
    at.number_input(key="tf_epochs").set_value(1).run()
    at.number_input(key="tf_batch_size").set_value(batch_size).run()


def _train_until_finished(at: AppTest, started_jobs) -> None:
    """Press Start, wait for the one job (bounded), and check the page says it finished."""
    at.button(key="start_training").click().run()
    (job,) = started_jobs
    job.wait(90)
    assert job.done, "training did not finish in time"
    at.run()
    assert not at.exception
    assert "Training finished" in texts(at.success), texts(at.error)


def test_train_page_trains_on_the_active_set_and_the_model_records_it(env, started_jobs):
    at = open_app("pages/train.py", "colour")
    assert "Training on the data set **colour**" in texts(at.caption)
    at.button(key="preset_best").click().run()  # augmentation on: switched off for colour
    _one_small_epoch(at, batch_size=16)
    _train_until_finished(at, started_jobs)
    at.text_input(key="save_name").set_value("colour-page").run()
    at.button(key="save_model").click().run()
    path = env[1] / "colour-page.npz"
    try:
        model = load_model(path)
        assert model.metadata_["dataset"]["name"] == "colour"
        assert model.n_features_in_ == 32 * 32 * 3 and len(model.classes_) == 10
    finally:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- a small set
SMALL_TRAIN, SMALL_TEST = 300, 60


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """A data folder holding ``small`` (28x28 grey, 3 classes, 300 training + 60 test images),
    ``tiny12`` (12x12 grey, 3 classes: too small for the CNN presets' two 5x5 convolutions)
    and ``colour32`` (32x32x3, 10 classes)."""
    root = tmp_path_factory.mktemp("small-sets")
    for name, shape, classes in (
        ("small", GREY_SHAPE, GREY_CLASSES),
        ("tiny12", (12, 12, 1), GREY_CLASSES),
        ("colour32", COLOUR_SHAPE, COLOUR_CLASSES),
    ):
        x, y = make_images(SMALL_TRAIN + SMALL_TEST, shape, len(classes), seed=1)
        write_npz(root / f"{name}.npz", x, y, n_test=SMALL_TEST)
        add_set(root / f"{name}.npz", name, class_names=classes, folder=root / "sets")
    return root


@pytest.fixture
def small_env(small_sets, monkeypatch, tmp_path):
    monkeypatch.setenv("NN_DATA_DIR", str(small_sets / "sets"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("NN_MODELS_DIR", str(models))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.delenv("NN_TRAIN_LIMIT", raising=False)
    return small_sets, models


def data_errors(at) -> str:
    return texts(at.error)


def test_form_bounds_come_from_the_active_sets_counts(small_env):
    info = get_info("small")
    cfg = train_form.default_config()
    # standard split: 1/6 of the 300 training images for validation, 250 to train on
    assert form_checks.training_part_size(cfg, info) == 250
    assert train_form.validate({**cfg, "train_size": 250, "batch_size": 16}, info=info) == {}
    errors = train_form.validate({**cfg, "train_size": 251, "batch_size": 16}, info=info)
    assert "outside 0..250" in " ".join(errors["data"]) and "small" in " ".join(errors["data"])
    # the same number is fine on MNIST (50,000 training images in its standard split)
    assert "data" not in train_form.validate({**cfg, "train_size": 251, "batch_size": 16})
    # 80:10:10 pools the 360 images: 288 to train on
    pooled = {**cfg, "split": "80:10:10", "batch_size": 16}
    assert form_checks.training_part_size(pooled, info) == 288
    assert "data" in train_form.validate({**pooled, "train_size": 289}, info=info)
    # custom fractions of 360 images
    custom = {**pooled, "split": "custom", "val_fraction": 0.25, "test_fraction": 0.25}
    assert form_checks.training_part_size(custom, info) == 180
    # a batch larger than the training images
    errors = train_form.validate({**cfg, "train_size": 100, "batch_size": 128}, info=info)
    assert "larger than the 100 training images" in " ".join(errors["training"])


def test_train_page_offers_and_checks_the_small_sets_bounds_and_trains(small_env, started_jobs):
    at = open_app("pages/train.py", "small")
    assert "250 validation images" not in texts(at.caption)
    assert "Training on **250** images." in texts(at.caption), texts(at.caption)
    split = at.selectbox(key="tf_split")
    assert "(60 images), 50 validation images from the 300 training images" in split.help
    assert "all 360 images pooled" in split.help
    assert "250 images of small" in at.number_input(key="tf_train_size").help
    at.number_input(key="tf_train_size").set_value(251).run()
    assert "Training-set size 251 is outside 0..250" in data_errors(at)
    at.button(key="start_training").click().run()
    assert not started_jobs, "a training outside the set's bounds was started"
    at.number_input(key="tf_train_size").set_value(200).run()
    _one_small_epoch(at, batch_size=32)
    assert "outside" not in data_errors(at)
    assert "Training on **200** images." in texts(at.caption)
    _train_until_finished(at, started_jobs)
    assert "200 training, 50 validation, 60 test images" in texts(at.caption)


def test_cnn_presets_are_offered_only_where_they_fit(small_env):
    assert fitting_presets((12, 12, 1), 3)["cnn"] is not None
    assert all(problem is None for problem in fitting_presets((32, 32, 3), 10).values())
    at = open_app("pages/train.py", "tiny12")
    for name in ("cnn", "cnn-best"):
        button = at.button(key=f"preset_{name}")
        assert button.disabled and "kernel 5 is larger than its 4x4 input" in button.help
    assert not at.button(key="preset_fast").disabled
    assert "Not offered for tiny12's 12x12 images: preset cnn does not fit" in texts(at.caption)
    # on a 32x32x3 set the CNN stack applies (32 -> 28 -> 14 -> 10 -> 5); its augmentation is
    # left out of the form
    at = open_app("pages/train.py", "colour32")
    assert not at.button(key="preset_cnn-best").disabled
    at.button(key="preset_cnn-best").click().run()
    cfg = at.session_state["train_config"]
    assert cfg["preset"] == "cnn-best" and cfg["stack_mode"] == "stack" and not cfg["augment"]
    assert "Input 32x32x3. 32x32x3 -> 28x28x32" in texts(at.caption), texts(at.caption)
    assert "**Output**: dense 10 + softmax" in texts(at.markdown)
    assert not at.error, texts(at.error)


def test_cli_preset_on_a_set_it_does_not_fit_is_refused_naming_those_that_fit(small_env, capsys):
    from nn.cli.main import main

    assert main(["train", "--preset", "cnn", "--data", "tiny12", "--no-save", "-q"]) == 2
    err = capsys.readouterr().err
    assert "preset cnn does not fit tiny12 (12x12 images, 3 classes)" in err
    assert "The presets that fit tiny12: fast, best," in err and "cnn," not in err
    # a preset's augmentation is switched off for colour images, with a note; the CNN trains
    code = main(
        ["train", "--preset", "cnn-best", "--data", "colour32", "--epochs", "1",
         "--batch-size", "32", "--train-size", "64", "--no-save"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "augmentation (made for 28x28 greyscale digits) is switched off" in out.out
    # asked for explicitly, augmentation is refused
    code = main(["train", "--preset", "fast", "--data", "colour32", "--augment", "--no-save"])
    assert code == 2
    assert "switch augmentation off (--no-augment)" in capsys.readouterr().err


def test_tune_sizes_the_train_pages_network_for_the_active_set(small_env):
    from nn.services.presets import PRESETS
    from ui import tune

    cnn = search_base(form_values(PRESETS["cnn"].model_kwargs(), PRESETS["cnn"].data_kwargs()))
    settings = tune.default_settings()
    settings["train_size"], settings["val_size"] = 100, 0
    _, errors = tune.build_space(settings, cnn)  # MNIST's 28x28 images: it fits
    assert "base" not in errors
    _, errors = tune.build_space(settings, cnn, get_info("tiny12"))
    assert "kernel 5 is larger than its 4x4 input" in errors["base"]
    at = AppTest.from_file(test_data_pages.APP, default_timeout=90)
    at.session_state["active_set_name"] = "tiny12"
    at.session_state["train_config"] = form_values(
        PRESETS["cnn"].model_kwargs(), PRESETS["cnn"].data_kwargs(), "cnn"
    )
    at.run()
    at.switch_page("pages/tune.py").run()
    assert not at.exception
    assert "The Train page's settings cannot be searched" in texts(at.error)
    assert at.button(key="start_search").disabled
