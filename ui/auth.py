"""Sign-in, only when configured: Streamlit's ``st.login`` over OpenID Connect.

With no ``[auth]`` section in ``.streamlit/secrets.toml`` nothing changes: there is no sign-in and
everyone works in the local workspace. With one, every page first asks the person to sign in
(button key ``login``), the sidebar shows who is signed in with Sign out (key ``logout``), and each
person works in a workspace of their own (``nn.services.workspace``). People listed in
``NN_ADMINS`` (emails or subjects, comma separated) also get the Class page.

An ``[auth]`` section whose ``cookie_secret`` is missing, short or an example value stops every
page with the reason: anyone who knows the secret can forge the identity cookie.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from nn.services.workspace import Workspace

ADMINS_ENV = "NN_ADMINS"
PROFILE_WRITTEN_KEY = "workspace_profile_written"
MIN_COOKIE_SECRET_CHARS = 32
# Words found in the placeholder secrets of documentation and examples.
_EXAMPLE_WORDS = ("example", "change", "secret", "xxxx", "your", "random", "replace", "todo")


def auth_settings() -> dict[str, Any] | None:
    """The ``[auth]`` section of the secrets, or ``None`` when sign-in is not configured."""
    try:
        section = st.secrets.get("auth")
    except StreamlitSecretNotFoundError:
        return None
    return dict(section) if section is not None else None


def auth_configured() -> bool:
    return auth_settings() is not None


def cookie_secret_problem(settings: dict[str, Any]) -> str | None:
    """Why the ``cookie_secret`` cannot protect the sign-in, or ``None`` when it can."""
    secret = str(settings.get("cookie_secret") or "")
    if not secret:
        return "the [auth] section of .streamlit/secrets.toml has no cookie_secret"
    lowered = secret.lower()
    if len(secret) < MIN_COOKIE_SECRET_CHARS or any(word in lowered for word in _EXAMPLE_WORDS):
        return (
            "the cookie_secret in .streamlit/secrets.toml is an example value or shorter than "
            f"{MIN_COOKIE_SECRET_CHARS} characters; anyone who knows it could sign in as anyone. "
            'Set a long random one, e.g. the output of python -c "import secrets; '
            'print(secrets.token_urlsafe(48))"'
        )
    return None


def _signed_in() -> bool:
    return bool(st.user.to_dict().get("is_logged_in"))


def identity() -> dict[str, str] | None:
    """The signed-in person's issuer, subject, email and name; ``None`` when nobody is."""
    if not auth_configured() or not _signed_in():
        return None
    claims = st.user.to_dict()
    return {key: str(claims.get(key) or "") for key in ("iss", "sub", "email", "name")}


def admin_names() -> set[str]:
    """``NN_ADMINS`` as lower-case emails or subjects."""
    text = os.environ.get(ADMINS_ENV, "")
    return {part.strip().lower() for part in text.split(",") if part.strip()}


def is_admin() -> bool:
    """Whether the signed-in person is a teacher (listed in ``NN_ADMINS``)."""
    person = identity()
    if person is None:
        return False
    admins = admin_names()
    return bool(admins) and (person["email"].lower() in admins or person["sub"].lower() in admins)


def require_sign_in() -> None:
    """Stop the page unless sign-in is off, or on and done; shows why or the sign-in button."""
    settings = auth_settings()
    if settings is None:
        return
    problem = cookie_secret_problem(settings)
    if problem:
        st.error(f"Sign-in is configured but cannot be used safely: {problem}.")
        st.stop()
    if _signed_in():
        return
    st.title("NumPy MNIST network")
    st.write(
        "Sign in to train, draw and keep your own models. Your models, runs, drawings and data "
        "sets stay in a workspace of your own."
    )
    if st.button("Sign in", key="login", type="primary"):
        st.login()
    st.stop()


def render_account() -> None:
    """Who is signed in, and Sign out (in the sidebar); nothing without sign-in."""
    person = identity()
    if person is None:
        return
    who = person["name"] or person["email"] or person["sub"]
    extra = f" ({person['email']})" if person["email"] and person["email"] != who else ""
    st.caption(f"Signed in as **{who}**{extra}" + (" · teacher" if is_admin() else ""))
    if st.button("Sign out", key="logout"):
        st.logout()


def current_workspace() -> Workspace:
    """This session's workspace: the signed-in person's own, else the local one. A person's
    first page of a session writes their name and email for the teacher's view."""
    person = identity()
    if person is None:
        return Workspace.local()
    workspace = Workspace.for_identity(person["iss"], person["sub"])
    if not st.session_state.get(PROFILE_WRITTEN_KEY):
        workspace.write_profile(person["name"], person["email"])
        st.session_state[PROFILE_WRITTEN_KEY] = True
    return workspace
