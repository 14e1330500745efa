"""Time per epoch of training from the dashboard (a real `streamlit run app.py`, the Train page open
in Chromium and polling the worker) against the command line (`python -m nn train`), same preset.

    python bench/dashboard_overhead.py               # fast preset, 3 epochs, 2 rounds each

Both record every epoch's seconds in a run database (`nn.runs`); the script reads them back and
prints the medians and the overhead. Needs Debian's Chromium and the playwright package.
"""

from __future__ import annotations

import argparse
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


def dashboard_round(
    page, url: str, db: Path, preset: str, epochs: int, away: str | None = None
) -> list[float]:
    from nn.services.runs import RunStore

    before = {r.id for r in RunStore(db).list_runs()}
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
    if away == "overview":  # watch from the Overview page (only the sidebar's status polls)
        page.wait_for_timeout(2000)
        page.locator("[data-testid=stSidebarNavLink]", has_text="Overview").first.click()
    deadline = time.time() + 1800
    while time.time() < deadline:  # the page stays open and polls the worker meanwhile
        runs = [r for r in RunStore(db).list_runs() if r.id not in before]
        if runs and runs[0].status != "running":
            if runs[0].status != "finished":
                raise RuntimeError(f"dashboard run ended as {runs[0].status}: {runs[0].message}")
            return _epoch_seconds(db, runs[0].id)
        time.sleep(1.0)
    raise TimeoutError("the dashboard run did not finish")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
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

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.sqlite"
        port = _free_port()
        env = {
            **os.environ,
            "NN_RUNS_DB": str(db),
            "NN_MODELS_DIR": str(Path(tmp) / "models"),
            **dict(item.split("=", 1) for item in args.server_env),
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
        try:
            for _ in range(200):
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.3)
            cli, dash = [], []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for r in range(args.rounds):
                    print(f"round {r + 1}: command line ...", file=sys.stderr)
                    cli += cli_round(db, args.preset, args.epochs)
                    print(f"round {r + 1}: dashboard ...", file=sys.stderr)
                    dash += dashboard_round(page, url, db, args.preset, args.epochs, args.away)
                    c = statistics.median(cli[-args.epochs :])
                    d = statistics.median(dash[-args.epochs :])
                    print(
                        f"round {r + 1}: command line {c:.2f} s/epoch, dashboard {d:.2f} "
                        f"s/epoch ({100 * (d / c - 1):+.1f}%)",
                        file=sys.stderr,
                    )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "preset": args.preset,
        "cli_epoch_seconds": cli,
        "dashboard_epoch_seconds": dash,
        "cli_median": statistics.median(cli),
        "dashboard_median": statistics.median(dash),
    }
    result["overhead_percent"] = 100 * (result["dashboard_median"] / result["cli_median"] - 1)
    print(
        f"preset {args.preset}: command line {result['cli_median']:.2f} s/epoch, dashboard "
        f"(page open, polling) {result['dashboard_median']:.2f} s/epoch: "
        f"{result['overhead_percent']:+.1f}%"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
