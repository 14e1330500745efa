"""Overview page under AppTest: runs with and without a model, links to the pages, shows the data
set at a glance (counts per digit, sample grid, mean images)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ui.page_registry import PAGES, page_summary

REPO = Path(__file__).resolve().parents[1]

PAGE = "pages/overview.py"  # opened by switching to it, as from another page


def test_overview_is_the_default_page(small_env, open_app):
    at = open_app()
    assert at.title[0].value.startswith("A neural network from scratch")


def test_overview_explains_and_links(small_env, open_app):
    """Every page of the registry but the Overview has a card with its link and a text, in
    the sidebar's order; the active model is named and nobody is told to train first."""
    at = open_app(PAGE)
    links = at.get("page_link")
    targets = [str(link.proto.page) for link in links]
    expected = [file for file, _, url, _ in PAGES if url]
    assert len(expected) >= 10
    assert [t.removesuffix(".py").rsplit("/", 1)[-1] for t in targets] == [
        Path(f).stem for f in expected
    ]
    captions = [c.value for c in at.caption]
    assert any("Active model: **small**" in c for c in captions)
    assert not any("first" in c.lower() and "train" in c.lower() for c in captions)
    assert "a dense network" in at.markdown[0].value  # the small test model is dense


def test_overview_names_the_shipped_cnn(env, open_app):
    """With the shipped default model (a CNN), the Overview says it is a convolutional
    network and needs no training first."""
    shutil.copy2(REPO / "saved_models" / "default.npz", env / "default.npz")
    at = open_app(PAGE)
    intro = at.markdown[0].value
    assert "is a convolutional network (`C32k5" in intro
    assert "fully connected neural network" not in intro


def test_a_page_without_a_text_is_described_by_its_docstring():
    """A page the Overview has no text for (a new page of the registry) gets its docstring's
    first sentence, without the "Runs page:" prefix."""
    text = page_summary("pages/runs.py")
    assert text.startswith("Every recorded training run") and text.endswith(".")
    assert page_summary("pages/no-such-page.py") == ""
