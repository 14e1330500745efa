"""How it computes (/maths): the forward and backward arithmetic of one unit on one example
(a drawing, a test image or a kept drawing), a gradient check, SGD steps on a copy, and units
switched off. The numbers come from ``nn.core.maths`` and ``nn.services.maths``; this page only
draws them (``ui.maths_view``) and keeps their state (``ui.maths_session``)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from nn.core.blas import limit_threads
from nn.core.maths import MathsError
from nn.core.unit_edits import EDITABLE_KINDS, MAX_SCALE
from nn.services.maths import DEFAULT_LR, save_edited_model
from ui import maths_session as session
from ui import maths_view as view
from ui import state
from ui.drawing import probability_html
from ui.mine import store as mine_store
from ui.text import markdown_escape

SOURCES = ("Your drawing from Draw", "A test image", "A kept drawing")
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

state.init_state()
st.title(":material/function: How it computes")
st.caption(
    "One example through the network with the real numbers: what one unit adds up, how the "
    "loss's gradient flows back to it, a check that backpropagation is right, what one step of "
    "gradient descent does, and what happens when units are switched off."
)

picked = state.active_model()
if picked is None:
    st.info("No model yet: train one on the Train page.", icon=":material/info:")
    st.stop()
model_name, model = picked
trained_on = ((getattr(model, "metadata_", None) or {}).get("dataset") or {}).get("name", "mnist")
if not hasattr(model, "layers_") or int(model.n_features_in_) != 784 or trained_on != "mnist":
    st.info(
        f"The model {model_name!r} is not an MNIST model of this project's layers (it reads "
        f"{int(model.n_features_in_):,} values, trained on {trained_on}): this page takes "
        "digits; choose an MNIST model in the sidebar.",
        icon=":material/info:",
    )
    st.stop()
path = state.active_model_path()
model_key = f"{path}:{path.stat().st_mtime_ns}"
classes = [c.item() for c in model.classes_]


# ------------------------------------------------------------------------------ the input
def _input() -> tuple[np.ndarray, int, str]:
    """The example's input values, its true digit and a description."""
    drawing = session.carried_drawing()
    sources = list(SOURCES) if drawing is not None else list(SOURCES[1:])
    source = st.radio("Input", sources, horizontal=True, key="maths_source")
    if source == SOURCES[0]:
        x = np.asarray(drawing, np.float64)
        predicted = classes[int(np.argmax(model.predict_proba(x[None, :])[0]))]
        label = st.selectbox(
            "True digit", classes, index=classes.index(predicted), key="maths_true_digit"
        )
        return x, label, "your drawing"
    if source == SOURCES[1]:
        data = state.get_mnist()
        index = st.number_input("Test image", 0, len(data.y_test) - 1, 0, key="maths_test_index")
        return data.x_test[index] / 255.0, int(data.y_test[index]), f"test image {index}"
    kept = mine_store().list()
    if not kept:
        st.info("No kept drawings yet: keep one on the Draw page.", icon=":material/info:")
        st.stop()
    chosen = st.selectbox(
        "Kept drawing",
        kept,
        format_func=lambda d: f"#{d.id}: a {d.label}, kept {d.created_at[:10]}",
        key="maths_kept",
    )
    return chosen.x / 255.0, chosen.label, f"kept drawing #{chosen.id}"


x, label, described = _input()
try:
    trace = session.base_trace(model_key, model, x, label)
except MathsError as exc:
    st.error(f"Cannot follow this input through the network: {markdown_escape(exc)}")
    st.stop()
predicted = classes[int(np.argmax(trace.proba))]
st.html(
    '<div style="display:flex;gap:1.5rem;align-items:center">'
    f"{view.picture_of_input(x)}<div><b>{described}</b>, true digit {label}: the network says "
    f"<b>{predicted}</b> ({trace.proba.max():.1%} sure); loss −log p[{label}] = "
    f"{view.num(trace.loss)}</div></div>"
)

