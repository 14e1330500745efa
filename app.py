"""Entry point of the dashboard: ``streamlit run app.py``.

Registers the pages (URL paths below), initialises the session state, draws the shared sidebar
and runs the selected page. Environment: ``NN_MODELS_DIR`` (saved models folder, default
``saved_models/``), ``NN_TRAIN_LIMIT`` (cap on training images used by the Train page),
``NN_RUNS_DB`` (run database, see ``nn.services.runs``), ``NN_MINE_DB`` (the user's drawings,
see ``nn.services.mine``), ``NN_DATA_DIR`` (added data sets, see ``nn.data.registry``).
"""

from __future__ import annotations

# pandas before any page runs: Streamlit imports it lazily (the first st_canvas, st.dataframe...)
# in one session's script thread, and Plotly, building a figure in another session's thread at
# that moment, takes the half-imported module from sys.modules and fails ("partially initialized
# module 'pandas'"); the session importing it was seen to hang there for good.
import pandas  # noqa: F401
import streamlit as st

from ui.auth import current_workspace, is_admin, render_account, require_sign_in
from ui.page_registry import PAGES
from ui.sidebar import render_sidebar
from ui.state import init_state

# Shown only to the teachers named in NN_ADMINS, on a server where people sign in.
TEACHER_PAGES = [("pages/class_view.py", "Class", "class", ":material/school:")]


def _pages() -> list:
    """The st.Page objects of ``PAGES`` (``ui.page_registry``) and, for a teacher,
    ``TEACHER_PAGES``; the first one is the default page."""
    listed = PAGES + (TEACHER_PAGES if is_admin() else [])
    return [
        st.Page(
            file, title=title, icon=icon, default=(i == 0), **({"url_path": url} if url else {})
        )
        for i, (file, title, url, icon) in enumerate(listed)
    ]


def main() -> None:
    st.set_page_config(
        page_title="NumPy MNIST network", page_icon=":material/neurology:", layout="wide"
    )
    require_sign_in()
    current_workspace()
    init_state()
    # every page listed (Streamlit folds a list of more than ten under "View more")
    page = st.navigation(_pages(), expanded=True)
    with st.sidebar:
        render_account()
    render_sidebar(page.url_path)
    page.run()


# Streamlit runs this file as __main__; tests import it for PAGES.
if __name__ == "__main__":
    main()
