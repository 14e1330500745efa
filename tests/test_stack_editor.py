"""The Train page's stack editor under AppTest: add, remove, reorder, settings with the shapes
beside them, a bad stack refused next to its layer, the stack reaching the training job; and the
shape inference on its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nn.core.config import configure, describe_stack
from nn.core.layer_spec import to_line
from nn.core.params import ParameterError
from ui.stack_editor import faults, infer_shapes, shape_chain

APP = str(Path(__file__).resolve().parent.parent / "app.py")
CNN = [
    {"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 64, "kernel": 3, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "dense", "units": 128},
    {"type": "relu"},
]


def test_shapes_and_parameters_from_the_engine():
    rows = infer_shapes(CNN)
    assert [r.shape_text for r in rows] == [
        "28x28x32",
        "28x28x32",
        "14x14x32",
        "14x14x64",
        "14x14x64",
        "7x7x64",
        "128",
        "128",
        "10",
    ]
    assert rows[0].n_parameters == 3 * 3 * 32 + 32
    assert rows[6].n_parameters == 7 * 7 * 64 * 128 + 128
    assert shape_chain(rows) == "28x28x1 -> 28x28x32 -> 14x14x32 -> 14x14x64 -> 7x7x64 -> 128 -> 10"
    assert faults(rows) == []
    assert to_line(CNN) == "conv32k3same,relu,pool2,conv64k3same,relu,pool2,dense128,relu"


def test_an_impossible_stack_names_its_layer():
    rows = infer_shapes([{"type": "dense", "units": 16}, {"type": "conv2d", "filters": 4}])
    assert rows[1].fault and "image input" in rows[1].fault
    assert rows[2].output_shape is None
    assert faults(rows)[0].startswith("Stack: layer 2 (conv2d):")
    pool = infer_shapes([{"type": "maxpool", "size": 2}] * 5)
    assert [r.fault is not None for r in pool].index(True) == 4  # 28 -> 14 -> 7 -> 3 -> 1 -> ?


def test_the_editor_the_engine_and_info_number_layers_alike(tmp_path):
    """One shape inference (Sequential's), one numbering from 1: the editor's fault, the
    engine's (what the train command prints) and info's table name the same layer."""
    stack = [{"type": "dense", "units": 16}, {"type": "conv2d", "filters": 4}]
    assert faults(infer_shapes(stack))[0].startswith("Stack: layer 2 (conv2d): ")
    with pytest.raises(ParameterError, match=r"^layers: layer 2 \(conv2d\): ") as err:
        configure({"layers": stack, "input_dropout": 0.2, "input_shape": [28, 28, 1]})
    assert faults(infer_shapes(stack))[0].endswith(str(err.value).split(": ", 2)[2])
    rows = describe_stack({"layers": CNN[:3], "input_dropout": 0.2}, (28, 28, 1), 10)
    assert [r["label"] for r in rows] == ["input", "1", "2", "3", "output"]
    assert [r["type"] for r in rows] == ["dropout", "conv2d", "relu", "maxpool", "dense"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("NN_MODELS_DIR", str(models))
    monkeypatch.setenv("NN_TRAIN_LIMIT", "600")
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    return models


def stack_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    at.session_state["train_config"]["stack"] = []
    at.session_state["train_config"]["stack_ids"] = []
    at.button_group(key="tf_stack_mode").set_value("stack").run()
    assert not at.exception
    return at


def add(at: AppTest, kind: str) -> None:
    at.selectbox(key="tf_stk_add_kind").set_value(kind).run()
    at.button(key="tf_stk_add").click().run()
    assert not at.exception


def stack(at: AppTest) -> list[dict]:
    return at.session_state["train_config"]["stack"]


def markdown(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_add_set_reorder_remove(env):
    at = stack_page()
    # switching to an empty stack starts from the dense layers; clear it to build from scratch
    while stack(at):
        at.button(key="tf_stk_remove_0").click().run()
    add(at, "conv2d")
    add(at, "relu")
    add(at, "maxpool")
    assert [s["type"] for s in stack(at)] == ["conv2d", "relu", "maxpool"]
    assert "→ **28x28x32**, 320 parameters" in markdown(at)
    assert "→ **14x14x32**" in markdown(at)
    # a setting changes the shapes shown
    row_id = at.session_state["train_config"]["stack_ids"][0]
    at.number_input(key=f"tf_stk_{row_id}_filters").set_value(8).run()
    at.selectbox(key=f"tf_stk_{row_id}_padding").set_value("valid").run()
    assert stack(at)[0] == {
        "type": "conv2d",
        "filters": 8,
        "kernel": 3,
        "stride": 1,
        "padding": "valid",
    }
    assert "→ **26x26x8**, 80 parameters" in markdown(at)
    assert "→ **13x13x8**" in markdown(at)
    # reorder: the pooling layer up twice, first in the stack; its widgets move with it
    at.button(key="tf_stk_up_2").click().run()
    at.button(key="tf_stk_up_1").click().run()
    assert [s["type"] for s in stack(at)] == ["maxpool", "conv2d", "relu"]
    assert at.number_input(key=f"tf_stk_{row_id}_filters").value == 8
    assert "→ **14x14x1**" in markdown(at) and "→ **12x12x8**" in markdown(at)
    at.button(key="tf_stk_down_0").click().run()
    assert [s["type"] for s in stack(at)] == ["conv2d", "maxpool", "relu"]
    at.button(key="tf_stk_remove_1").click().run()
    assert [s["type"] for s in stack(at)] == ["conv2d", "relu"]
    # the stack reaches the model settings the job is given
    from nn.services.settings import model_kwargs

    assert model_kwargs(at.session_state["train_config"])["layers"] == stack(at)
    assert "Compact: C8k3-D10" in " ".join(c.value for c in at.caption)


def test_a_bad_stack_is_refused_next_to_its_layer(env):
    at = stack_page()
    while stack(at):
        at.button(key="tf_stk_remove_0").click().run()
    add(at, "dense")
    add(at, "conv2d")
    errors = [e.value for e in at.error]
    assert any("needs an image input" in e for e in errors)
    at.button(key="start_training").click().run()
    assert not at.exception
    assert any("Fix the settings" in e.value and "layer 2 (conv2d)" in e.value for e in at.error)
    assert not at.button(key="start_training").disabled  # nothing started


def test_the_one_line_form_and_a_short_cnn_training(env):
    at = stack_page()
    at.text_input(key="tf_stk_text").set_value("conv4k3,relu,pool2,dense16,relu").run()
    at.button(key="tf_stk_apply_text").click().run()
    assert [s["type"] for s in stack(at)] == ["conv2d", "relu", "maxpool", "dense", "relu"]
    assert "28x28x1 -> 26x26x4 -> 13x13x4 -> 16 -> 10" in " ".join(c.value for c in at.caption)
    at.text_input(key="tf_stk_text").set_value("conv4k3,wobble").run()
    at.button(key="tf_stk_apply_text").click().run()
    assert any("'wobble' is not a layer" in e.value for e in at.error)
    assert len(stack(at)) == 5  # unchanged
    at.number_input(key="tf_epochs").set_value(2).run()
    at.number_input(key="tf_batch_size").set_value(20).run()
    at.button(key="start_training").click().run()
    end = time.time() + 120
    while time.time() < end:
        at.run()
        assert not at.exception
        if not at.button(key="start_training").disabled:
            break
        time.sleep(0.2)
    shown = [e.value for e in [*at.success, *at.error, *at.warning]]
    assert any("Training finished" in s.value for s in at.success), shown


def test_a_cnn_preset_is_one_click(env, monkeypatch):
    from nn.services.presets import PRESETS, Preset

    preset = Preset(
        name="cnn-test",
        description="a small CNN",
        model={"layers": CNN[:3], "epochs": 1, "random_state": 0},
    )
    monkeypatch.setitem(PRESETS, "cnn-test", preset)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    at.button(key="preset_fast").click().run()
    assert at.session_state["train_config"]["stack_mode"] == "dense"
    at.button(key="preset_cnn-test").click().run()
    assert not at.exception
    cfg = at.session_state["train_config"]
    assert cfg["stack_mode"] == "stack" and at.button_group(key="tf_stack_mode").value == "stack"
    assert [s["type"] for s in stack(at)] == ["conv2d", "relu", "maxpool"]
    assert "→ **14x14x32**" in markdown(at)
    from nn.services.settings import model_kwargs

    assert model_kwargs(cfg)["layers"] == CNN[:3]
    at.button(key="preset_fast").click().run()
    assert at.session_state["train_config"]["stack_mode"] == "dense"
    assert at.number_input(key="tf_n_layers").value == 2


def test_a_huge_convolution_is_refused_before_anything_is_made():
    # its kernel's arrays would be petabytes: the layer refuses it from the settings alone
    rows = infer_shapes([{"type": "conv2d", "filters": 10**9, "kernel": 999, "padding": "same"}])
    assert "the limit is 20,000,000" in rows[0].fault
    assert rows[1].output_shape is None


def test_starting_points_are_one_click_each(env):
    """Empty, LeNet-5, the cnn preset's stack and the dense layers: one click each replaces the
    stack (building a CNN from the dense default took 21 clicks)."""
    from nn.services.presets import PRESETS
    from ui.stack_editor import LENET5

    at = stack_page()
    at.button(key="tf_stk_start_lenet5").click().run()
    assert stack(at) == LENET5
    assert "28x28x1 -> 28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 -> 120 -> 84 -> 10" in " ".join(
        c.value for c in at.caption
    )
    at.button(key="tf_stk_start_empty").click().run()
    assert stack(at) == []
    at.button(key="tf_stk_start_cnn").click().run()
    assert stack(at) == PRESETS["cnn"].model_kwargs()["layers"]
    at.button(key="tf_stk_start_dense").click().run()
    assert [s["type"] for s in stack(at)][:2] == ["dense", "relu"]
    assert not at.exception


def test_a_kernel_larger_than_its_input_gets_a_word(env):
    """A 40x40 kernel with padding 'same' on 28x28 images is allowed (the engine pads), but the
    row says most of the kernel reads zeros; a 5x5 kernel gets no such word."""
    rows = infer_shapes([{"type": "conv2d", "filters": 4, "kernel": 40, "padding": "same"}])
    assert rows[0].fault is None and rows[0].output_shape == (28, 28, 4)
    assert "40x40 kernel is larger than its 28x28 input" in rows[0].note
    assert infer_shapes(CNN)[0].note is None
    at = stack_page()
    at.text_input(key="tf_stk_text").set_value("conv4k40same,relu").run()
    at.button(key="tf_stk_apply_text").click().run()
    assert any("larger than its 28x28 input" in w.value for w in at.warning)
