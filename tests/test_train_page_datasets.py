"""The Train page on a data set beside MNIST (AppTest): it trains on the active set, switches
augmentation off for images other than 28x28, and the saved model records the set. (Its own
module, sorted after test_train_page.py: the session's training slot outlives an AppTest.)"""

from __future__ import annotations

import test_data_pages
from test_data_pages import open_app, texts

from nn.io.model_files import load_model

env = test_data_pages.env  # the data folder and models of test_data_pages, as fixtures
folders = test_data_pages.folders


def test_train_page_trains_on_the_active_set_and_the_model_records_it(env, started_jobs):
    at = open_app("pages/train.py", "colour")
    assert "Training on the data set **colour**" in texts(at.caption)
    at.button(key="preset_best").click().run()  # augmentation on: switched off for colour
    at.number_input(key="tf_n_layers").set_value(1).run()
    at.number_input(key="tf_units_0").set_value(16).run()
    at.number_input(key="tf_epochs").set_value(1).run()
    at.number_input(key="tf_batch_size").set_value(16).run()
    at.button(key="start_training").click().run()
    (job,) = started_jobs
    job.join(90)
    assert not job.is_alive(), "training did not finish in time"
    at.run()
    assert not at.exception
    assert "Training finished" in texts(at.success), texts(at.error)
    at.text_input(key="save_name").set_value("colour-page").run()
    at.button(key="save_model").click().run()
    path = env[1] / "colour-page.npz"
    try:
        model = load_model(path)
        assert model.metadata_["dataset"]["name"] == "colour"
        assert model.n_features_in_ == 32 * 32 * 3 and len(model.classes_) == 10
    finally:
        path.unlink(missing_ok=True)
