"""Plain text inside Streamlit's Markdown: messages and names shown as they are written."""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def markdown_escape(text: object) -> str:
    """``text`` with the characters Markdown would interpret backslash-escaped, so that an
    error message such as ``use '-', '_' and '.'`` keeps its underscores and stars."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))
