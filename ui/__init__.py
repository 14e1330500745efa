"""Streamlit-only helpers shared by the dashboard pages (``nn/`` never imports these).

- ``ui.state``: session-state initialisation, the active model, cached MNIST / models /
  test-set predictions, the session's training slot.
- ``ui.sidebar``: the sidebar shown on every page.
- ``ui.charts``: Plotly figures of training curves (pure functions).
- ``ui.worker``: the background training thread (never calls Streamlit).
- ``ui.train_form``: the widgets of the Train page.
"""
