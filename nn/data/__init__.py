"""Data: MNIST and other image-set files (IDX, CSV, ``.npz``, ``.npy``), seeded stratified splits,
and the preprocessing that turns a drawing into a 28x28 digit (augmentation is
``nn.core.augment``, which the estimator uses)."""

from nn.data.datasets import *  # noqa: F403  (the loaders are this package's public face)
from nn.data.datasets import __all__  # noqa: F401
