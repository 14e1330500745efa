"""What the pages say about the active data set when it is not MNIST (AppTest, on the 28x28
greyscale set of 3 classes and the 32x32x3 colour set of test_data_pages): Overview's texts,
the Train page's presets, the Draw page's invitation, the Inside page's test grid, the Tune
page's size bounds, and My digits, which keeps to the models that read digits."""

from __future__ import annotations

import numpy as np
import pytest
import test_data_pages
from test_data_pages import open_app, texts

from nn.services.mine import MineStore
from ui import inside_charts
from ui.mine import accuracy_text

env = test_data_pages.env  # the data folder and models of test_data_pages, as fixtures
folders = test_data_pages.folders


@pytest.fixture
def drawings(env, monkeypatch, tmp_path):
    """A drawings database of its own holding three drawn digits."""
    path = tmp_path / "mine.sqlite"
    monkeypatch.setenv("NN_MINE_DB", str(path))
    store = MineStore(path)
    rng = np.random.default_rng(0)
    for label in (1, 2, 7):
        store.add((rng.random((28, 28)) * 255).astype(np.uint8), label)
    return path


def test_overview_speaks_of_the_active_set(env):
    at = open_app(None, "colour")
    assert "on colour" in at.title[0].value
    intro = texts(at.markdown)
    assert "the data set **colour**: 200 32x32x3 colour images of 10 classes" in intro
    assert "70,000 small grey images" not in intro
    guide = texts(at.caption)
    assert "Browse the 50 test images" in guide and "per-class scores" in guide
    assert "For 28x28 greyscale sets, as MNIST" in guide
    at = open_app(None, "grey3")
    assert "see which class the network thinks it is" in texts(at.caption)
    at = open_app(None, "mnist")
    assert at.title[0].value.endswith("on MNIST")
    assert "Browse the 10,000 test images" in texts(at.caption)
    assert "per-digit scores" in texts(at.caption)


def test_train_presets_say_what_changes_on_the_set(env):
    at = open_app("pages/train.py", "colour")
    help_text = at.button(key="preset_fast").help
    assert help_text.endswith("On colour: 32x32x3 images in, 10 classes out, no augmentation.")
    at = open_app("pages/train.py", "grey3")
    assert at.button(key="preset_fast").help.endswith("On grey3: 28x28 images in, 3 classes out.")
    at = open_app("pages/train.py", "mnist")
    assert "On mnist" not in at.button(key="preset_fast").help


def test_draw_invites_to_draw_one_of_the_sets_classes(env):
    at = open_app("pages/draw.py", "grey3", "grey3-dense")
    assert not at.exception
    assert "Draw one of the classes (circle, square, star) in the black box" in texts(at.markdown)
    assert "zero to nine" not in texts(at.markdown)


def test_inside_grid_names_the_sets_classes(env):
    record = {
        "grid": {"labels": [0, 2]},
        "grid_top": {"labels": [[0, 1, 2], [1, 2, 0]], "proba": [[0.9, 0.1, 0.0], [0.6, 0.3, 0.1]]},
    }
    names = ["circle", "square", "star"]
    assert inside_charts.grid_captions(record, names) == [
        "✓ circle · circle 90% square 10% star 0%",
        "✗ square · square 60% star 30% circle 10%",
    ]
    assert inside_charts.grid_captions(record)[0] == "✓ 0 · 0 90% 1 10% 2 0%"
    at = open_app("pages/inside.py", "grey3")
    at.selectbox(key="inside_source").set_value("grey3-dense").run()
    assert not at.exception
    caption = texts(at.caption)
    assert "15 fixed test images (5 of each class)" in caption, caption
    assert "50 fixed test digits" not in caption


def test_tune_sizes_are_bounded_by_the_active_set(env):
    at = open_app("pages/tune.py", "grey3")
    # 150 training images: 25 for validation, 125 to train on; the defaults ask for more
    assert "0 = all 125 of grey3" in at.number_input(key="tune_train_size").help
    errors = texts(at.error)
    assert "Training images: 5,000 is more than the 125 of grey3's standard split" in errors
    assert "Validation images: 2,000 is more than the 25" in errors
    assert at.button(key="start_search").disabled
    at.number_input(key="tune_train_size").set_value(100).run()
    at.number_input(key="tune_val_size").set_value(0).run()
    assert "more than the" not in texts(at.error)
    assert not at.button(key="start_search").disabled
    at = open_app("pages/tune.py", "mnist")
    assert "more than the" not in texts(at.error)


def test_my_digits_keeps_to_the_models_that_read_digits(env, drawings):
    _, models = env
    at = open_app("pages/mine.py", "colour")
    assert not at.exception
    assert "4 models of other data sets are left out" in texts(at.caption)
    table = at.dataframe[0].value
    assert list(table["model"]) == ["small"]
    assert at.selectbox(key="mine_ft_base").options == ["small"]
    # the Models table's column: a dash for a model of another set
    assert accuracy_text(models / "grey3-dense.npz") == "—"
    assert accuracy_text(models / "small.npz").endswith("%")
