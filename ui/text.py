"""Plain text inside Streamlit's Markdown: messages and names shown as they are written."""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def markdown_escape(text: object) -> str:
    """``text`` with the characters Markdown would interpret backslash-escaped, so that an
    error message such as ``use '-', '_' and '.'`` keeps its underscores and stars."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def duration_text(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
