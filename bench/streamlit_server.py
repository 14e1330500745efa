"""The command that starts the dashboard for a benchmark: ``streamlit run app.py`` headless on
127.0.0.1 at a given port, without usage statistics, run by this Python."""

from __future__ import annotations

import sys


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
