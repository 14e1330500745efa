"""Data: MNIST and other image-set files (IDX, CSV, ``.npz``, ``.npy``), seeded stratified splits,
the registry of added sets, and the preprocessing that turns a drawing into a 28x28 digit."""

from nn.data.arrays import MNIST, DataError, ImageSet, Split
from nn.data.datasets import load_dataset
from nn.data.idx import MNIST_DIR, MNIST_SHA256, find_idx_pair, load_mnist, read_idx
from nn.data.splits import SPLITS, split_dataset

__all__ = [
    "MNIST_DIR",
    "MNIST_SHA256",
    "SPLITS",
    "DataError",
    "MNIST",
    "ImageSet",
    "Split",
    "read_idx",
    "find_idx_pair",
    "load_mnist",
    "load_dataset",
    "split_dataset",
]
