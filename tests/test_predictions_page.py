"""Predictions page under AppTest: grid, filters (count changes, mistakes only), sorting, paging,
one image in detail."""

from __future__ import annotations

import re

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained(small_model):
    model, data = small_model
    return data, model.predict(data.x_test)


@pytest.fixture
def app(small_env, open_app):
    return open_app("pages/predictions.py")


def match_count(at) -> tuple[int, int, int]:
    """(images matching, mistakes among them, number of pages) from the summary line."""
    for md in at.markdown:
        m = re.search(
            r"\*\*([\d,]+)\*\* images match \(([\d,]+) mistakes\) · page \d+ of (\d+)", md.value
        )
        if m:
            return tuple(int(g.replace(",", "")) for g in m.groups())
    raise AssertionError("no summary line")


def test_page_shows_all_test_images_paged(app, trained):
    data, pred = trained
    n, wrong, pages = match_count(app)
    assert n == 10_000
    assert wrong == int((pred != data.y_test).sum())
    assert pages == 209
    for key in ("pred_true", "pred_pred"):
        assert app.selectbox(key=key).value == "any"
    assert app.toggle(key="pred_wrong").value is False
    assert app.number_input(key="pred_page").value == 1
    assert len(app.image) == 1  # the chosen image; the grid is a clickable chart
    grid = app.get("plotly_chart")[0]
    assert grid.proto.id and '"clickmode":"event+select"' in grid.proto.spec.replace(" ", "")
    assert app.selectbox(key="pred_pick").value == 0


def test_least_sure_first_opens_the_first_tile(app, small_model):
    """Sorting by confidence opens the least sure image, the first tile, even when the image
    open before is on the new page too (one kind of mistake: one page, two orders)."""
    model, data = small_model
    proba = model.predict_proba(data.x_test)
    pred = proba.argmax(axis=1)
    pairs = [(t, q) for t in range(10) for q in range(10) if t != q]
    true, said = next(
        (t, q) for t, q in pairs if 2 <= ((data.y_test == t) & (pred == q)).sum() <= 48
    )
    mistakes = np.flatnonzero((data.y_test == true) & (pred == said))
    least_sure = mistakes[np.argsort(proba[mistakes].max(axis=1), kind="stable")]
    app.selectbox(key="pred_true").select(true).run()
    app.selectbox(key="pred_pred").select(said).run()
    app.selectbox(key="pred_pick").select(int(least_sure[-1])).run()  # the surest of them
    app.button_group(key="pred_sort").set_value("confidence").run()
    assert app.selectbox(key="pred_pick").value == int(least_sure[0])


def test_filters_change_the_count(app, trained):
    data, pred = trained
    app.selectbox(key="pred_true").select(3).run()
    assert match_count(app)[0] == int((data.y_test == 3).sum())
    app.selectbox(key="pred_pred").select(5).run()
    assert match_count(app)[0] == int(((data.y_test == 3) & (pred == 5)).sum())


def test_only_mistakes_shows_only_mistakes(app, trained):
    data, pred = trained
    app.toggle(key="pred_wrong").set_value(True).run()
    n, wrong, _ = match_count(app)
    assert n == wrong == int((pred != data.y_test).sum())
    # every image offered in the detail picker is a mistake
    for i in app.selectbox(key="pred_pick").options:
        i = int(re.match(r"#(\d+)", i).group(1))
        assert pred[i] != data.y_test[i]


def test_sorting_least_sure_first_and_paging(app):
    app.button_group(key="pred_sort").set_value("confidence").run()
    assert not app.exception
    first = app.selectbox(key="pred_pick").options[0]
    m = re.search(r"\((\d+)%\)", first)
    assert m and int(m.group(1)) < 40  # the least sure image of the small model
    app.number_input(key="pred_page").set_value(3).run()
    assert not app.exception
    assert "page 3 of" in " ".join(md.value for md in app.markdown)
    # a filter change goes back to page 1
    app.selectbox(key="pred_true").select(1).run()
    assert app.number_input(key="pred_page").value == 1


def test_choosing_an_image_shows_its_probabilities(app, trained):
    import json

    data, _ = trained
    app.selectbox(key="pred_pick").select(5).run()
    assert not app.exception
    assert app.selectbox(key="pred_pick").value == 5
    fig = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert f"#5 (true digit {data.y_test[5]}" in fig["layout"]["title"]["text"]
    probs = fig["data"][0]["y"]
    assert len(probs) == 10 and sum(probs) == pytest.approx(1, abs=1e-4)


def test_empty_filter_result_says_so(app, trained):
    data, pred = trained
    # a true/predicted pair the model never produces, if there is one
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (data.y_test, pred), 1)
    empty = np.argwhere(cm == 0)
    if not len(empty):
        pytest.skip("every cell of the confusion matrix is used")
    t, p = empty[0]
    app.selectbox(key="pred_true").select(int(t)).run()
    app.selectbox(key="pred_pred").select(int(p)).run()
    assert not app.exception
    assert match_count(app)[0] == 0
    assert any("No test image matches" in i.value for i in app.info)


def test_filters_are_kept_when_coming_back(app):
    app.selectbox(key="pred_true").select(7).run()
    app.switch_page("pages/overview.py").run()
    app.switch_page("pages/predictions.py").run()
    assert not app.exception
    assert app.selectbox(key="pred_true").value == 7
