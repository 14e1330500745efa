"""AppTest of the Draw page's "Keep this drawing" and of the My digits page (/mine)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import job_functions
import numpy as np
import pytest
from PIL import Image

from nn.data import load_dataset
from nn.data.drawn import drawn_digits, drawn_inputs
from nn.services.mine import MineStore
from nn.services.runs import RunStore
from ui.state import job_runner


@pytest.fixture
def page(small_env, open_app):
    """``page(path)``: that page, the small model in the models folder."""
    return open_app


def _canvas(i: int) -> Image.Image:
    canvases, _ = drawn_digits(1)
    return Image.fromarray(canvases[i])


def test_keep_stores_the_drawing_with_the_corrected_label(
    page, mine_db, inject_drawing, small_model
):
    at = page("pages/draw.py")
    assert not [b for b in at.button if b.key == "draw_keep"]  # nothing drawn: no button
    inject_drawing(at, _canvas(3))
    choice = at.segmented_control[0]
    predicted = int(choice.value)
    corrected = (predicted + 1) % 10
    choice.set_value(corrected).run()
    assert not at.exception
    assert MineStore(mine_db).count() == 0  # choosing writes nothing
    at.button(key="draw_keep").click().run()
    assert not at.exception
    (kept,) = MineStore(mine_db).list()
    full = MineStore(mine_db).get(kept.id)
    assert kept.label == corrected and kept.predicted == predicted
    assert kept.model_name == "small" and kept.source == "draw"
    assert kept.image.shape == (28, 28) and kept.image.max() > 0
    canvas = np.asarray(Image.open(io.BytesIO(full.canvas_png)))
    assert canvas.shape == (280, 280, 4)
    # the canvas is cleared for the next drawing and the toast confirms
    assert at.session_state["draw_canvas_counter"] == 1
    assert any("Kept drawing" in t.value for t in at.toast)


def _fill(mine_db: Path, per_class: int = 2) -> MineStore:
    store = MineStore(mine_db)
    x, y = drawn_inputs(per_class)
    store.add_many(x, y, source="import")
    return store


def test_mine_page_without_drawings_points_to_draw(page):
    at = page("pages/mine.py")
    assert at.title[0].value.endswith("My digits")
    assert any("Draw" in i.value for i in at.info)


def test_mine_page_gallery_counts_and_scores(page, mine_db):
    store = _fill(mine_db)
    at = page("pages/mine.py")
    assert [m.value for m in at.metric][:10] == ["2"] * 10
    assert sum(len(i.proto.imgs) for i in at.image) >= 20  # every drawing in the gallery
    (frame,) = at.dataframe
    scores = frame.value
    assert list(scores["model"]) == ["small"]
    assert scores["drawings"].iloc[0] == 20
    assert store.count() == 20


def test_relabel_and_delete_with_confirmation(page, mine_db):
    store = _fill(mine_db, 1)
    first = store.list()[0]
    at = page("pages/mine.py")
    at.selectbox(key="mine_pick").set_value(first.id).run()
    at.segmented_control(key="mine_relabel_digit").set_value(9).run()
    at.button(key="mine_relabel").click().run()
    assert not at.exception
    assert store.get(first.id).label == 9
    at.button(key="mine_delete").click().run()
    assert store.count() == 10  # asked, not yet deleted
    at.button(key="mine_delete_confirm").click().run()
    assert not at.exception
    assert store.count() == 9
    with pytest.raises(KeyError):
        store.get(first.id)


def test_export_button_is_offered_once_there_are_drawings(page, mine_db):
    at = page("pages/mine.py")
    assert at.get("download_button")[0].proto.disabled
    _fill(mine_db, 1)
    at.run()
    button = at.get("download_button")[0]
    assert button.proto.label == "Download my digits (.npz)" and not button.proto.disabled


def test_import_refuses_a_bad_file_and_takes_a_good_one(page, mine_db, tmp_path):
    store = _fill(mine_db, 1)
    at = page("pages/mine.py")
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 784), np.uint8), y=np.array([3, 11]))
    at.file_uploader(key="mine_import_file").set_value(
        ("bad.npz", buf.getvalue(), "application/octet-stream")
    )
    at.run()
    at.button(key="mine_import").click().run()
    assert not at.exception
    assert any("bad.npz" in e.value and "outside 0-9" in e.value for e in at.error)
    assert store.count() == 10
    good = io.BytesIO()
    np.savez(good, x=np.full((3, 784), 200, np.uint8), y=np.array([1, 2, 3]))
    at.file_uploader(key="mine_import_file").set_value(
        ("good.npz", good.getvalue(), "application/octet-stream")
    )
    at.run()
    at.button(key="mine_import").click().run()
    assert not at.exception
    assert store.count() == 13
    exported = tmp_path / "round.npz"
    store.export_npz(exported)
    assert len(load_dataset(exported).y) == 13


def test_wrong_drawings_show_what_the_model_said(page, mine_db, small_model):
    store = _fill(mine_db, 2)
    model, _ = small_model
    first = store.list()[0]
    said = int(model.predict(first.x[None])[0])
    store.relabel(first.id, (said + 1) % 10)  # now the model is wrong on it
    at = page("pages/mine.py")
    captions = [img.caption for i in at.image for img in i.proto.imgs]
    assert f"#{first.id}: is {(said + 1) % 10}, said {said}" in captions, captions


def test_models_page_has_a_my_digits_column(page, mine_db, small_model):
    at = page("pages/models.py")
    table = at.dataframe[0].value
    assert list(table["my digits"]) == ["—"]
    store = _fill(mine_db, 1)
    model, _ = small_model
    x, y, _ = store.arrays()
    expected = f"{np.mean(model.predict(x) == y):.1%}"
    at.run()
    assert list(at.dataframe[0].value["my digits"]) == [expected]


def test_finetune_from_the_page_saves_a_new_model(
    page, mine_db, runs_db, small_model_dir, monkeypatch, started_jobs
):
    monkeypatch.setenv("NN_TRAIN_LIMIT", "500")
    _fill(mine_db, 1)
    at = page("pages/mine.py")
    # refused before the click: the button is greyed out and says why (none can be held out)
    button = at.button(key="mine_ft_start")
    assert button.disabled and "two drawings" in button.help
    assert any("Not yet" in i.value and "two drawings" in i.value for i in at.info)
    store = MineStore(mine_db)
    x, y = drawn_inputs(1, seed=5)
    store.add_many(x, y)
    at.run()
    at.button(key="mine_ft_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = started_jobs  # a job of the runner, in a worker process
    assert job.wait(120), "the fine-tuning did not finish in time"
    assert job.runner_job.worker["pid"] != os.getpid()
    at.run()
    assert not at.exception
    assert any("Saved as" in s.value for s in at.success), [s.value for s in at.success]
    assert (small_model_dir / "small-mine.npz").is_file()
    (run,) = RunStore(runs_db).list_runs(source="finetune")
    assert run.status == "finished" and run.name == "small-mine"
    (small_model_dir / "small-mine.npz").unlink()


def test_a_queued_finetuning_shows_its_place_then_runs(
    page, mine_db, small_model_dir, monkeypatch, started_jobs
):
    """Fine-tuning waits in the server's job queue like a training, and says so."""
    monkeypatch.setenv("NN_TRAIN_LIMIT", "500")
    store = _fill(mine_db, 1)
    x, y = drawn_inputs(1, seed=5)
    store.add_many(x, y)
    at = page("pages/mine.py")
    runner = job_runner()
    holders = [
        runner.submit(job_functions.hold_until_stopped)
        for _ in range(runner.max_jobs - runner.counts()["running"])
    ]
    for holder in holders:  # every slot taken
        while holder.last_event is None:
            assert not holder.wait(0.1), holder.error
    at.button(key="mine_ft_start").click().run()
    (job,) = started_jobs
    assert job.snapshot()["status"] == "queued"
    assert "Waiting for a free worker: place 1 in the queue" in at.get("progress")[0].proto.text
    for holder in holders:
        holder.stop()
    assert job.wait(120) and job.snapshot()["status"] == "finished", job.snapshot()["error"]
    (small_model_dir / "small-mine.npz").unlink()


def test_a_broken_drawings_database_is_named_and_leaves_the_models_page_working(page, mine_db):
    mine_db.write_bytes(b"this is no database" * 100)
    at = page("pages/mine.py")
    assert any("mine.sqlite" in e.value for e in at.error)
    at.switch_page("pages/models.py").run()
    assert not at.exception
    assert list(at.dataframe[0].value["my digits"]) == ["—"]
