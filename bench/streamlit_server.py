"""How a benchmark starts the dashboard: ``streamlit run app.py`` headless on 127.0.0.1 at a
free port, without usage statistics, run by this Python, and when it is ready."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_command(port: int) -> list[str]:
    """``python -m streamlit run app.py`` on 127.0.0.1:``port``, headless (run it from the
    repository's root)."""
    return [
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
    ]


def start_streamlit(
    env: dict[str, str],
    log: Path,
    start_seconds: float = 60.0,
    *,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> tuple[subprocess.Popen, str]:
    """``(process, url)`` of the dashboard started with ``env`` (at ``port``, default a free
    one, with ``extra_args`` for Streamlit), its output in ``log``, once ``/_stcore/health``
    answers ``ok``; ``RuntimeError`` if it exits or is not healthy within ``start_seconds``."""
    port = port or free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*streamlit_command(port), *extra_args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url
        except OSError:
            pass
        time.sleep(0.1)  # polling the server's health, not synchronising a page
    proc.terminate()
    raise RuntimeError(f"streamlit not healthy after {start_seconds} s: see {log}")
