"""The Draw page's look inside under AppTest: a CNN's feature maps, one picture per conv and
pooling layer, and the attribution map by each method, computed once per drawing and method."""

from __future__ import annotations

import numpy as np
import pytest
from test_draw_page import _walk, figures, headings, upscaled

from nn.io.model_files import save_model
from ui.draw_inside import attribution_picture


@pytest.fixture(scope="module")
def cnn_dir(cnn_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn_models")
    save_model(cnn_model, folder / "cnn.npz")
    return folder


@pytest.fixture
def app(env, cnn_dir, monkeypatch, small_model, open_app, inject_drawing):
    monkeypatch.setenv("NN_MODELS_DIR", str(cnn_dir))
    at = open_app("pages/draw.py")
    inject_drawing(at, upscaled(small_model[1].x_test[0]))
    return at


def captions(at) -> list[str]:
    return figures(at)


def test_feature_maps_of_every_conv_and_pool_layer(app):
    titles = [c for c in captions(app) if " maps of " in c]
    # conftest.CNN_LAYERS: conv (+batchnorm, so no activation right after), maxpool, conv+tanh,
    # avgpool
    assert [t.split(":")[0] for t in titles] == [
        "0 conv2d",
        "3 maxpool",
        "4 conv2d + tanh",
        "6 avgpool",
    ]
    assert titles[0].endswith("6 maps of 14x14")
    assert "Feature maps" in headings(app)
    # in the container the browser tests find them by
    (block,) = [
        n
        for n in _walk(app.main)
        if type(n).__name__ == "Block" and str(n.proto.id).endswith("draw_feature_maps")
    ]
    assert sum(" maps of " in h.value for h in _walk(block) if type(h).__name__ == "Html") == 1


def test_attribution_by_each_method_computed_once(app):
    assert any(c.startswith("Saliency for ") for c in captions(app))
    cache = app.session_state["draw_attribution_cache"]
    assert len(cache) == 1
    app.radio(key="draw_attr_method").set_value("integrated_gradients").run()
    assert any(c.startswith("Integrated gradients for ") for c in captions(app))
    app.selectbox(key="draw_attr_baseline").select("blurred").run()
    app.radio(key="draw_attr_method").set_value("occlusion").run()
    assert not app.exception
    assert any(c.startswith("Occlusion for ") for c in captions(app))
    assert len(app.session_state["draw_attribution_cache"]) == 4
    app.radio(key="draw_attr_method").set_value("saliency").run()
    assert len(app.session_state["draw_attribution_cache"]) == 4  # from the cache


def test_attribution_picture_colours():
    x = np.zeros(784)
    values = np.zeros(784)
    values[0], values[1] = 2.0, -1.0
    picture = attribution_picture(values, x, scale=2)
    assert picture.shape == (56, 56, 3) and picture.dtype == np.uint8
    assert tuple(picture[0, 0]) == (255, 63, 0)  # red: for the class
    assert picture[0, 2, 2] > picture[0, 2, 0]  # blue: against it
    assert picture[10, 10].max() == 0


def test_activation_strips_one_cell_per_unit_in_the_layers_range():
    from ui.draw_inside import STRIP_UNITS, activation_strips

    wide = np.linspace(-1.0, 3.0, STRIP_UNITS + 6)  # wraps onto a second row
    (title_wide, strip_wide), (title_flat, strip_flat) = activation_strips([wide, np.ones(5)])
    assert title_wide == f"hidden layer 1 ({STRIP_UNITS + 6} units, min -1.00, max 3.00)"
    assert strip_wide.shape == (2, STRIP_UNITS, 3)
    assert tuple(strip_wide[0, 0]) == (68, 1, 84)  # the lowest unit: viridis' dark end
    assert tuple(strip_wide[1, 5]) == (253, 231, 37)  # the highest: its yellow
    assert tuple(strip_wide[-1, -1]) == (255, 255, 255)  # past the last unit: blank
    assert title_flat.startswith("hidden layer 2 (5 units, ")
    assert strip_flat.shape == (1, 5, 3)


def test_feature_maps_and_attribution_html_hold_their_pictures():
    from ui.draw_inside import attribution_html, feature_maps_html

    maps = feature_maps_html([("0 conv2d: 2 maps of 4x4", np.zeros((9, 4), np.uint8), 3)])
    assert maps.count("<img ") == 1 and "0 conv2d: 2 maps of 4x4</figcaption>" in maps
    assert 'width="12"' in maps  # shown 3 times larger
    assert 'src="data:image/png;base64,' in maps
    attribution = attribution_html(np.ones(784), np.zeros(784), "occlusion", "<7>")
    assert "<h3>Which pixels made it a &lt;7&gt;</h3>" in attribution
    assert "Occlusion for &lt;7&gt;</figcaption>" in attribution
    assert 'width="168"' in attribution  # 28 pixels shown 6 times larger
