"""Fixtures for the real-browser tests: a ``streamlit run app.py`` server and Debian's Chromium.

* ``app_server`` (session): one server for the whole module, on a free port, with
  ``NN_MODELS_DIR`` -> a temporary folder seeded with a small trained model (``default.npz``),
  ``NN_TRAIN_LIMIT=3000``, ``NN_RUNS_DB`` -> a temporary database, ``OPENBLAS_NUM_THREADS=1``.
* ``fresh_server`` (function): a server of its own that has served no page yet.
* ``chromium`` (session): Playwright's Chromium driver on ``/usr/bin/chromium`` (no browser
  download). Missing browser: the tests are skipped, unless ``$CI`` is set: then they fail.
* ``new_page`` (function): a 1400x900 page in a fresh browser context (= a new Streamlit session).
* ``shots``: where the screenshots go: ``docs/screenshots/`` when ``NN_SCREENSHOTS=1``, else a
  temporary folder (they are taken either way, so the code path is always exercised).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
TRAIN_LIMIT = 3000
SERVER_START_SECONDS = 60
SCREENSHOT_DIR = REPO / "docs" / "screenshots"


def _missing(message: str) -> None:
    """Skip locally, fail on CI: CI must never silently skip the browser tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _browser_available() -> None:
    if not Path(CHROMIUM).is_file():
        _missing(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the python package playwright is not installed")


# ------------------------------------------------------------------------------ models folder
def _seed_model(folder: Path) -> Path:
    """``folder/default.npz``: a copy of ``saved_models/default.npz`` if there is one, else a
    784-64-10 network trained here on 10,000 MNIST images (~2 s, ~94% test accuracy)."""
    target = folder / "default.npz"
    existing = REPO / "saved_models" / "default.npz"
    if existing.is_file():
        shutil.copy2(existing, target)
        return target
    from nn.core.network import NeuralNetwork
    from nn.data import load_mnist
    from nn.io.model_files import save_model

    data = load_mnist()
    model = NeuralNetwork(hidden_layers=(64,), epochs=10, batch_size=32, random_state=0)
    model.fit(
        data.x_train[:10_000],
        data.y_train[:10_000],
        data.x_train[50_000:52_000],
        data.y_train[50_000:52_000],
    )
    acc = float(model.score(data.x_test, data.y_test))
    assert acc > 0.92, f"seed model too weak for the drawing test: {acc:.2%}"
    save_model(model, target, name="default", metrics={"test_accuracy": acc})
    return target


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    _seed_model(folder)
    return folder


@pytest.fixture(scope="session")
def upload_file(tmp_path_factory) -> Path:
    """A small valid model file for the upload test (784-16-10, not in the models folder)."""
    from nn.core.network import NeuralNetwork
    from nn.data import load_mnist
    from nn.io.model_files import save_model

    data = load_mnist()
    model = NeuralNetwork(hidden_layers=(16,), epochs=1, random_state=1)
    model.fit(data.x_train[:2000], data.y_train[:2000])
    return save_model(model, tmp_path_factory.mktemp("upload") / "uploaded-net.npz")


# ------------------------------------------------------------------------------ servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``streamlit run app.py``; ``url`` has no trailing slash."""

    url: str
    models_dir: Path
    runs_db: Path
    log: Path
    proc: subprocess.Popen = field(repr=False)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_server(
    models_dir: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    port: int | None = None,
) -> Server:
    port = port or _free_port()
    runs_db = workdir / "runs.sqlite"
    log = workdir / f"streamlit-{port}.log"
    env = dict(
        os.environ,
        NN_MODELS_DIR=str(models_dir),
        NN_TRAIN_LIMIT=str(TRAIN_LIMIT),
        NN_RUNS_DB=str(runs_db),
        OPENBLAS_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        *extra_args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", models_dir, runs_db, log, proc)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(
        f"streamlit not healthy after {SERVER_START_SECONDS} s:\n{server.log_tail()}"
    )


def stop_server(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def app_server(models_dir, tmp_path_factory):
    server = start_server(models_dir, tmp_path_factory.mktemp("server"))
    yield server
    stop_server(server)


@pytest.fixture
def fresh_server(models_dir, tmp_path):
    """A server of its own (its own models folder too): no page served before the test's."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy2(models_dir / "default.npz", folder / "default.npz")
    server = start_server(folder, tmp_path)
    yield server
    stop_server(server)


# ------------------------------------------------------------------------------ sign-in
ADMIN_EMAIL = "teacher@example.com"
COOKIE_SECRET = "tZ8qLw3Np7Vd2Hk9Rb4Mx6Gc1Fj5Sy0Ua8Ei3Ko7Qn2Pv6"


@pytest.fixture(scope="session")
def oidc_provider() -> str:
    """A local OpenID Connect provider (``oidc-provider-mock``); its base URL on localhost."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(port=0) as provider:
        yield f"http://localhost:{provider.server_port}"


def set_oidc_user(provider: str, subject: str, **claims: str) -> None:
    """Give the provider's user ``subject`` these claims (email, name, ...)."""
    import json

    request = urllib.request.Request(
        f"{provider}/users/{subject}",
        data=json.dumps(claims).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201, 204)


def write_auth_secrets(path: Path, port: int, provider: str) -> Path:
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{COOKIE_SECRET}"\n'
        'client_id = "dashboard"\n'
        'client_secret = "anything"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    return path


def start_signed_in_server(
    models_dir: Path, workdir: Path, provider: str, extra_env: dict[str, str] | None = None
) -> Server:
    """A server with sign-in configured (``--secrets.files``), workspaces under ``workdir``,
    ``teacher@example.com`` as admin; its ``url`` uses localhost, as the sign-in cookie needs."""
    port = _free_port()
    secrets = write_auth_secrets(workdir / "secrets.toml", port, provider)
    env = {
        "NN_WORKSPACES_DIR": str(workdir / "workspaces"),
        "NN_ADMINS": ADMIN_EMAIL,
        **(extra_env or {}),
    }
    server = start_server(models_dir, workdir, env, ("--secrets.files", str(secrets)), port=port)
    server.url = server.url.replace("127.0.0.1", "localhost")
    return server


@pytest.fixture
def signed_in_server(models_dir, tmp_path, oidc_provider):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy2(models_dir / "default.npz", folder / "default.npz")
    server = start_signed_in_server(folder, tmp_path, oidc_provider)
    yield server
    stop_server(server)


# ------------------------------------------------------------------------------ browser
@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium):
    """A page in a fresh context: every test is a new Streamlit session (closing it ends the
    session, which also stops its training)."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("NN_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT_DIR
    return tmp_path_factory.mktemp("screenshots")
