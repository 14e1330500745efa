"""How long the How it computes page (/maths) takes on the server to answer a change of unit,
of position or a step, for the shipped CNN (saved_models/default.npz).

    python bench/maths_latency.py [--repeat 15] [--model saved_models/default.npz]

Two measurements, interleaved round by round:

* **engine**: the numbers the page asks for after the change (``nn.core.maths``): a unit's
  numbers and its gradient check (``Trace.unit`` + ``Trace.gradient_check``) for a new unit of
  each kind of layer, the same at a new position of a feature map, and one SGD step on the copy
  (``ui.maths_session.take_step``'s work: ``Trace.sgd_step`` and the stepped unit's numbers),
  all on one BLAS thread as the page runs them;
* **page**: the whole script run of the page (app.py, the sidebar, the page) after a widget
  change under ``streamlit.testing.v1.AppTest``, timed around Streamlit's own
  ``exec_func_with_error_handling`` (the script's run, not AppTest's polling). AppTest compiles
  the script again on every run, which a server does once (its ``ScriptCache``): the bench gives
  AppTest one cache, as a server has. A change of position is a click on the Plotly chart,
  which AppTest cannot make; its page run is a change of unit on a feature-map layer.

Each figure is given as wall time and as the CPU time of the thread that did the work
(``time.thread_time``): on a shared machine the wall time includes waiting for a core, the CPU
time does not. Peer, measured in the same rounds: the Draw page's work per stroke for the same model
(``model.predict_proba`` of one image plus ``model.activations``), so that figures from a busy
shared machine can be compared as ratios. Prints medians and 90th percentiles in milliseconds
and whether the page's median answers within 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nn.core.blas import limit_threads  # noqa: E402
from nn.core.maths import Trace  # noqa: E402
from nn.io.model_files import load_model  # noqa: E402
from nn.services.maths import mnist_test_set  # noqa: E402

CLOCK = time.perf_counter
CPU = time.thread_time  # the calling thread's CPU time: what a busy machine cannot inflate
BUDGET_MS = 100.0


def _ms(fn) -> tuple[float, float]:
    """``(wall, cpu)`` milliseconds of ``fn()``."""
    start, cpu = CLOCK(), CPU()
    fn()
    return 1000 * (CLOCK() - start), 1000 * (CPU() - cpu)


class PageTimer:
    """AppTest runs of the page, each script run timed around exec_func_with_error_handling."""

    def __init__(self, models_dir: Path):
        import streamlit.runtime.scriptrunner.script_runner as runner
        import streamlit.testing.v1.app_test as app_test
        import streamlit.testing.v1.local_script_runner as local
        from streamlit.runtime.scriptrunner.script_cache import ScriptCache
        from streamlit.testing.v1 import AppTest

        os.environ["NN_MODELS_DIR"] = str(models_dir)
        shared = ScriptCache()
        app_test.ScriptCache = local.ScriptCache = lambda: shared  # one cache, as a server
        self.runs: list[tuple[float, float]] = []
        original = runner.exec_func_with_error_handling

        def timed(func, ctx):
            start, cpu = CLOCK(), CPU()
            try:
                return original(func, ctx)
            finally:
                self.runs.append((1000 * (CLOCK() - start), 1000 * (CPU() - cpu)))

        runner.exec_func_with_error_handling = timed
        self.at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        self.at.run()
        self.at.switch_page("pages/maths.py").run()
        assert not self.at.exception, [e.value for e in self.at.exception]

    def change(self, act) -> tuple[float, float]:
        """Run ``act(at)`` (a widget change and its run); the script run's wall and CPU
        milliseconds."""
        self.runs.clear()
        act(self.at)
        assert not self.at.exception, [e.value for e in self.at.exception]
        return self.runs[-1]

    def layer(self, index: int):
        def act(at):
            box = at.selectbox(key="maths_layer")
            box.set_value(next(o for o in box.options if o.startswith(f"{index} "))).run()

        return act


def _engine_rounds(trace: Trace, r: int) -> dict[str, tuple[float, float]]:
    """One round of the engine's work per kind of change (unit and position vary by round)."""
    out = {}
    with limit_threads(1):
        for layer in (0, 4, 9, 13):
            unit = r % trace.n_units(layer)

            def numbers(layer=layer, unit=unit):
                shown = trace.unit(layer, unit)
                trace.gradient_check(layer, unit, shown["position"])

            out[f"unit, layer {layer} {trace.layers[layer].kind}"] = _ms(numbers)
        h, w = trace.outputs[0].shape[1:3]
        position = (r * 7 % h, r * 5 % w)
        out["position, layer 0 conv2d"] = _ms(
            lambda: (trace.unit(0, 3, position), trace.gradient_check(0, 3, position))
        )
        stepped = Trace(trace.net, trace.x, trace.label)
        out["step (SGD on the copy + the unit)"] = _ms(
            lambda: (stepped.sgd_step(0.01), stepped.unit(13, 3))
        )
    return out


