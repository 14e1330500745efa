"""Streamlit-only helpers shared by the dashboard pages (``nn/`` never imports these).

- ``ui.state``: session-state initialisation, the active model, cached MNIST / models /
  test-set predictions, the job runner and this person's jobs.
- ``ui.sidebar``: the sidebar shown on every page.
- ``ui.charts``: Plotly figures of training curves (pure functions).
- ``ui.session_jobs``: the dashboard's trainings, searches and fine-tunings, jobs of the runner
  held for their owner (never calls Streamlit); ``ui.job_folds``: how their messages fold in.
- ``ui.train_form``: the widgets of the Train page.
"""
