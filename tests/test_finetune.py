"""Fine-tuning on the user's drawings (nn.services.finetune): the split, the oversampling, the
settings' checks, and a fine-tuning that raises the accuracy on held-out synthetic drawings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from nn.data.preprocess import preprocess_drawing
from nn.io.model_files import save_model
from nn.services.finetune import (
    check_settings,
    check_user_set,
    finetune,
    run_finetune,
    split_user_set,
    user_repeats,
)
from nn.services.runs import RunStore


def handwriting(x784: np.ndarray, angle: float = -28.0, thickness: int = 5) -> np.ndarray:
    """An MNIST digit as one particular person might draw it with a mouse: strokes thickened to
    a broad pen, the whole digit slanted, then through the Draw page's preprocessing."""
    image = Image.fromarray(x784.reshape(28, 28)).resize((280, 280), Image.Resampling.BILINEAR)
    image = image.filter(ImageFilter.MaxFilter(2 * thickness + 1))
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR)
    return preprocess_drawing(np.asarray(image)).image28.reshape(-1)


@pytest.fixture(scope="module")
def base_model(small_model):
    """``(model, data)``: 784-64-10, 3 epochs on 10,000 images (~2 s), about 91% on MNIST."""
    from nn.core.network import NeuralNetwork

    _, data = small_model
    model = NeuralNetwork(hidden_layers=(64,), epochs=3, random_state=0)
    return model.fit(data.x_train[:10_000], data.y_train[:10_000]), data


@pytest.fixture(scope="module")
def user_set(small_model):
    """Six drawings per digit in that style, from training images the models never saw."""
    _, data = small_model
    idx = np.concatenate([np.flatnonzero(data.y_train == d)[-6:] for d in range(10)])
    x = np.stack([handwriting(data.x_train[i]) for i in idx])
    return x, data.y_train[idx]


def test_split_is_seeded_per_digit_and_holds_out_every_digit_with_two():
    y = np.array([0] * 6 + [1] * 2 + [2] * 1 + [3] * 10)
    train, held = split_user_set(y, 0.3, seed=0)
    again, held_again = split_user_set(y, 0.3, seed=0)
    np.testing.assert_array_equal(held, held_again)
    assert set(train) | set(held) == set(range(len(y))) and not set(train) & set(held)
    assert np.bincount(y[held], minlength=4).tolist() == [2, 1, 0, 3]
    assert not np.array_equal(held, split_user_set(y, 0.3, seed=1)[1])


