"""Data sets beside MNIST (nn.data.registry): adding from every format, the checks before a set
is accepted, nothing left behind by a failed add, names, models that record their set, the
``data`` command and ``--data NAME``, and the run store's dataset column."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from datasets_synthetic import (
    COLOUR_CLASSES,
    COLOUR_SHAPE,
    GREY_CLASSES,
    GREY_SHAPE,
    make_images,
    write_csv,
    write_idx,
    write_npy_pair,
    write_npz,
)

from nn.cli.main import main
from nn.data.arrays import DataError
from nn.data.registry import (
    MNIST_NAME,
    MNIST_SHA256,
    TEST_FRACTION,
    DataSetMismatch,
    add_set,
    arrays_sha256,
    check_model_fits,
    data_dir,
    get_info,
    list_sets,
    load_set,
    mnist_info,
    model_record,
    remove_set,
)
from nn.io.model_files import load_model
from nn.services.runs import SCHEMA_VERSION, RunStore
from nn.services.training import TrainingJob, run_training_job


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty data folder, models folder and run database of the test's own."""
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "sets"))
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    return tmp_path


def _leftovers(env) -> list[str]:
    root = data_dir()
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _grey(n=90, seed=0):
    return make_images(n, GREY_SHAPE, len(GREY_CLASSES), seed)


def _colour(n=100, seed=1):
    return make_images(n, COLOUR_SHAPE, len(COLOUR_CLASSES), seed)


# ----------------------------------------------------------------------------- every format
def test_mnist_is_first_and_its_digest_is_that_of_its_arrays(env):
    sets = list_sets()
    assert [s.name for s in sets] == [MNIST_NAME]
    loaded = load_set(MNIST_NAME)
    assert arrays_sha256(*loaded.data) == MNIST_SHA256 == sets[0].sha256
    assert loaded.info.counts["train"] == np.bincount(loaded.data.y_train).tolist()
    with pytest.raises(DataError, match="cannot be removed"):
        remove_set("mnist")
    with pytest.raises(DataError, match="bundled MNIST"):
        add_set(env / "x.npz", "MNIST")


def test_idx_pairs_gzipped_with_test_part(env):
    x, y = _grey()
    write_idx(env / "idx", x[30:, ..., 0], y[30:], "train")
    write_idx(env / "idx", x[:30, ..., 0], y[:30], "t10k")
    info = add_set(env / "idx", "shapes", class_names=GREY_CLASSES)
    assert info.image_shape == GREY_SHAPE and info.class_names == tuple(GREY_CLASSES)
    assert info.test_split is None
    assert info.counts == {
        "train": np.bincount(y[30:], minlength=3).tolist(),
        "test": np.bincount(y[:30], minlength=3).tolist(),
    }
    loaded = load_set("shapes")
    np.testing.assert_array_equal(loaded.data.x_train, x[30:].reshape(60, -1))
    np.testing.assert_array_equal(loaded.data.y_test, y[:30])
    doc = json.loads((data_dir() / "shapes" / "info.json").read_text())
    assert doc["sha256"] == arrays_sha256(*loaded.data) and doc["added"].endswith("Z")
    assert [s.name for s in list_sets()] == ["mnist", "shapes"]


def test_csv_without_test_part_gets_a_stratified_seeded_test_part(env):
    x, y = _grey(100)
    write_csv(env / "shapes.csv", x, y)
    info = add_set(env / "shapes.csv", "shapes")
    assert info.class_names == ("0", "1", "2")  # the default names
    assert info.test_split == {"fraction": TEST_FRACTION, "seed": 0}
    assert info.n_test == 20 and info.n_train == 80
    per_class = np.bincount(y, minlength=3) * TEST_FRACTION
    assert np.all(np.abs(np.array(info.counts["test"]) - per_class) <= 1)
    again = add_set(env / "shapes.csv", "shapes-again")
    assert again.sha256 == info.sha256  # the same seed, the same parts


def test_colour_npz_and_npy_pairs(env):
    x, y = _colour()
    write_npz(env / "colour.npz", x, y, n_test=20)
    info = add_set(env / "colour.npz", "colour", class_names=COLOUR_CLASSES)
    assert info.image_shape == COLOUR_SHAPE and info.n_classes == 10
    assert info.shape_text == "32x32x3" and not info.greyscale
    loaded = load_set("colour")
    np.testing.assert_array_equal(loaded.data.x_test, x[:20].reshape(20, -1))
    write_npy_pair(env / "npy", x, y, n_test=20)
    assert add_set(env / "npy", "colour-npy").sha256 == info.sha256
    # an images file and its labels file, flat rows of a given shape
    np.save(env / "x.npy", x.reshape(len(x), -1))
    np.save(env / "y.npy", y)
    flat = add_set((env / "x.npy", env / "y.npy"), "flat", image_shape=(32, 32, 3))
    assert flat.image_shape == COLOUR_SHAPE and flat.test_split is not None


