"""How often the dashboard's live views poll a background job, what they copy, and the figures
they keep between polls.

Every poll is a run of a Streamlit fragment: a rerun of its function on the server and a
re-render of the page in the browser, which costs the browser about the same whatever the
fragment shows; a Plotly chart whose data changed costs a redraw on top, an identical one
almost nothing (bench/dashboard_overhead.py, bench/README.md "Dashboard overhead"). So the
views poll every :data:`STATUS_SECONDS` (the progress) and :data:`CHART_SECONDS` (the charts),
not at all while the job is paused, copy only the fields they show (:data:`HEAVY_KEYS` left
out), and rebuild a figure, or copy a record, only when its data changed (:func:`cached_view`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st

STATUS_SECONDS = 2.0
"""Seconds between two polls of a job's progress (the Train page's status, the sidebar's)."""
PAUSED_SECONDS = 60.0
"""Seconds between two polls of a paused job's status: nothing changes, but a poll tells the
job board someone is watching (a paused job nobody polls for ``NN_JOB_IDLE_MINUTES`` is
stopped, ``ui.session_jobs.JobBoard``)."""
CHART_SECONDS = 4.0
"""Seconds between two polls of the Train page's live chart."""
LIVE_BATCH_POINTS = 200
"""Points of the live batch-loss curve (every k-th batch and the last): a chart is ~700 px
wide."""
HEAVY_KEYS = ("inside", "history", "batch_steps", "batch_loss", "batch_ema")
"""A training snapshot's lists: a status poll leaves them out of its copy."""

_CACHE_KEY = "_live_figures"


def status_poll_seconds(running: bool, paused: bool) -> float | None:
    """How often a view polls a job's status: every :data:`STATUS_SECONDS` while it runs, every
    :data:`PAUSED_SECONDS` while it is paused, not at all once it ended."""
    if not running:
        return None
    return PAUSED_SECONDS if paused else STATUS_SECONDS


def cached_view(name: str, token: Hashable, build: Callable[[], Any]) -> Any:
    """What ``build()`` made for ``token`` (a figure, or the record a view draws from), kept in
    the session under ``name``: made again only when ``token`` (what it shows: the job, its
    epoch, its batches) changed. The same figure re-sent is drawn again by neither the server's
    Plotly nor the browser's."""
    figures = st.session_state.setdefault(_CACHE_KEY, {})
    kept = figures.get(name)
    if kept is not None and kept[0] == token:
        return kept[1]
    figure = build()
    figures[name] = (token, figure)
    return figure
