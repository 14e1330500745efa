"""Sign-in under AppTest: off without [auth], refused with an example secret, a gate before every
page, and each signed-in person in a workspace of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nn.services.workspace import WORKSPACES_DIR_ENV, Workspace

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app.py"

GOOD_SECRET = "tZ8qLw3Np7Vd2Hk9Rb4Mx6Gc1Fj5Sy0Ua8Ei3Ko7Qn2Pv6"
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": GOOD_SECRET,
    "client_id": "dashboard",
    "client_secret": "anything",
    "server_metadata_url": "http://localhost:9/.well-known/openid-configuration",
}


@pytest.fixture
def workspaces(env, tmp_path, monkeypatch):
    monkeypatch.setenv(WORKSPACES_DIR_ENV, str(tmp_path / "workspaces"))
    return tmp_path / "workspaces"


def _app(auth: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    if user is not None:
        at.user.update({"is_logged_in": True, **user})
    return at


def _buttons(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_without_auth_nothing_changes(workspaces):
    at = _app().run()
    assert not at.exception
    assert "login" not in _buttons(at)
    assert "logout" not in _buttons(at.sidebar)
    assert not workspaces.exists()


@pytest.mark.parametrize(
    "secret, reason",
    [
        (None, "no cookie_secret"),
        ("", "no cookie_secret"),
        ("your-example-secret", "example"),
        ("short", "shorter than"),
    ],
)
def test_unsafe_cookie_secret_stops_every_page(workspaces, secret, reason):
    auth = dict(AUTH)
    if secret is None:
        del auth["cookie_secret"]
    else:
        auth["cookie_secret"] = secret
    at = _app(auth).run()
    assert not at.exception
    assert any(reason in e.value for e in at.error)
    assert "login" not in _buttons(at)
    assert not at.sidebar.selectbox  # no page, no model picker


def test_every_page_asks_to_sign_in_first(workspaces):
    at = _app(AUTH).run()
    assert not at.exception
    assert "login" in _buttons(at)
    assert not at.sidebar.selectbox


def test_signed_in_person_gets_a_workspace_and_sign_out(workspaces):
    user = {"iss": "http://idp", "sub": "alice", "email": "alice@example.com", "name": "Alice"}
    at = _app(AUTH, user).run()
    assert not at.exception
    assert "logout" in _buttons(at.sidebar)
    assert any("Signed in as **Alice**" in c.value for c in at.sidebar.caption)
    folder = Workspace.for_identity("http://idp", "alice").root
    assert folder.parent == workspaces.resolve()
    assert Workspace.of(folder.name).profile()["email"] == "alice@example.com"


def test_admins_are_named_by_email(workspaces, monkeypatch):
    monkeypatch.setenv("NN_ADMINS", "Teacher@Example.com, other@example.com")
    user = {"iss": "http://idp", "sub": "t1", "email": "teacher@example.com", "name": "T"}
    at = _app(AUTH, user).run()
    assert any("teacher" in c.value for c in at.sidebar.caption)


def _two_people(workspaces):
    from nn.services.runs import RunStore

    people = {}
    for sub, name in (("alice", "Alice"), ("bob", "Bob")):
        person = Workspace.for_identity("http://idp", sub).create()
        person.write_profile(name, f"{sub}@example.com")
        store = RunStore(person.runs_db)
        run_id = store.start_run({"hidden_layers": [8]}, name=f"{sub}-run", source="dashboard")
        store.log_epoch(run_id, 1, loss=1.0, val_accuracy=0.5)
        store.finish_run(run_id, "finished")
        people[sub] = person
    shutil.copy2(REPO / "saved_models" / "default.npz", people["alice"].models_dir / "net.npz")
    return people


def test_the_class_page_shows_everyone_to_a_teacher_only(workspaces, monkeypatch):
    monkeypatch.setenv("NN_ADMINS", "teacher@example.com")
    people = _two_people(workspaces)
    student = {"iss": "http://idp", "sub": "alice", "email": "alice@example.com", "name": "Alice"}
    at = _app(AUTH, student).run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/class_view.py")  # not in a student's navigation

    teacher = {"iss": "http://idp", "sub": "t", "email": "teacher@example.com", "name": "T"}
    at = _app(AUTH, teacher).run()
    at.switch_page("pages/class_view.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["person"]) >= {"Alice", "Bob"}
    row = table[table["person"] == "Alice"].iloc[0]
    assert (row["models"], row["runs"]) == (1, 1)
    at.selectbox(key="class_person").set_value(people["alice"].id).run()
    at.multiselect(key="class_runs").set_value([at.multiselect(key="class_runs").options[0]]).run()
    assert not at.exception and at.get("plotly_chart")
    at.text_input(key="class_share_name").set_value("week-1").run()
    at.button(key="class_hand_out").click().run()
    assert any("week-1" in s.value for s in at.success)
    # Bob now sees the handed-out model, read-only, beside his own (none).
    bob = {"iss": "http://idp", "sub": "bob", "email": "bob@example.com", "name": "Bob"}
    at = _app(AUTH, bob).run()
    at.switch_page("pages/models.py").run()
    names = list(at.dataframe[0].value["name"])
    assert "week-1" in names and "net" not in names


ALICE = {"iss": "http://idp", "sub": "alice", "email": "alice@example.com", "name": "Alice"}
BOB = {"iss": "http://idp", "sub": "bob", "email": "bob@example.com", "name": "Bob"}


def _signed_in(user: dict, page: str) -> AppTest:
    at = _app(AUTH, user).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_persons_training_is_theirs_alone(workspaces, open_app):
    from test_train_page import small_form

    from ui.state import job_board

    alice = _signed_in(ALICE, "pages/train.py")
    small_form(alice, epochs=1)
    alice.button(key="start_training").click().run()
    alice_id = Workspace.for_identity("http://idp", "alice").id
    job = job_board().get(alice_id, "train")
    assert job is not None and job.owner == alice_id
    job.wait(120)
    assert job.done and job.snapshot()["status"] == "finished"
    runs_db = Workspace.of(alice_id).runs_db
    assert runs_db.is_file()  # the run is recorded in her workspace, not the server's
    bob = _signed_in(BOB, "pages/train.py")
    bob_id = Workspace.for_identity("http://idp", "bob").id
    assert job_board().get(bob_id, "train") is None
    assert not bob.button(key="start_training").disabled
    assert "save_model" not in {b.key for b in bob.button}  # nothing of Alice's to save
    again = _signed_in(ALICE, "pages/train.py")  # Alice, in another tab: her model waits
    assert "save_model" in {b.key for b in again.button}


def test_the_quota_refuses_an_upload_before_writing(workspaces, monkeypatch):
    monkeypatch.setenv("NN_WORKSPACE_BYTES", "1000")
    at = _signed_in(ALICE, "pages/models.py")
    data = (REPO / "saved_models" / "default.npz").read_bytes()
    at.file_uploader(key="model_upload_0").set_value(("net.npz", data, "application/zip")).run()
    at.button(key="save_upload").click().run()
    assert any("quota" in e.value for e in at.error), [e.value for e in at.error]
    assert not list(Workspace.for_identity("http://idp", "alice").models_dir.glob("*.npz"))


def test_queue_text_says_why_a_job_waits():
    from ui.session_jobs import queue_text

    assert "free worker: place 2" in queue_text({"queue_position": 2})
    mine = queue_text({"queue_position": 1, "waits_for_own_job": True})
    assert "your other job" in mine and "place 1" in mine


@pytest.mark.parametrize(
    "name",
    ["../{bob}/models/evil", "/{bob}/models/evil", "..", "evil/../../{bob}", "evil\\..\\x"],
)
def test_a_model_name_never_reaches_another_workspace(workspaces, name):
    bob = Workspace.for_identity("http://idp", "bob").create()
    at = _signed_in(ALICE, "pages/models.py")
    data = (REPO / "saved_models" / "default.npz").read_bytes()
    at.file_uploader(key="model_upload_0").set_value(("net.npz", data, "application/zip")).run()
    at.text_input(key="upload_name").set_value(name.format(bob=bob.id)).run()
    if at.button(key="save_upload").disabled:
        assert at.error  # the name is refused with a message before any button
    else:
        at.button(key="save_upload").click().run()
    assert not at.exception
    assert not list(bob.root.rglob("*.npz"))
    outside = [p for p in workspaces.rglob("*.npz") if bob.root not in p.parents]
    alice_models = Workspace.for_identity("http://idp", "alice").models_dir
    assert all(p.parent == alice_models for p in outside)
