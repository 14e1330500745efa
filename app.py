"""Entry point of the dashboard: ``streamlit run app.py``.

Registers the pages (URL paths below), initialises the session state, draws the shared sidebar
and runs the selected page. Environment: ``NN_MODELS_DIR`` (saved models folder, default
``saved_models/``), ``NN_TRAIN_LIMIT`` (cap on training images used by the Train page),
``NN_RUNS_DB`` (run database, see ``nn.runs``), ``NN_DATA_DIR`` (added data sets, see
``nn.data.registry``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.sidebar import render_sidebar
from ui.state import init_state

ROOT = Path(__file__).resolve().parent

# (file, title, url_path, icon). Add pages here; "" is the default page (/).
PAGES = [
    ("pages/overview.py", "Overview", "", ":material/home:"),
    ("pages/train.py", "Train", "train", ":material/model_training:"),
    ("pages/draw.py", "Draw", "draw", ":material/draw:"),
    ("pages/inside.py", "Inside", "inside", ":material/biotech:"),
    ("pages/predictions.py", "Predictions", "predictions", ":material/grid_view:"),
    ("pages/evaluate.py", "Evaluate", "evaluate", ":material/analytics:"),
    ("pages/models.py", "Models", "models", ":material/inventory_2:"),
    ("pages/data.py", "Data sets", "data", ":material/dataset:"),
    # -- pages of other engineers go below (they exist once their files land) --
    ("pages/runs.py", "Runs", "runs", ":material/history:"),
    ("pages/tune.py", "Tune", "tune", ":material/tune:"),
    ("pages/mine.py", "My digits", "mine", ":material/gesture:"),
]

st.set_page_config(
    page_title="NumPy MNIST network", page_icon=":material/neurology:", layout="wide"
)


def _pages() -> list:
    """The st.Page objects of the pages whose file exists (others are skipped, so a page still
    being written does not break the app). The first existing page is the default."""
    pages = []
    for file, title, url, icon in PAGES:
        if not (ROOT / file).is_file():
            continue
        default = not pages
        pages.append(
            st.Page(
                file, title=title, icon=icon, default=default, **({"url_path": url} if url else {})
            )
        )
    return pages


init_state()
pg = st.navigation(_pages())
render_sidebar(pg.url_path)
pg.run()
