"""Time per epoch of training from the dashboard (a real `streamlit run app.py`, the Train page open
in Chromium and polling the job) against the command line (`python -m nn train`), same preset.

    python bench/dashboard_overhead.py               # every scenario, fast preset, 3 epochs
    python bench/dashboard_overhead.py --scenarios overhead busy --rounds 3

Scenarios (issue 12's targets on 2 cores in brackets):
    overhead   command line and dashboard alone, alternating rounds             [<= +10%]
    busy       the same while another process keeps one core busy (a busy loop) [<= +25%]
    sessions   N browser sessions start the same training at once: their wall time against N
               times one session's                                            [about 1x]
    draw       a Draw page in another session answers strokes while three trainings run: the
               seconds from the mouse going up to the prediction shown          [<= 0.5 s]

Every training records its epochs' seconds in a run database (`nn.runs`); the script reads them
back and prints medians. Server settings (`NN_MAX_JOBS`, `NN_JOB_BLAS_THREADS`, ...) go through
`--server-env NAME=VALUE`. Needs Debian's Chromium and the playwright package. Timings taken
while other work runs on the machine measure that work too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANVAS = "[data-testid=stBidiComponentIsolated] canvas.upper-canvas"
SCENARIOS = ("overhead", "busy", "sessions", "draw")

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _epoch_seconds(db: Path, run_id: int) -> list[float]:
    from nn.services.runs import RunStore

    return [s for s in RunStore(db).get_run(run_id).history["seconds"] if s is not None]


def cli_round(db: Path, preset: str, epochs: int) -> list[float]:
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
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return _epoch_seconds(db, json.loads(out.strip().splitlines()[-1])["run_id"])


def start_dashboard_training(page, url: str, preset: str, epochs: int) -> None:
    """Open the Train page, pick ``preset``, set ``epochs`` and press Start."""
    page.goto(url + "/train")
    page.wait_for_selector("h1")
    page.locator(f".st-key-preset_{preset} button:visible").first.click()
    page.wait_for_timeout(500)
    box = page.locator(".st-key-tf_epochs input")
    tabs = page.get_by_role("tab")
    for i in range(tabs.count()):  # the epochs field sits in one of the form's tabs
        if box.is_visible():
            break
        tabs.nth(i).click()
        page.wait_for_timeout(300)
    box.fill(str(epochs))
    box.press("Enter")
    page.wait_for_timeout(500)
    page.locator(".st-key-start_training button").click()


def _run_ids(db: Path) -> set[int]:
    from nn.services.runs import RunStore

    return {r.id for r in RunStore(db).list_runs()}


def wait_runs(db: Path, before: set[int], n: int, timeout: float = 3600) -> list:
    """The ``n`` runs started after ``before``, once all of them have ended."""
    from nn.services.runs import RunStore

    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = [r for r in RunStore(db).list_runs() if r.id not in before]
        if len(runs) >= n and all(r.status != "running" for r in runs):
            bad = [r for r in runs if r.status != "finished"]
            if bad:
                raise RuntimeError(f"dashboard run ended as {bad[0].status}: {bad[0].message}")
            return runs
        time.sleep(1.0)
    raise TimeoutError("the dashboard runs did not finish")


def dashboard_round(
    page, url: str, db: Path, preset: str, epochs: int, away: str | None = None
) -> list[float]:
    before = _run_ids(db)
    start_dashboard_training(page, url, preset, epochs)
    if away == "overview":  # watch from the Overview page (only the sidebar's status polls)
        page.wait_for_timeout(2000)
        page.locator("[data-testid=stSidebarNavLink]", has_text="Overview").first.click()
    run = wait_runs(db, before, 1)[0]  # the page stays open and polls meanwhile
    return _epoch_seconds(db, run.id)


@contextlib.contextmanager
def busy_core():
    """Another process that keeps one core busy while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def _seconds_of(run) -> float:
    return float(run.duration_seconds or sum(s for s in run.history["seconds"] if s))


def sessions_round(browser, url: str, db: Path, preset: str, epochs: int, n: int) -> dict:
    """One session's training, then ``n`` sessions starting it at once."""
    from nn.services.runs import RunStore

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    before = _run_ids(db)
    start_dashboard_training(page, url, preset, epochs)
    single = _seconds_of(RunStore(db).get_run(wait_runs(db, before, 1)[0].id))
    page.close()
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(n)]
    pages = [c.new_page() for c in contexts]
    before = _run_ids(db)
    for p in pages:  # each context is its own browser session
        p.goto(url + "/train")
    start = time.perf_counter()
    for p in pages:
        start_dashboard_training(p, url, preset, epochs)
    runs = wait_runs(db, before, n)
    wall = time.perf_counter() - start
    for c in contexts:
        c.close()
    return {
        "sessions": n,
        "single_seconds": single,
        "wall_seconds": wall,
        "ratio_to_serial": wall / (n * single),
        "epoch_median": statistics.median(s for r in runs for s in _epoch_seconds(db, r.id)),
    }


def _prediction_shown(page) -> None:
    page.wait_for_function(
        "() => /\\d/.test(document.querySelector('.st-key-prediction')?.innerText || '')",
        polling="raf",
        timeout=60_000,
    )


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
    page.mouse.up()