def test_repeats_make_the_drawings_the_asked_share_of_an_epoch():
    r = user_repeats(40, 60_000, 0.08)
    assert 0.079 <= 40 * r / (60_000 + 40 * r) <= 0.085
    assert user_repeats(10_000, 1_000, 0.08) == 1
    assert user_repeats(0, 1_000, 0.08) == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"user_share": 0.9}, "user_share"),
        ({"held_out": 0}, "held_out"),
        ({"augment": "some"}, "augment"),
        ({"learning_rate": 1}, "unknown"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        check_settings(settings)


def test_too_few_drawings_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        check_user_set(np.zeros((3, 784), np.uint8), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="two drawings"):
        check_user_set(np.zeros((5, 784), np.uint8), np.arange(5))


# a small model and a short run: a larger step and share than the defaults (which are for the
# full 60,000 images), so that 4 epochs over 3,000 images are enough
QUICK = {"train_limit": 3000, "epochs": 4, "learning_rate_factor": 1.0, "user_share": 0.15}


def test_finetuning_raises_the_accuracy_on_held_out_drawings(base_model, user_set):
    model, data = base_model
    x, y = user_set
    before_weights = [w.copy() for w in model.coefs_]
    result = finetune(model, x, y, data, QUICK)
    assert result.n_user_held_out == 20 and result.n_user_train == 40
    # measured: 15% -> 70% (seed 0), 15% -> 80% (seed 1)
    assert result.held_out_after >= result.held_out_before + 0.3, result
    # the given model is left alone; the tuned one continued from it
    for w, w0 in zip(model.coefs_, before_weights, strict=True):
        np.testing.assert_array_equal(w, w0)
    assert result.model.n_iter_ == model.n_iter_ + 4
    assert result.model.augment  # augmentation on
    assert result.mnist_drop < 0.02  # measured 0.8 points on this small model


def test_run_finetune_saves_and_records(small_model, user_set, tmp_path):
    model, data = small_model
    base = save_model(model, tmp_path / "base.npz")
    x, y = user_set
    result, saved, run_id = run_finetune(
        base,
        "tuned",
        x,
        y,
        models_dir=tmp_path,
        mnist=data,
        settings={"train_limit": 1000},
        runs_path=tmp_path / "runs.sqlite",
    )
    assert saved == tmp_path / "tuned.npz" and saved.is_file()
    run = RunStore(tmp_path / "runs.sqlite").get_run(run_id)
    assert run.source == "finetune" and run.status == "finished"
    assert run.metrics["mine_held_out_before"] == result.held_out_before
    with pytest.raises(ValueError, match="exists already"):
        run_finetune(base, "tuned", x, y, models_dir=tmp_path, mnist=data)


def test_a_stopped_finetuning_is_recorded_as_stopped_and_not_saved(small_model, user_set, tmp_path):
    from nn.services.control import JobControl

    model, data = small_model
    base = save_model(model, tmp_path / "base.npz")
    x, y = user_set
    control = JobControl()
    batches = []

    def on_event(event):
        batches.append(event)
        control.stop("stopped from the test")

    result, saved, run_id = run_finetune(
        base,
        "stopped",
        x,
        y,
        models_dir=tmp_path,
        mnist=data,
        settings={"train_limit": 1000},
        runs_path=tmp_path / "runs.sqlite",
        on_event=on_event,
        control=control,
    )
    assert saved is None and not (tmp_path / "stopped.npz").exists()
    assert len(batches) == 1 and result.stop_reason == "callback"
    run = RunStore(tmp_path / "runs.sqlite").get_run(run_id)
    assert run.status == "stopped" and run.message == "stopped from the test"


def test_no_word_that_the_held_out_drawings_did_not_go_up_when_they_could_not():
    """Held-out drawings all read right before the fine-tuning cannot go up: no warning then
    (it said "did not go up (100% -> 100%)"); a fall, or staying below 100%, is still named."""
    from nn.services.finetune import held_out_warning

    assert held_out_warning(1.0, 1.0) is None
    assert held_out_warning(0.4, 0.9) is None
    assert "did not go up (80% -> 80%)" in held_out_warning(0.8, 0.8)
    assert "did not go up (100% -> 90%)" in held_out_warning(1.0, 0.9)


def test_a_failing_run_database_never_loses_the_finetuned_model(small_model, user_set, tmp_path):
    model, data = small_model
    base = save_model(model, tmp_path / "base.npz")
    x, y = user_set
    (tmp_path / "runs.sqlite").mkdir()  # a folder where the database file should be
    heard = []
    result, saved, run_id = run_finetune(
        base,
        "tuned",
        x,
        y,
        models_dir=tmp_path,
        mnist=data,
        settings={"train_limit": 1000},
        runs_path=tmp_path / "runs.sqlite",
        listener=lambda stage, info: heard.append(stage),
    )
    assert saved == tmp_path / "tuned.npz" and saved.is_file() and run_id is None
    assert heard == ["run_error"]


def test_a_fine_tuning_counts_its_own_epochs_on_its_chart_and_says_how_long_is_left():
    """A model trained 25 epochs, fine-tuned 2: the progress says epoch 1/2 and the batch-loss
    chart runs from 0 to 2 (not 25 to 27); an estimate of the time left follows the progress."""
    from dataclasses import asdict

    from nn.core.events import TrainingEvent
    from ui.job_folds import FinetuneFold

    fold = FinetuneFold("base", "tuned")
    state = fold.initial()
    for batch in (1, 2, 3, 4):
        event = TrainingEvent("batch", 26, 27, batch, 4, 0.5, 0.9, None, None, 0.01, 100.0, 1.0)
        fold.event(state, asdict(event), elapsed=2.0 * batch)
    assert (state["epoch"], state["epochs"]) == (1, 2)
    assert state["batch_steps"] == [0.25, 0.5, 0.75, 1.0]
    assert state["progress"] == 0.5 and state["eta_seconds"] == 8.0
