"""The Train page's form: the widgets of ``st.session_state["train_config"]``, the form's values
(``nn.services.settings`` maps them to ``NeuralNetwork`` keyword arguments and checks them).

Every hyperparameter's widget is made from its entry in ``nn.core.params.PARAMS``: a number
input (step and format from its ``Widget``), a select for choices, a toggle for switches, a
toggle and a number for an optional number; shown in the tab of its ``section`` when its
``when`` holds. The dense rows (``ui.stack_editor`` draws the layer stack), the augmentation and
the data split have their own widgets. Widget keys are ``tf_<name>``; they only mirror
``train_config`` (a preset sets them so the widgets pick up the new values).
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from nn.core.activations import ACTIVATIONS
from nn.core.params import Param, shown
from nn.services import form_checks, settings
from nn.services.presets import DEFAULT_PRESET, PRESETS, adapted_to_set, fit_problem
from nn.services.training import part_sizes
from ui import stack_editor

STACK_MODES = {"dense": "Dense layers (quick)", "stack": "Layer stack (CNN)"}
# short names: longer ones overflow the six tabs and the scroll arrow covers them
TABS = (
    ("Layers", ("layers",)),
    ("Optimizer", ("optimizer",)),
    ("Schedule", ("schedule",)),
    ("Regularise", ("regularisation",)),
    ("Augment", ("augmentation",)),
    ("Data", ("training", settings.DATA_SECTION)),
)


def default_config() -> dict[str, Any]:
    """The form's values for the default preset."""
    preset = PRESETS[DEFAULT_PRESET]
    return settings.form_values(preset.model_kwargs(), preset.data_kwargs(), DEFAULT_PRESET)


def validate(cfg: dict, train_limit: int | None = None, info: Any = None) -> dict[str, list[str]]:
    """Problems of the form by section (empty: ready to train) for the data set ``info``
    (default: MNIST), the layer stack's faults from its editor's shape inference included."""
    info = form_checks.set_info(info)
    faults = []
    if cfg.get("stack_mode") == "stack":
        rows = stack_editor.infer_shapes(cfg.get("stack") or [], info.image_shape, info.n_classes)
        faults = stack_editor.faults(rows)
    return form_checks.form_problems(cfg, train_limit, info, faults)


def diverged_without_nan(snap: dict, n_classes: int = 10) -> str | None:
    """A message when a run diverged, or "finished" with a training loss above ln(classes), the
    loss of a model that guesses uniformly: it learned nothing, whether its weights blew up short
    of the engine's divergence rule or never moved (a stalled initialisation, a tiny learning
    rate). None for a run that learned."""
    if snap.get("stop_reason") == "diverged":
        return snap.get("stop_message") or "Training diverged."
    losses = [v for v in (snap.get("history") or {}).get("loss") or [] if v is not None]
    if not losses:
        return None
    chance = math.log(n_classes)
    if not losses[-1] > chance:
        return None
    return (
        f"The training loss ended at {losses[-1]:.4g}, above ln({n_classes}) = {chance:.2f} (the "
        "loss of guessing): the model is no better than chance. Either the training diverged "
        "without reaching NaN (lower the learning rate, clip the gradient) or it never got "
        "going (check the initialisation and the learning rate)."
    )


# ------------------------------------------------------------------------------ presets
def apply_preset(
    name: str,
    image_shape: tuple[int, int, int] = settings.MNIST_IMAGE_SHAPE,
    n_classes: int = 10,
) -> None:
    """Button callback: fill the form from ``PRESETS[name]`` adapted to images of
    ``image_shape`` in ``n_classes`` classes (``nn.services.presets.adapted_to_set``). A preset
    that does not fit them leaves the form as it is (its button is disabled).

    The widget keys are SET (not just deleted): a browser keeps a widget's old value and sends
    it back on the next rerun unless the server sets it through the Session State API."""
    if fit_problem(name, image_shape, n_classes) is not None:
        return
    preset = PRESETS[name]
    model, _ = adapted_to_set(preset, image_shape, n_classes)
    model.pop("input_shape", None)  # the training job takes it from the data set
    cfg = settings.form_values(model, preset.data_kwargs(), name)
    st.session_state["train_config"] = cfg
    for key in [k for k in st.session_state if str(k).startswith("tf_")]:
        del st.session_state[key]
    for field, value in cfg.items():
        if field not in ("layers", "preset") and not field.startswith("stack"):
            st.session_state[f"tf_{field}"] = value
    st.session_state["tf_stack_mode"] = cfg["stack_mode"]
    st.session_state["tf_n_layers"] = len(cfg["layers"])
    for i, layer in enumerate(cfg["layers"]):
        st.session_state[f"tf_units_{i}"] = layer["units"]
        st.session_state[f"tf_act_{i}"] = layer["activation"]
        st.session_state[f"tf_drop_{i}"] = layer["dropout"]


