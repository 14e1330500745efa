"""JSON from users, read within bounds: every place that reads JSON a user wrote (a stack file,
a search space, a ``--param`` or ``--set`` value, a data set's ``info.json``) reads it here.

The text is checked before it is parsed: its size (:data:`nn.core.limits.MAX_JSON_BYTES`), the
nesting of its lists and objects (:data:`~nn.core.limits.MAX_JSON_DEPTH`, counted outside
strings, so a hundred thousand brackets never reach the recursive parser), and while parsing the
digits of each whole number (:data:`~nn.core.limits.MAX_JSON_NUMBER_DIGITS`). ``NaN`` and
``Infinity`` are not JSON and are refused. Every fault is a :class:`JSONInputError` (a
``ValueError``) whose message names the document, what was wrong and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from nn.core.limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_JSON_NUMBER_DIGITS

__all__ = ["JSONInputError", "JSONSyntaxError", "loads", "read_json_file"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


class JSONInputError(ValueError):
    """A user's JSON is too big, too deep, not JSON, or holds a number out of bounds."""


class JSONSyntaxError(JSONInputError):
    """The text is not JSON at all (where a plain word may stand for itself, e.g. a choice
    ``adam``, this is the one fault that lets it)."""


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, brackets inside strings not counted."""
    skeleton = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(skeleton, _OPEN).astype(np.int64) - np.isin(skeleton, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


def _whole_number(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_NUMBER_DIGITS:
        raise JSONInputError(
            f"a whole number of {digits:,} digits; at most {MAX_JSON_NUMBER_DIGITS} are allowed"
        )
    return int(text)


def _not_a_number(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number; give a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONInputError(f"{text[:20]} is beyond a float's range; give a finite number")
    return value


def loads(text: str | bytes, what: str = "the JSON", max_chars: int = MAX_JSON_BYTES) -> Any:
    """The value of the JSON ``text``; ``what`` names it in messages ("--space space.json").
    ``max_chars`` raises the size bound for documents that are larger by nature (a model
    file's metadata, with its training history)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError(f"{what}: not UTF-8 text") from None
    if len(text) > max_chars:
        raise JSONInputError(
            f"{what}: {len(text):,} characters; a JSON document here is at most {max_chars:,}"
        )
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise JSONInputError(
            f"{what}: lists and objects nested {depth:,} deep; at most {MAX_JSON_DEPTH} levels "
            "are allowed"
        )
    try:
        return json.loads(
            text, parse_int=_whole_number, parse_float=_finite, parse_constant=_not_a_number
        )
    except JSONInputError as exc:
        raise JSONInputError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JSONSyntaxError(
            f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):
        raise JSONSyntaxError(f"{what}: not valid JSON") from None


def read_json_file(path: str | os.PathLike, what: str | None = None) -> Any:
    """The JSON value in the regular file ``path`` (size checked before it is read)."""
    path = Path(path)
    what = what or str(path)
    try:
        if not path.is_file():
            raise JSONInputError(
                f"{what}: no such file" if not path.exists() else f"{what}: not a regular file"
            )
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise JSONInputError(
                f"{what}: {size:,} bytes; a JSON file here is at most {MAX_JSON_BYTES:,}"
            )
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise JSONInputError(f"{what}: cannot be read ({exc.strerror or 'unreadable'})") from None
    return loads(data, what)