def draw_round(browser, url: str, db: Path, preset: str, trainings: int, strokes: int) -> dict:
    """Strokes on a Draw page while ``trainings`` sessions train: seconds to each prediction."""
    contexts = [
        browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(trainings)
    ]
    before = _run_ids(db)
    for c in contexts:
        start_dashboard_training(c.new_page(), url, preset, 1000)
    from nn.services.runs import RunStore

    deadline = time.time() + 600
    runs: list = []
    while time.time() < deadline:  # the trainings under way (those beyond NN_MAX_JOBS wait)
        runs = [r for r in RunStore(db).list_runs() if r.id not in before]
        if runs and all(r.epochs_done >= 1 for r in runs):
            break
        time.sleep(1.0)
    drawing = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    drawing.goto(url + "/draw", timeout=300_000)
    drawing.locator(CANVAS).wait_for(timeout=300_000)
    seconds = []
    for _ in range(strokes):
        _stroke(drawing, [(140, 40), (140, 240)])
        start = time.perf_counter()
        _prediction_shown(drawing)
        seconds.append(time.perf_counter() - start)
        drawing.locator(".st-key-draw_clear button").click()
        drawing.wait_for_function(
            "() => !/\\d/.test(document.querySelector('.st-key-prediction')?.innerText || 'x')",
            timeout=60_000,
        )
    for c in contexts:
        c.close()
    return {
        "trainings": trainings,
        "trainings_running": len(runs),
        "stroke_seconds": seconds,
        "median": statistics.median(seconds),
        "max": max(seconds),
    }


def overhead_round(page, url: str, db: Path, args, label: str) -> dict:
    """Alternating command-line and dashboard rounds: median seconds per epoch of each."""
    cli, dash = [], []
    for r in range(args.rounds):
        print(f"{label} round {r + 1}: command line ...", file=sys.stderr)
        cli += cli_round(db, args.preset, args.epochs)
        print(f"{label} round {r + 1}: dashboard ...", file=sys.stderr)
        dash += dashboard_round(page, url, db, args.preset, args.epochs, args.away)
    out = {
        "cli_epoch_seconds": cli,
        "dashboard_epoch_seconds": dash,
        "cli_median": statistics.median(cli),
        "dashboard_median": statistics.median(dash),
    }
    out["overhead_percent"] = 100 * (out["dashboard_median"] / out["cli_median"] - 1)
    print(
        f"{label}: command line {out['cli_median']:.2f} s/epoch, dashboard (page open, polling) "
        f"{out['dashboard_median']:.2f} s/epoch: {out['overhead_percent']:+.1f}%"
    )
    return out


def start_server(tmp: str, server_env: list[str]) -> tuple[subprocess.Popen, str, Path]:
    db = Path(tmp) / "runs.sqlite"
    models = Path(tmp) / "models"
    port = _free_port()
    env = {
        **os.environ,
        "NN_RUNS_DB": str(db),
        "NN_MODELS_DIR": str(models),
        **dict(item.split("=", 1) for item in server_env),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    return server, url, db


def _model_for_draw(tmp: str, preset: str) -> None:
    """A saved model in the server's models folder, so that the Draw page predicts."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nn",
            "train",
            "--preset",
            preset,
            "--epochs",
            "1",
            "--quiet",
            "--name",
            "bench",
            "--models-dir",
            str(Path(tmp) / "models"),
            "--runs-db",
            str(Path(tmp) / "cli-runs.sqlite"),
        ],
        cwd=ROOT,
        check=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--sessions", type=int, default=3, help="sessions training at once")
    parser.add_argument("--strokes", type=int, default=5, help="strokes drawn in 'draw'")
    parser.add_argument(
        "--draw-trainings", type=int, default=3, help="sessions training during 'draw'"
    )
    parser.add_argument(
        "--away",
        action="store_const",
        const="overview",
        help="leave the Train page for the Overview page while training runs",
    )
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Streamlit server",
    )
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    result: dict = {"preset": args.preset, "epochs": args.epochs, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        if "draw" in args.scenarios:
            _model_for_draw(tmp, args.preset)
        server, url, db = start_server(tmp, args.server_env)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                if "overhead" in args.scenarios:
                    result["overhead"] = overhead_round(page, url, db, args, "alone")
                if "busy" in args.scenarios:
                    with busy_core():
                        result["busy"] = overhead_round(page, url, db, args, "one core busy")
                page.close()
                if "sessions" in args.scenarios:
                    out = sessions_round(browser, url, db, args.preset, args.epochs, args.sessions)
                    result["sessions"] = out
                    print(
                        f"{out['sessions']} sessions at once: {out['wall_seconds']:.1f} s, "
                        f"{out['ratio_to_serial']:.2f}x the time of one after another "
                        f"({out['single_seconds']:.1f} s each)"
                    )
                if "draw" in args.scenarios:
                    out = draw_round(
                        browser, url, db, args.preset, args.draw_trainings, args.strokes
                    )
                    result["draw"] = out
                    print(
                        f"Draw while {out['trainings']} trainings were started "
                        f"({out['trainings_running']} running): stroke to prediction "
                        f"median {out['median']:.2f} s, max {out['max']:.2f} s"
                    )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