# ------------------------------------------------------------------------------ widgets
def _initial(key: str, **default) -> dict:
    """``value=``/``index=`` only when the widget has no state yet (passing both a default and
    a Session-State value makes Streamlit warn)."""
    return {} if key in st.session_state else default


def _num(cfg: dict, field: str, disabled: bool, col=None, help: str | None = None) -> None:
    """The number input of ``settings.number_fields()[field]``, writing its value into ``cfg``;
    ``help`` replaces the field's own help text (one that depends on the data set)."""
    spec = settings.number_fields()[field]
    target = col if col is not None else st
    extra = {} if spec.format is None else {"format": spec.format}
    cfg[field] = target.number_input(
        spec.label,
        key=f"tf_{field}",
        help=spec.help if help is None else help,
        disabled=disabled,
        step=spec.step,
        **_initial(f"tf_{field}", value=cfg[field]),
        **extra,
    )


def _select(cfg: dict, field: str, label: str, options, help: str, disabled: bool, col=None):
    target = col if col is not None else st
    options = list(options)
    index = options.index(cfg[field]) if cfg[field] in options else 0
    cfg[field] = target.selectbox(
        label,
        options,
        key=f"tf_{field}",
        help=help,
        disabled=disabled,
        **_initial(f"tf_{field}", index=index),
    )


def _toggle(cfg: dict, key: str, label: str, help: str, disabled: bool, col=None) -> bool:
    target = col if col is not None else st
    cfg[key] = target.toggle(
        label,
        key=f"tf_{key}",
        help=help,
        disabled=disabled,
        **_initial(f"tf_{key}", value=cfg[key]),
    )
    return cfg[key]


def _param_widget(cfg: dict, param: Param, disabled: bool, col) -> None:
    """The widget of one hyperparameter, from its entry in the table."""
    if param.name not in cfg:  # a setting the form's values do not hold yet
        cfg[param.name] = settings.form_values()[param.name]
    if param.kind == "choice":
        _select(cfg, param.name, param.label, param.choices, param.help, disabled, col)
    elif param.kind == "bool":
        _toggle(cfg, param.name, param.label, param.help, disabled, col)
    elif param.optional and param.widget.switch:
        switch = f"{param.name}_on"
        cfg.setdefault(switch, False)
        if _toggle(cfg, switch, param.widget.switch, param.widget.switch_help, disabled, col):
            _num(cfg, param.name, disabled, col)
    else:
        _num(cfg, param.name, disabled, col)


def _shown_values(cfg: dict) -> dict[str, Any]:
    """The settings a ``when`` reads: the form's, with a stack's own layer types as its
    activations."""
    values = settings.model_kwargs(cfg)
    if cfg.get("stack_mode") == "stack":
        values["activation"] = [spec.get("type") for spec in cfg.get("stack") or []]
    return values


def _section_params(cfg: dict, section: str, disabled: bool) -> None:
    """Every hyperparameter of ``section`` the form shows for these values, three a row, in
    the table's order; whether one is shown is decided after the widgets before it wrote their
    values (a choice shows its settings in the same run)."""
    cols: list = []
    for param in settings.form_params():
        if param.section != section or param.widget is None:
            continue
        if not shown(param, _shown_values(cfg)):
            continue
        if not cols:
            cols = list(st.columns(3))
        _param_widget(cfg, param, disabled, cols.pop(0))


def _mode_changed() -> None:
    """Switching to an empty stack starts it from the dense layers."""
    cfg = st.session_state["train_config"]
    if st.session_state.get("tf_stack_mode") == "stack" and not cfg.get("stack"):
        stack_editor.set_stack(cfg, settings.dense_stack(cfg))


def _layers_section(cfg: dict, disabled: bool, info: Any) -> None:
    cfg.setdefault("stack_mode", "dense")
    mode = st.segmented_control(
        "Network",
        list(STACK_MODES),
        format_func=STACK_MODES.get,
        key="tf_stack_mode",
        disabled=disabled,
        on_change=_mode_changed,
        **_initial("tf_stack_mode", default=cfg["stack_mode"]),
        help="Dense layers: widths, activations and dropout, the quick way. Layer stack: any "
        "sequence of convolution, pooling, batch norm, dense, dropout and activation layers.",
    )
    cfg["stack_mode"] = mode or cfg["stack_mode"]
    if cfg["stack_mode"] == "stack":
        stack_editor.render(cfg, disabled, info.image_shape, info.n_classes)
    else:
        _dense_layers(cfg, disabled)


