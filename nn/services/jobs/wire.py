"""What travels between the server and a job's worker: JSON messages, named arrays as ``.npz``
bytes (``allow_pickle=False``).

A model comes back as ``nn.core.state.to_state`` settings and named arrays, never as a pickled
object.
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Mapping
from typing import Any

import numpy as np


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    return json.loads(data.decode())


def pack_arrays(arrays: Mapping[str, Any] | None) -> bytes | None:
    """Named arrays as ``.npz`` bytes (``None`` for none)."""
    if not arrays:
        return None
    buf = io.BytesIO()
    np.savez(buf, **{name: np.asarray(a) for name, a in arrays.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes | None) -> dict[str, Any]:
    """``pack_arrays``'s bytes back as a dict of arrays (object arrays refused)."""
    if not blob:
        return {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "The worker process ended without an exit code."
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (out of memory, or killed by the system or a user)" if name == "SIGKILL" else ""
        return f"The worker process was killed by {name} (signal {-exitcode}){why}."
    return f"The worker process exited with code {exitcode} before reporting a result."
