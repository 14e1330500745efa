"""Repo-root conftest: makes `nn` and `ui` importable for plain `pytest`.

Tests run NumPy's BLAS on one thread (set before NumPy is imported, inherited by the servers and
CLI processes the tests start): with two cores shared by pytest, a Streamlit server and Chromium,
multi-threaded OpenBLAS spins and runs 5-10x slower. Speed is measured in bench/, not in tests.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
