"""Sign-in under AppTest: off without [auth], refused with an example secret, a gate before every
page, and each signed-in person in a workspace of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nn.services.workspace import WORKSPACES_DIR_ENV, Workspace

APP = Path(__file__).resolve().parents[1] / "app.py"

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