# ------------------------------------------------------------------------------ the unit
layer_rows = [r for r in trace.describe_layers() if r["explained"]]
left, middle, right = st.columns([2, 1, 2])
row = left.selectbox(
    "Layer",
    layer_rows,
    index=len(layer_rows) - 1,
    format_func=lambda r: (
        f"{r['index']} {r['kind']} → {'x'.join(map(str, r['output_shape']))}"
        + (" (output)" if r["is_output"] else "")
    ),
    key="maths_layer",
    help="Layer indices as `python -m nn info MODEL` prints them.",
)
layer = row["index"]
n_units = trace.n_units(layer)
unit_key = f"maths_unit_{layer}"
if unit_key not in st.session_state:
    st.session_state[unit_key] = trace.most_active(layer)
unit = middle.number_input(
    "Unit" if row["kind"] in ("dense", "batchnorm") else "Filter / channel",
    0,
    n_units - 1,
    key=unit_key,
    help="Starts at the most active one.",
)
position = None
if len(row["output_shape"]) == 3:
    map_key = f"maths_map_{layer}_{unit}"
    chosen = (st.session_state.get(map_key) or {}).get("selection", {}).get("points") or []
    if chosen:
        position = (int(chosen[0]["y"]), int(chosen[0]["x"]))
with limit_threads(1):  # one example: tiny products that threads only slow down
    numbers = trace.unit(layer, unit, position)
    check = trace.gradient_check(layer, unit, numbers["position"])
if numbers["position"] is not None:
    with right:
        st.plotly_chart(
            view.feature_map_figure(
                trace.feature_map(layer, unit),
                numbers["position"],
                "map {}: click a position (now row {}, column {})".format(
                    unit, *numbers["position"]
                ),
            ),
            on_select="rerun",
            selection_mode="points",
            key=map_key,
            config={"displayModeBar": False},
        )

# ------------------------------------------------------------------------------ forward
st.header("Forward", divider="gray")
kind = numbers["kind"]
pictures = view.unit_pictures(numbers)
if kind == "dense":
    st.html(
        view.explanation(
            "A dense unit multiplies every input by its own weight, adds them up and adds its "
            "bias: z = Σ w·x + b. Red weights push z up where the input is bright, blue pull "
            "it down."
        )
    )
elif kind == "conv2d":
    st.html(
        view.explanation(
            f"A convolution filter looks at a {numbers['input_shape'][0]}x"
            f"{numbers['input_shape'][1]} patch of its input (all channels) at the clicked "
            "position, multiplies it by its kernel and adds the bias; sliding it over every "
            "position makes the feature map."
        )
    )
elif kind == "batchnorm":
    st.html(
        view.explanation(
            "Batch normalisation rescales each feature with the mean and variance measured on "
            "the training data (the running statistics), then lets the network choose its own "
            "scale gamma and shift beta."
        )
    )
else:
    st.html(
        view.explanation(
            "Pooling keeps the largest (max) or the mean (avg) value of each window: no weights, "
            "no bias; in the backward pass the gradient flows only to the value that won."
        )
    )
if pictures:
    st.html(view.pictures_html(pictures))
if kind == "batchnorm":
    st.html(f"<p>{view.batchnorm_formula(numbers)}</p>")
elif kind in ("maxpool", "avgpool"):
    st.html(f"<p>{view.pool_text(numbers)}</p>")
else:
    st.html(f"<p>{view.z_formula(numbers)}</p>")
    rows = [list(c) for c in view.contributions(numbers)]
    st.html("<b>The largest contributions</b>" + view.table_html(["input", "x", "w", "w·x"], rows))
st.html(f"<p>{view.activation_text(numbers)}</p>{view.activation_svg(numbers)}")

st.subheader("Softmax and the loss")
temperature = st.slider(
    "Temperature",
    0.1,
    5.0,
    1.0,
    0.1,
    key="maths_temperature",
    help="Logits divided by T before the exponential: T > 1 flattens the probabilities, "
    "T < 1 sharpens them. The network itself uses T = 1.",
)
st.html(
    view.explanation(
        "The output layer's ten numbers (logits) become probabilities: exponentials, divided by "
        "their sum. The loss is −log of the true digit's probability: 0 when the network is "
        "sure and right."
    )
    + view.softmax_html(trace.softmax_table(temperature), classes)
)

