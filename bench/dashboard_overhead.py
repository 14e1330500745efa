"""Time per epoch of training from the dashboard (a real `streamlit run app.py`, the Train page open
in Chromium and polling the job) against the command line (`python -m nn train`), same preset.

    python bench/dashboard_overhead.py                          # every scenario
    python bench/dashboard_overhead.py --scenarios overhead busy --rounds 3 \\
        --server-env NN_JOB_BLAS_THREADS=2 --json out.json

Scenarios (issue 12's targets on 2 cores in brackets):
    overhead   command line (two BLAS threads, OpenBLAS's default, and one) and dashboard
               alone, interleaved rounds                                        [<= +10%]
    busy       the same while another process keeps one core busy (a busy loop) [<= +25%]
    sessions   N browser sessions start the same training at once: their wall time against N
               times one session's (one server with NN_MAX_JOBS=N)              [about 1x]
    draw       a Draw page in another session answers strokes while three trainings run
               (NN_MAX_JOBS=3): the seconds from the mouse going up to the prediction shown
                                                                                [<= 0.5 s]

During every dashboard round the script also counts the CPU seconds of the server, the job's
worker and the browser's processes (from ``/proc``), and reads every websocket frame the page
receives (Streamlit's ``ForwardMsg``s): the bytes of one poll of each live fragment.

Each scenario has a server of its own. Every training records its epochs' seconds in a run
database (`nn.services.runs`); the script reads them back and prints medians. The script waits on
what the page shows (the progress text, the prediction), never on a clock. The BLAS thread
variables and ``NN_TRAIN_LIMIT`` are removed from the environment of the command line and the
server, so both run with their defaults; server settings (``NN_JOB_BLAS_THREADS``, ...) go
through ``--server-env NAME=VALUE``. Needs Debian's Chromium and the playwright package.
Timings taken while other work runs on the machine measure that work too: run it alone
(``/work/wt/cpu-exclusive python bench/dashboard_overhead.py ...`` on the shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit_server import free_port, streamlit_command  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PROGRESS = "[data-testid=stMain] [data-testid=stProgress]"
SCENARIOS = ("overhead", "busy", "sessions", "draw")
CLEARED_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NN_TRAIN_LIMIT")
SERVER_START_SECONDS = 300
PAGE_TIMEOUT_MS = 120_000
TRAINING_TIMEOUT_MS = 1_800_000
FINAL_LABELS = ("Finished", "Stopped", "Diverged", "Failed")

# The progress text of the Train page's live panel ("Training — epoch 3/5, about 4 s left").
_PROGRESS_JS = f"""() => Array.from(document.querySelectorAll("{PROGRESS}"))
    .map(e => e.innerText.trim()).join("\\n")"""


def _clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_VARIABLES}
    env.update(extra or {})
    return env


def _runs(db: Path) -> list:
    from nn.services.runs import RunStore

    return RunStore(db).list_runs() if db.exists() else []


def _epoch_seconds(db: Path, run_id: int) -> list[float]:
    from nn.services.runs import RunStore

    return [s for s in RunStore(db).get_run(run_id).history["seconds"] if s is not None]


def _new_runs(db: Path, before: set[int]) -> list:
    return sorted((r for r in _runs(db) if r.id not in before), key=lambda r: r.id)


# ------------------------------------------------------------------------------ command line
def cli_round(db: Path, preset: str, epochs: int, threads: int | None = None) -> list[float]:
    """``python -m nn train``'s epoch seconds; ``threads``: ``OPENBLAS_NUM_THREADS`` (None:
    OpenBLAS's default, one thread a core)."""
    env = _clean_environment({} if threads is None else {"OPENBLAS_NUM_THREADS": str(threads)})
    cmd = [
        sys.executable,
        "-m",
        "nn",
        "train",
        "--preset",
        preset,
        "--epochs",
        str(epochs),
        "--no-save",
        "--json",
        "--quiet",
        "--runs-db",
        str(db),
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return _epoch_seconds(db, json.loads(out.strip().splitlines()[-1])["run_id"])


@contextlib.contextmanager
def busy_core():
    """Another process that keeps one core busy while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------ the server
class Server:
    """``streamlit run app.py`` on 127.0.0.1 with its own run database and models folder. Ready
    once it has printed its URL (read from its output by a thread, which also keeps the log)
    and ``/_stcore/health`` answers ``ok``."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.db = folder / "runs.sqlite"
        self.models = folder / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        self.log = folder / "streamlit.log"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        full_env = _clean_environment(
            {
                "NN_RUNS_DB": str(self.db),
                "NN_MODELS_DIR": str(self.models),
                "PYTHONUNBUFFERED": "1",
                **env,
            }
        )
        self.proc = subprocess.Popen(
            streamlit_command(port),
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._listening = threading.Event()
        threading.Thread(target=self._copy_output, daemon=True).start()
        if not self._listening.wait(SERVER_START_SECONDS):
            self.stop()
            raise RuntimeError(f"streamlit did not start:\n{self.log_tail()}")
        with urllib.request.urlopen(self.url + "/_stcore/health", timeout=30) as answer:
            if answer.read().strip() != b"ok":
                self.stop()
                raise RuntimeError(f"streamlit is not healthy:\n{self.log_tail()}")

    def _copy_output(self) -> None:
        with open(self.log, "wb") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if b"URL:" in line:
                    self._listening.set()
        self._listening.set()  # the server ended: the waiter sees no health answer

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@contextlib.contextmanager
def serving(tmp: str, name: str, env: dict[str, str], model: Path | None = None):
    folder = Path(tmp) / name
    folder.mkdir()
    if model is not None:
        (folder / "models").mkdir()
        shutil.copy2(model, folder / "models" / model.name)
    server = Server(folder, env)
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------ CPU and bytes
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """``(name, parent pid, CPU seconds)`` of a process from ``/proc/PID/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter(threading.Thread):
    """CPU seconds of the server (``server_pid``), its children (the jobs' workers) and this
    script's browser processes, sampled from ``/proc`` every quarter second while it runs (a
    process that ends keeps its last sample)."""

    def __init__(self, server_pid: int):
        super().__init__(daemon=True)
        self.server_pid = server_pid
        self.seconds: dict[tuple[str, int], float] = {}
        self._first: dict[tuple[str, int], float] = {}
        self._halt = threading.Event()

    def _group(self, pid: int, table: dict[int, tuple[str, int, float]]) -> str | None:
        if pid == self.server_pid:
            return "server"
        name, parent = table[pid][0], table[pid][1]
        seen = set()
        while parent in table and parent not in seen:
            if parent == self.server_pid:
                return "worker"
            if parent == os.getpid():
                return "browser" if ("chrom" in name or "headless" in name) else None
            seen.add(parent)
            parent = table[parent][1]
        return "browser" if parent == os.getpid() and "chrom" in name else None

    def sample(self, baseline: bool = False) -> None:
        """Read every process's CPU seconds; ``baseline``: what each process had used at the
        start of the window (a process started later counts from zero)."""
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (st := _stat(int(entry))) is not None:
                table[int(entry)] = st
        for pid, (_, _, cpu) in table.items():
            group = self._group(pid, table)
            if group is not None:
                self._first.setdefault((group, pid), cpu if baseline else 0.0)
                self.seconds[(group, pid)] = cpu

    def run(self) -> None:
        while not self._halt.wait(0.25):
            self.sample()

    def __enter__(self) -> CpuMeter:
        self.sample(baseline=True)
        self.start_time = time.perf_counter()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join(timeout=30)
        self.sample()
        self.wall = time.perf_counter() - self.start_time

    def per_second(self) -> dict[str, float]:
        """CPU seconds per wall second of each group."""
        out = {"server": 0.0, "worker": 0.0, "browser": 0.0}
        for key, cpu in self.seconds.items():
            out[key[0]] += cpu - self._first.get(key, 0.0)
        return {group: total / self.wall for group, total in out.items()}


class PollBytes:
    """The websocket frames a page receives, parsed as Streamlit ``ForwardMsg``s and grouped by
    script run (a poll of a fragment is one): each run's bytes, from its first message to its
    ``script_finished``, and whether it carried a Plotly chart."""

    def __init__(self, page):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._parse = ForwardMsg.FromString
        self.runs: list[dict] = []
        self._current = {"bytes": 0, "messages": 0, "chart_bytes": 0}
        self.total = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode()
        self.total += len(data)
        cur = self._current
        cur["bytes"] += len(data)
        cur["messages"] += 1
        try:
            msg = self._parse(data)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: counted, not parsed
            return
        kind = msg.WhichOneof("type")
        element = msg.delta.new_element if kind == "delta" else None
        if element is not None and element.WhichOneof("type") == "plotly_chart":
            cur["chart_bytes"] += len(data)
        if kind == "script_finished":
            self.runs.append(cur)
            self._current = {"bytes": 0, "messages": 0, "chart_bytes": 0}

    def mark(self) -> int:
        return len(self.runs)

    FULL_RUN_MESSAGES = 30
    """A run with more messages is the whole page (a click's rerun), not a fragment's poll."""

    def summary(self, since: int, seconds: float) -> dict:
        runs = self.runs[since:]
        polls = [r for r in runs if r["messages"] <= self.FULL_RUN_MESSAGES]
        charts = [r for r in polls if r["chart_bytes"]]
        status = [r for r in polls if not r["chart_bytes"]]
        med = lambda rs, k="bytes": statistics.median(r[k] for r in rs) if rs else 0  # noqa: E731
        return {
            "polls_per_second": len(runs) / seconds,
            "bytes_per_second": sum(r["bytes"] for r in runs) / seconds,
            "status_poll_bytes": med(status),
            "status_poll_messages": med(status, "messages"),
            "chart_poll_bytes": med(charts),
            "chart_poll_messages": med(charts, "messages"),
            "chart_polls": len(charts),
            "status_polls": len(status),
            "full_runs": len(runs) - len(polls),
        }


# ------------------------------------------------------------------------------ the Train page
def _progress_text(page) -> str:
    return page.evaluate(_PROGRESS_JS)


def _wait_progress(page, pattern: str, timeout_ms: int, polling: int = 250) -> str:
    """Wait until the Train page's progress text matches the regular expression ``pattern``
    (checked in the browser every ``polling`` ms); return the text."""
    page.wait_for_function(
        f"() => new RegExp({json.dumps(pattern)}).test(({_PROGRESS_JS})())",
        polling=polling,
        timeout=timeout_ms,
    )
    return _progress_text(page)


# Counts the script runs the page has completed since it was installed: every change of the
# app's script state away from "running" (the records keep the old values, so a run that starts
# and ends between two callbacks still counts).
_COUNT_RUNS_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__nnRunsDone = 0;
  if (window.__nnRunObserver) window.__nnRunObserver.disconnect();
  window.__nnRunObserver = new MutationObserver(records => {
    for (const r of records) if (r.oldValue === 'running') window.__nnRunsDone += 1;
  });
  window.__nnRunObserver.observe(app, {attributes: true, attributeOldValue: true,
                                       attributeFilter: ['data-test-script-state']});
}"""


def _settled_after(page, action) -> None:
    """Do ``action()`` (a click, a key) and wait until the script run it caused has ended."""
    page.evaluate(_COUNT_RUNS_JS)
    action()
    page.wait_for_function("() => window.__nnRunsDone >= 1", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)


def prepare_training(page, url: str, preset: str, epochs: int) -> None:
    """Open the Train page, pick ``preset`` and set ``epochs`` (not started yet)."""
    page.goto(url + "/train", timeout=PAGE_TIMEOUT_MS)
    page.locator(".st-key-start_training button").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
    _settled_after(page, page.locator(f".st-key-preset_{preset} button:visible").first.click)
    page.get_by_role("tab", name="Data", exact=True).click()
    box = page.locator(".st-key-tf_epochs input")
    box.fill(str(epochs))
    _settled_after(page, lambda: box.press("Enter"))
    if box.input_value() != str(epochs):
        raise RuntimeError(f"the epochs field shows {box.input_value()!r}, not {epochs}")


def _wait_epoch(page, epoch: int, epochs: int) -> None:
    """Wait until the page shows the training at ``epoch`` of ``epochs`` or later (or ended)."""
    labels = "|".join(FINAL_LABELS)
    page.wait_for_function(
        f"""() => {{
          const text = ({_PROGRESS_JS})();
          const m = /^Training — epoch (\\d+)\\/{epochs}\\b/.exec(text);
          return (m && +m[1] >= {epoch}) || /^({labels}) — epoch/.test(text);
        }}""",
        polling=100,
        timeout=TRAINING_TIMEOUT_MS,
    )


def press_start(page, epochs: int) -> None:
    """Press Start and wait until the page shows the job queued or under way with ``epochs``."""
    page.locator(".st-key-start_training button").click()
    _wait_progress(page, rf"(epoch \d+/{epochs}\b)|(Waiting for a free worker)", PAGE_TIMEOUT_MS)


def wait_finished(page, epochs: int) -> str:
    """Wait until the page shows the training ended; ``RuntimeError`` unless it finished."""
    labels = "|".join(FINAL_LABELS)
    text = _wait_progress(page, rf"^({labels}) — epoch", TRAINING_TIMEOUT_MS, polling=1000)
    if not text.startswith(f"Finished — epoch {epochs}/{epochs}"):
        main = page.locator("[data-testid=stMain]").inner_text()
        raise RuntimeError(f"the dashboard's training did not finish: {text!r}\n{main[-2000:]}")
    return text


def dashboard_round(page, server: Server, args, polls: PollBytes, meter: dict) -> list[float]:
    """One training from the Train page, which stays open and polls; ``meter`` gets the CPU
    seconds per second of the server, the worker and the browser and the poll bytes."""
    preset, epochs = args.preset, args.epochs
    before = {r.id for r in _runs(server.db)}
    prepare_training(page, server.url, preset, epochs)
    press_start(page, epochs)
    # measured from the second epoch to the last: the page polling, not the full reruns of
    # Start and of the end (a whole page sent and drawn)
    _wait_epoch(page, min(2, epochs), epochs)
    mark = polls.mark()
    with CpuMeter(server.proc.pid) as cpu:
        _wait_epoch(page, epochs, epochs)
    meter.update(cpu=cpu.per_second(), polls=polls.summary(mark, cpu.wall), wall=cpu.wall)
    wait_finished(page, epochs)
    (run,) = _new_runs(server.db, before)
    return _epoch_seconds(server.db, run.id)


IDLE_SECONDS = 10


def idle_page_cost(page, server: Server) -> dict[str, float]:
    """CPU seconds per second of the server and the browser with the Train page open and no
    training (measured over :data:`IDLE_SECONDS`)."""
    page.goto(server.url + "/train", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
    with CpuMeter(server.proc.pid) as cpu:
        page.wait_for_timeout(IDLE_SECONDS * 1000)  # the window measured, not a wait for an event
    return cpu.per_second()


CONTENDERS = ("cli", "cli1", "dashboard")
_NAMES = {
    "cli": "command line, 2 BLAS threads",
    "cli1": "command line, 1 BLAS thread",
    "dashboard": "dashboard (page open, polling)",
}


def overhead_round(page, server: Server, args, label: str) -> dict:
    """Interleaved rounds of the command line on two BLAS threads (OpenBLAS's default on two
    cores), on one, and the dashboard: median seconds per epoch of each, the dashboard against
    both, and the CPU the page cost while it trained."""
    cli_db = Path(server.db).with_name("cli-runs.sqlite")
    epochs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    meters: list[dict] = []
    polls = PollBytes(page)
    idle = idle_page_cost(page, server)
    for r in range(args.rounds):
        for name in CONTENDERS:
            print(f"{label} round {r + 1}: {_NAMES[name]} ...", file=sys.stderr)
            if name == "dashboard":
                meters.append({})
                seconds = dashboard_round(page, server, args, polls, meters[-1])
            else:
                threads = 1 if name == "cli1" else None
                seconds = cli_round(cli_db, args.preset, args.epochs, threads)
            epochs[name] += seconds
            print(f"  {statistics.median(seconds):.2f} s/epoch", file=sys.stderr)
    out: dict = {f"{name}_epoch_seconds": epochs[name] for name in CONTENDERS}
    for name in CONTENDERS:
        out[f"{name}_median"] = statistics.median(epochs[name])
    out["overhead_percent"] = 100 * (out["dashboard_median"] / out["cli_median"] - 1)
    out["overhead_vs_cli1_percent"] = 100 * (out["dashboard_median"] / out["cli1_median"] - 1)
    out["meters"] = meters
    out["idle_page_cpu_per_second"] = idle
    out["cpu_per_second"] = {
        group: statistics.median(m["cpu"][group] for m in meters) for group in meters[0]["cpu"]
    }
    out["polls"] = {
        key: statistics.median(m["polls"][key] for m in meters) for key in meters[0]["polls"]
    }
    cpu = out["cpu_per_second"]
    polls = out["polls"]
    print(
        f"{label}: command line {out['cli_median']:.2f} s/epoch (1 thread "
        f"{out['cli1_median']:.2f}), dashboard {out['dashboard_median']:.2f} s/epoch: "
        f"{out['overhead_percent']:+.1f}% ({out['overhead_vs_cli1_percent']:+.1f}% against one "
        f"thread); CPU s/s while it trained: server {cpu['server']:.3f}, browser "
        f"{cpu['browser']:.3f}, worker {cpu['worker']:.3f}; {polls['polls_per_second']:.2f} "
        f"polls/s, {polls['bytes_per_second']:,.0f} B/s, a status poll "
        f"{polls['status_poll_bytes']:,.0f} B, a chart poll {polls['chart_poll_bytes']:,.0f} B; "
        f"the page open without a training: server {idle['server']:.3f}, browser "
        f"{idle['browser']:.3f} CPU s/s"
    )
    return out


# ------------------------------------------------------------------------------ sessions
def sessions_round(browser, server: Server, preset: str, epochs: int, n: int) -> dict:
    """One session's training (Start to Finished shown), then ``n`` sessions pressing Start
    one right after the other: the wall time until the last shows Finished."""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(n)]
    try:
        pages = [c.new_page() for c in contexts]
        prepare_training(pages[0], server.url, preset, epochs)
        start = time.perf_counter()
        press_start(pages[0], epochs)
        wait_finished(pages[0], epochs)
        single = time.perf_counter() - start
        before = {r.id for r in _runs(server.db)}
        for page in pages:  # each context is a browser session of its own
            prepare_training(page, server.url, preset, epochs)
        start = time.perf_counter()
        for page in pages:
            press_start(page, epochs)
        for page in pages:
            wait_finished(page, epochs)
        wall = time.perf_counter() - start
    finally:
        for c in contexts:
            c.close()
    runs = _new_runs(server.db, before)
    return {
        "sessions": n,
        "single_seconds": single,
        "wall_seconds": wall,
        "ratio_to_serial": wall / (n * single),
        "epoch_median": statistics.median(s for r in runs for s in _epoch_seconds(server.db, r.id)),
    }


# ------------------------------------------------------------------------------ draw
_PREDICTED_JS = "() => /\\d/.test(document.querySelector('.st-key-prediction')?.innerText || '')"
_CLEARED_JS = (
    "() => { const t = document.querySelector('.st-key-prediction')?.innerText;"
    " return t !== undefined && !/\\d/.test(t); }"
)


# The Draw page's canvases (inside the component's open shadow root): ready when exactly one is
# drawn, not one marked as cleared, and the prediction shows no digit.
_CANVASES_JS = """() => Array.from(
    document.querySelectorAll('[data-testid=stBidiComponentIsolated]')
  ).flatMap(h => Array.from((h.shadowRoot || h).querySelectorAll('canvas.upper-canvas')))"""
_CANVAS_READY_JS = f"""() => {{
  const canvases = ({_CANVASES_JS})();
  return canvases.length === 1 && !canvases[0].__nnCleared
      && canvases[0].getBoundingClientRect().width > 100 && ({_CLEARED_JS})();
}}"""
_MARK_CLEARED_JS = f"() => ({_CANVASES_JS})().forEach(c => {{ c.__nnCleared = true; }})"


def _wait_canvas_ready(page) -> None:
    """Wait until the Draw page shows one fresh canvas, no prediction, and its script is idle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(_CANVAS_READY_JS, timeout=PAGE_TIMEOUT_MS)
    except PlaywrightTimeout:
        canvases = page.evaluate(f"() => ({_CANVASES_JS})().map(c => [!!c.__nnCleared, c.width])")
        prediction = page.locator(".st-key-prediction").all_inner_texts()
        raise RuntimeError(
            f"the Draw page's canvas is not ready: canvases {canvases}, prediction {prediction}"
        ) from None
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)


def _clear(page) -> None:
    """Press Clear and wait for the fresh canvas that replaces the drawn one."""
    page.evaluate(_MARK_CLEARED_JS)
    page.locator(".st-key-draw_clear button").click()
    _wait_canvas_ready(page)


def _stroke(page, points, steps: int = 30) -> None:
    box = page.locator(CANVAS).bounding_box()
    (x0, y0), rest = points[0], points[1:]
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for xb, yb in rest:
        for i in range(1, steps + 1):
            page.mouse.move(
                box["x"] + x0 + (xb - x0) * i / steps, box["y"] + y0 + (yb - y0) * i / steps
            )
        x0, y0 = xb, yb


def draw_round(browser, server: Server, preset: str, trainings: int, strokes: int) -> dict:
    """Strokes on a Draw page while ``trainings`` sessions train: seconds from each stroke's
    mouse-up to the prediction shown."""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(trainings + 1)]
    try:
        trainers = [c.new_page() for c in contexts[:-1]]
        for page in trainers:
            prepare_training(page, server.url, preset, 1000)
            press_start(page, 1000)
        texts = [
            _wait_progress(p, r"^Training — epoch \d+/1000", PAGE_TIMEOUT_MS) for p in trainers
        ]
        drawing = contexts[-1].new_page()
        drawing.goto(server.url + "/draw", timeout=PAGE_TIMEOUT_MS)
        _wait_canvas_ready(drawing)
        seconds = []
        for _ in range(strokes):
            _stroke(drawing, [(140, 40), (140, 240)])
            drawing.mouse.up()
            start = time.perf_counter()
            drawing.wait_for_function(_PREDICTED_JS, polling="raf", timeout=PAGE_TIMEOUT_MS)
            seconds.append(time.perf_counter() - start)
            _clear(drawing)
        still = [_progress_text(p) for p in trainers]
    finally:
        for c in contexts:
            c.close()
    return {
        "trainings": trainings,
        "progress_before": texts,
        "progress_after": still,
        "trainings_running_after": sum(t.startswith("Training — epoch") for t in still),
        "stroke_seconds": seconds,
        "median": statistics.median(seconds),
        "max": max(seconds),
    }


# ------------------------------------------------------------------------------ main
def _parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--server-env takes NAME=VALUE, not {item!r}")
        env[name] = value
    return env


def _draw_model(tmp: str, preset: str) -> Path:
    """A saved model for the Draw page: ``saved_models/default.npz``, else one trained here."""
    bundled = ROOT / "saved_models" / "default.npz"
    if bundled.is_file():
        return bundled
    folder = Path(tmp) / "draw-model"
    subprocess.run(
        [sys.executable, "-m", "nn", "train", "--preset", preset, "--epochs", "1", "--quiet"]
        + ["--name", "default", "--models-dir", str(folder)]
        + ["--runs-db", str(Path(tmp) / "draw-model.sqlite")],
        cwd=ROOT,
        env=_clean_environment(),
        check=True,
    )
    return folder / "default.npz"


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    env = _parse_env(args.server_env)
    result: dict = {
        "preset": args.preset,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "server_env": env,
    }
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, busy in (("overhead", False), ("busy", True)):
                if name not in args.scenarios:
                    continue
                with serving(tmp, name, env) as server:
                    context = browser.new_context(viewport=VIEWPORT)
                    page = context.new_page()
                    label = "one core busy" if busy else "alone"
                    with busy_core() if busy else contextlib.nullcontext():
                        result[name] = overhead_round(page, server, args, label)
                    context.close()
            if "sessions" in args.scenarios:
                cap = {"NN_MAX_JOBS": str(args.sessions)}
                with serving(tmp, "sessions", {**cap, **env}) as server:
                    out = sessions_round(browser, server, args.preset, args.epochs, args.sessions)
                result["sessions"] = out
                print(
                    f"{out['sessions']} sessions at once: {out['wall_seconds']:.1f} s, "
                    f"{out['ratio_to_serial']:.2f}x the time of one after another "
                    f"({out['single_seconds']:.1f} s each), epochs {out['epoch_median']:.2f} s"
                )
            if "draw" in args.scenarios:
                model = _draw_model(tmp, args.preset)
                cap = {"NN_MAX_JOBS": str(args.draw_trainings)}
                with serving(tmp, "draw", {**cap, **env}, model) as server:
                    out = draw_round(
                        browser, server, args.preset, args.draw_trainings, args.strokes
                    )
                result["draw"] = out
                print(
                    f"Draw while {out['trainings']} trainings run "
                    f"({out['trainings_running_after']} still running after): stroke to "
                    f"prediction median {out['median']:.2f} s, max {out['max']:.2f} s"
                )
        finally:
            browser.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--sessions", type=int, default=3, help="sessions training at once")
    parser.add_argument("--strokes", type=int, default=5, help="strokes drawn in 'draw'")
    parser.add_argument(
        "--draw-trainings", type=int, default=3, help="sessions training during 'draw'"
    )
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Streamlit server",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