def _summary(name: str, values: list[tuple[float, float]]) -> str:
    wall, cpu = (np.array([v[i] for v in values]) for i in (0, 1))
    return (
        f"  {name:<36} wall median {np.median(wall):6.1f} ms, p90 {np.percentile(wall, 90):6.1f}"
        f"   CPU median {np.median(cpu):6.1f} ms, p90 {np.percentile(cpu, 90):6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--model", default=str(REPO / "saved_models" / "default.npz"))
    args = parser.parse_args()
    model_path = Path(args.model).resolve()
    model = load_model(model_path)
    x, y = mnist_test_set()
    trace = Trace(model.stack_, x[0] / 255.0, int(y[0]))
    page = PageTimer(model_path.parent)
    one = x[:1]

    engine: dict[str, list[tuple[float, float]]] = {}
    pages: dict[str, list[tuple[float, float]]] = {}
    peer: list[tuple[float, float]] = []
    for r in range(args.repeat + 1):
        rows = {
            "unit, output layer 13": lambda at, r=r: (
                at.number_input(key="maths_unit_13").set_value(r % 10).run()
            ),
            "layer 0 (conv2d), its first view": page.layer(0),
            "unit, conv2d layer 0": lambda at, r=r: (
                at.number_input(key="maths_unit_0").set_value(r % 32).run()
            ),
            "layer 13 again": page.layer(13),
            "step": lambda at: at.button(key="maths_step").click().run(),
        }
        timings = {name: page.change(act) for name, act in rows.items()}
        if r % 5 == 4:
            page.at.button(key="maths_reset").click().run()
        engine_now = _engine_rounds(trace, r)
        peer_now = _ms(lambda: (model.predict_proba(one), model.activations(one)))
        if r == 0:
            continue  # warm-up round: first buffers, first figures
        for name, ms in timings.items():
            pages.setdefault(name, []).append(ms)
        for name, ms in engine_now.items():
            engine.setdefault(name, []).append(ms)
        peer.append(peer_now)

    print(f"model {model_path} ({model.n_parameters_:,} parameters), {args.repeat} rounds")
    print(f"load average {os.getloadavg()[0]:.1f} (shared machine: read the ratios)")
    print("engine (the numbers after the change, one BLAS thread):")
    for name, values in engine.items():
        print(_summary(name, values))
    print("page (the whole script run after the change):")
    for name, values in pages.items():
        print(_summary(name, values))
    print(_summary("peer: Draw's predict + activations", peer))
    for i, what in enumerate(("wall", "CPU")):
        peer_ms = statistics.median(v[i] for v in peer)
        worst = max(statistics.median(v[i] for v in values) for values in pages.values())
        print(
            f"slowest page change, {what}: median {worst:.1f} ms = {worst / peer_ms:.1f}x the "
            f"peer; {'within' if worst <= BUDGET_MS else 'above'} the {BUDGET_MS:.0f} ms budget"
        )


if __name__ == "__main__":
    main()
