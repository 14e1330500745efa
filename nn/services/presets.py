"""Named training configurations, shared by ``python -m nn train --preset NAME`` and the dashboard.

A :class:`Preset` is NeuralNetwork keyword arguments (``model``) plus data settings (``data``:
split scheme, split seed, training subset; see :data:`nn.services.training.DATA_DEFAULTS`), a
one-line description and, for a published configuration, the result reported with it.

Every preset is one block below: edit the numbers there. ``model`` lists only the settings the
preset chooses; everything else is a NeuralNetwork default.

    from nn.services.presets import get_preset, train
    result = train("fast", overrides={"epochs": 3}, data_overrides={"train_size": 5000})
    result.test_accuracy, result.model
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nn.core.network import NeuralNetwork
from nn.services.settings import for_images
from nn.services.training import check_network_size, run_training

__all__ = [
    "Preset",
    "PRESETS",
    "DEFAULT_PRESET",
    "adapted_to_set",
    "fit_problem",
    "fitting_presets",
    "get_preset",
    "resolve_config",
    "train",
]


@dataclass(frozen=True)
class Preset:
    """A named configuration. ``model`` and ``data`` are plain dicts: use :meth:`model_kwargs` /
    :meth:`data_kwargs` for copies you may change."""

    name: str
    description: str
    model: dict[str, Any]
    data: dict[str, Any] = field(
        default_factory=lambda: {"split": "standard", "seed": 0, "train_size": None}
    )
    reference: str = ""

    def model_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """A deep copy of ``model`` with ``overrides`` applied."""
        out = copy.deepcopy(self.model)
        out.update(copy.deepcopy(overrides))
        return out

    def data_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """A deep copy of ``data`` with ``overrides`` applied."""
        out = copy.deepcopy(self.data)
        out.update(copy.deepcopy(overrides))
        return out


# The distortions the augmented presets apply: up to 2 px of shift, 10 degrees of rotation,
# 10% of zoom and an elastic warp (Simard et al., 2003) of strength 20 px and smoothness 4 px.
MNIST_DISTORTIONS: dict[str, float] = {
    "shift": 2.0,
    "rotation": 10.0,
    "scale": 0.1,
    "elastic_alpha": 20.0,
    "elastic_sigma": 4.0,
}


def _data(split: str = "standard", seed: int = 0, train_size: int | None = None) -> dict[str, Any]:
    return {"split": split, "seed": seed, "train_size": train_size}


# --------------------------------------------------------------------------------------------
# The presets, one block each.
# --------------------------------------------------------------------------------------------

FAST = Preset(
    name="fast",
    description="784-256-128-10 ReLU, Adam with cosine decay, light dropout: >= 98% in about a "
    "minute",
    model=dict(
        hidden_layers=[256, 128],
        activation="relu",
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=128,
        epochs=12,
        dropout=0.1,
        schedule="cosine",
        l2=0.0,
        random_state=0,
    ),
    data=_data("standard"),
)

BEST = Preset(
    name="best",
    description="784-800-800-10 ReLU, momentum SGD with warm-up and cosine decay, dropout, "
    "shift/rotation/scale and elastic augmentation: >= 99% in under 15 minutes",
    # After Simard et al. (2003: a 2x800 MLP with elastic distortions) and Srivastava et al.
    # (2014: dropout), cut to a 40-epoch budget; its measured accuracy is in bench/README.md.
    model=dict(
        hidden_layers=[800, 800],
        activation="relu",
        optimizer="momentum",
        momentum=0.9,
        learning_rate=0.05,
        schedule="cosine",
        warmup_epochs=1,
        batch_size=128,
        epochs=40,
        dropout=0.2,
        l2=0.0,
        augment=dict(MNIST_DISTORTIONS),
        random_state=0,
    ),
    data=_data("standard"),
)

CNN = Preset(
    name="cnn",
    description="conv32k5-pool-conv64k5-pool-dense128 ReLU, Adam with cosine decay, dropout: "
    "99.30% test in 4.4 minutes (seed 0)",
    # A LeNet-style stack (valid 5x5 convolutions, 28 -> 24 -> 12 -> 8 -> 4) sized for the
    # engine's speed on 2 cores: 26.4 s per epoch of 50,000 images on a quiet machine.
    model=dict(
        layers=[
            {"type": "conv2d", "filters": 32, "kernel": 5},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "conv2d", "filters": 64, "kernel": 5},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 128},
            {"type": "relu"},
            {"type": "dropout", "rate": 0.3},
        ],
        optimizer="adam",
        learning_rate=1e-3,
        schedule="cosine",
        batch_size=128,
        epochs=10,
        random_state=0,
    ),
    data=_data("standard"),
)

CNN_BEST = Preset(
    name="cnn-best",
    description="conv32k5-bn-pool-conv64k5-bn-pool-dense128-bn ReLU, Adam with warm-up and "
    "cosine decay, dropout, shift/rotation/scale and elastic augmentation: 99.61% test (seed 0)",
    # Batch normalisation after every trained layer (Ioffe & Szegedy, 2015), elastic distortions
    # (Simard et al., 2003) and a one-epoch linear warm-up into a cosine decay to zero. A quarter
    # of the images stay as drawn and dropout is 0.3: with every image distorted and dropout 0.4
    # the net underfits (98.98% on its distorted training images, 99.47% test after 30 epochs).
    model=dict(
        layers=[
            {"type": "conv2d", "filters": 32, "kernel": 5},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "conv2d", "filters": 64, "kernel": 5},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 128},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "dropout", "rate": 0.3},
        ],
        optimizer="adam",
        learning_rate=2e-3,
        schedule="cosine",
        warmup_epochs=1,
        batch_size=128,
        epochs=25,
        augment={**MNIST_DISTORTIONS, "probability": 0.75},
        random_state=0,
    ),
    data=_data("standard"),
)

REFERENCE_256_128 = Preset(
    name="reference-256-128",
    description="784-256-128-10 ReLU with Adam, L2, dropout and inverse-time decay on an "
    "80:10:10 split",
    model=dict(
        hidden_layers=[256, 128],
        activation="relu",
        optimizer="adam",
        learning_rate=1e-3,
        l2=1e-4,
        dropout=0.2,
        schedule="inverse_time",
        lr_decay=0.05,
        batch_size=128,
        epochs=20,
        random_state=0,
    ),
    data=_data("80:10:10"),
    reference="about 97.9% validation accuracy",
)

REFERENCE_500_300_100 = Preset(
    name="reference-500-300-100",
    description="784-500-300-100-10 leaky ReLU, Xavier init, plain SGD (batch 60) with "
    "inverse-time decay",
    model=dict(
        hidden_layers=[500, 300, 100],
        activation="leaky_relu",
        init="xavier_normal",
        optimizer="sgd",
        batch_size=60,
        learning_rate=0.01,
        schedule="inverse_time",
        lr_decay=0.005,
        epochs=30,
        random_state=0,
    ),
    data=_data("standard"),
    reference="97.23% test accuracy",
)

REFERENCE_HE_RELU = Preset(
    name="reference-he-relu",
    description="784-128-10: one hidden ReLU layer, He initialisation, SGD with gradient clipping",
    model=dict(
        hidden_layers=[128],
        activation="relu",
        init="he_normal",
        optimizer="sgd",
        learning_rate=0.1,
        clip_norm=5.0,
        batch_size=64,
        epochs=10,
        random_state=0,
    ),
    data=_data("standard"),
    reference="one hidden ReLU layer with He initialisation and gradient clipping",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        FAST,
        BEST,
        CNN,
        CNN_BEST,
        REFERENCE_256_128,
        REFERENCE_500_300_100,
        REFERENCE_HE_RELU,
    )
}
DEFAULT_PRESET = "fast"


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a :class:`Preset` is returned as is); ``ValueError`` listing
    the known names otherwise."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def resolve_config(
    preset: str | Preset | None = DEFAULT_PRESET,
    overrides: Mapping[str, Any] | None = None,
    data_overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model_kwargs, data_kwargs)``: the preset's settings with the overrides applied
    (``preset=None`` starts from NeuralNetwork's defaults and the default data settings)."""
    if preset is None:
        model, data = {}, _data()
    else:
        p = get_preset(preset)
        model, data = p.model_kwargs(), p.data_kwargs()
    model.update(copy.deepcopy(dict(overrides or {})))
    data.update(copy.deepcopy(dict(data_overrides or {})))
    return model, data


