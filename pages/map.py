"""Layer map (/map): a saved model's layer outputs for test images, laid out in 2-D by PCA or
UMAP, coloured by true class, mistakes as crosses; hover a point to see its image, click it to
see it in detail (as on Predictions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from nn.core.projection import last_hidden_layer, layer_choices
from nn.services.layer_map import (
    DEFAULT_IMAGES,
    UMAP_INSTALL,
    LayerMap,
    layer_map,
    umap_available,
)
from ui import state
from ui.image_detail import image_detail
from ui.map_chart import layer_map_chart, map_data

MODEL_KEY = "map_model"
LAYER_KEY = "map_layer"
METHOD_KEY = "map_method"
IMAGES_KEY = "map_images"
PICK_KEY = "map_pick"
CHART_KEY = "map_chart"
METHOD_LABELS = {"pca": "PCA (instant)", "umap": "UMAP"}


@st.cache_data(max_entries=8, show_spinner=False)
def _cached_map(
    path: str, mtime: float, set_name: str, layer: int, method: str, images: int
) -> LayerMap:
    info = next(s for s in state.data_sets() if s.name == set_name)
    data = state.get_set_data(info)
    model = state.get_model(Path(path))
    return layer_map(model, data.x_test, data.y_test, layer=layer, method=method, images=images)


state.init_state()
info = state.active_set()
st.title("Layer map")
st.caption(
    "What a layer sees: each test image is one point, placed by that layer's outputs squeezed "
    "into two dimensions. Images the layer finds alike land close together; a layer that "
    "separates the classes shows one island per class."
)
names = list(dict.fromkeys(Path(row["path"]).stem for row in state.fitting_models()))
if not names:
    state.no_model_message()
    st.stop()
active = state.active_model_name()
if st.session_state.get(MODEL_KEY) not in names:
    st.session_state[MODEL_KEY] = active if active in names else names[0]
data = state.get_set_data(info)
n_test = int(len(data.y_test))
c1, c2, c3, c4 = st.columns([2, 2, 2, 1.3], vertical_alignment="bottom")
model_name = c1.selectbox("Model", names, key=MODEL_KEY)
path = state.model_path_for(model_name)
try:
    model = state.get_model(path)
except (OSError, ValueError, TypeError) as exc:
    st.error(f"Cannot load the model {model_name!r}: {exc}")
    st.stop()
layers = layer_choices(model.layers_)
if st.session_state.get(LAYER_KEY) not in range(len(layers)):
    st.session_state[LAYER_KEY] = last_hidden_layer(model.layers_)
layer = c2.selectbox(
    "Layer",
    range(len(layers)),
    key=LAYER_KEY,
    format_func=lambda i: (
        f"{layers[i]['name']} ({'x'.join(map(str, layers[i]['output_shape']))})"
        + (" · last hidden" if i == last_hidden_layer(model.layers_) else "")
    ),
    help="Numbered as `python -m nn info MODEL` numbers them.",
)
has_umap = umap_available()
method = c3.radio(
    "Method",
    list(METHOD_LABELS) if has_umap else ["pca"],
    format_func=METHOD_LABELS.get,
    horizontal=True,
    key=METHOD_KEY,
)
images = c4.number_input(
    "Test images",
    min_value=min(100, n_test),
    max_value=n_test,
    value=min(DEFAULT_IMAGES, n_test),
    step=100,
    key=IMAGES_KEY,
)
if not has_umap:
    st.caption(
        f"UMAP is optional and not installed here: `{UMAP_INSTALL}` adds umap-learn (with "
        "scikit-learn, SciPy and numba: ~465 MB installed, ~11 s from a package mirror; a map "
        "takes ~250 MB more memory than PCA's). For the shipped CNN's last hidden layer it "
        "keeps the digits apart far better: a 5-NN vote recovers 99.2% of labels, PCA's 82.8%."
    )
spinner = "Projecting…"
if method == "umap":
    spinner = (
        "UMAP… (the first map after the server starts spends 30 s or more compiling numba "
        "code; later ones take seconds)"
    )
with st.spinner(spinner):
    result = _cached_map(
        str(path.resolve()), path.stat().st_mtime, info.name, int(layer), method, int(images)
    )

class_names = [str(c) for c in model.classes_] if info.builtin else list(info.class_names)
m1, m2, m3, m4 = st.columns(4)
m1.metric(
    "5-NN vote recovers",
    f"{result.agreement:.1%}",
    help="The fraction of points whose true class is the majority class of their 5 nearest "
    "neighbours on the map: how well the map keeps the classes apart.",
)
m2.metric("Accuracy on these images", f"{np.mean(result.labels == result.predicted):.1%}")
m3.metric("Mistakes (crosses)", f"{int(np.sum(result.labels != result.predicted)):,}")
m4.metric("Projection took", f"{result.seconds:.2f} s")

picked = layer_map_chart(
    map_data(
        result.points,
        np.searchsorted(model.classes_, result.labels),
        np.searchsorted(model.classes_, result.predicted),
        result.confidence,
        result.indices,
        data.x_test[result.indices],
        class_names,
        shape=info.image_shape,
    ),
    key=CHART_KEY,
)
axes = (
    f"The axes are the two directions along which layer {result.layer_name}'s outputs vary "
    f"most ({result.explained[0]:.0%} and {result.explained[1]:.0%} of their variance)."
    if result.method == "pca"
    else "UMAP keeps each point's nearest neighbours near; distances between islands and the "
    "axes themselves mean little."
)
st.caption(
    f"{len(result.labels):,} test images of {info.name}, layer {result.layer_name}. {axes} "
    "Hover a point to see its image; click it to see it in detail below."
)

st.subheader("One image in detail")
shown = [int(i) for i in result.indices]
if picked is not None and picked in shown:
    st.session_state[PICK_KEY] = picked
if st.session_state.get(PICK_KEY) not in shown:
    wrong = np.flatnonzero(result.labels != result.predicted)
    st.session_state[PICK_KEY] = shown[int(wrong[0])] if len(wrong) else shown[0]
position = {index: k for k, index in enumerate(shown)}


def _describe(i: int) -> str:
    k = position[i]
    true_name = class_names[int(np.searchsorted(model.classes_, result.labels[k]))]
    pred_name = class_names[int(np.searchsorted(model.classes_, result.predicted[k]))]
    mark = "" if result.labels[k] == result.predicted[k] else " ✗"
    return f"#{i}: true {true_name}, predicted {pred_name} ({result.confidence[k]:.0%}){mark}"


pick = st.selectbox("Image", shown, key=PICK_KEY, format_func=_describe)
k = position[pick]
image_detail(
    data.x_test[pick],
    pick,
    int(np.searchsorted(model.classes_, result.labels[k])),
    int(np.searchsorted(model.classes_, result.predicted[k])),
    model.predict_proba(data.x_test[pick : pick + 1])[0],
    range(len(class_names)),
    label=lambda c: class_names[int(c)],
    noun="digit" if info.builtin else "class",
    shape=info.image_shape,
    key="map_proba",
)
