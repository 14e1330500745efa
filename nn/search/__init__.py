"""Hyperparameter search: spaces (``space``), grid and random plans and successive halving
(``engine``), trials and results (``results``), on joblib's backends."""

from nn.search.engine import *  # noqa: F403  (the search API is this package's public face)
from nn.search.engine import __all__ as _engine_names
from nn.search.results import *  # noqa: F403
from nn.search.results import __all__ as _results_names
from nn.search.space import *  # noqa: F403
from nn.search.space import __all__ as _space_names

__all__ = [*_engine_names, *_results_names, *_space_names]