def train(
    preset: str | Preset = DEFAULT_PRESET,
    *,
    overrides: Mapping[str, Any] | None = None,
    data_overrides: Mapping[str, Any] | None = None,
    mnist: Any = None,
    callback: Callable[[Any], Any] | None = None,
):
    """Train a preset (with overrides) and score it (``nn.services.training.run_training``)."""
    model_kwargs, data_kwargs = resolve_config(preset, overrides, data_overrides)
    return run_training(model_kwargs, data_kwargs, mnist=mnist, callback=callback)


# --------------------------------------------------------------------------------------------
# Presets on a data set of another shape than MNIST's (nn.data.registry)
# --------------------------------------------------------------------------------------------


def adapted_to_set(
    preset: str | Preset, image_shape: tuple[int, int, int], n_classes: int
) -> tuple[dict[str, Any], list[str]]:
    """The preset's model settings for images of ``image_shape`` in ``n_classes`` classes, and
    a note for every change: the augmentations distort 28x28 greyscale digits, so they are
    switched off for other images; the input shape comes from the images (``input_shape``)."""
    p = get_preset(preset)
    model, notes = for_images(p.model_kwargs(), image_shape)
    return model, [f"preset {p.name}: {note}" for note in notes]


def fit_problem(
    preset: str | Preset, image_shape: tuple[int, int, int], n_classes: int
) -> str | None:
    """Why the preset's network cannot train on images of ``image_shape`` in ``n_classes``
    classes (a convolution or pooling layer larger than what reaches it, or a network above
    the size limits), or ``None`` when it can. Only shapes are computed; nothing is
    allocated. Dense presets flatten any image; their size is still checked."""
    p = get_preset(preset)
    model, _ = adapted_to_set(p, image_shape, n_classes)
    try:
        net = NeuralNetwork(**model)
        check_network_size(net, tuple(int(s) for s in image_shape), int(n_classes))
    except ValueError as exc:
        shape = "x".join(str(int(s)) for s in image_shape)
        return f"preset {p.name} does not fit {shape} images in {n_classes} classes: {exc}"
    return None


def fitting_presets(image_shape: tuple[int, int, int], n_classes: int) -> dict[str, str | None]:
    """Every preset's :func:`fit_problem` on these images (``None``: it fits), in order."""
    return {name: fit_problem(name, image_shape, n_classes) for name in PRESETS}