def test_flat_csv_of_colour_rows_needs_no_shape_when_square(env):
    x, y = make_images(40, (8, 8, 3), 4)
    write_csv(env / "small.csv", x, y)
    assert add_set(env / "small.csv", "small").image_shape == (8, 8, 3)
    x, y = make_images(40, (6, 10, 1), 4)
    write_csv(env / "wide.csv", x, y)
    with pytest.raises(DataError, match="give the image shape of the rows"):
        add_set(env / "wide.csv", "wide")
    assert add_set(env / "wide.csv", "wide", image_shape=(6, 10, 1)).image_shape == (6, 10, 1)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "write, message",
    [
        (
            lambda p: np.savez(
                p,
                x_train=np.zeros((4, 5, 5)),
                y_train=[0, 1, 0, -1],
                x_test=np.zeros((2, 5, 5)),
                y_test=[0, 1],
            ),
            "outside 0-999",
        ),
        (
            lambda p: np.savez(
                p,
                x_train=np.zeros((4, 5, 5)),
                y_train=[0, 1, 0, 1],
                x_test=np.zeros((2, 6, 6)),
                y_test=[0, 1],
            ),
            "the test images 6x6",
        ),
        (
            lambda p: np.savez(
                p,
                x_train=np.full((4, 5, 5), 300),
                y_train=[0, 1, 0, 1],
                x_test=np.zeros((2, 5, 5)),
                y_test=[0, 1],
            ),
            "outside 0-255",
        ),
        (
            lambda p: np.savez(
                p,
                x_train=np.zeros((4, 5, 5)),
                y_train=[0, 1, 0],
                x_test=np.zeros((2, 5, 5)),
                y_test=[0, 1],
            ),
            "4 images but 3 labels",
        ),
        (
            lambda p: np.savez(
                p,
                x_train=np.zeros((4, 5, 5)),
                y_train=[0, 0, 0, 0],
                x_test=np.zeros((2, 5, 5)),
                y_test=[0, 0],
            ),
            "2 or more classes",
        ),
        (lambda p: np.savez(p, x=np.zeros((4, 5, 5))), "no labels"),
        (lambda p: p.write_bytes(b"not a zip"), "not an .npz"),
    ],
)
def test_a_failed_add_leaves_nothing_behind(env, write, message):
    write(env / "bad.npz")
    with pytest.raises(DataError, match=message):
        add_set(env / "bad.npz", "bad")
    assert _leftovers(env) == []


def test_class_names_are_checked(env):
    x, y = _grey()
    write_npz(env / "g.npz", x, y, 30)
    with pytest.raises(DataError, match="labels go up to 2, but 2 class names"):
        add_set(env / "g.npz", "g", class_names=["a", "b"])
    with pytest.raises(DataError, match="given twice"):
        add_set(env / "g.npz", "g", class_names=["a", "b", "a"])
    with pytest.raises(DataError, match="data set name"):
        add_set(env / "g.npz", "../escape")
    assert _leftovers(env) == []
    # more names than labels: a class without images is refused, not stored empty
    with pytest.raises(
        DataError, match=r"1 of 4 classes have fewer than 2 training images \('d'\)"
    ):
        add_set(env / "g.npz", "g", class_names=["a", "b", "c", "d"])
    assert _leftovers(env) == []


def test_a_name_clash_needs_overwrite(env):
    x, y = _grey()
    write_npz(env / "g.npz", x, y, 30)
    first = add_set(env / "g.npz", "shapes")
    write_npz(env / "g2.npz", x[::-1], y[::-1], 30)
    with pytest.raises(DataError, match="exists already"):
        add_set(env / "g2.npz", "Shapes")
    assert get_info("shapes").sha256 == first.sha256
    second = add_set(env / "g2.npz", "shapes", overwrite=True)
    assert second.sha256 != first.sha256 == first.sha256
    assert get_info("shapes").sha256 == second.sha256
    assert _leftovers(env) == ["shapes"]
    remove_set("shapes")
    assert _leftovers(env) == [] and [s.name for s in list_sets()] == ["mnist"]