# ------------------------------------------------------------------------------ backward
st.header("Backward", divider="gray")
st.html(
    view.explanation(
        "Backpropagation starts at the output: dL/dlogits = p − onehot(true digit). Each layer "
        "then turns the gradient of its output into the gradient of its input and of its "
        "weights, by the chain rule."
    )
    + view.output_gradient_html(trace.output_gradient(), classes, trace.label)
)
st.html(
    view.explanation(
        "On its way back to the chosen layer, each layer multiplies the gradient by its own "
        "derivative: an activation by f'(z) (zero where a ReLU was off), a dense or "
        "convolution layer by its weights, pooling sends it to the values that won."
    )
    + view.chain_html(trace.gradient_chain(layer))
)
weight_note = (
    "dL/dw = dL/dz · x for each weight (one example)"
    if kind == "dense"
    else "dL/dkernel sums dL/dz · patch over every position of the map"
    if kind == "conv2d"
    else "dL/dγ = dL/dz · x̂, dL/dβ = dL/dz (summed over positions)"
    if kind == "batchnorm"
    else "no weights: dL/dz goes to the input that won (max) or equally to all (avg)"
)
st.html(
    f"<p>At this unit: dL/dz = <b>{view.num(numbers['delta'])}</b>; {weight_note}; "
    f"dL/db = <b>{view.num(numbers['grad_bias'])}</b>.</p>"
)
if numbers["grad_weights"] is not None and not pictures:
    grads = np.asarray(numbers["grad_weights"])
    top = np.argsort(-np.abs(grads), kind="stable")[:8]
    st.html(view.table_html(["weight", "dL/dw"], [[int(i), float(grads[i])] for i in top]))

st.subheader("Gradient check")
st.html(
    view.explanation(
        "For the weights with the largest gradients, the loss is computed again with the weight "
        f"moved by ±h (h = {check['step']:g}) in float64: (L(w+h) − L(w−h)) / 2h should equal "
        "the backpropagated gradient."
    )
    + view.check_html(check)
)

# ------------------------------------------------------------------------------ one update
st.header("One update", divider="gray")
st.html(
    view.explanation(
        "Gradient descent moves every weight a little against its gradient: w ← w − lr · dL/dw. "
        "Here on this one example, on a copy of the network: the saved model is not changed."
    )
)
stepped, records = session.stepped()
c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
lr = c1.select_slider("Learning rate", LEARNING_RATES, value=DEFAULT_LR, key="maths_lr")
c2.button(
    "Another step" if records else "Take a step",
    key="maths_step",
    on_click=session.take_step,
    args=(lr,),
    icon=":material/step:",
)
c3.button("Reset", key="maths_reset", on_click=session.reset_steps, icon=":material/undo:")
with st.container(key="maths_update"):
    if records:
        losses = [records[0]["loss_before"], *(r["loss_after"] for r in records)]
        st.html(
            "<p>Loss: "
            + " → ".join(f"<span class='maths-loss'>{view.num(v, 6)}</span>" for v in losses)
            + f"</p><p>Last step: {len(records)}, lr {records[-1]['lr']:g}, its size "
            f"|lr · dL/dθ| / |θ| = {records[-1]['relative_step']:.2e}</p>"
        )
        change = stepped.unit(layer, unit, numbers["position"])
        if change["grad_weights"] is not None:
            moved = np.asarray(change["weights"]) - np.asarray(numbers["weights"])
            st.html(
                f"<p>This unit's weights moved by {view.num(float(np.linalg.norm(moved)))} in "
                f"all ({view.num(float(np.abs(moved).max()))} at most); z went from "
                f"{view.num(numbers['z'])} to {view.num(change['z'])}.</p>"
            )
        before, after = st.columns(2)
        before.html(probability_html(records[0]["proba_before"], classes, title="Before"))
        after.html(probability_html(records[-1]["proba_after"], classes, title="Now"))
    else:
        st.caption("No step yet.")

