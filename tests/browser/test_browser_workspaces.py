"""A class on one server, in a real browser: people sign in through a local OpenID Connect
provider (``oidc-provider-mock``), each in a browser context of their own, and work in their own
workspace; a teacher sees everyone's; sign-out works. Fixtures in ``conftest.py``."""

from __future__ import annotations

import re

import pytest

from nn.services.mine import MineStore
from nn.services.workspace import WORKSPACES_DIR_ENV, Workspace
from tests.browser.conftest import ADMIN_EMAIL, VIEWPORT, set_oidc_user
from tests.browser.test_browser import (
    CANVAS,
    _predicted_digit,
    _stroke,
    no_exception,
    settle,
)

pytestmark = pytest.mark.browser

PEOPLE = {
    "alice": ("alice@example.com", "Alice"),
    "bob": ("bob@example.com", "Bob"),
    "teacher": (ADMIN_EMAIL, "Teacher"),
}


def sign_in(chromium, server, provider: str, subject: str):
    """A new browser context signed in as ``subject``; returns its page on the Overview."""
    email, name = PEOPLE[subject]
    set_oidc_user(provider, subject, email=email, name=name)
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(server.url)
    page.locator(".st-key-login button").click()
    page.locator("input[name=sub]").fill(subject)
    page.keyboard.press("Enter")
    page.locator(".st-key-logout button").wait_for()
    settle(page)
    return page


def goto(page, server, path: str, title: str) -> None:
    page.goto(f"{server.url}/{path}")
    page.locator("[data-testid='stMain'] h1", has_text=title).first.wait_for()
    settle(page)


def keep_a_one(page, server) -> None:
    goto(page, server, "draw", "Draw a digit")
    page.locator(CANVAS).wait_for()
    _stroke(page, [(140, 40), (140, 240)])
    _predicted_digit(page)
    page.get_by_role("button", name="Keep this drawing").first.click()
    page.locator("[data-testid=stToast]", has_text="Kept drawing").first.wait_for()


def upload_model(page, server, upload_file, name: str) -> None:
    goto(page, server, "models", "Models")
    page.locator(".st-key-model_upload input[type=file]").set_input_files(str(upload_file))
    page.locator(".st-key-upload_name input").fill(name)
    page.locator(".st-key-upload_name input").press("Enter")
    settle(page)
    page.locator(".st-key-save_upload button").click()
    # the saved upload becomes the active model (a toast says so too, but it may be gone)
    page.locator("[data-testid=stSidebar]").get_by_text(name, exact=True).first.wait_for()


def model_names(page, server) -> str:
    """The names the Models page offers in its Model choice (the table is drawn on a canvas)."""
    goto(page, server, "models", "Models")
    page.locator(".st-key-models_pick").click()
    options = page.locator("[role=option]")
    options.first.wait_for()
    names = " ".join(options.all_inner_texts())
    page.keyboard.press("Escape")
    return names


def test_two_people_work_apart_and_a_teacher_sees_both(
    signed_in_server, oidc_provider, chromium, upload_file, shots, monkeypatch
):
    server = signed_in_server
    monkeypatch.setenv(WORKSPACES_DIR_ENV, str(server.runs_db.parent / "workspaces"))
    issuer = oidc_provider  # the mock's issuer is its base URL
    alice = sign_in(chromium, server, oidc_provider, "alice")
    bob = sign_in(chromium, server, oidc_provider, "bob")
    assert "Signed in as Alice" in alice.locator("[data-testid=stSidebar]").inner_text()
    assert "Signed in as Bob" in bob.locator("[data-testid=stSidebar]").inner_text()

    for page, who in ((alice, "alice"), (bob, "bob")):
        keep_a_one(page, server)
        upload_model(page, server, upload_file, f"{who}-net")
        no_exception(page)

    folders = {who: Workspace.for_identity(issuer, who) for who in ("alice", "bob")}
    for who, person in folders.items():
        assert (person.models_dir / f"{who}-net.npz").is_file()
        assert MineStore(person.mine_db).count() == 1
    alice_models, bob_models = model_names(alice, server), model_names(bob, server)
    assert "alice-net" in alice_models and "bob-net" not in alice_models
    assert "bob-net" in bob_models and "alice-net" not in bob_models
    assert "default" in alice_models and "default" in bob_models  # the shared model

    # Nobody but the teacher gets the Class page.
    assert alice.locator("[data-testid=stSidebarNavLink]", has_text="Class").count() == 0
    teacher = sign_in(chromium, server, oidc_provider, "teacher")
    goto(teacher, server, "class", "Class")
    teacher.locator(".st-key-class_person").click()
    options = teacher.locator("[role=option]")
    options.first.wait_for()
    assert {"Alice", "Bob", "Teacher"} <= set(options.all_inner_texts())
    teacher.keyboard.press("Escape")
    teacher.screenshot(path=str(shots / "class.png"))
    no_exception(teacher)

    # Sign-out: the provider asks to end its session too, then sends the person back to the
    # sign-in button; the workspace stays for the next visit.
    alice.locator(".st-key-logout button").click()
    alice.get_by_role("button", name="End session").click()
    alice.locator(".st-key-login button").wait_for()
    assert re.search("Sign in", alice.locator("[data-testid=stMain]").inner_text())
    for page in (alice, bob, teacher):
        page.context.close()
