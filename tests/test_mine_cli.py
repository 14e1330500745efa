"""``python -m nn mine ...`` and ``python -m nn finetune ...``: exit codes, messages, effects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.cli.main import main
from nn.data import load_dataset
from nn.data.drawn import drawn_inputs
from nn.io.model_files import load_model, save_model
from nn.services.mine import MineStore
from nn.services.runs import RunStore


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_MINE_DB", str(tmp_path / "mine.sqlite"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_list_import_export(env, capsys):
    np.savez(env / "good.npz", x=np.full((4, 784), 9, np.uint8), y=np.array([1, 1, 5, 0]))
    assert main(["mine", "import", "good.npz"]) == 0
    assert "imported 4 drawings" in capsys.readouterr().out
    assert main(["mine", "list", "--json"]) == 0
    listed = _last_json(capsys.readouterr().out)
    assert listed["counts"]["1"] == 2 and len(listed["drawings"]) == 4
    assert main(["mine", "list", "--label", "1"]) == 0
    assert main(["mine", "export", "out.npz"]) == 0
    data = load_dataset(env / "out.npz")
    np.testing.assert_array_equal(data.y, [1, 1, 5, 0])
    capsys.readouterr()
    assert main(["mine", "export", "out.npz"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["mine", "export", "out.txt"]) == 2


def test_a_bad_import_exits_2_with_a_message_and_writes_nothing(env, capsys):
    np.savez(env / "bad.npz", x=np.zeros((3, 784), np.uint8), y=np.array([1, 2, 13]))
    assert main(["mine", "import", "bad.npz"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "outside 0-9" in err and "Traceback" not in err
    assert MineStore().count() == 0
    assert main(["mine", "import", "missing.npz"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_broken_database_is_named(env, capsys):
    (env / "mine.sqlite").write_bytes(b"not a database at all" * 50)
    assert main(["mine", "list"]) == 2
    assert "mine.sqlite" in capsys.readouterr().err


def test_finetune_refuses_bad_input_before_training(env, small_model, capsys):
    model, _ = small_model
    save_model(model, env / "models" / "base.npz")
    np.savez(env / "few.npz", x=np.zeros((3, 784), np.uint8), y=np.array([1, 2, 3]))
    assert main(["finetune", "base", "--mine", "few.npz", "--name", "tuned"]) == 2
    assert "at least 4 drawings" in capsys.readouterr().err
    assert main(["finetune", "nope", "--mine", "few.npz", "--name", "tuned"]) == 2
    assert main(["finetune", "base", "--mine", "few.npz", "--name", "a/b"]) == 2
    assert main(["finetune", "base", "--mine", "few.npz", "--name", "t", "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["finetune", "base", "--mine", "few.npz", "--name", "base"]) == 2
    assert "exists" in capsys.readouterr().err
    assert not (env / "models" / "tuned.npz").exists()


def test_finetune_saves_a_new_model_and_records_a_run(env, small_model, capsys):
    model, _ = small_model
    save_model(model, env / "models" / "base.npz")
    x, y = drawn_inputs(2)
    MineStore().add_many(x, y)
    code = main(
        ["finetune", "base", "--name", "tuned", "--train-limit", "1000", "--json", "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    report = _last_json(capsys.readouterr().out)
    assert report["mine_held_out"] == 10 and report["mine_train"] == 10
    tuned = load_model(env / "models" / "tuned.npz")
    assert tuned.n_iter_ == model.n_iter_ + 1
    assert tuned.metadata_["metrics"]["mine_held_out_after"] == report["mine_held_out_after"]
    (run,) = RunStore().list_runs(source="finetune")
    assert run.status == "finished" and run.name == "tuned"
    assert run.config["finetune_of"] == "base"
    assert run.model_path.endswith("tuned.npz")
