"""What AppTest-based tests share besides fixtures: the app's path, the default timeout and the
session id every AppTest runs as. A module of its own: test files import it by name, which they
cannot do with ``conftest`` (two conftest.py files, this folder's and tests/browser's, are both
the module ``conftest`` in one pytest run, the last one imported wins)."""

from __future__ import annotations

from pathlib import Path

APP = str(Path(__file__).resolve().parents[1] / "app.py")
APP_TIMEOUT = 60
APPTEST_SESSION_ID = "test session id"  # the one session id of every AppTest (streamlit 1.67)
