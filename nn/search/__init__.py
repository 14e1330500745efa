"""Hyperparameter search: spaces, grid and random plans, successive halving, joblib backends."""

from nn.search.engine import *  # noqa: F403  (the search API is this package's public face)
from nn.search.engine import __all__  # noqa: F401
