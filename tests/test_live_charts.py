"""The live charts of the Train page: what one poll re-sends."""

from __future__ import annotations

import json

import plotly.io as pio

from ui.charts import batch_loss_figure


def test_live_batch_chart_is_thinned_and_rounded():
    """The live batch-loss chart sends at most about ``max_points`` points per trace, the last
    batch always among them, at 4 significant digits."""
    n = 800
    steps = [round(20 * i / n, 5) for i in range(1, n + 1)]
    loss = [0.3 + 0.123456789 / i for i in range(1, n + 1)]
    full = batch_loss_figure(loss, steps=steps, smoothed=loss)
    live = batch_loss_figure(loss, steps=steps, smoothed=loss, max_points=300)
    raw, smooth = live.data
    assert len(raw.x) == len(smooth.y) <= 301 and raw.x[-1] == steps[-1]
    assert raw.y[0] == 0.4235 and full.data[0].y[0] == 0.4235
    assert len(full.data[0].x) == n
    sizes = [len(pio.to_json(f, validate=False)) for f in (full, live)]
    assert sizes[1] < 0.6 * sizes[0], sizes
    assert json.loads(pio.to_json(live))["data"][1]["y"][-1] == round(loss[-1], 4)
