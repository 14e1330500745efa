"""Bounds on what this product trains, loads and records, in one place.

Every path that makes, reads or records a model checks against these numbers before it allocates:
the estimator's validation, the model-file readers (``.npz`` and ``.pkl``), the command line and
the dashboard's forms. The largest preset has about 1.3 million parameters; the bounds leave room
for far larger experiments while refusing what would exhaust the machine.
"""

MAX_PARAMETERS = 20_000_000
"""Trained parameters of one model (80 MB in float32; Adam's state and the gradient triple it)."""

MAX_SEED = 2**32 - 1
"""Largest seed accepted anywhere (``random_state``, ``--seed``, the forms): the run database
stores seeds as 64-bit integers and NumPy's generators take any non-negative int."""

MAX_DATASET_IMAGES = 300_000
"""Images in one dataset file a user trains or evaluates on (MNIST has 70,000): 235 MB of
28x28 uint8 pixels, checked against the file's header before it is read or decompressed."""

MAX_DATASET_CLASSES = 1_000
"""Classes of one data set a user adds (MNIST and CIFAR-10 have 10, EMNIST-letters 26)."""

MIN_CLASS_TRAIN_IMAGES = 2
"""Training images every class of an added data set has at least (a class with none, or one,
cannot be learned or validated)."""

MAX_TRIALS = 10_000
"""Trials of one hyperparameter search (each trains at least one epoch): ``--trials``, a grid's
size, the Tune page."""

MAX_CHOICES = 1_000
"""Values of one searched choice (``choice:a|b|...``, a ``--space`` file's list)."""

MAX_GRID_POINTS = 1_000
"""Points per range of a grid search."""


def bytes_from_env(name: str, default: int) -> int:
    """A positive byte count from the environment variable ``name``, else ``default``."""
    import os

    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        return default
    return value if value > 0 else default


MAX_TRAINING_BYTES = bytes_from_env("NN_MAX_TRAINING_BYTES", 4 * 1024**3)
"""Memory a training may need (parameters, gradients, optimizer state, snapshots and the
per-batch buffers, im2col included), as ``nn.core.config.memory`` computes it from the
shapes; 4 GiB unless the environment variable ``NN_MAX_TRAINING_BYTES`` gives another number."""


MAX_JSON_BYTES = 1_000_000
"""Size of a JSON document a user gives (a ``--layers`` or ``--space`` file, a data set's
``info.json``, a ``--param``/``--set`` value): a search space or a stack fits in a few KB."""

MAX_JSON_DEPTH = 32
"""Nesting of lists and objects in a user's JSON (a stack is 3 deep, a choice of stacks 5)."""

MAX_JSON_NUMBER_DIGITS = 40
"""Digits of one whole number in a user's JSON (seeds and sizes need at most 20)."""

MAX_LAYERS = 200
"""Layers of one stack, activations included (a VGG-style stack of 40 layers has 80)."""

MAX_EPOCHS = 100_000
"""Epochs of one training (``--epochs``, the forms, a search's ``--epochs``)."""

MAX_TIMEOUT = 7 * 24 * 3600
"""Seconds of a search's ``--timeout`` (a week)."""

MAX_NAME_LENGTH = 100
"""Characters of a model's or a run's name."""