def test_changed_arrays_are_refused_on_load(env):
    x, y = _grey()
    write_npz(env / "g.npz", x, y, 30)
    add_set(env / "g.npz", "g")
    stored = data_dir() / "g" / "arrays.npz"
    with np.load(stored) as f:
        arrays = dict(f)
    arrays["x_train"] = arrays["x_train"].copy()
    arrays["x_train"][0, 0] ^= 1
    np.savez(stored, **arrays)
    with pytest.raises(DataError, match="SHA-256 differs"):
        load_set("g")


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize(
    "shape, classes, layers",
    [
        (GREY_SHAPE, GREY_CLASSES, None),
        (
            GREY_SHAPE,
            GREY_CLASSES,
            [
                {"type": "conv2d", "filters": 4, "kernel": 3},
                {"type": "relu"},
                {"type": "maxpool", "size": 2},
            ],
        ),
        (COLOUR_SHAPE, COLOUR_CLASSES, None),
        (
            COLOUR_SHAPE,
            COLOUR_CLASSES,
            [
                {"type": "conv2d", "filters": 4, "kernel": 3},
                {"type": "relu"},
                {"type": "maxpool", "size": 2},
            ],
        ),
    ],
)
def test_models_train_on_a_set_and_record_it(env, shape, classes, layers):
    x, y = make_images(150, shape, len(classes))
    write_npz(env / "s.npz", x, y, 30)
    info = add_set(env / "s.npz", "s", class_names=classes)
    model = {"epochs": 3, "random_state": 0, "batch_size": 16}
    model.update({"layers": layers} if layers else {"hidden_layers": [32]})
    job = TrainingJob(model=model, data={"path": "s"}, save_path=str(env / "m.npz"))
    outcome = run_training_job(job)
    assert outcome.status == "finished" and outcome.data["set"] == "s"
    assert outcome.result.test_accuracy > 1.5 / len(classes)  # above chance
    loaded = load_model(env / "m.npz")
    assert loaded.metadata_["dataset"] == info.record()
    if layers:
        assert tuple(loaded.input_shape_) == shape
    check_model_fits(loaded, info)
    with pytest.raises(DataSetMismatch, match="cannot be used on 'mnist'"):
        check_model_fits(loaded, mnist_info())
    (run,) = RunStore().list_runs()
    assert run.dataset == "s" and run.config["data"]["set"] == "s"


def test_a_model_without_a_record_is_an_mnist_model(env, small_model_dir):
    model = load_model(small_model_dir / "small.npz")
    assert model_record(model) == mnist_info().record()
    check_model_fits(model, mnist_info())
    x, y = _colour()
    write_npz(env / "c.npz", x, y, 20)
    colour = add_set(env / "c.npz", "colour")
    with pytest.raises(DataSetMismatch, match=r"'mnist' \(28x28 images, 10 classes\).*'colour'"):
        check_model_fits(model, colour)
    x, y = _grey()
    write_npz(env / "g.npz", x, y, 30)
    three = add_set(env / "g.npz", "three")  # MNIST's shape, 3 classes
    with pytest.raises(DataSetMismatch, match="3 classes"):
        check_model_fits(model, three)


