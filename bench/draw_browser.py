"""The Draw page's round trip in a real browser: from the end of a stroke to the whole page
showing its result, for a dense network, a CNN and the shipped default model.

    python bench/draw_browser.py [--strokes 10] [--models dense,cnn,default]
        [--methods saliency,integrated_gradients,integrated_gradients:blurred,occlusion]

For each model, a ``streamlit run app.py`` server on 127.0.0.1 (a models folder holding only
that model) and headless Chromium (``/usr/bin/chromium``, Playwright). On ``/draw``, for each
attribution method (chosen on the page; default: saliency only), the canvas is cleared and after
one stroke to warm up every measured stroke is drawn with the mouse on the canvas and timed in
the page, from the ``mouseup`` that ends the stroke to the last of:

- the script run the stroke started reporting ``notRunning`` (every element sent),
- every picture of the page that the stroke changed (feature maps, preprocessing steps, the
  attribution map) loaded with its new content,
- every Plotly chart redrawn (``plotly_afterplot``), if the page shows any.

It waits on those events, never on a fixed delay, and reports the median and the range, when
the drawing left the page and the first and last websocket message after the mouseup arrived,
and the websocket messages and bytes of a stroke each way (the server-side compute is
``bench/draw_page.py``). The models: ``dense`` the ``fast`` preset's 784-256-128-10 and ``cnn``
the CNN of ``bench/draw_page.py`` (C32k3-P2-C64k3-P2-D128-D10), each trained for one epoch on
5,000 images, and ``default`` the shipped ``saved_models/default.npz``. Timings need an idle
machine: run it under the exclusive CPU lock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamlit_server import start_streamlit  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
PREDICTION = ".st-key-prediction"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
SERVER_START_SECONDS = 60
ROUND_TRIP_TIMEOUT_MS = 15_000

# Strokes in canvas pixels (the canvas is 280x280): a "7" to start, then short strokes that
# each add ink somewhere new, so that every one changes the 28x28 input.
WARM_UP = [(70, 50), (210, 50), (110, 240)]
STROKES = [
    [(60 + 15 * i, 120 + (i % 3) * 25), (90 + 15 * i, 150 + (i % 3) * 25)] for i in range(12)
]

# Before the app loads: stamp every message the page sends to the server and receives from it.
_SOCKET_JS = """(() => {
  const stamps = window.__socket = {sent: [], received: [], sentBytes: [], receivedBytes: []};
  const size = d => d.byteLength ?? d.size ?? d.length ?? 0;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    stamps.sent.push(performance.now());
    stamps.sentBytes.push(size(data));
    if (!this.__benchHooked) {
      this.__benchHooked = true;
      this.addEventListener('message', ev => {
        stamps.received.push(performance.now());
        stamps.receivedBytes.push(size(ev.data));
      });
    }
    return send.call(this, data);
  };
})();"""

# In the page: remember what is shown, stamp the mouseup, the end of the script run, every
# picture's load and every chart's redraw; `done()` is true once all of them came after it.
_INSTALL_JS = """() => {
  const b = window.__bench = {t0: null, idleAt: null, loads: new Map(), plots: new Map(),
                              before: new Set()};
  const main = document.querySelector('[data-testid=stMain]');
  const app = document.querySelector('[data-testid=stApp]');
  b.imgs = () => Array.from(main.querySelectorAll('img'));
  b.graphs = () => Array.from(main.querySelectorAll('.js-plotly-plot'));
  b.snapshot = () => {
    b.before = new Set(b.imgs().map(i => i.src));
    b.t0 = null; b.idleAt = null; b.loads.clear(); b.plots.clear();
  };
  const watchGraph = g => {
    if (g.__benchHooked || !g.on) return;
    g.__benchHooked = true;
    g.on('plotly_afterplot', () => { if (b.t0 !== null) b.plots.set(g, performance.now()); });
  };
  const watchImg = i => {
    if (i.__benchHooked) return;
    i.__benchHooked = true;
    i.addEventListener('load', () => {
      if (b.t0 !== null) b.loads.set(i.src, performance.now());
    });
  };
  b.hook = () => { b.imgs().forEach(watchImg); b.graphs().forEach(watchGraph); };
  new MutationObserver(records => {
    b.hook();
    for (const r of records) {
      // a run ends: the state leaves "running" (the observer may see it only afterwards)
      if (r.attributeName === 'data-test-script-state' && r.oldValue === 'running'
          && b.t0 !== null && b.idleAt === null
          && app.getAttribute('data-test-script-state') === 'notRunning')
        b.idleAt = performance.now();
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                             attributeOldValue: true,
                             attributeFilter: ['src', 'data-test-script-state']});
  document.addEventListener('mouseup', () => { b.t0 = performance.now(); }, {capture: true});
  b.hook();
  b.done = () => {
    if (b.t0 === null || b.idleAt === null) return false;
    const fresh = b.imgs().filter(i => !b.before.has(i.src));
    if (!fresh.length) return false;
    for (const i of fresh) if (!(i.complete && i.naturalWidth > 0)) return false;
    const times = [b.idleAt];
    for (const i of fresh) times.push(b.loads.has(i.src) ? b.loads.get(i.src) : b.idleAt);
    for (const t of b.plots.values()) times.push(t);
    const sock = window.__socket || {sent: [], received: [], sentBytes: [], receivedBytes: []};
    const sent = sock.sent.find(t => t >= b.t0);
    const got = sock.received.filter(t => t >= b.t0);
    const bytes = (stamps, sizes) => sizes.filter((_, i) => stamps[i] >= b.t0)
                                          .reduce((a, n) => a + n, 0);
    return {ms: Math.max(...times) - b.t0, server: b.idleAt - b.t0, pictures: fresh.length,
            charts: b.plots.size, sent: sent === undefined ? null : sent - b.t0,
            first: got.length ? got[0] - b.t0 : null,
            last: got.length ? got[got.length - 1] - b.t0 : null, messages: got.length,
            bytes_up: bytes(sock.sent, sock.sentBytes),
            bytes_down: bytes(sock.received, sock.receivedBytes)};
  };
  return true;
}"""


def _cnn_model(folder: Path) -> Path:
    from bench.draw_page import CNN
    from nn.core.network import NeuralNetwork
    from nn.data import load_mnist
    from nn.io.model_files import save_model

    data = load_mnist()
    model = NeuralNetwork(layers=CNN, epochs=1, random_state=0)
    model.fit(data.x_train[:5000], data.y_train[:5000])
    return save_model(model, folder / "default.npz", name="cnn")


def _dense_model(folder: Path) -> Path:
    from nn.core.network import NeuralNetwork
    from nn.data import load_mnist
    from nn.io.model_files import save_model

    data = load_mnist()
    model = NeuralNetwork(hidden_layers=[256, 128], epochs=1, random_state=0)
    model.fit(data.x_train[:5000], data.y_train[:5000])
    return save_model(model, folder / "default.npz", name="dense")


def _models_folder(name: str, root: Path) -> Path:
    folder = root / name
    folder.mkdir()
    if name == "default":
        shutil.copy2(REPO / "saved_models" / "default.npz", folder / "default.npz")
    elif name == "dense":
        _dense_model(folder)
    else:
        _cnn_model(folder)
    return folder


def _start_server(models: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, NN_MODELS_DIR=str(models), NN_RUNS_DB=str(models / "runs.sqlite"))
    env["NN_MINE_DB"] = str(models / "mine.sqlite")
    return start_streamlit(env, log, SERVER_START_SECONDS)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _stroke(page, points, steps: int = 12) -> None:
    box = page.locator(CANVAS).bounding_box()
    x0, y0 = points[0]
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
        for i in range(1, steps + 1):
            t = i / steps
            page.mouse.move(box["x"] + xa + (xb - xa) * t, box["y"] + ya + (yb - ya) * t)
    page.mouse.up()


def _round_trip(page, points) -> dict:
    page.evaluate("() => window.__bench.snapshot()")
    _stroke(page, points)
    handle = page.wait_for_function(
        "() => window.__bench.done()", timeout=ROUND_TRIP_TIMEOUT_MS, polling=50
    )
    return handle.json_value()


METHOD_LABELS = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated gradients",
    "occlusion": "Occlusion",
}
BLURRED = "the drawing blurred"  # the integrated gradients' second baseline, as the page says


def _choose_method(page, method: str) -> None:
    """Pick the attribution method (``name`` or ``integrated_gradients:blurred``) on the page
    and wait until the attribution map shows it."""
    name, _, baseline = method.partition(":")
    label = METHOD_LABELS[name]
    page.locator(".st-key-draw_attr_method").get_by_text(label, exact=True).click()
    page.locator(".st-key-draw_attribution", has_text=f"{label} for").first.wait_for()
    if baseline == "blurred":
        page.locator(".st-key-draw_attr_baseline").click()
        page.locator("[role=option]", has_text=BLURRED).first.click()
        page.locator(f".st-key-draw_attr_baseline input[value='{BLURRED}']").wait_for()
    page.wait_for_selector(IDLE)


def measure(url: str, strokes: int, chromium, methods: list[str]) -> dict[str, list[dict]]:
    """``{method: round trips}``: per method, on a cleared canvas, one stroke to warm up, then
    ``strokes`` timed."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    context.add_init_script(_SOCKET_JS)
    page = context.new_page()
    results = {}
    try:
        page.goto(f"{url}/draw")
        page.locator(CANVAS).wait_for()
        page.wait_for_selector(IDLE)
        page.evaluate(_INSTALL_JS)
        _round_trip(page, WARM_UP)  # the first one makes every element
        page.locator(PREDICTION, has_text="sure").first.wait_for()
        for method in methods:
            _choose_method(page, method)
            # a fresh canvas for each method: the drawing sent grows with every stroke (the
            # PNG and the JSON of all its paths), which would slow the later methods' sends
            page.locator(".st-key-draw_clear button").click()
            page.locator(PREDICTION, has_text="Draw a digit").first.wait_for()
            page.wait_for_selector(IDLE)
            _round_trip(page, WARM_UP)  # the method's first map, its elements made anew
            results[method] = [_round_trip(page, STROKES[i % len(STROKES)]) for i in range(strokes)]
    finally:
        context.close()
    return results


def _median(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(name: str, results: list[dict]) -> None:
    ms = [r["ms"] for r in results]
    print(
        f"{name:24s} median {statistics.median(ms):6.0f} ms (range {min(ms):.0f}-{max(ms):.0f}) "
        f"over {len(ms)} strokes, {results[-1]['pictures']} pictures and "
        f"{results[-1]['charts']} charts updated"
    )
    parts = [("the drawing sent", "sent"), ("first answer", "first"), ("last answer", "last")]
    parts.append(("run reported ended", "server"))
    print(
        "    after the mouseup: "
        + ", ".join(
            f"{label} {_median(results, key):.0f} ms"
            for label, key in parts
            if _median(results, key) is not None
        )
    )
    print(
        f"    websocket per stroke: {_median(results, 'messages'):.0f} messages, "
        f"{_median(results, 'bytes_down') / 1000:.1f} kB to the page, "
        f"{_median(results, 'bytes_up') / 1000:.1f} kB from it "
        "(the drawing: its PNG and its paths as JSON)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strokes", type=int, default=10)
    parser.add_argument("--models", default="dense,cnn,default")
    parser.add_argument(
        "--methods",
        default="saliency",
        help="attribution methods to time, comma-separated: saliency, integrated_gradients, "
        "integrated_gradients:blurred, occlusion",
    )
    args = parser.parse_args()
    methods = args.methods.split(",")
    for method in methods:
        if method.partition(":")[0] not in METHOD_LABELS or method.partition(":")[2] not in (
            "",
            "black",
            "blurred",
        ):
            parser.error(f"unknown attribution method {method!r}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        root = Path(tmp)
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in args.models.split(","):
                proc, url = _start_server(_models_folder(name, root), root / f"{name}.log")
                try:
                    for method, results in measure(url, args.strokes, chromium, methods).items():
                        report(f"{name} {method}", results)
                finally:
                    _stop(proc)
        finally:
            chromium.close()


if __name__ == "__main__":
    main()
