"""nn.blas: the OpenBLAS routines agree with their NumPy fallbacks; optimizers agree on both
paths."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn import NeuralNetwork
from nn.core import blas
from nn.core.optimizers import OPTIMIZERS, flat_like, make_optimizer
from nn.io.model_files import save_model

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def pure_numpy():
    """The NumPy fallbacks inside the block, as with NN_PURE_NUMPY=1."""
    saved, blas._use_blas = blas._use_blas, False
    try:
        yield
    finally:
        blas._use_blas = saved


def test_found_in_numpys_own_openblas():
    # NumPy's wheels (the pinned one included) ship scipy-openblas; where it is there, it is used.
    if blas._candidates():
        assert blas._use_blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_and_axpby_match_numpy(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1001).astype(dtype)
    y = rng.normal(size=1001).astype(dtype)
    work = np.empty_like(x)
    a, b = y.copy(), y.copy()
    blas.axpy(0.3, x, a, work)
    blas.axpby(-0.7, x, 0.9, b, work)
    np.testing.assert_allclose(a, y + dtype(0.3) * x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b, dtype(-0.7) * x + dtype(0.9) * y, rtol=1e-6, atol=1e-6)
    with pure_numpy():
        a2, b2 = y.copy(), y.copy()
        blas.axpy(0.3, x, a2, work)
        blas.axpby(-0.7, x, 0.9, b2, work)
    np.testing.assert_allclose(a, a2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b, b2, rtol=1e-6, atol=1e-6)


def test_strided_and_mixed_arrays_take_the_numpy_path():
    x = np.arange(20, dtype=np.float32)[::2]  # not contiguous
    y = np.ones(10, np.float32)
    blas.axpy(2.0, x, y, np.empty(10, np.float32))
    np.testing.assert_array_equal(y, 1 + 2 * np.arange(0, 20, 2))
    y64 = np.ones(3)
    blas.axpby(1.0, np.ones(3, np.float32), 2.0, y64, np.empty(3))  # mixed dtypes
    np.testing.assert_array_equal(y64, [3.0, 3.0, 3.0])


def test_limit_threads_restores_the_count():
    before = blas.get_threads()
    with blas.limit_threads(1):
        assert blas.get_threads() in (1, None)
    assert blas.get_threads() == before


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_update_equals_per_parameter_update_and_numpy_path(name):
    rng = np.random.default_rng(1)
    shapes = [(30, 20), (20,), (20, 5), (5,)]
    start = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(3)]

    def flat_copy(arrays):
        flat, views = flat_like(arrays)
        for view, a in zip(views, arrays, strict=True):
            view[...] = a
        return flat, views

    def run(flat: bool, numpy_only: bool):
        opt = make_optimizer(name)
        flat_p, params = flat_copy(start)
        for step in grads:
            flat_g, gviews = flat_copy(step)
            if numpy_only:
                with pure_numpy():
                    opt.step(params, gviews, 0.01, flat=(flat_p, flat_g) if flat else None)
            else:
                opt.step(params, gviews, 0.01, flat=(flat_p, flat_g) if flat else None)
        return flat_p, opt

    reference, ref_opt = run(flat=False, numpy_only=True)
    for flat in (False, True):
        got, opt = run(flat=flat, numpy_only=False)
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)
        for slot, arrays in opt.state.items():
            assert [a.shape for a in arrays] == shapes  # saved per parameter, as before
            for a, b in zip(arrays, ref_opt.state[slot], strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_network_parameters_share_one_flat_array_and_survive_reloading(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(200, 16), dtype=np.uint8)
    y = rng.integers(0, 3, size=200)
    model = NeuralNetwork(
        hidden_layers=(8,), epochs=2, batch_size=32, random_state=0, shuffle=False, warm_start=True
    ).fit(X, y)
    flat = model._flat_params
    assert all(p.base is flat for p in model._params())
    # A reloaded model's arrays (weights and Adam's m and v) are separate; fitting packs them
    # again and continues exactly (no shuffling, so no random numbers are involved).
    path = save_model(model, tmp_path / "m.npz")
    from nn.io.model_files import load_model

    loaded = load_model(path)
    model.fit(X, y)
    loaded.fit(X, y)
    assert all(p.base is loaded._flat_params for p in loaded._params())
    for a, b in zip(model._params(), loaded._params(), strict=True):
        np.testing.assert_array_equal(a, b)


IDLE_SPIN_PROBE = """
import os, numpy as np
from nn.core import blas
a = np.arange(300 * 300, dtype=np.float32).reshape(300, 300) / 9e4
blas.set_threads(2)
print(blas.idle_spin, os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
      bool(np.allclose(a @ a, (a.astype(np.float64) @ a.astype(np.float64)), rtol=1e-5)))
"""


def _idle_spin_in_child(**env: str) -> list[str]:
    """What a fresh interpreter that imports nn.core.blas reports: the spin OpenBLAS reads, the
    environment its children inherit, and whether a threaded product is still right."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environment.pop("NN_PURE_NUMPY", None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", IDLE_SPIN_PROBE],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.split()


def test_import_shortens_openblas_idle_spin_and_children_inherit_it():
    if blas._ROUTINES is None:
        pytest.skip("no OpenBLAS found beside NumPy")
    assert _idle_spin_in_child() == [str(blas.IDLE_SPIN), str(blas.IDLE_SPIN), "True"]


def test_a_spin_the_user_set_is_kept():
    if blas._ROUTINES is None:
        pytest.skip("no OpenBLAS found beside NumPy")
    assert _idle_spin_in_child(OPENBLAS_THREAD_TIMEOUT="25") == ["25", "25", "True"]


def test_pure_numpy_leaves_openblas_alone():
    assert _idle_spin_in_child(NN_PURE_NUMPY="1") == ["None", "None", "True"]