def _dense_layers(cfg: dict, disabled: bool) -> None:
    layers = cfg["layers"]
    n = st.number_input(
        "Hidden layers",
        key="tf_n_layers",
        **_initial("tf_n_layers", value=len(layers)),
        step=1,  # a whole number also when the value comes from the state (not "2.00")
        disabled=disabled,
        help="How many hidden layers (0 = softmax regression).",
    )
    lo, hi = settings.LAYER_BOUNDS["n_layers"]
    if not lo <= n <= hi:  # refused by validate(); the form keeps at most `hi` layer rows
        cfg["n_layers_typed"] = int(n)
        n = max(lo, min(hi, int(n)))
    else:
        cfg.pop("n_layers_typed", None)
    while len(layers) < n:
        last = layers[-1] if layers else {"units": 128, "activation": "relu", "dropout": 0.0}
        layers.append(dict(last))
    del layers[int(n) :]
    acts = list(ACTIVATIONS)
    for i, layer in enumerate(layers):
        # the layer number as a small header: "Layer 1 dropout" ran into its help icon
        st.markdown(f"**Layer {i + 1}**")
        c1, c2, c3 = st.columns([1.1, 1.2, 1])
        layer["units"] = c1.number_input(
            "Neurons",
            **_initial(f"tf_units_{i}", value=int(layer["units"])),
            step=32,
            key=f"tf_units_{i}",
            disabled=disabled,
            help="Neurons in this hidden layer.",
        )
        layer["activation"] = c2.selectbox(
            "Activation",
            acts,
            **_initial(
                f"tf_act_{i}",
                index=acts.index(layer["activation"]) if layer["activation"] in acts else 0,
            ),
            key=f"tf_act_{i}",
            disabled=disabled,
            help="Non-linearity after this layer.",
        )
        layer["dropout"] = c3.number_input(
            "Dropout",
            **_initial(f"tf_drop_{i}", value=float(layer["dropout"])),
            step=0.05,
            key=f"tf_drop_{i}",
            disabled=disabled,
            help="Probability of dropping each neuron of this layer while training (0 = off).",
        )


def _augmentation_section(cfg: dict, disabled: bool) -> None:
    on = _toggle(
        cfg,
        "augment",
        "Augment training images",
        "Randomly shift, rotate, scale and warp each training batch.",
        disabled,
    )
    if not on:
        return
    fields = [k for k, f in settings.number_fields().items() if f.section == "augmentation"]
    for start in range(0, len(fields), 3):
        for field, col in zip(fields[start : start + 3], st.columns(3), strict=False):
            _num(cfg, field, disabled, col)


def split_help(info: Any = None) -> str:
    """What each split does with the images of the data set ``info`` (default: MNIST)."""
    info = form_checks.set_info(info)
    _, n_val, _ = part_sizes("standard", info.n_train, info.n_test)
    test = "the official test set" if info.builtin else f"{info.name}'s test part"
    return (
        f"standard: {test} ({info.n_test:,} images), {n_val:,} validation images from the "
        f"{info.n_train:,} training images; 80:10:10 or custom fractions: all "
        f"{info.n_train + info.n_test:,} images pooled."
    )


def _data_section(cfg: dict, disabled: bool, train_limit: int | None, info: Any) -> None:
    c1, c2 = st.columns(2)
    _select(cfg, "split", "Split", settings.SPLITS, split_help(info), disabled, c1)
    _num(cfg, "data_seed", disabled, col=c2)
    if cfg["split"] == "custom":
        c1, c2 = st.columns(2)
        _num(cfg, "val_fraction", disabled, col=c1)
        _num(cfg, "test_fraction", disabled, col=c2)
    usable = form_checks.split_fractions_usable(cfg)
    part = form_checks.training_part_size(cfg, info) if usable else 0
    _num(
        cfg,
        "train_size",
        disabled,
        help="Use a stratified subset of this many training images (0 = all of the training part: "
        f"{part:,} images of {info.name} with this split).",
    )
    n = form_checks.effective_train_size(cfg, train_limit, info) if usable else 0
    note = f"Training on **{n:,}** images."
    if train_limit:
        note += f" (capped by `NN_TRAIN_LIMIT={train_limit}`)"
    st.caption(note)


def render_form(
    cfg: dict, disabled: bool = False, train_limit: int | None = None, info: Any = None
) -> dict[str, list[str]]:
    """Draw every setting (in tabs) for the data set ``info`` (default: MNIST), write the values
    into ``cfg``; return the validation errors (each also shown under its section)."""
    info = form_checks.set_info(info)
    tabs = st.tabs([label for label, _ in TABS])
    for tab, (_, sections) in zip(tabs, TABS, strict=True):
        with tab:
            for section in sections:
                if section == "layers":
                    _layers_section(cfg, disabled, info)
                elif section == "augmentation":
                    _augmentation_section(cfg, disabled)
                if section == settings.DATA_SECTION:
                    _data_section(cfg, disabled, train_limit, info)
                else:
                    _section_params(cfg, section, disabled)
    errors = validate(cfg, train_limit, info)
    for tab, (_, sections) in zip(tabs, TABS, strict=True):
        with tab:
            for section in sections:
                for msg in errors.get(section, []):
                    st.error(msg, icon=":material/error:")
    return errors
