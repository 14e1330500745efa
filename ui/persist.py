"""Keep a page's widget values when the user visits another page and comes back.

Streamlit forgets a widget's state once its page is left. ``keep(key, default)`` (before the widget)
restores the last value from a plain session key ``_kept_<key>`` and returns ``key`` for the
widget; ``remember(*keys)`` (after the widgets) stores the current values there.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_PREFIX = "_kept_"


def keep(key: str, default: Any) -> str:
    """Give the widget ``key`` its remembered value (or ``default``) if it has none yet."""
    ss = st.session_state
    if key not in ss:
        ss[key] = ss.get(_PREFIX + key, default)
    return key


def remember(*keys: str) -> None:
    """Store the widgets' current values so ``keep`` can restore them on a later visit."""
    ss = st.session_state
    for key in keys:
        if key in ss:
            ss[_PREFIX + key] = ss[key]
