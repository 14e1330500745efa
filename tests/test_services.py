"""The application jobs of nn.services: split sizes, the training job, the job control."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from nn.data import MNIST, ImageSet, split_dataset
from nn.services.control import JobControl
from nn.services.training import TrainingJob, part_sizes, run_training_job


def _images(n, rng):
    y = np.arange(n) % 10
    x = rng.integers(0, 60, (n, 784)).astype(np.uint8)
    for c in range(10):
        x[y == c, c * 70 : (c + 1) * 70] = 255
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    return MNIST(*_images(1200, rng), *_images(300, rng))


@pytest.mark.parametrize(
    "scheme, val, test", [("standard", 0.1, 0.1), ("80:10:10", 0.1, 0.1), ("custom", 0.15, 0.05)]
)
def test_part_sizes_match_split_dataset(tiny, scheme, val, test):
    split = split_dataset(tiny, scheme=scheme, val_fraction=val, test_fraction=test)
    sizes = (len(split.y_train), len(split.y_val), len(split.y_test))
    assert part_sizes(scheme, len(tiny.y_train), len(tiny.y_test), val, test) == sizes
    if scheme != "standard":
        one_part = ImageSet(
            np.concatenate([tiny.x_train, tiny.x_test]),
            np.concatenate([tiny.y_train, tiny.y_test]),
        )
        split = split_dataset(one_part, scheme=scheme, val_fraction=val, test_fraction=test)
        assert part_sizes(scheme, len(one_part.y), 0, val, test)[0] == len(split.y_train)


def _job(tmp_path, **model):
    settings = {"hidden_layers": [16], "epochs": 2, "batch_size": 50, "random_state": 0}
    return TrainingJob(
        model={**settings, **model},
        data={"split": "standard", "seed": 0},
        name="job",
        source="cli",
        runs_db=str(tmp_path / "runs.sqlite"),
        save_path=str(tmp_path / "job.npz"),
        train_limit=600,
    )


def test_training_job_is_plain_data(tmp_path):
    job = _job(tmp_path)
    assert TrainingJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job


def test_training_job_trains_records_and_saves(tiny, tmp_path):
    from nn.services.runs import RunStore

    stages, events = [], []
    outcome = run_training_job(
        _job(tmp_path),
        data=tiny,
        on_event=events.append,
        listener=lambda stage, info: stages.append(stage),
    )
    assert outcome.status == "finished" and outcome.run_errors == []
    assert stages == ["prepared", "started", "inside_start", "inside_epoch", "inside_epoch"]
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2]
    assert outcome.result.split.x_train.shape[0] == 600  # train_limit
    assert outcome.result.val_accuracy == outcome.result.model.score(
        outcome.result.split.x_val, outcome.result.split.y_val
    )
    run = RunStore(tmp_path / "runs.sqlite").get_run(outcome.run_id)
    assert run.status == "finished" and run.epochs_done == 2
    assert run.metrics["val_accuracy"] == outcome.result.val_accuracy
    assert outcome.model_path is not None and outcome.model_path.exists()


def test_stop_from_another_thread(tiny, tmp_path):
    control = JobControl()
    first_batch = threading.Event()

    def on_event(event):
        first_batch.set()
        control.stop("stopped by the test")

    outcome = run_training_job(
        _job(tmp_path, epochs=50), data=tiny, on_event=on_event, control=control
    )
    assert first_batch.is_set()
    assert outcome.status == "stopped" and outcome.model_path is None
    assert outcome.message.startswith("stopped by the test")


def test_stop_before_start_records_a_stopped_run(tiny, tmp_path):
    control = JobControl()
    control.stop()
    outcome = run_training_job(_job(tmp_path), data=tiny, control=control)
    assert outcome.status == "stopped" and outcome.result is None


def test_bad_settings_raise_before_anything_is_recorded(tiny, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        run_training_job(_job(tmp_path, batch_size=10_000), data=tiny)
    with pytest.raises(ValueError, match="learning_rate"):
        run_training_job(_job(tmp_path, learning_rate=0), data=tiny)
    assert not (tmp_path / "runs.sqlite").exists()


def test_pause_blocks_until_resumed():
    control = JobControl()
    control.pause()
    returned = threading.Event()
    thread = threading.Thread(target=lambda: (control.checkpoint(), returned.set()))
    thread.start()
    assert control._blocked.wait(10) and not returned.is_set()
    control.resume()
    thread.join(10)
    assert returned.is_set() and not control.stop_requested
