"""Job functions for tests/test_jobs.py, run in the runner's worker processes (a module of its own
so that a worker imports only this, not pytest's test module)."""

from __future__ import annotations

import os
import sys


def hold_until_stopped(ctx):
    """Occupy a slot: report, then wait for the stop request."""
    ctx.emit({"kind": "holding"})
    while not ctx.stop_requested(timeout=1.0):
        pass
    return {"held": True}


def exhaust_memory(ctx):
    """Ask NumPy for far more memory than any machine has (raises MemoryError)."""
    import numpy as np

    return {"size": int(np.ones(1 << 47, dtype=np.float64).size)}


def die_abruptly(ctx):
    """End the worker without a word (as a segfault would)."""
    os._exit(3)


def report_environment(ctx):
    """What the worker's interpreter looks like."""
    return {
        "threads": {
            name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
        },
        "streamlit": sorted(m for m in sys.modules if m.split(".")[0] == "streamlit"),
        "main": getattr(sys.modules.get("__main__"), "__file__", None),
        "config": ctx.config,
        "arrays": {name: a.tolist() for name, a in ctx.arrays.items()},
    }


def ignore_stop(ctx):
    """Never look at the stop request."""
    import threading

    ctx.emit({"kind": "ignoring"})
    threading.Event().wait()


def report_priorities(ctx):
    """The ``nice`` value of every thread of the worker (its BLAS threads included), after a
    product that has the BLAS threads working."""
    import numpy as np

    a = np.ones((256, 256))
    _ = a @ a
    values = {}
    for tid in os.listdir("/proc/self/task"):
        values[tid] = os.getpriority(os.PRIO_PROCESS, int(tid))
    return {"threads": len(values), "nice": sorted(set(values.values()))}


def allocate(ctx):
    """Allocate and touch ``ctx.config["bytes"]`` bytes (a MemoryError past the worker's cap)."""
    import numpy as np

    block = np.ones(int(ctx.config["bytes"]), dtype=np.uint8)
    return {"allocated": int(block.size)}
