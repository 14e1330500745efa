"""Workspaces: ids from the identity only, folders that never reach each other, quotas."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nn.services import workspace as ws
from nn.services.workspace import QuotaError, Workspace, WorkspaceError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _folders(tmp_path, monkeypatch):
    monkeypatch.setenv(ws.WORKSPACES_DIR_ENV, str(tmp_path / "workspaces"))
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("NN_RUNS_DB", str(tmp_path / "runs.sqlite"))


def test_id_depends_on_issuer_and_subject_only():
    a = ws.workspace_id("http://idp", "alice")
    assert a == ws.workspace_id("http://idp", "alice")
    assert a != ws.workspace_id("http://idp", "bob")
    assert a != ws.workspace_id("http://other-idp", "alice")
    # The separator keeps "ab" + "c" apart from "a" + "bc".
    assert ws.workspace_id("ab", "c") != ws.workspace_id("a", "bc")
    assert len(a) == 25 and a.startswith("u")


@pytest.mark.parametrize("issuer, subject", [("", "alice"), ("http://idp", "")])
def test_id_needs_issuer_and_subject(issuer, subject):
    with pytest.raises(WorkspaceError):
        ws.workspace_id(issuer, subject)


@pytest.mark.parametrize(
    "text",
    [
        "../local",
        "..",
        "/etc",
        "u" + "0" * 23,
        "u" + "0" * 25,
        "U" + "0" * 24,
        "u" + "g" * 24,
        "u" + "0" * 24 + "/..",
        "local/../x",
        "",
        " ",
        "u" + "0" * 24 + "\n" + "x",
    ],
)
def test_only_real_ids_name_a_workspace(text):
    with pytest.raises(WorkspaceError, match="not a workspace id"):
        Workspace.of(text)


def test_a_persons_files_are_inside_their_folder(tmp_path):
    person = Workspace.for_identity("http://idp", "../../alice")
    root = (tmp_path / "workspaces").resolve()
    for path in (person.models_dir, person.runs_db, person.mine_db, person.data_dir):
        assert path.resolve().is_relative_to(root / person.id)
    other = Workspace.for_identity("http://idp", "bob")
    assert not person.models_dir.resolve().is_relative_to(other.root.resolve())


def test_local_workspace_keeps_todays_paths(tmp_path):
    local = Workspace.of("local")
    assert local.is_local
    assert local.models_dir == tmp_path / "shared"
    assert local.runs_db == tmp_path / "runs.sqlite"
    assert local.mine_db == tmp_path / "mine.sqlite"


def test_quota_is_checked_before_a_write(tmp_path, monkeypatch):
    monkeypatch.setenv(ws.WORKSPACE_BYTES_ENV, "1000")
    person = Workspace.for_identity("http://idp", "alice").create()
    (person.models_dir / "a.npz").write_bytes(b"x" * 600)
    person.check_room(400)
    with pytest.raises(QuotaError, match=r"quota .*0\.0 MiB used|would use"):
        person.check_room(401)


def test_disk_use_counts_links_not_their_targets(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100_000)
    os.symlink(big, root / "link")
    os.symlink(tmp_path, root / "dirlink")
    (root / "small").write_bytes(b"x" * 10)
    assert ws.disk_used(root) < 1000


def test_listing_passes_over_links_and_other_names(tmp_path):
    alice = Workspace.for_identity("http://idp", "alice").create()
    base = tmp_path / "workspaces"
    (base / "notes").mkdir()
    os.symlink(alice.root, base / ("u" + "1" * 24))
    assert [w.id for w in ws.list_workspaces()] == [alice.id]


def test_profile_survives_hostile_contents(tmp_path):
    alice = Workspace.for_identity("http://idp", "alice")
    alice.write_profile("Alice" * 1000, "alice@example.com")
    profile = alice.profile()
    assert profile["email"] == "alice@example.com"
    assert len(profile["name"]) <= 200
    (alice.root / ws.PROFILE_FILE).write_text("[" * 100_000)
    assert alice.profile() == {}


def test_hand_out_copies_and_never_replaces(tmp_path):
    source = REPO / "saved_models" / "default.npz"
    target = ws.hand_out(source, "week1")
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(FileExistsError):
        ws.hand_out(source, "week1")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        ws.hand_out(junk, "junk")
    assert not (ws.shared_models_dir() / "junk.npz").exists()
    assert [p.name for p in ws.shared_models_dir().iterdir()] == ["week1.npz"]
    shutil.rmtree(ws.shared_models_dir())


# ------------------------------------------------------------------ the command line
@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """Every variable --workspace sets, recorded so that the test's changes are undone."""
    for name in ("NN_MODELS_DIR", "NN_RUNS_DB", "NN_MINE_DB", "NN_DATA_DIR", ws.SHARED_MODELS_ENV):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setenv("NN_MODELS_DIR", str(tmp_path / "shared"))
    monkeypatch.delenv(ws.SHARED_MODELS_ENV)
    (tmp_path / "shared").mkdir(exist_ok=True)
    shutil.copy2(REPO / "saved_models" / "default.npz", tmp_path / "shared" / "default.npz")
    alice = Workspace.for_identity("http://idp", "alice").create()
    bob = Workspace.for_identity("http://idp", "bob").create()
    shutil.copy2(REPO / "saved_models" / "default.npz", bob.models_dir / "bobs-net.npz")
    return alice, bob


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from nn.cli.main import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_workspace_flag_reads_own_and_shared_models_only(cli_env, capsys):
    alice, bob = cli_env
    code, out, _ = _cli(capsys, "--workspace", bob.id, "info", "bobs-net", "--json")
    assert code == 0 and "bobs-net" in out
    code, out, _ = _cli(capsys, "info", "default", "--workspace", alice.id)
    assert code == 0  # the shared default, read from alice's workspace
    code, _, err = _cli(capsys, "--workspace", alice.id, "info", "bobs-net")
    assert code == 2 and "no saved model of that name" in err
    code, _, err = _cli(capsys, "--workspace", alice.id, "info", f"../{bob.id}/models/bobs-net")
    assert code == 2


def test_workspace_flag_trains_into_the_workspace(cli_env, capsys, tmp_path):
    alice, _ = cli_env
    code, _, err = _cli(
        capsys,
        "--workspace",
        alice.id,
        "train",
        "--preset",
        "fast",
        "--epochs",
        "1",
        "--train-size",
        "500",
        "--name",
        "mine-first",
        "--quiet",
    )
    assert code == 0, err
    assert (alice.models_dir / "mine-first.npz").is_file()
    assert alice.runs_db.is_file()
    assert not (tmp_path / "shared" / "mine-first.npz").exists()
    code, out, _ = _cli(capsys, "workspaces", "--json")
    assert code == 0 and '"models": 1' in out


@pytest.mark.parametrize("ident", ["../x", "u" + "0" * 24, "bob", "/tmp"])
def test_workspace_flag_refuses_what_is_not_a_workspace(cli_env, capsys, ident):
    code, _, err = _cli(capsys, "--workspace", ident, "runs")
    assert code == 2 and "workspace" in err and "Traceback" not in err
