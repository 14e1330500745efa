"""Running the command line in the test's own process: ``call("train", "--preset", "fast")``
returns ``(exit code, stdout, stderr)``. A module of its own, imported by name (see
``apptest_support`` for why not from ``conftest``)."""

from __future__ import annotations

import contextlib
import io

from nn.cli.main import main


def call(*args: str) -> tuple[int, str, str]:
    """``main(args)`` in-process; returns ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
