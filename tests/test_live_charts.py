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


def test_the_live_training_figure_is_one_figure_with_fixed_margins():
    """The Train page's live view: the per-epoch curves above and the batch loss below in one
    figure (one message, one redraw a poll), the batches thinned to about ``max_points``, the
    last one kept, and margins Plotly does not re-measure on each redraw."""
    from ui.charts import live_training_figure

    history = {"epoch": [1, 2], "loss": [0.5, 0.3], "val_loss": [0.6, 0.4]}
    history |= {"train_accuracy": [0.8, 0.9], "val_accuracy": [0.79, 0.88]}
    n = 1000
    steps = [round(2 * i / n, 5) for i in range(1, n + 1)]
    loss = [1 / i for i in range(1, n + 1)]
    fig = live_training_figure(history, loss, steps=steps, smoothed=loss, max_points=200)
    by_name = {trace.name: trace for trace in fig.data}
    assert set(by_name) == {
        "train loss",
        "val loss",
        "train accuracy",
        "val accuracy",
        "batch loss",
        "smoothed (EMA)",
    }
    assert len(by_name["batch loss"].x) <= 201 and by_name["batch loss"].x[-1] == steps[-1]
    assert list(by_name["train loss"].x) == [1, 2]
    assert by_name["batch loss"].xaxis != by_name["train loss"].xaxis  # its own panel
    assert fig.layout.margin.autoexpand is False
    # the legend is drawn in the figure's top margin (not above the figure, out of sight)
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 1
    assert fig.layout.legend.yanchor == "top" and fig.layout.margin.t >= 50
    empty = live_training_figure({}, [])
    assert not empty.data and "no batches yet" in empty.layout.annotations[-1].text
    # the note stands in the batch-loss panel, not across its title
    queued = live_training_figure({}, [], note="waiting for a free worker")
    note = queued.layout.annotations[-1]
    assert note.text == "waiting for a free worker"
    assert (note.xref, note.yref) == ("x3 domain", "y3 domain")
