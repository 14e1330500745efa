"""The dashboard's pages, in the order of the sidebar: ``app.py`` registers them with
``st.navigation`` and the Overview lists them, so that a page added here appears in both."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (file, title, url_path, icon); "" is the default page (/). Every file listed must exist.
PAGES = [
    ("pages/overview.py", "Overview", "", ":material/home:"),
    ("pages/train.py", "Train", "train", ":material/model_training:"),
    ("pages/draw.py", "Draw", "draw", ":material/draw:"),
    ("pages/inside.py", "Inside", "inside", ":material/biotech:"),
    ("pages/maths.py", "How it computes", "maths", ":material/function:"),
    ("pages/predictions.py", "Predictions", "predictions", ":material/grid_view:"),
    ("pages/evaluate.py", "Evaluate", "evaluate", ":material/analytics:"),
    ("pages/map.py", "Layer map", "map", ":material/scatter_plot:"),
    ("pages/models.py", "Models", "models", ":material/inventory_2:"),
    ("pages/data.py", "Data sets", "data", ":material/dataset:"),
    ("pages/runs.py", "Runs", "runs", ":material/history:"),
    ("pages/tune.py", "Tune", "tune", ":material/tune:"),
    ("pages/mine.py", "My digits", "mine", ":material/gesture:"),
]


def page_summary(file: str) -> str:
    """The first sentence of a page's docstring without its "Title (/path):" prefix, e.g.
    "Every recorded training run (...), filtered and sorted; ...": what the Overview says of a
    page it has no text of its own for. ``file`` is relative to the repository."""
    try:
        doc = ast.get_docstring(ast.parse((REPO / file).read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""
    text = " ".join(doc.split()).split(": ", 1)[-1]
    first = text.split(". ")[0].rstrip(".")
    return first[:1].upper() + first[1:] + "." if first else ""