# ----------------------------------------------------------------------------- command line
def test_data_command_and_data_name(env, capsys):
    x, y = _colour(80)
    write_npz(env / "c.npz", x, y, 20)
    assert (
        main(
            [
                "data",
                "add",
                str(env / "c.npz"),
                "--name",
                "colour",
                "--classes",
                ",".join(COLOUR_CLASSES),
                "--json",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["name"] == "colour" and row["image_shape"] == [32, 32, 3]
    assert main(["data", "add", str(env / "c.npz"), "--name", "colour"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["data", "add", str(env / "c.npz"), "--name", "colour", "--overwrite"]) == 0
    assert main(["data", "add", str(env / "nothing.npz"), "--name", "x"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["data", "add", str(env / "c.npz"), "--name", "bad", "--shape", "3x3x2"]) == 2
    assert "1 or 3 channels" in capsys.readouterr().err
    assert _leftovers(env) == ["colour"]
    capsys.readouterr()
    assert main(["data", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [s["name"] for s in listed["sets"]] == ["mnist", "colour"]
    assert (
        main(
            [
                "train",
                "--data",
                "colour",
                "--epochs",
                "1",
                "--hidden-layers",
                "16",
                "--batch-size",
                "16",
                "--name",
                "c1",
                "-q",
            ]
        )
        == 0
    )
    assert main(["evaluate", "c1", "--data", "colour", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 20
    assert main(["evaluate", "c1"]) == 2
    err = capsys.readouterr().err
    assert "trained on 'colour' (32x32x3 images, 10 classes)" in err and "Traceback" not in err
    assert main(["train", "--data", "no-such-set", "--epochs", "1"]) == 2
    assert "no data set of that name" in capsys.readouterr().err
    # a preset's augmentation is switched off for colour images, with a note; asked for with
    # --augment, it is refused
    main(["train", "--data", "colour", "--preset", "best", "--epochs", "1", "--no-save"])
    assert "augmentation (made for 28x28 greyscale digits) is switched off" in (
        capsys.readouterr().out
    )
    assert main(["train", "--data", "colour", "--augment", "--epochs", "1"]) == 2
    assert "--no-augment" in capsys.readouterr().err
    assert main(["data", "remove", "mnist"]) == 2
    assert main(["data", "remove", "colour"]) == 0
    assert main(["data", "remove", "colour"]) == 2
    assert main(["data"]) == 2


# ----------------------------------------------------------------------------- run store
_V1_RUNS = """
CREATE TABLE searches (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, status TEXT NOT NULL,
    space TEXT NOT NULL DEFAULT '{}', started_at REAL NOT NULL, finished_at REAL,
    best_run_id INTEGER, message TEXT, pid INTEGER, hostname TEXT);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, source TEXT NOT NULL,
    status TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}', seed INTEGER,
    started_at REAL NOT NULL, finished_at REAL, duration_seconds REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0, metrics TEXT NOT NULL DEFAULT '{}', model_path TEXT,
    message TEXT, search_id INTEGER REFERENCES searches(id) ON DELETE SET NULL, pid INTEGER,
    hostname TEXT);
CREATE TABLE epochs (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    learning_rate REAL, seconds REAL, PRIMARY KEY (run_id, epoch)) WITHOUT ROWID;
INSERT INTO runs (name, source, status, started_at, finished_at)
    VALUES ('old', 'cli', 'finished', 1, 2);
PRAGMA user_version = 1;
"""


def test_a_version_1_run_store_gains_the_dataset_column(tmp_path):
    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1_RUNS)
    store = RunStore(path)
    (old,) = store.list_runs()
    assert old.name == "old" and old.dataset == "mnist"
    new = store.start_run({"data": {"set": "colour"}}, name="new")
    assert store.get_run(new).dataset == "colour"
    assert [r.name for r in store.list_runs(dataset="mnist")] == ["old"]
    assert [r.name for r in store.list_runs(dataset=["colour"])] == ["new"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert RunStore(path).list_runs(order_by="dataset")[0].summary()["dataset"] in (
        "mnist",
        "colour",
    )


def test_models_of_other_image_sizes_are_not_exported(env, capsys):
    x, y = _colour(60)
    write_npz(env / "c.npz", x, y, 20)
    add_set(env / "c.npz", "colour")
    job = TrainingJob(
        model={"hidden_layers": [8], "epochs": 1, "batch_size": 8, "random_state": 0},
        data={"set": "colour"},
        save_path=str(env / "models" / "c1.npz"),
    )
    run_training_job(job)
    assert main(["export", "c1", "--format", "html", "-o", str(env / "c1.html")]) == 2
    err = capsys.readouterr().err
    assert "3,072 inputs (trained on the data set 'colour')" in err and "784 pixels" in err
    assert not (env / "c1.html").exists()


def test_finetuning_on_drawn_digits_refuses_a_model_of_another_set(env):
    from nn.services.finetune import run_finetune

    x, y = _grey(60)
    write_npz(env / "g.npz", x, y, 15)
    add_set(env / "g.npz", "three")  # MNIST's image size, 3 classes
    job = TrainingJob(
        model={"hidden_layers": [8], "epochs": 1, "batch_size": 8, "random_state": 0},
        data={"set": "three"},
        save_path=str(env / "models" / "g1.npz"),
    )
    run_training_job(job)
    drawings = np.zeros((20, 784), np.uint8)
    with pytest.raises(DataSetMismatch, match="model 'g1' was trained on 'three'"):
        run_finetune(
            env / "models" / "g1.npz",
            "g2",
            drawings,
            np.arange(20) % 10,
            models_dir=env / "models",
            mnist=load_set("mnist").data,
        )
    assert not (env / "models" / "g2.npz").exists()