# ------------------------------------------------------------------------------ switching off
st.header("Switch units off", divider="gray")
st.html(
    view.explanation(
        "Zero or scale the output of chosen dense units or convolution filters (written into "
        "the weights of the layer that reads them) and see what the network still gets right."
    )
)
changed = session.edits(model_key)
editable = [r for r in layer_rows if r["kind"] in EDITABLE_KINDS]
e1, e2, e3 = st.columns([2, 3, 2], vertical_alignment="bottom")
edit_row = e1.selectbox(
    "Layer to edit",
    editable,
    format_func=lambda r: f"{r['index']} {r['kind']} ({r['output_shape'][-1]} units)",
    key="maths_edit_layer",
)
chosen_units = e2.multiselect(
    "Units", list(range(edit_row["output_shape"][-1])), key=f"maths_edit_units_{edit_row['index']}"
)
scale = e3.slider("Scale (0 = off)", 0.0, MAX_SCALE, 0.0, 0.1, key="maths_edit_scale")
b1, b2, b3 = st.columns(3)
if b1.button("Apply to these units", key="maths_edit_apply", disabled=not chosen_units):
    changed.update({(edit_row["index"], int(u)): float(scale) for u in chosen_units})
    session.set_edits(model_key, changed)
if b2.button(f"All units of layer {edit_row['index']} off", key="maths_edit_all"):
    changed.update({(edit_row["index"], u): 0.0 for u in range(edit_row["output_shape"][-1])})
    session.set_edits(model_key, changed)
if b3.button("Clear", key="maths_edit_clear", disabled=not changed):
    changed = {}
    session.set_edits(model_key, changed)
if changed:
    listed = ", ".join(
        f"{layer_index}:{u} {'off' if s == 0 else f'x{s:g}'}"
        for (layer_index, u), s in sorted(changed.items())
    )
    st.caption(f"Edited ({len(changed)}): {listed}")
data = state.get_mnist()
with st.container(key="maths_edited"):
    p_left, p_right = st.columns(2)
    p_left.html(
        probability_html(
            session.edited_proba(model_key, model, changed, x), classes, title="Your input now"
        )
    )
    with st.spinner(f"Scoring {session.SAMPLE_SIZE:,} test images…", show_time=True):
        original = session.accuracy(model_key, model, {}, data.x_test, data.y_test, "sample")
        now = session.accuracy(model_key, model, changed, data.x_test, data.y_test, "sample")
    full = session.measured(model_key, changed, "full")
    p_right.metric(
        f"Test accuracy, a fixed sample of {session.SAMPLE_SIZE:,}",
        f"{now:.1%}",
        f"{(now - original) * 100:+.1f} points" if changed else None,
    )
    if full is not None:
        p_right.metric("All 10,000 test images", f"{full:.2%}")
    elif p_right.button("Measure on all 10,000", key="maths_full"):
        with st.spinner("Scoring all 10,000 test images…", show_time=True):
            full = session.accuracy(model_key, model, changed, data.x_test, data.y_test, "full")
        p_right.metric("All 10,000 test images", f"{full:.2%}")
s1, s2 = st.columns([3, 1], vertical_alignment="bottom")
new_name = s1.text_input("Save the edited network as", f"{model_name}-edited", key="maths_name")
if s2.button("Save as a new model", key="maths_save", disabled=not changed):
    metrics = {"test_accuracy": full} if full is not None else {}
    state.set_active_model(model_name)  # the page stays on this model, not the newest file
    try:
        saved = save_edited_model(model, changed, new_name, state.models_dir(), model_name, metrics)
    except (MathsError, ValueError, OSError) as exc:
        st.error(f"Not saved: {markdown_escape(exc)}")
    else:
        st.success(f"Saved as {markdown_escape(saved.stem)}: choose it in the sidebar.")
